"""What a step does about training runs: every "what now" rule, over one snapshot.

Pure. With no run in flight, :func:`plan` answers wait or start, by these
rules in order:

1. a pinned model: training waits;
2. a spec the API server refused (a permanent failure) waits for a spec change;
3. the trigger (`trigger.decide`): new data, schedule, retrain request, spec change;
4. staleness: a model older than `monitoring.maxModelAgeSeconds` retrains even
   when the trigger would wait;
5. backfill: late labels that changed under trained batches retrain them;
6. backoff: a run over the same inputs as the last failures waits its turn;
7. concurrency: the operator-wide run slots.

With a run in flight, :func:`track` answers replay (the intent is saved but
its Job is missing), running, or finished; a run with a preprocessing step first
goes through its prep Job: replay it, running, prepared (go on to training) or
failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from freshet_contract.layout import StateLayout
from freshet_contract.preprocess import prep_job_name
from freshet_contract.run import LabelFile, PolicyRef, RunSpec
from freshet_contract.run import ModelRef as RunModelRef
from freshet_contract.vocabulary import ContradictionAction

from freshet.batches import Batch
from freshet.decisions import backfill, retry, runs, staleness, trigger
from freshet.ledger import BatchRef, LabelFileRef, Ledger, RunIntent
from freshet.runspec import build_run_spec, run_labels_from_policy, with_prepared
from freshet.snapshot import Snapshot
from freshet.spec import DelayedFeedback, PolicySpec

MAX_WAIT_SECONDS = 3600.0
CONCURRENCY_RECHECK_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Wait:
    """Start nothing; `retry_after` seconds until the clock alone could change that."""

    reason: str
    message: str
    retry_after: float | None = None
    labels_changed: int | None = None
    """Trained batches whose late labels changed; None when not checked."""


@dataclass(frozen=True, slots=True)
class Start:
    """Start a run: write `run_spec`, save `intent` in the ledger, then create the Job."""

    decision: trigger.Train
    intent: RunIntent
    run_spec: RunSpec
    labels_changed: int | None = None


@dataclass(frozen=True, slots=True)
class Replay:
    """The intent is saved and its Job is missing (a crash in between): create it,
    the prep Job while the run is preprocessing."""

    run_spec: RunSpec
    preprocess: bool = False


@dataclass(frozen=True, slots=True)
class Prepared:
    """The prep Job completed: write this run spec (with the prepared data), record
    the run as training, then create its training Job."""

    run_spec: RunSpec
    batches: int
    refused: int


@dataclass(frozen=True, slots=True)
class PreprocessFailed:
    """The prep Job failed, or left nothing the run can train on: the run fails."""

    message: str


@dataclass(frozen=True, slots=True)
class Running:
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Finished:
    """The Job is done: record its outcome."""

    job_summary: str


@dataclass(frozen=True, slots=True)
class Lost:
    """The intent's run spec is gone from the store: nothing to replay the run from."""

    message: str


def plan(s: Snapshot) -> Wait | Start:
    spec, book = s.spec, s.ledger
    if spec.serving is not None and spec.serving.pinned_version is not None:
        return Wait(
            "Pinned",
            f"spec.serving.pinnedVersion pins {spec.serving.pinned_version}; training waits",
        )
    if book.refused is not None and book.refused.fingerprint == spec_fingerprint(spec):
        return Wait(book.refused.reason, f"{book.refused.message}; fix the spec to try again")
    pending = s.pending()
    decision = trigger.decide(spec.effective_trigger, trigger_facts(s, pending))
    if isinstance(decision, trigger.Wait) and _stale_retrain_due(spec, book, s.now):
        decision = trigger.Train(
            trigger.TrainReason.STALE,
            f"{book.serving.version if book.serving else 'the model'} is older than"
            " monitoring.maxModelAgeSeconds",
            tuple(pending),
        )
    changed: int | None = None
    if isinstance(decision, trigger.Wait) and spec.backfill and spec.data.labels:
        planned = plan_backfill(s)
        changed = len(planned.changed) if planned is not None else 0
        if isinstance(planned, backfill.Backfill):
            decision = trigger.Train(
                trigger.TrainReason.BACKFILL, planned.message, (), relabelled=planned.changed
            )
        elif isinstance(planned, backfill.Wait):
            # Both answers may change by the clock: wake for the sooner one.
            soonest = min(planned.retry_after, decision.retry_after or planned.retry_after)
            return Wait(str(planned.reason), planned.message, _seconds(soonest), changed)
    if isinstance(decision, trigger.Wait):
        after = decision.retry_after
        return Wait(
            str(decision.reason), decision.message, _seconds(after) if after else None, changed
        )
    window = _window(spec, book, decision.batches, spare=True)
    label_files = window_label_files(s, window)
    held = retry.hold(
        retry.RetryFacts(
            now=s.now,
            failures=book.failures,
            retry_not_before=book.retry_not_before,
            failed_inputs=book.failed_inputs,
            inputs=retry.fingerprint(
                window, [(f.key, f.etag) for f in label_files], spec.training_hash()
            ),
        )
    )
    if held is not None:
        wait = held.total_seconds()
        return Wait(
            "Backoff",
            f"{book.failures} failed run(s) in a row over these inputs; next attempt in"
            f" {wait:.0f}s, or at once when new data or a spec change arrives",
            wait,
            changed,
        )
    if s.slots.runs_elsewhere >= s.slots.max_runs:
        return Wait(
            "ConcurrencyLimit",
            f"{s.slots.runs_elsewhere} runs in flight operator-wide",
            CONCURRENCY_RECHECK_SECONDS,
            changed,
        )
    return _start(s, decision, window, label_files, changed)


def track(s: Snapshot) -> Replay | Running | Finished | Lost | Prepared | PreprocessFailed:
    intent = s.ledger.intent
    assert intent is not None, "track() is for a run in flight"
    if intent.phase == "Preprocessing":
        return _track_preprocessing(s)
    if s.job is None:
        if s.run_spec is None:
            return Lost(f"run spec {intent.spec_key} vanished")
        return Replay(s.run_spec)
    if s.job.finished is None:
        if s.job.pods_not_created:
            return Running(
                "PodsNotCreated", f"Job {intent.run_id} cannot create pods: {s.job.message}"
            )
        return Running("Running", f"run {intent.run_id} is producing {intent.version}")
    return Finished(f"Job {intent.run_id} {s.job.finished}: {s.job.message}")


def _track_preprocessing(s: Snapshot) -> Replay | Running | Lost | Prepared | PreprocessFailed:
    intent = s.ledger.intent
    assert intent is not None
    name = prep_job_name(intent.run_id)
    if s.prep_job is None:
        if s.run_spec is None:
            return Lost(f"run spec {intent.spec_key} vanished")
        return Replay(s.run_spec, preprocess=True)
    if s.prep_job.finished is None:
        if s.prep_job.pods_not_created:
            return Running("PodsNotCreated", f"Job {name} cannot create pods: {s.prep_job.message}")
        return Running(
            "Preprocessing",
            f"run {intent.run_id} is preprocessing {len(intent.batches)} batch(es) in Job {name}",
        )
    if s.prep_job.finished == "failed":
        return PreprocessFailed(f"Job {name} failed: {s.prep_job.message}")
    if s.prepared is None:
        return PreprocessFailed(
            f"Job {name} completed but its prepared data is unusable: {s.prepared_error}"
        )
    if s.run_spec is None:
        return Lost(f"run spec {intent.spec_key} vanished")
    made = with_prepared(s.run_spec, s.prepared)
    if isinstance(made, str):
        return PreprocessFailed(f"Job {name}: {made}")
    return Prepared(made, len(s.prepared.batches), len(s.prepared.refused))


def promotion(
    *, started: datetime | None, now: datetime, complete: bool, failure: str | None, timeout: float
) -> str | None:
    """Why a promotion's rollout is stuck, or None while it may still complete."""
    if complete or started is None:
        return None
    elapsed = (now - started).total_seconds()
    if failure:
        return failure
    if elapsed > timeout:
        return f"the rollout takes {elapsed:.0f}s, more than {timeout:.0f}s"
    return None


def spec_fingerprint(spec: PolicySpec) -> str:
    """Everything the Job is built from: a refused Job is tried again only when it changes."""
    return retry.fingerprint((), [], spec.model_dump_json(by_alias=True))


def trigger_facts(s: Snapshot, pending: list[Batch]) -> trigger.TriggerFacts:
    book = s.ledger
    return trigger.TriggerFacts(
        now=s.now,
        pending=pending,
        consumed_count=len(book.consumed),
        run_active=book.intent is not None,
        has_run=book.trained_spec_hash is not None,
        has_serving_model=book.serving is not None,
        training_hash=s.spec.training_hash(),
        last_run_training_hash=book.trained_spec_hash,
        retrain_request=s.policy.retrain_request,
        honoured_retrain_request=book.retrain_request,
        schedule_anchor=book.last_schedule_time or s.policy.created or s.now,
    )


def plan_backfill(s: Snapshot) -> backfill.Backfill | backfill.Wait | None:
    """Whether late labels of trained batches changed, and whether to retrain now."""
    spec, book = s.spec, s.ledger
    settings, labels = spec.backfill, spec.data.labels
    if settings is None or labels is None:
        return None
    window = _window(spec, book, ())
    return backfill.plan(
        settings,
        backfill.BackfillFacts(
            now=s.now,
            window=window,
            files=_label_files(s, [b.key for b in window]),
            trained={b.key: b.labels for b in book.consumed},
            first_event={b.key: b.first_event for b in book.consumed},
            cutoff=book.label_cutoff,
            immature_rows_train=labels.delayed_feedback is DelayedFeedback.FAKE_NEGATIVE,
            last_backfill=book.last_backfill,
            in_flight=s.slots.backfills_elsewhere,
            limit=s.slots.max_backfills,
        ),
    )


def window_label_files(s: Snapshot, window: tuple[Batch, ...]) -> list[backfill.LabelFile]:
    """The late-label files a run over `window` joins, as listed now."""
    files = _label_files(s, [b.key for b in window])
    return [f for batch_files in files.values() for f in batch_files]


def window_holds(spec: PolicySpec, window: tuple[Batch, ...]) -> str:
    """What a run's window holds at most: spare batches fill in for refused ones only."""
    limit = spec.data.window.max_batches if spec.data.window else None
    if limit is None or len(window) <= limit:
        return str(len(window))
    return f"at most {limit} of {len(window)}"


def _start(
    s: Snapshot,
    decision: trigger.Train,
    window: tuple[Batch, ...],
    label_files: list[backfill.LabelFile],
    labels_changed: int | None,
) -> Start:
    spec, book = s.spec, s.ledger
    version = f"v{book.next_version}"
    # A failed run gave its version back: the failures in a row before this
    # run keep its id (and Job) apart from theirs.
    run_id = runs.run_id(s.policy.name, s.policy.uid, window, version, book.failures)
    # Its own serving model; before it has one, spec.baselineFrom's (a segment's first
    # model must beat the global one, and warm-starts from it).
    own = book.serving or s.foreign_baseline
    baseline = (
        RunModelRef(version=own.version, model_key=own.model_key, sha256=own.sha256)
        if own is not None
        else None
    )
    good = [m for m in book.previous if m.version not in book.rejected]
    previous = (
        RunModelRef(version=good[0].version, model_key=good[0].model_key, sha256=good[0].sha256)
        if good
        else None
    )
    labels = None
    if spec.data.labels is not None:
        labels = run_labels_from_policy(
            spec.data.labels,
            [LabelFile(batch=f.batch, key=f.key, etag=f.etag, size=f.size) for f in label_files],
            watermark_floor=book.label_watermark,
            previous_cutoff=book.label_cutoff,
        )
    run_spec = build_run_spec(
        policy=PolicyRef(
            namespace=s.policy.namespace,
            name=s.policy.name,
            uid=s.policy.uid,
            generation=s.policy.generation,
        ),
        spec=spec,
        bucket=s.bucket,
        run_id=run_id,
        version=version,
        window=window,
        new_batches=decision.batches,
        baseline=baseline,
        previous=previous,
        labels=labels,
        reference_from=book.reference_from,
        released=s.released,
        # A run for new data (or a policy's first) has nothing to learn when
        # every new batch is refused; a retrain, schedule or backfill does.
        new_data_required=decision.reason
        in (trigger.TrainReason.NEW_DATA, trigger.TrainReason.CREATED),
    )
    if book.serving is None and s.foreign_baseline is not None:
        # Labels that contradict another policy's model are what a segment is for,
        # not a label fault: the contradiction check holds a batch against the
        # policy's own model only.
        checks = run_spec.validation
        allow = checks.label_contradiction.model_copy(update={"action": ContradictionAction.ALLOW})
        run_spec = run_spec.model_copy(
            update={"validation": checks.model_copy(update={"label_contradiction": allow})}
        )
    intent = RunIntent(
        run_id=run_id,
        version=version,
        reason=str(decision.reason),
        trigger=str(decision.reason),
        message=decision.message,
        batches=[BatchRef.of(b) for b in window],
        new_batches=[b.key for b in decision.batches],
        spec_key=StateLayout.for_policy(s.policy.namespace, s.policy.name).run_spec_key(run_id),
        result_key=run_spec.output.result_key,
        spec_hash=spec.training_hash(),
        retrain_request=decision.retrain_request,
        schedule_time=decision.schedule_time,
        created_time=s.now,
        phase="Preprocessing" if spec.preprocess is not None else "Training",
        label_files=[LabelFileRef(batch=f.batch, key=f.key, etag=f.etag) for f in label_files],
        relabelled=list(decision.relabelled),
    )
    return Start(decision, intent, run_spec, labels_changed)


def _window(
    spec: PolicySpec, book: Ledger, new: tuple[Batch, ...], *, spare: bool = False
) -> tuple[Batch, ...]:
    """The batches of the next run, oldest first.

    With `spare`, as many older consumed batches as there are new ones come
    on top of `maxBatches`: the trainer keeps the newest `maxBatches` that
    pass validation, so a refused new batch takes no slot of the window.
    """
    window_size = spec.data.window.max_batches if spec.data.window else None
    if window_size is not None and spare:
        window_size += len(new)
    return runs.select_window([b.batch() for b in book.consumed], new, window_size)


def _label_files(s: Snapshot, batch_keys: list[str]) -> dict[str, tuple[backfill.LabelFile, ...]]:
    """Each batch's late-label files as listed now."""
    labels = s.spec.data.labels
    if labels is None:
        return {}
    return backfill.assign(s.spec.data.prefix, labels.prefix, batch_keys, s.label_objects, s.held)


def _stale_retrain_due(spec: PolicySpec, book: Ledger, now: datetime) -> bool:
    if spec.effective_trigger is None or book.serving is None:
        return False
    return staleness.retrain_due(
        book.serving.promoted_time, now, spec.max_model_age, book.last_stale_retrain
    )


def _seconds(delay: timedelta) -> float:
    return max(0.05, min(delay.total_seconds(), MAX_WAIT_SECONDS))
