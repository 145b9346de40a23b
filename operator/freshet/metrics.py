"""Prometheus metrics of the operator, served on `FRESHET_METRICS_PORT`."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

_POLICY = ["namespace", "policy"]

TRAININGS = Counter(
    "freshet_trainings_total",
    "Training runs by outcome (started, succeeded, failed, skipped: every new batch refused).",
    [*_POLICY, "outcome"],
)
PROMOTIONS = Counter("freshet_promotions_total", "Models promoted to serving.", _POLICY)
GATE_REJECTIONS = Counter("freshet_gate_rejections_total", "Candidates the gate refused.", _POLICY)
BATCHES_SEEN = Counter("freshet_batches_seen_total", "New batches seen in the store.", _POLICY)
BATCHES_CONSUMED = Counter(
    "freshet_batches_consumed_total", "Batches recorded as used by a finished run.", _POLICY
)
BATCHES_QUARANTINED = Counter(
    "freshet_batches_quarantined_total", "Batches moved to quarantine.", _POLICY
)
TRIGGER_LATENCY = Histogram(
    "freshet_trigger_latency_seconds",
    "From the watcher first seeing a batch to the Job that trains on it being created.",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
LISTING_SECONDS = Histogram(
    "freshet_bucket_listing_seconds",
    "Wall time of one listing of a watched bucket, every page of it: a listing slower"
    " than the poll interval means listings back to back, the store's busiest state.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
)
ACTIVE_RUNS = Gauge("freshet_active_runs", "Training Jobs in flight, operator-wide.")
MEASUREMENTS = Counter(
    "freshet_monitoring_measurements_total",
    "Measurements of the serving model, by verdict (Pass, Fail, Inconclusive, Error), whatever"
    " version they measured and including those in the bake period: status.monitoring.totals"
    " counts the same measurements, kept in the ledger across operator restarts.",
    [*_POLICY, "verdict"],
)
ROLLBACKS = Counter("freshet_rollbacks_total", "Serving models rolled back.", _POLICY)
BACKFILLS = Counter(
    "freshet_backfills_total",
    "Runs started because late labels of trained batches changed.",
    _POLICY,
)
DRIFT_DETECTED = Counter(
    "freshet_drift_detected_total",
    "New batches whose distribution changed (feature drift, values beyond the reference's"
    " range, a shifted label rate), by what they got (Retrain, Hold, Ignore).",
    [*_POLICY, "action"],
)


@dataclass(frozen=True, slots=True)
class _State:
    conditions: tuple[tuple[str, bool], ...]
    pending: int | None
    quarantined: int | None
    serving_version: int | None
    promoted: float | None


class PolicyStates(Collector):
    """Per-policy gauges from the status the operator last computed: what alerts
    and dashboards need that counters cannot say (is it degraded now, how old is
    the serving model, how much waits). Removed when the policy goes away.

    Kept as plain values and turned into metric families only when scraped (a
    labelled Gauge child per policy and series costs about a kilobyte, five
    megabytes at a thousand policies), in a registry of their own so that their
    text is formatted only when a state changed since the last scrape: at a
    thousand policies it is 8,000 series and ~50 ms of CPU, most of a scrape's
    cost, and an idle operator's states do not change."""

    def __init__(self) -> None:
        self.states: dict[tuple[str, str], _State] = {}
        self.changes = 0  # bumped on every change of states
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(self)
        self._text: tuple[int, bytes] = (-1, b"")

    def put(self, key: tuple[str, str], state: _State) -> None:
        if self.states.get(key) != state:
            self.states[key] = state
            self.changes += 1

    def drop(self, key: tuple[str, str]) -> None:
        if self.states.pop(key, None) is not None:
            self.changes += 1

    def text(self) -> bytes:
        changes = self.changes  # read first: a change made while formatting shows next time
        if self._text[0] != changes:
            self._text = (changes, generate_latest(self.registry))
        return self._text[1]

    def collect(self) -> Iterable[Metric]:
        states = list(self.states.items())  # a scrape runs in the HTTP server's thread
        condition = GaugeMetricFamily(
            "freshet_policy_condition",
            "1 when the policy's status condition of this type is True, else 0.",
            labels=[*_POLICY, "type"],
        )
        pending = GaugeMetricFamily(
            "freshet_policy_pending_batches",
            "Batches waiting for a run (status.data.pending).",
            labels=_POLICY,
        )
        quarantined = GaugeMetricFamily(
            "freshet_policy_quarantined_batches",
            "Batches held in quarantine now (status.data.quarantined).",
            labels=_POLICY,
        )
        version = GaugeMetricFamily(
            "freshet_policy_serving_version",
            "Number of the serving model's version (vN); absent before the first promotion.",
            labels=_POLICY,
        )
        promoted = GaugeMetricFamily(
            "freshet_policy_last_promotion_timestamp_seconds",
            "When the serving model was promoted (Unix time); absent before the first promotion.",
            labels=_POLICY,
        )
        for key, state in states:
            for ctype, true in state.conditions:
                condition.add_metric([*key, ctype], 1.0 if true else 0.0)
            for family, value in (
                (pending, state.pending),
                (quarantined, state.quarantined),
                (version, state.serving_version),
                (promoted, state.promoted),
            ):
                if value is not None:
                    family.add_metric(list(key), float(value))
        return [condition, pending, quarantined, version, promoted]


POLICY_STATES = PolicyStates()


def exposition() -> bytes:
    """The text a scrape gets: the counters and histograms, then the policy states."""
    return generate_latest(REGISTRY) + POLICY_STATES.text()


class _Scrape(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = exposition()
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE_PLAIN_0_0_4)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """A scrape is not worth a log line."""


def serve(port: int) -> ThreadingHTTPServer:
    """Serve `exposition()` on every path of `port`, from a thread of its own.

    Counters lose their `_created` series: in the text format each is one more
    series per policy for Prometheus to store, that no query here reads."""
    disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus_client
    server = ThreadingHTTPServer(("0.0.0.0", port), _Scrape)  # scraped from the pod network
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server


def report_state(namespace: str, policy: str, status: Mapping[str, Any]) -> None:
    """Keep the per-policy gauges' values from a status document (status.build's output)."""
    data = status.get("data") or {}
    serving = status.get("serving") or {}
    version, promoted = str(serving.get("version") or ""), serving.get("promotedTime")
    POLICY_STATES.put(
        (namespace, policy),
        _State(
            conditions=tuple(
                (str(c["type"]), c.get("status") == "True") for c in status.get("conditions") or []
            ),
            pending=int(data["pending"]) if "pending" in data else None,
            quarantined=int(data["quarantined"]) if "quarantined" in data else None,
            serving_version=(
                int(version[1:]) if version.startswith("v") and version[1:].isdigit() else None
            ),
            promoted=(
                datetime.fromisoformat(str(promoted).replace("Z", "+00:00")).timestamp()
                if promoted
                else None
            ),
        ),
    )


def forget(namespace: str, policy: str) -> None:
    """Drop the policy's state gauges (it was deleted); its counters stay until restart."""
    POLICY_STATES.drop((namespace, policy))
