"""A policy's status, computed in memory from the ledger and what the controller saw.

Pure: `build` turns the durable record plus the step's observations into the
status document, and `merge_patch` into the smallest patch that writes it, so
an unchanged status costs no API call and a stale field never lingers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from freshet.decisions import analysis, conditions, runs, staleness, step, trigger
from freshet.ledger import AnalysisRecord, DriftRecord, Ledger
from freshet.snapshot import Snapshot
from freshet.spec import Mode, PolicySpec

HISTORY = 10


@dataclass(frozen=True, slots=True)
class DataCounts:
    arrivals: str
    """Notifications or Polling."""
    seen: int
    pending: int
    """Batches a run is training on or will train on (see decisions.trigger.backlog)."""
    last_arrival: datetime | None
    """The newest Last-Modified under the prefix now (a quarantined batch is gone from it)."""
    labels_changed: int | None = None
    """Trained batches whose late labels changed; None when not checked this step."""
    released: int = 0
    """Quarantined batches and label files put back, not yet used by a run."""
    untrained: int | None = None
    """Static policies: batches seen after the model that no run will take; None for Dynamic."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Observation:
    """What the step knew besides the ledger."""

    generation: int
    state_root: str
    now: datetime
    spec: PolicySpec | None
    spec_error: str | None = None
    blocked: tuple[str, str] | None = None
    """(reason, message): something outside freshet must change first."""
    waiting: tuple[str, str] | None = None
    """(reason, message): why no run started."""
    running: tuple[str, str] | None = None
    """(reason, message): how the run in flight is doing."""
    data: DataCounts | None = None
    scoring: dict[str, Any] | None = None
    """status.scoring (scoring_status), when the policy has spec.scoring."""


def scoring_status(book: Ledger, version: str | None, pending: int) -> dict[str, Any]:
    out: dict[str, Any] = {"pending": pending}
    if version is not None:
        out["version"] = version
        out["scored"] = len(book.scored.get(version, {}))
    if book.scoring is not None:
        out["running"] = book.scoring.run_id
    last = book.last_scoring
    if last is not None:
        out["lastRun"] = {
            "runId": last.run_id,
            "version": last.version,
            "outcome": last.outcome,
            "message": last.message,
            "scored": last.scored,
            "refused": last.refused,
            "rows": last.rows,
            "finishedTime": _time(last.finished_time),
        }
        if last.manifest_key is not None:
            out["lastRun"]["manifestKey"] = last.manifest_key
    return out


MIRRORS = frozenset({conditions.ConditionType.RECONCILING, conditions.ConditionType.STALLED})
"""Conditions that repeat another's reason for kstatus: never an Event of their own."""

PROBLEM_REASONS = conditions.NEEDS_ACTION | frozenset(
    {"ReconcileFailed", "APIUnavailable", "StoreUnavailable", "RunSpecMissing"}
)
"""Condition reasons that get one Warning Event when a condition turns to them; the
problems a run reports itself (TrainingFailed, GateRejected, ...) are not here."""


def data_counts(snap: Snapshot, book: Ledger, labels_changed: int | None) -> DataCounts:
    """status.data's counts: the step's listing against the ledger as it ends the step."""
    spec, now_snap = snap.spec, replace(snap, ledger=book)
    pending = now_snap.pending()
    running = {(b.key, b.etag) for b in book.intent.batches} if book.intent else set()
    queue = trigger.backlog(spec.effective_trigger, step.trigger_facts(now_snap, pending), running)
    return DataCounts(
        arrivals="Notifications" if snap.streaming else "Polling",
        seen=len(snap.batches),
        pending=queue.pending,
        untrained=queue.untrained if spec.effective_trigger is None else None,
        last_arrival=max((b.last_modified for b in snap.batches), default=None),
        labels_changed=labels_changed,
        released=len(snap.released & book.quarantined.keys()),
    )


def new_problems(current: dict[str, Any], desired: dict[str, Any]) -> list[tuple[str, str]]:
    """(reason, message) of each condition that turns to a problem reason it did not have:
    what gets one Warning Event. Problems a run's own Events report (a failed run, a
    refused candidate) are not among PROBLEM_REASONS."""
    before = {c.get("type"): c.get("reason") for c in current.get("conditions") or []}
    return [
        (str(c["reason"]), str(c.get("message")))
        for c in desired.get("conditions") or []
        if c.get("reason") in PROBLEM_REASONS
        and before.get(c.get("type")) != c.get("reason")
        and c.get("type") not in MIRRORS
    ]


def _time(t: datetime | None) -> str | None:
    return None if t is None else conditions.format_time(t)


def _held(book: Ledger, obs: Observation) -> int:
    """Quarantined batches and label files, released ones not counted."""
    return len(book.quarantined) - (obs.data.released if obs.data else 0)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def last_arrival(
    listed: datetime | None, recorded: datetime | None, reported: Any
) -> datetime | None:
    """status.data.lastArrivalTime, which never goes back.

    The listing alone would take it back when the newest batch is quarantined
    (moved out of the prefix) or deleted, although it did arrive. So it is the
    newest of the listing (``listed``), what the ledger recorded of batches
    given to runs (``recorded``) and what status already said (``reported``).
    """
    known = [t for t in (listed, recorded, _parse_time(reported)) if t is not None]
    return max(known, default=None)


def _labels(book: Ledger, data: DataCounts, current: dict[str, Any]) -> dict[str, Any]:
    labels: dict[str, Any] = {}
    if book.label_watermark is not None:
        labels["watermark"] = _time(book.label_watermark)
    if book.label_cutoff is not None:
        labels["cutoff"] = _time(book.label_cutoff)
    if book.last_backfill is not None:
        labels["lastBackfillTime"] = _time(book.last_backfill)
    awaiting = data.labels_changed
    if awaiting is None:  # not planned this step (a run is active): keep what was known
        awaiting = (current.get("data") or {}).get("labels", {}).get("awaitingBackfill")
    if awaiting is not None:
        labels["awaitingBackfill"] = awaiting
    return labels


def build(book: Ledger, current: dict[str, Any], obs: Observation) -> dict[str, Any]:
    """The whole status document; `current` only supplies the conditions' history."""
    status: dict[str, Any] = {
        "observedGeneration": obs.generation,
        "stateRoot": obs.state_root,
        "conditions": _conditions(book, current, obs),
    }
    status.update(_live(book, obs.spec))
    status.update(_runs(book))
    if obs.data is not None:
        status["data"] = {
            "arrivals": obs.data.arrivals,
            "seen": obs.data.seen,
            "consumed": len(book.consumed),
            "pending": obs.data.pending,
            "quarantined": _held(book, obs),
        }
        if obs.data.untrained is not None:
            status["data"]["untrained"] = obs.data.untrained
        reported = (current.get("data") or {}).get("lastArrivalTime")
        arrived = last_arrival(obs.data.last_arrival, book.last_arrival, reported)
        if arrived is not None:
            status["data"]["lastArrivalTime"] = _time(arrived)
        if obs.spec is not None and obs.spec.data.labels is not None:
            status["data"]["labels"] = _labels(book, obs.data, current)
        if book.last_drift is not None:
            d = book.last_drift
            status["data"]["drift"] = {
                "detected": book.drifts_detected,
                "lastDetectedTime": _time(d.time),
                "version": d.version,
                "batch": d.batch,
                "action": d.action,
                "checks": d.checks,
                "columns": d.columns,
                "message": d.message,
            }
    if obs.scoring is not None:
        status["scoring"] = obs.scoring
    if book.retrain_request is not None:
        status["retrainRequest"] = book.retrain_request
    if book.last_schedule_time is not None:
        status["lastScheduleTime"] = _time(book.last_schedule_time)
    return status


def _conditions(book: Ledger, current: dict[str, Any], obs: Observation) -> list[dict[str, Any]]:
    last = book.runs[0] if book.runs else None
    intent = book.intent
    phase: runs.RunPhase | None = None
    if intent is not None:
        phase = runs.RunPhase.RUNNING
    elif last is not None:
        phase = runs.RunPhase(last.outcome)
    facts = conditions.StatusFacts(
        spec_error=obs.spec_error,
        serving_version=book.serving.version if book.serving else None,
        last_run_id=intent.run_id if intent else (last.run_id if last else None),
        last_run_version=intent.version if intent else (last.version if last else None),
        last_run_phase=phase,
        last_run_reason=None if intent else (last.reason if last else None),
        last_run_message=None if intent else (last.message if last else None),
        quarantined=_held(book, obs),
        blocked=obs.blocked,
        waiting=obs.waiting if intent is None else None,
        running=obs.running,
        live=live_degradation(book),
        stale=stale_condition(obs.spec, book, obs.now),
    )
    updates = conditions.derive_conditions(facts)
    return conditions.set_conditions(
        list(current.get("conditions") or []), updates, generation=obs.generation, now=obs.now
    )


def live_degradation(book: Ledger) -> conditions.ConditionUpdate | None:
    """Degraded, when the live model is the reason: rolled back, failing, or unmeasurable."""
    degraded = conditions.ConditionType.DEGRADED
    r = book.last_rollback
    if r is not None and book.serving is not None and book.serving.version == r.to_version:
        return conditions.ConditionUpdate(
            degraded,
            "True",
            "RolledBack",
            f"{r.from_version} was rolled back to {r.to_version} ({r.reason}): {r.message}",
        )
    a = book.analysis
    if a is None or a.last is None:
        return None
    if a.phase == analysis.Phase.FAILING:
        return conditions.ConditionUpdate(
            degraded, "True", "RegressionSuspected", f"{a.version}: {a.last.message}"
        )
    if a.phase == analysis.Phase.ERROR:
        return conditions.ConditionUpdate(
            degraded, "True", "MonitoringError", f"{a.version}: {a.last.message}"
        )
    return None


def stale_condition(
    spec: PolicySpec | None, book: Ledger, now: datetime
) -> conditions.ConditionUpdate | None:
    """Stale, in order of precedence: older than monitoring.maxModelAgeSeconds; a Static
    policy whose data drifted across its model's training (a Static policy does not
    follow change); otherwise fresh. Absent when neither can apply."""
    max_age = spec.max_model_age if spec is not None else None
    drifted = _static_drift(spec, book)
    if book.serving is None or (max_age is None and drifted is None):
        return None
    stale = conditions.ConditionType.STALE
    promoted = book.serving.promoted_time
    if max_age is not None and staleness.is_stale(promoted, now, max_age):
        return conditions.ConditionUpdate(
            stale,
            "True",
            "MaxAgeExceeded",
            f"{book.serving.version} was promoted {_time(promoted)}, more than"
            f" {max_age.total_seconds():.0f}s ago",
        )
    if drifted is not None:
        return conditions.ConditionUpdate(
            stale,
            "True",
            "DriftDetected",
            f"the data changed ({drifted.message}); a Static policy trains once on all of it"
            " and does not follow the change: request a retrain, or make the policy Dynamic",
        )
    return conditions.ConditionUpdate(
        stale, "False", "Fresh", f"{book.serving.version} is younger than the maximum age"
    )


def _static_drift(spec: PolicySpec | None, book: Ledger) -> DriftRecord | None:
    """The change a Static policy's serving model was trained across, if any."""
    drift, serving = book.last_drift, book.serving
    if spec is None or spec.mode is not Mode.STATIC or drift is None or serving is None:
        return None
    promoted = serving.promoted_time
    return drift if promoted is None or drift.time >= promoted else None


def _live(book: Ledger, spec: PolicySpec | None) -> dict[str, Any]:
    """serving, monitoring, rejectedVersions and lastRollback."""
    out: dict[str, Any] = {}
    if book.serving is not None:
        s = book.serving
        out["serving"] = {
            "version": s.version,
            "runId": s.run_id,
            "modelKey": s.model_key,
            "sha256": s.sha256,
            "promotedTime": _time(s.promoted_time),
            "metrics": s.metrics,
        }
    if book.analysis is not None and spec is not None and spec.monitoring is not None:
        out["monitoring"] = {"source": spec.monitoring.source.value, **_analysis(book.analysis)}
        previous = book.previous_analysis
        if previous is not None and previous.version != book.analysis.version:
            out["monitoring"]["previous"] = _analysis(previous)
        if book.measurement_totals:
            out["monitoring"]["totals"] = dict(sorted(book.measurement_totals.items()))
    if book.rejected:
        out["rejectedVersions"] = list(book.rejected)
    if book.last_rollback is not None:
        r = book.last_rollback
        out["lastRollback"] = {
            "fromVersion": r.from_version,
            "toVersion": r.to_version,
            "time": _time(r.time),
            "reason": r.reason,
            "message": r.message,
        }
    return out


def _analysis(a: AnalysisRecord) -> dict[str, Any]:
    """One version's analysis: its phase, its counts and its last measurement.

    Used for the serving version and for the one it replaced: a prequential
    measurement scores the model serving when a run starts, and the run's
    promotion replaces that model right after, so the replaced version's
    analysis is where that measurement shows.
    """
    out: dict[str, Any] = {
        "version": a.version,
        "phase": a.phase,
        "since": _time(a.since),
        "measurements": a.measurements,
        "consecutiveFailures": a.consecutive_failures,
        "consecutiveErrors": a.consecutive_errors,
    }
    if a.last is not None:
        out["lastMeasurement"] = {
            "time": _time(a.last.time),
            "verdict": a.last.verdict,
            "message": a.last.message,
            **({"value": a.last.value} if a.last.value is not None else {}),
            **({"reference": a.last.reference} if a.last.reference is not None else {}),
        }
    return out


def _runs(book: Ledger) -> dict[str, Any]:
    """lastRun, candidate, history and lastTrainedTime."""
    out: dict[str, Any] = {}
    intent = book.intent
    last = book.runs[0] if book.runs else None
    if intent is not None:
        out["lastRun"] = {
            "runId": intent.run_id,
            "jobName": intent.run_id,
            "phase": "Running",
            "trigger": intent.trigger,
            "version": intent.version,
            "startedTime": _time(intent.created_time),
            "specKey": intent.spec_key,
            "trainingSpecHash": intent.spec_hash,
            "batches": len(intent.batches),
            "newBatches": len(intent.new_batches),
            "message": intent.message,
        }
    elif last is not None:
        out["lastRun"] = {
            "runId": last.run_id,
            "jobName": last.run_id,
            "phase": last.outcome,
            "trigger": last.trigger,
            "version": last.version,
            "startedTime": _time(last.started_time),
            "finishedTime": _time(last.finished_time),
            "reason": last.reason,
            "message": last.message,
        }
        if last.outcome in ("Promoted", "Rejected"):  # a model was trained and gated
            out["candidate"] = {
                "version": last.version,
                "runId": last.run_id,
                "metrics": last.metrics,
                "baselineMetrics": last.baseline_metrics or {},
                "decision": last.outcome,
                "reason": last.reason,
                "message": last.message,
                "evaluatedTime": _time(last.finished_time),
            }
    if book.runs:
        out["history"] = [
            {
                "runId": r.run_id,
                "version": r.version,
                "phase": r.outcome,
                "trigger": r.trigger,
                "reason": r.reason,
                "startedTime": _time(r.started_time),
                "finishedTime": _time(r.finished_time),
            }
            for r in book.runs[:HISTORY]
        ]
        trained = [r for r in book.runs if r.outcome in ("Promoted", "Rejected")]
        if trained:
            out["lastTrainedTime"] = _time(trained[0].finished_time)
    return out


def merge_patch(current: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) that turns `current` into `desired`.

    Objects merge recursively in a merge patch, so a key that disappeared at
    any depth must be sent as null, or the server keeps its stale value.
    Lists are replaced whole.
    """
    patch: dict[str, Any] = {}
    for key, value in desired.items():
        old = current.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            nested = merge_patch(old, value)
            if nested:
                patch[key] = nested
        elif old != value:
            patch[key] = value
    for key in current.keys() - desired.keys():
        patch[key] = None
    return patch
