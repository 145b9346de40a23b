"""Prometheus metrics of the operator, served on `FRESHET_METRICS_PORT`."""

from __future__ import annotations

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
