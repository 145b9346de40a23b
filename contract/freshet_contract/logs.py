"""One JSON object per log line: `time`, `level`, `logger`, `msg`, the component, and
the bound context (e.g. the run id and model version) on each.

Job and server pods are read through `kubectl logs` and log collectors; JSON
lines with the run id and version on every line can be filtered without
parsing free text. Fields passed with `extra=` become keys of the line. Part of
the contract because the operator's side reads it too: the dashboard shows a
running trainer's lines (`msg` and `time`) as the run's progress.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Formats records as JSON with the bound context (e.g. runId, version) on each."""

    def __init__(self, component: str) -> None:
        super().__init__()
        self.context: dict[str, Any] = {"component": component}

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **self.context,
        }
        line.update(
            (key, value)
            for key, value in vars(record).items()
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_")
        )
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure(component: str, level: int = logging.INFO) -> JsonFormatter:
    """Send every log record to stderr as JSON; returns the formatter to bind context on."""
    formatter = JsonFormatter(component)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)  # e.g. ConvergenceWarning, as JSON lines too
    return formatter
