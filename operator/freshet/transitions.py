"""Ledger transitions: pure functions from a ledger and an event to the next ledger.

None of them modifies its input. The controller saves what they return and
only then takes it as the policy's ledger, so a save that fails leaves the
last saved ledger in charge: a run intent that was not saved never gets a Job
(the rule `ledger` is built on).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from freshet_contract.result import RunResult
from freshet_contract.scoring import ScoringManifest

from freshet.decisions import analysis, backfill, drift, retry, trigger
from freshet.decisions.outcome import Outcome
from freshet.ledger import (
    DriftRecord,
    Ledger,
    ModelRef,
    RefusedSpec,
    RollbackRecord,
    RunIntent,
    RunRecord,
    ScoringIntent,
    ScoringRecord,
)


def started(book: Ledger, intent: RunIntent, now: datetime) -> Ledger:
    """A run's intent is recorded: its version is taken, its batches have arrived."""
    new = book.model_copy(deep=True)
    new.intent = intent
    new.next_version += 1
    new.note_arrivals(intent.batches)
    if intent.trigger == trigger.TrainReason.STALE:
        new.last_stale_retrain = now
    if intent.trigger == trigger.TrainReason.BACKFILL:
        new.last_backfill = now
    return new


def preprocessed(book: Ledger) -> Ledger:
    """The prep Job's data is in the run spec: from here on the run trains."""
    assert book.intent is not None and book.intent.phase == "Preprocessing"
    new = book.model_copy(deep=True)
    assert new.intent is not None
    new.intent.phase = "Training"
    return new


def promotion_started(book: Ledger, now: datetime) -> Ledger:
    assert book.intent is not None
    new = book.model_copy(deep=True)
    assert new.intent is not None
    new.intent.promotion_started = now
    return new


def prequential_counted(book: Ledger) -> Ledger:
    """The run's test-then-train score of the serving model is counted (once per run)."""
    assert book.intent is not None
    new = book.model_copy(deep=True)
    assert new.intent is not None
    new.intent.measured = True
    return new


@dataclass(frozen=True, slots=True)
class Judged:
    outcome: Outcome
    reason: str
    message: str
    permanent: bool = False
    """Failed in a way that repeats until the spec changes (the Job was refused)."""
    refused_fingerprint: str | None = None


def finished(
    book: Ledger,
    judged: Judged,
    result: RunResult | None,
    quarantined: set[str],
    now: datetime,
) -> Ledger:
    """Record the run's outcome, consume its batches, clear the intent: one write."""
    intent = book.intent
    assert intent is not None
    new = book.model_copy(deep=True)
    used = {b.key: b.etag for b in intent.batches}
    used.update((f.key, f.etag) for f in intent.label_files)
    drifted = result.drift if result is not None else []
    message = judged.message
    new.quarantined.update(
        {q.key: q.etag for q in (result.quarantined if result else []) if q.key in quarantined}
    )
    if judged.outcome == "Skipped":
        # Every new batch was refused: nothing was trained, nothing failed.
        new.forget_released(used, quarantined)
        new.give_back(intent.version)
    elif judged.outcome != "Failed":
        new.consume([b for b in intent.batches if b.key not in quarantined])
        _record_labels(new, intent, result, quarantined)
        new.forget_released(used, quarantined)
        window = [b.key for b in intent.batches]
        trained = result.window.batches if result and result.window else window
        new.reference_from = drift.reference_from(new.reference_from, drifted, window, set(trained))
        new.trained_spec_hash = intent.spec_hash
        if intent.retrain_request is not None:
            new.retrain_request = intent.retrain_request
        if intent.schedule_time is not None:
            new.last_schedule_time = intent.schedule_time
        new.failures, new.retry_not_before, new.failed_inputs = 0, None, None
        new.refused = None
    else:
        new.failures += 1
        # It produced no model: the next attempt trains the same version.
        new.give_back(intent.version)
        if judged.permanent:
            assert judged.refused_fingerprint is not None
            new.refused = RefusedSpec(
                fingerprint=judged.refused_fingerprint, reason=judged.reason, message=message
            )
            message = f"{message} (no new Job until the spec changes)"
        else:
            backoff = retry.backoff(new.failures)
            new.retry_not_before = now + backoff
            new.failed_inputs = retry.fingerprint(
                (b.batch() for b in intent.batches),
                [(f.key, f.etag) for f in intent.label_files],
                intent.spec_hash,
            )
            message = (
                f"{message} (attempt {new.failures}; the same inputs again in"
                f" {backoff.total_seconds():.0f}s, new data or a spec change at once)"
            )
    candidate = dict(result.metrics.candidate) if result else {}
    new.record(
        RunRecord(
            run_id=intent.run_id,
            version=intent.version,
            outcome=judged.outcome,
            reason=judged.reason,
            message=message,
            trigger=intent.trigger,
            started_time=intent.created_time,
            finished_time=now,
            metrics=candidate,
            baseline_metrics=result.metrics.baseline if result else None,
            dummy_metrics=result.metrics.dummy if result else None,
            live_metrics=result.monitoring.serving if result and result.monitoring else None,
            train_rows=result.rows.train if result and result.rows else None,
            holdout_rows=result.rows.holdout if result and result.rows else None,
            batches=trained_batches(intent, result),
            relabelled=intent.relabelled,
        )
    )
    if drifted:
        newest = drifted[-1]
        new.note_drift(
            DriftRecord(
                time=now,
                version=intent.version,
                batch=newest.key,
                action=str(newest.action),
                checks=newest.checks,
                columns=newest.columns,
                message=drift.describe(newest),
            ),
            len(drifted),
        )
    if judged.outcome == "Promoted" and result is not None and result.model is not None:
        new.promote(
            ModelRef(
                version=result.model.version,
                run_id=intent.run_id,
                model_key=result.model.model_key,
                sha256=result.model.sha256,
                metrics=candidate,
                promoted_time=now,
            )
        )
        new.begin_analysis(result.model.version, now)
    new.intent = None
    return new


def measured(
    book: Ledger, settings: analysis.Settings, measurement: analysis.Measurement
) -> tuple[Ledger, analysis.Outcome]:
    """Fold a measurement of the serving model into its analysis."""
    from freshet import monitoring  # monitoring imports the spec models, which import this

    assert book.serving is not None
    new = book.model_copy(deep=True)
    assert new.serving is not None
    record = new.analysis
    if record is None or record.version != new.serving.version:
        new.begin_analysis(new.serving.version, new.serving.promoted_time or measurement.time)
        record = new.analysis
        assert record is not None
    outcome = analysis.observe(settings, monitoring.to_state(record), measurement)
    new.analysis = monitoring.to_record(outcome.state)
    # The ledger counts what the counter counts, in the same step, so that
    # status.monitoring.totals and the metric tell the same story.
    new.count_measurement(measurement.verdict.value)
    return new, outcome


def rolled_back(
    book: Ledger, restored: ModelRef, *, reason: str, message: str, now: datetime
) -> Ledger:
    """Serve `restored` again; the failing version is rejected for good."""
    assert book.serving is not None
    new = book.model_copy(deep=True)
    failing = book.serving.version
    new.roll_back(restored)
    new.begin_analysis(restored.version, now)
    new.last_rollback = RollbackRecord(
        from_version=failing, to_version=restored.version, time=now, reason=reason, message=message
    )
    return new


def rollback_requested(book: Ledger, request: str) -> Ledger:
    """The rollback annotation's value is acted on (once)."""
    new = book.model_copy(deep=True)
    new.rollback_request = request
    return new


def trained_batches(intent: RunIntent, result: RunResult | None) -> int:
    """How many batches the model was trained on (the window the trainer chose, which
    leaves out refused ones), or, without a model, how many the run was given."""
    if result is not None and result.window is not None and result.model is not None:
        return len(result.window.batches)
    if result is not None and result.model is None:
        return 0
    return len(intent.batches)


def _record_labels(
    book: Ledger, intent: RunIntent, result: RunResult | None, quarantined: set[str]
) -> None:
    """What a finished run trained with: each batch's label files, the watermark, the cutoff.

    Quarantined label files are left out, as the next listing leaves them out,
    so a refused file does not look like a change to backfill.
    """
    if result is None or result.labels is None:
        return
    files: dict[str, list[tuple[str, str]]] = {b.key: [] for b in intent.batches}
    for f in intent.label_files:
        if f.key not in quarantined and f.batch in files:
            files[f.batch].append((f.key, f.etag))
    report = result.labels
    book.mark_labels(
        {key: backfill.fingerprint(pairs) for key, pairs in files.items()},
        {b.key: b.event_time_min for b in report.batches},
    )
    if report.watermark is not None:
        known = book.label_watermark
        book.label_watermark = report.watermark if known is None else max(known, report.watermark)
    if report.cutoff is not None:
        book.label_cutoff = report.cutoff


def scoring_started(book: Ledger, intent: ScoringIntent, now: datetime, scheduled: bool) -> Ledger:
    new = book.model_copy(deep=True)
    new.scoring = intent
    if scheduled:
        new.last_scoring_schedule = now
    return new


def scoring_finished(
    book: Ledger, manifest: ScoringManifest, manifest_key: str, now: datetime
) -> Ledger:
    """Every input the run scored is scored for its version; the refused ones are held."""
    assert book.scoring is not None
    new = book.model_copy(deep=True)
    version = manifest.model.version
    new.scored[version] = {
        **new.scored.get(version, {}),
        **{s.key: s.etag for s in manifest.scored},
    }
    for q in manifest.refused:
        new.quarantined[q.key] = q.etag
    rows = sum(s.rows for s in manifest.scored)
    new.last_scoring = ScoringRecord(
        run_id=manifest.run_id,
        version=version,
        outcome="Succeeded",
        message=f"{len(manifest.scored)} input(s) scored ({rows} rows),"
        f" {len(manifest.refused)} refused",
        scored=len(manifest.scored),
        refused=len(manifest.refused),
        rows=rows,
        manifest_key=manifest_key,
        finished_time=now,
    )
    new.scoring, new.scoring_failures, new.scoring_retry_not_before = None, 0, None
    return new


def scoring_failed(book: Ledger, message: str, now: datetime) -> Ledger:
    """Nothing is recorded as scored; the same inputs wait out a backoff (retry.backoff)."""
    assert book.scoring is not None
    new = book.model_copy(deep=True)
    new.scoring_failures += 1
    wait = retry.backoff(new.scoring_failures)
    new.scoring_retry_not_before = now + wait
    new.last_scoring = ScoringRecord(
        run_id=book.scoring.run_id,
        version=book.scoring.version,
        outcome="Failed",
        message=f"{message} (again in {wait.total_seconds():.0f}s)",
        finished_time=now,
    )
    new.scoring = None
    return new
