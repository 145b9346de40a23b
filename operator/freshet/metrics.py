"""Prometheus metrics of the operator, served on `FRESHET_METRICS_PORT`."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

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

# Per-policy state, from the status the operator last computed: what alerts and
# dashboards need that counters cannot say (is it degraded now, how old is the
# serving model, how much waits). Removed when the policy goes away.
CONDITION = Gauge(
    "freshet_policy_condition",
    "1 when the policy's status condition of this type is True, else 0.",
    [*_POLICY, "type"],
)
PENDING = Gauge(
    "freshet_policy_pending_batches", "Batches waiting for a run (status.data.pending).", _POLICY
)
QUARANTINED = Gauge(
    "freshet_policy_quarantined_batches",
    "Batches held in quarantine now (status.data.quarantined).",
    _POLICY,
)
SERVING_VERSION = Gauge(
    "freshet_policy_serving_version",
    "Number of the serving model's version (vN); absent before the first promotion.",
    _POLICY,
)
LAST_PROMOTION = Gauge(
    "freshet_policy_last_promotion_timestamp_seconds",
    "When the serving model was promoted (Unix time); absent before the first promotion.",
    _POLICY,
)
_reported: dict[tuple[str, str], set[tuple[Gauge, tuple[str, ...]]]] = {}
"""Per policy, the gauge children report_state set: what forget removes."""


def _set(gauge: Gauge, key: tuple[str, str], value: float, *extra: str) -> None:
    labels = (*key, *extra)
    gauge.labels(*labels).set(value)
    _reported.setdefault(key, set()).add((gauge, labels))


def report_state(namespace: str, policy: str, status: Mapping[str, Any]) -> None:
    """Set the per-policy gauges from a status document (status.build's output)."""
    key = (namespace, policy)
    for c in status.get("conditions") or []:
        _set(CONDITION, key, c.get("status") == "True", str(c["type"]))
    data = status.get("data") or {}
    if "pending" in data:
        _set(PENDING, key, int(data["pending"]))
    if "quarantined" in data:
        _set(QUARANTINED, key, int(data["quarantined"]))
    serving = status.get("serving") or {}
    version, promoted = str(serving.get("version") or ""), serving.get("promotedTime")
    if version.startswith("v") and version[1:].isdigit():
        _set(SERVING_VERSION, key, int(version[1:]))
    if promoted:
        when = datetime.fromisoformat(str(promoted).replace("Z", "+00:00"))
        _set(LAST_PROMOTION, key, when.timestamp())


def forget(namespace: str, policy: str) -> None:
    """Drop the policy's state gauges (it was deleted); its counters stay until restart."""
    for gauge, labels in _reported.pop((namespace, policy), set()):
        with contextlib.suppress(KeyError):
            gauge.remove(*labels)
