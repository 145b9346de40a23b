"""The operator's Jobs as its watch last saw them, so that a step woken by a Job's
event reads that Job from memory instead of asking the API server again.

The watch (`handlers.job_changed`) records each event before it wakes the owning
policy, so a step never sees an older Job than the event that woke it. What the
watch has not seen, or saw more than MAX_AGE_SECONDS ago, is read from the API
server as before: `get` returning None means "ask", never "absent". The age
limit matters because a watch that restarts lists again but sends no DELETED for
a Job deleted in between: a step trusts the watch only just after an event, and
the resync steps of a long run read the Job itself. Only what a step reads is
kept (creation time and status), a few hundred bytes a Job.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

MAX_AGE_SECONDS = 10.0


class SeenJobs:
    def __init__(
        self, max_age: float = MAX_AGE_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max_age, self._clock = max_age, clock
        self._jobs: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        self._pruned = clock()

    def seen(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")))
        if event_type == "DELETED":
            self._jobs.pop(key, None)
            return
        now = self._clock()
        if now - self._pruned >= self._max_age:  # what is too old to be used goes
            self._jobs = {k: v for k, v in self._jobs.items() if now - v[0] < self._max_age}
            self._pruned = now
        self._jobs[key] = (
            now,
            {
                "metadata": {"creationTimestamp": meta.get("creationTimestamp")},
                "status": dict(body.get("status") or {}),
            },
        )

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Job as the watch saw it just now, or None: ask the API server."""
        kept = self._jobs.get((namespace, name))
        if kept is None or self._clock() - kept[0] >= self._max_age:
            return None
        return kept[1]
