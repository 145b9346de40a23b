"""Should this policy start a training run now? A pure function of plain data.

The handler gathers the facts (pending batches, status, annotation, clock),
calls :func:`decide`, and acts on the answer: on ``Train`` it records a run
intent and creates the Job, on ``Wait`` it schedules nothing or a re-check
after ``retry_after``. Keeping the decision here means every rule below is
unit-tested without a cluster, and every reconcile, repeated or replayed after
a crash, reaches the same answer from the same facts.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from croniter import croniter

from freshet.batches import Batch
from freshet.names import RETRAIN_ANNOTATION
from freshet.spec import TriggerSpec

STATIC_RETRAINS = (
    "Static policies train only on a spec change or a retrain request"
    f" (a new value of the {RETRAIN_ANNOTATION} annotation)"
)


class TrainReason(StrEnum):
    CREATED = "Created"
    SPEC_CHANGED = "SpecChanged"
    RETRAIN_REQUESTED = "RetrainRequested"
    NEW_DATA = "NewData"
    SCHEDULE_DUE = "ScheduleDue"
    STALE = "Stale"
    BACKFILL = "Backfill"
    """Late labels changed for batches already trained on (decisions.backfill)."""


class WaitReason(StrEnum):
    RUN_ACTIVE = "RunActive"
    NO_DATA = "NoData"
    UP_TO_DATE = "UpToDate"
    AWAITING_BATCHES = "AwaitingBatches"
    AWAITING_ROWS = "AwaitingRows"
    SETTLING = "Settling"


@dataclass(frozen=True, slots=True)
class Wait:
    """Start nothing now.

    ``retry_after`` is when the answer could change by the clock alone (the
    quiet period ends, the schedule fires). None means only an event can change
    it (a batch arrives, the run finishes, the spec or annotation changes), and
    those wake the policy anyway, so no timer is needed.
    """

    reason: WaitReason
    message: str
    retry_after: timedelta | None = None


@dataclass(frozen=True, slots=True)
class Train:
    """Start one run over ``batches`` (the pending ones; the window adds history).

    ``schedule_time`` and ``retrain_request`` are what the handler records in
    status once the run intent is written, so the same cron time or annotation
    value is never acted on twice.
    """

    reason: TrainReason
    message: str
    batches: tuple[Batch, ...]
    schedule_time: datetime | None = None
    retrain_request: str | None = None
    relabelled: tuple[str, ...] = ()
    """Backfill: the trained batches whose late labels changed."""


Decision = Wait | Train


@dataclass(frozen=True, slots=True, kw_only=True)
class TriggerFacts:
    """What the handler knows about the policy at ``now``."""

    now: datetime
    pending: Sequence[Batch]
    """Seen under the prefix, not consumed by a recorded run, not quarantined."""
    consumed_count: int
    run_active: bool
    has_run: bool
    """A run was ever started (status.lastRun is set)."""
    has_serving_model: bool
    training_hash: str
    """``PolicySpec.training_hash()`` of the current spec."""
    last_run_training_hash: str | None
    retrain_request: str | None
    """Current value of the freshet.dev/retrain annotation."""
    honoured_retrain_request: str | None
    """status.retrainRequest: the last value acted on."""
    schedule_anchor: datetime
    """status.lastScheduleTime, or the policy's creation time before the first one."""


def decide(trigger: TriggerSpec | None, facts: TriggerFacts) -> Decision:
    """Decide whether to train now; ``trigger`` is None for a Static policy.

    Rules, in order:

    1. At most one run at a time: while one is active everything waits, and
       batches arriving meanwhile queue for the next run.
    2. Nothing to train on (no batch ever seen) means waiting, whatever asked.
    3. A new value of the retrain annotation retrains, in either mode.
    4. A change of the training-relevant spec retrains, in either mode: the
       serving model no longer reflects what the policy asks for.
    5. Static: the first run starts once data exists; after that, only 3 and 4.
    6. Dynamic: a due schedule retrains on the current window even without new
       batches; otherwise new batches retrain once there are at least
       ``minBatches`` with ``minRows`` rows and none arrived for
       ``quietSeconds``, so a burst of files becomes one run.
    """
    if facts.run_active:
        return Wait(WaitReason.RUN_ACTIVE, "a run is active; new batches wait for the next one")
    if facts.consumed_count == 0 and not facts.pending:
        return Wait(WaitReason.NO_DATA, "no batch under the prefix yet")
    pending = tuple(facts.pending)
    requested = facts.retrain_request
    if requested is not None and requested != facts.honoured_retrain_request:
        return Train(
            TrainReason.RETRAIN_REQUESTED,
            f"retrain requested (annotation value {requested!r})",
            pending,
            retrain_request=requested,
        )
    if facts.last_run_training_hash not in {None, facts.training_hash}:
        return Train(
            TrainReason.SPEC_CHANGED,
            f"training spec changed ({facts.last_run_training_hash} -> {facts.training_hash})",
            pending,
        )
    if trigger is None:
        if not facts.has_run and not facts.has_serving_model:
            return Train(TrainReason.CREATED, "first model of the policy", pending)
        new = f"; {len(pending)} newer batch(es) stay untrained" if pending else ""
        return Wait(
            WaitReason.UP_TO_DATE, f"Static policy trained on this spec{new}: {STATIC_RETRAINS}"
        )
    return _decide_dynamic(trigger, facts, pending)


@dataclass(frozen=True, slots=True)
class Backlog:
    """status.data: how the pending batches split between the runs and nobody."""

    pending: int
    """Batches a run is training on or will train on: the count drains."""
    untrained: int
    """Static: batches no run will take until the spec changes or a retrain is requested."""


def backlog(
    trigger: TriggerSpec | None,
    facts: TriggerFacts,
    running: Collection[tuple[str, str]] = (),
) -> Backlog:
    """Split ``facts.pending`` into what a run will take and what none will.

    In Dynamic mode every pending batch waits for a run. A Static policy
    trains once: the batches that arrive after its model are seen, but a
    pending count of them would never drain, so they are ``untrained``
    unless a run is due (the first one, a spec change, a retrain request:
    ``decide`` says Train) or is training on them now (``running`` holds the
    active run's ``(key, etag)`` pairs).
    """
    count = len(facts.pending)
    if trigger is not None:
        return Backlog(count, 0)
    if facts.run_active:
        taken = sum((b.key, b.etag) in running for b in facts.pending)
        return Backlog(taken, count - taken)
    if isinstance(decide(None, facts), Train):
        return Backlog(count, 0)
    return Backlog(0, count)


def _decide_dynamic(
    trigger: TriggerSpec, facts: TriggerFacts, pending: tuple[Batch, ...]
) -> Decision:
    now = facts.now
    next_fire: datetime | None = None
    if trigger.schedule is not None:
        fire = last_schedule_time(trigger.schedule, now)
        if fire > facts.schedule_anchor:
            return Train(
                TrainReason.SCHEDULE_DUE,
                f"schedule {trigger.schedule!r} due at {fire.isoformat()}"
                f" with {len(pending)} new batch(es)",
                pending,
                schedule_time=fire,
            )
        next_fire = next_schedule_time(trigger.schedule, now)
    until_fire = next_fire - now if next_fire is not None else None

    rules = trigger.on_arrival
    if not pending:
        return Wait(WaitReason.UP_TO_DATE, "no new batch since the last run", until_fire)
    if len(pending) < rules.min_batches:
        return Wait(
            WaitReason.AWAITING_BATCHES,
            f"{len(pending)} of {rules.min_batches} new batches",
            until_fire,
        )
    rows = _known_rows(pending)
    if rows is not None and rows < rules.min_rows:
        return Wait(WaitReason.AWAITING_ROWS, f"{rows} of {rules.min_rows} new rows", until_fire)
    newest = max(batch.last_modified for batch in pending)
    quiet = timedelta(seconds=rules.quiet_seconds)
    # A store clock ahead of ours must not stretch the wait beyond one quiet
    # period, or a skewed (or far-future) Last-Modified would stall the policy.
    settles = min(newest, now) + quiet
    if settles > now:
        remaining = settles - now
        return Wait(
            WaitReason.SETTLING,
            f"{len(pending)} new batch(es); waiting {remaining.total_seconds():g}s"
            " for arrivals to settle",
            min(remaining, until_fire) if until_fire is not None else remaining,
        )
    rows_text = f"{rows} rows" if rows is not None else "row count unknown"
    return Train(TrainReason.NEW_DATA, f"{len(pending)} new batch(es), {rows_text}", pending)


def _known_rows(batches: Sequence[Batch]) -> int | None:
    """Total rows, or None if any batch's count is unknown.

    Unknown means "cannot tell", not zero: the operator never opens data, so
    treating it as zero would block a policy forever on producers that do not
    annotate row counts.
    """
    total = 0
    for batch in batches:
        if batch.rows is None:
            return None
        total += batch.rows
    return total


def last_schedule_time(expression: str, now: datetime) -> datetime:
    """The latest cron time at or before ``now``.

    Comparing it with the last acted-on time, instead of firing at each cron
    time in turn, collapses times missed during a long run or an operator
    outage into one run.
    """
    fire: datetime = croniter(expression, now + timedelta(microseconds=1)).get_prev(datetime)
    return fire


def next_schedule_time(expression: str, now: datetime) -> datetime:
    """The first cron time strictly after ``now``."""
    fire: datetime = croniter(expression, now).get_next(datetime)
    return fire
