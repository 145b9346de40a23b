"""Conditions follow the API conventions and say what the facts mean."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from freshet.decisions.conditions import (
    ConditionType,
    ConditionUpdate,
    StatusFacts,
    derive_conditions,
    format_time,
    set_condition,
    set_conditions,
)
from freshet.decisions.runs import RunPhase

T0 = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def ready(status: str, reason: str = "Serving", message: str = "m") -> ConditionUpdate:
    return ConditionUpdate(ConditionType.READY, status, reason, message)  # type: ignore[arg-type]


def existing(status: str, reason: str = "Serving") -> list[dict[str, Any]]:
    return [
        {
            "type": "Ready",
            "status": status,
            "reason": reason,
            "message": "old",
            "observedGeneration": 1,
            "lastTransitionTime": format_time(T0),
        }
    ]


@pytest.mark.parametrize(
    ("before", "update", "transition"),
    [
        pytest.param([], ready("True"), T1, id="new condition"),
        pytest.param(existing("True"), ready("True", "Serving", "new message"), T0,
                     id="same status keeps its transition time"),
        pytest.param(existing("True"), ready("True", "OtherReason"), T0,
                     id="reason change alone is no transition"),
        pytest.param(existing("True"), ready("False", "FirstRunFailed"), T1,
                     id="status change is a transition"),
        pytest.param(existing("Unknown"), ready("True"), T1, id="from Unknown"),
    ],
)  # fmt: skip
def test_set_condition_transition_time(
    before: list[dict[str, Any]], update: ConditionUpdate, transition: datetime
) -> None:
    after = set_condition(before, update, generation=2, now=T1)
    (ready_condition,) = after
    assert ready_condition == {
        "type": "Ready",
        "status": update.status,
        "reason": update.reason,
        "message": update.message,
        "observedGeneration": 2,
        "lastTransitionTime": format_time(transition),
    }


def test_set_condition_keeps_others_in_place_and_does_not_mutate() -> None:
    before = [
        {"type": "Training", "status": "False", "reason": "Idle", "message": "",
         "lastTransitionTime": format_time(T0)},
        *existing("True"),
    ]  # fmt: skip
    snapshot = [dict(c) for c in before]
    after = set_condition(before, ready("False", "X"), generation=3, now=T1)
    assert before == snapshot
    assert [c["type"] for c in after] == ["Training", "Ready"]
    assert after[0] == before[0]


def test_set_conditions_appends_new_types_in_order() -> None:
    updates = derive_conditions(StatusFacts())
    after = set_conditions([], updates, generation=1, now=T0)
    assert [c["type"] for c in after] == [
        "Ready",
        "Training",
        "Degraded",
        "DataHealthy",
        "Reconciling",
        "Stalled",
    ]


def by_type(facts: StatusFacts) -> dict[str, tuple[str, str]]:
    return {u.type.value: (u.status, u.reason) for u in derive_conditions(facts)}


def serving(phase: RunPhase | None = None, **changes: Any) -> StatusFacts:
    """A policy serving v3, whose last run is in ``phase``."""
    base = StatusFacts(serving_version="v3", last_run_id="p-1", last_run_version="v3")
    return replace(base, last_run_phase=phase, **changes)


CASES: list[tuple[str, StatusFacts, str, tuple[str, str]]] = [
    ("fresh policy", StatusFacts(), "Ready", ("False", "AwaitingFirstRun")),
    ("first model training", StatusFacts(last_run_id="p-1", last_run_phase=RunPhase.RUNNING),
     "Ready", ("False", "FirstModelTraining")),
    ("first run failed", StatusFacts(last_run_id="p-1", last_run_phase=RunPhase.FAILED,
                                     last_run_reason="NoTrainingData"),
     "Ready", ("False", "FirstRunFailed")),
    ("first model rejected", StatusFacts(last_run_phase=RunPhase.REJECTED), "Ready",
     ("False", "FirstModelRejected")),
    ("serving", serving(RunPhase.PROMOTED), "Ready",
     ("True", "Serving")),
    ("serving while retraining", serving(RunPhase.PENDING),
     "Ready", ("True", "Serving")),
    ("invalid spec wins", serving(spec_error="bad"), "Ready",
     ("False", "InvalidSpec")),
    ("training: pending", StatusFacts(last_run_phase=RunPhase.PENDING), "Training",
     ("True", "Pending")),
    ("training: running", StatusFacts(last_run_phase=RunPhase.RUNNING), "Training",
     ("True", "Running")),
    ("training: idle", serving(RunPhase.PROMOTED), "Training",
     ("False", "Idle")),
    ("degraded: rejected", serving(RunPhase.REJECTED,
                                       last_run_reason="Regressed"),
     "Degraded", ("True", "Regressed")),
    ("degraded: failed without reason", StatusFacts(last_run_phase=RunPhase.FAILED), "Degraded",
     ("True", "RunFailed")),
    ("not degraded", serving(RunPhase.PROMOTED), "Degraded",
     ("False", "AsExpected")),
    ("data healthy", StatusFacts(), "DataHealthy", ("True", "NoQuarantine")),
    ("data quarantined", StatusFacts(quarantined=2), "DataHealthy",
     ("False", "BatchesQuarantined")),
    # kstatus: Reconciling while the first model trains, Stalled when a person must act.
    ("reconciling: first model", StatusFacts(last_run_id="p-1", last_run_phase=RunPhase.RUNNING),
     "Reconciling", ("True", "FirstModelTraining")),
    ("reconciled: awaiting data", StatusFacts(), "Reconciling", ("False", "Reconciled")),
    ("reconciling: first run settling", StatusFacts(waiting=("Settling", "quiet 1s")),
     "Reconciling", ("True", "Settling")),
    ("reconciled: settling with a model", serving(RunPhase.PROMOTED, waiting=("Settling", "q")),
     "Reconciling", ("False", "Reconciled")),
    ("reconciled: retraining", serving(RunPhase.RUNNING), "Reconciling", ("False", "Reconciled")),
    ("stalled: invalid spec", StatusFacts(spec_error="bad"), "Stalled", ("True", "InvalidSpec")),
    ("stalled: forbidden", serving(blocked=("Forbidden", "cannot get secrets")), "Stalled",
     ("True", "Forbidden")),
    ("stalled: account not allowed", StatusFacts(waiting=("ServiceAccountNotAllowed", "x")),
     "Stalled", ("True", "ServiceAccountNotAllowed")),
    ("stalled: pods not created", StatusFacts(last_run_phase=RunPhase.RUNNING,
                                              running=("PodsNotCreated", "quota")),
     "Stalled", ("True", "PodsNotCreated")),
    ("not stalled: outage", StatusFacts(blocked=("StoreUnavailable", "down")), "Stalled",
     ("False", "Progressing")),
    ("not stalled: awaiting batches", StatusFacts(waiting=("AwaitingBatches", "1 of 2")),
     "Stalled", ("False", "Progressing")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("facts", "condition", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_derive_conditions(facts: StatusFacts, condition: str, expected: tuple[str, str]) -> None:
    assert by_type(facts)[condition] == expected


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (T0, "2026-11-27T06:00:00Z"),
        (datetime(2026, 11, 27, 8, 0, 0, 999, tzinfo=timezone(timedelta(hours=2))),
         "2026-11-27T06:00:00Z"),
    ],
)  # fmt: skip
def test_format_time(moment: datetime, text: str) -> None:
    assert format_time(moment) == text


def test_format_time_refuses_naive() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        format_time(datetime(2026, 11, 27))
