"""When a policy starts a run: every rule of decisions.trigger.decide, one row each."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from freshet.batches import Batch
from freshet.decisions.trigger import (
    Backlog,
    Train,
    TrainReason,
    TriggerFacts,
    Wait,
    WaitReason,
    backlog,
    decide,
    last_schedule_time,
    next_schedule_time,
)
from freshet.spec import OnArrival, TriggerSpec

NOW = datetime(2026, 11, 27, 7, 30, 0, tzinfo=UTC)
CREATED = datetime(2026, 11, 27, 0, 0, 0, tzinfo=UTC)


def batch(key: str, age_s: float, rows: int | None = None) -> Batch:
    return Batch(key, f"etag-{key}", 100, NOW - timedelta(seconds=age_s), rows)


def facts(**changes: object) -> TriggerFacts:
    base = TriggerFacts(
        now=NOW,
        pending=(),
        consumed_count=3,
        run_active=False,
        has_run=True,
        has_serving_model=True,
        training_hash="h1",
        last_run_training_hash="h1",
        retrain_request=None,
        honoured_retrain_request=None,
        schedule_anchor=CREATED,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def trigger(
    min_batches: int = 1, min_rows: int = 0, quiet: int = 5, schedule: str | None = None
) -> TriggerSpec:
    return TriggerSpec(
        on_arrival=OnArrival(min_batches=min_batches, min_rows=min_rows, quiet_seconds=quiet),
        schedule=schedule,
    )


SETTLED = (batch("a", 60), batch("b", 30))
STATIC = None

CASES: list[tuple[str, TriggerSpec | None, TriggerFacts, WaitReason | TrainReason]] = [
    # Rules shared by both modes.
    ("active run queues arrivals", trigger(), facts(pending=SETTLED, run_active=True),
     WaitReason.RUN_ACTIVE),
    ("active run holds a retrain request", STATIC,
     facts(run_active=True, retrain_request="1"), WaitReason.RUN_ACTIVE),
    ("no data at all", trigger(), facts(consumed_count=0, has_run=False,
                                        has_serving_model=False), WaitReason.NO_DATA),
    ("retrain request without any data waits", STATIC,
     facts(consumed_count=0, retrain_request="x"), WaitReason.NO_DATA),
    ("new annotation value retrains (Static)", STATIC, facts(retrain_request="2"),
     TrainReason.RETRAIN_REQUESTED),
    ("new annotation value retrains (Dynamic)", trigger(), facts(retrain_request="2"),
     TrainReason.RETRAIN_REQUESTED),
    ("honoured annotation value does nothing", STATIC,
     facts(retrain_request="2", honoured_retrain_request="2"), WaitReason.UP_TO_DATE),
    ("training spec changed (Static)", STATIC, facts(training_hash="h2"),
     TrainReason.SPEC_CHANGED),
    ("training spec changed (Dynamic)", trigger(), facts(training_hash="h2"),
     TrainReason.SPEC_CHANGED),
    # Static mode.
    ("static: first run on creation", STATIC,
     facts(pending=SETTLED, consumed_count=0, has_run=False, has_serving_model=False,
           last_run_training_hash=None), TrainReason.CREATED),
    ("static: never on arrival", STATIC, facts(pending=SETTLED), WaitReason.UP_TO_DATE),
    ("static: a failed first run is not retried by itself", STATIC,
     facts(pending=SETTLED, has_serving_model=False), WaitReason.UP_TO_DATE),
    # Dynamic mode, on arrival.
    ("dynamic: nothing new", trigger(), facts(), WaitReason.UP_TO_DATE),
    ("dynamic: settled batches train", trigger(), facts(pending=SETTLED), TrainReason.NEW_DATA),
    ("dynamic: first data of a new policy trains", trigger(),
     facts(pending=SETTLED, consumed_count=0, has_run=False, has_serving_model=False,
           last_run_training_hash=None), TrainReason.NEW_DATA),
    ("dynamic: burst still arriving", trigger(quiet=10),
     facts(pending=(batch("a", 60), batch("b", 3))), WaitReason.SETTLING),
    ("dynamic: quiet period measured from the newest", trigger(quiet=10),
     facts(pending=(batch("a", 60), batch("b", 10))), TrainReason.NEW_DATA),
    ("dynamic: quiet 0 trains at once", trigger(quiet=0), facts(pending=(batch("a", 0),)),
     TrainReason.NEW_DATA),
    ("dynamic: too few batches", trigger(min_batches=3), facts(pending=SETTLED),
     WaitReason.AWAITING_BATCHES),
    ("dynamic: enough batches", trigger(min_batches=2), facts(pending=SETTLED),
     TrainReason.NEW_DATA),
    ("dynamic: too few known rows", trigger(min_rows=1000),
     facts(pending=(batch("a", 60, rows=400), batch("b", 30, rows=500))),
     WaitReason.AWAITING_ROWS),
    ("dynamic: enough known rows", trigger(min_rows=900),
     facts(pending=(batch("a", 60, rows=400), batch("b", 30, rows=500))),
     TrainReason.NEW_DATA),
    ("dynamic: unknown row count does not block", trigger(min_rows=1000),
     facts(pending=(batch("a", 60, rows=400), batch("b", 30))), TrainReason.NEW_DATA),
    # Dynamic mode, on schedule (every 6 hours; NOW is 07:30, the last fire 06:00).
    ("schedule due with no new batch", trigger(schedule="0 */6 * * *"), facts(),
     TrainReason.SCHEDULE_DUE),
    ("schedule due beats a settling burst", trigger(schedule="0 */6 * * *"),
     facts(pending=(batch("a", 1),)), TrainReason.SCHEDULE_DUE),
    ("schedule already acted on", trigger(schedule="0 */6 * * *"),
     facts(schedule_anchor=datetime(2026, 11, 27, 6, 0, tzinfo=UTC)), WaitReason.UP_TO_DATE),
    ("schedule due but no data at all", trigger(schedule="0 */6 * * *"),
     facts(consumed_count=0, has_run=False, has_serving_model=False), WaitReason.NO_DATA),
    ("schedule due while running waits", trigger(schedule="0 */6 * * *"),
     facts(run_active=True), WaitReason.RUN_ACTIVE),
]  # fmt: skip


@pytest.mark.parametrize(
    ("trigger_spec", "state", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_decision_reason(
    trigger_spec: TriggerSpec | None, state: TriggerFacts, expected: WaitReason | TrainReason
) -> None:
    assert decide(trigger_spec, state).reason == expected


def test_a_burst_becomes_one_run_over_every_pending_batch() -> None:
    burst = tuple(batch(f"k{i:04d}", 10 + i * 0.001) for i in range(1000))
    decision = decide(trigger(quiet=5), facts(pending=burst))
    assert isinstance(decision, Train)
    assert decision.batches == burst


@pytest.mark.parametrize(
    ("trigger_spec", "state", "retry_after"),
    [
        pytest.param(trigger(quiet=10), facts(pending=(batch("a", 4),)), timedelta(seconds=6),
                     id="rest of the quiet period"),
        pytest.param(trigger(), facts(), None, id="nothing to wait for but an event"),
        pytest.param(trigger(min_batches=5), facts(pending=SETTLED), None,
                     id="more batches come as events"),
        pytest.param(trigger(schedule="0 */6 * * *"),
                     facts(schedule_anchor=datetime(2026, 11, 27, 6, 0, tzinfo=UTC)),
                     timedelta(hours=4, minutes=30), id="until the next cron time"),
        pytest.param(trigger(quiet=3600, schedule="45 7 * * *"),
                     facts(pending=(batch("a", 0),), schedule_anchor=NOW),
                     timedelta(minutes=15), id="the earlier of quiet end and cron time"),
        pytest.param(trigger(), facts(run_active=True), None, id="run completion is an event"),
    ],
)  # fmt: skip
def test_retry_after(
    trigger_spec: TriggerSpec | None, state: TriggerFacts, retry_after: timedelta | None
) -> None:
    decision = decide(trigger_spec, state)
    assert isinstance(decision, Wait)
    assert decision.retry_after == retry_after


def test_store_clock_ahead_waits_at_most_one_quiet_period() -> None:
    future = Batch("a", "e", 1, NOW + timedelta(days=365))
    decision = decide(trigger(quiet=5), facts(pending=(future,)))
    assert isinstance(decision, Wait)
    assert decision.retry_after == timedelta(seconds=5)


def test_records_what_to_mark_as_honoured() -> None:
    retrain = decide(STATIC, facts(retrain_request="again"))
    assert isinstance(retrain, Train)
    assert retrain.retrain_request == "again"
    scheduled = decide(trigger(schedule="0 */6 * * *"), facts())
    assert isinstance(scheduled, Train)
    assert scheduled.schedule_time == datetime(2026, 11, 27, 6, 0, tzinfo=UTC)


def test_missed_cron_times_collapse_into_one_run() -> None:
    week_old_anchor = NOW - timedelta(days=7)
    first = decide(trigger(schedule="@hourly"), facts(schedule_anchor=week_old_anchor))
    assert isinstance(first, Train)
    assert first.schedule_time == datetime(2026, 11, 27, 7, 0, tzinfo=UTC)
    after = decide(trigger(schedule="@hourly"), facts(schedule_anchor=first.schedule_time))
    assert after.reason == WaitReason.UP_TO_DATE


@pytest.mark.parametrize(
    ("now", "last", "following"),
    [
        (NOW, datetime(2026, 11, 27, 6, 0, tzinfo=UTC), datetime(2026, 11, 27, 12, 0, tzinfo=UTC)),
        # Exactly on a cron time: that time counts as the latest, the next is 6 hours on.
        (datetime(2026, 11, 27, 12, 0, tzinfo=UTC), datetime(2026, 11, 27, 12, 0, tzinfo=UTC),
         datetime(2026, 11, 27, 18, 0, tzinfo=UTC)),
    ],
)  # fmt: skip
def test_schedule_times(now: datetime, last: datetime, following: datetime) -> None:
    assert last_schedule_time("0 */6 * * *", now) == last
    assert next_schedule_time("0 */6 * * *", now) == following


RUNNING = {("a", "etag-a")}

BACKLOG_CASES = [
    pytest.param(trigger(), facts(pending=SETTLED), (), Backlog(2, 0),
                 id="dynamic: every pending batch waits for a run"),
    pytest.param(trigger(), facts(pending=SETTLED, run_active=True), RUNNING, Backlog(2, 0),
                 id="dynamic: arrivals during a run wait for the next"),
    pytest.param(STATIC, facts(pending=SETTLED), (), Backlog(0, 2),
                 id="static: batches after the model are untrained, not pending"),
    pytest.param(STATIC, facts(pending=SETTLED, consumed_count=0, has_run=False,
                               has_serving_model=False, last_run_training_hash=None),
                 (), Backlog(2, 0), id="static: the first run takes them"),
    pytest.param(STATIC, facts(pending=SETTLED, retrain_request="again"), (), Backlog(2, 0),
                 id="static: a retrain request takes them"),
    pytest.param(STATIC, facts(pending=SETTLED, training_hash="h2"), (), Backlog(2, 0),
                 id="static: a spec change takes them"),
    pytest.param(STATIC, facts(pending=SETTLED, run_active=True), RUNNING, Backlog(1, 1),
                 id="static: the active run drains what it trains on, not later arrivals"),
    pytest.param(STATIC, facts(pending=(Batch("a", "new", 1, NOW),), run_active=True), RUNNING,
                 Backlog(0, 1), id="static: an overwrite during the run is not what it trains"),
    pytest.param(STATIC, facts(), (), Backlog(0, 0), id="static: nothing new"),
]  # fmt: skip


@pytest.mark.parametrize(("trigger_spec", "state", "running", "expected"), BACKLOG_CASES)
def test_backlog(
    trigger_spec: TriggerSpec | None,
    state: TriggerFacts,
    running: set[tuple[str, str]],
    expected: Backlog,
) -> None:
    assert backlog(trigger_spec, state, running) == expected


def test_a_trained_static_policy_says_what_trains_it_again() -> None:
    decision = decide(STATIC, facts(pending=SETTLED))
    assert isinstance(decision, Wait)
    assert decision.message == (
        "Static policy trained on this spec; 2 newer batch(es) stay untrained: Static policies"
        " train only on a spec change or a retrain request (a new value of the"
        " freshet.dev/retrain annotation)"
    )
    idle = decide(STATIC, facts())
    assert idle.message.startswith("Static policy trained on this spec: Static policies train")
