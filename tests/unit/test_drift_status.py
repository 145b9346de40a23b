"""What a run that found a change, or found nothing new, leaves in status: a pure function."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from freshet.decisions.outcome import judge_run
from freshet.decisions.runs import RunPhase
from freshet.ledger import DriftRecord, Ledger, RunRecord
from freshet.spec import GateSpec
from freshet.status import build
from freshet_contract.result import RunResult
from test_status import NOW, conditions_of, model, observe, spec


def found(at: Any, version: str = "v1") -> DriftRecord:
    return DriftRecord(
        time=at,
        version=version,
        batch="in/b.csv",
        action="Ignore",
        checks=["featureDrift"],
        columns=["x1"],
        message="in/b.csv: featureDrift in x1; trained on (drift.action Ignore)",
    )


# (case id, mode, drift found, model promoted, expected Stale condition)
STALE = [
    ("static-trained-across-a-change", "Static", NOW, NOW, ("True", "DriftDetected")),
    ("static-retrained-since", "Static", NOW - timedelta(hours=1), NOW, None),
    ("static-no-change", "Static", None, NOW, None),
    ("dynamic-follows-it", "Dynamic", NOW, NOW, None),
]


@pytest.mark.parametrize(
    ("mode", "drift_time", "promoted", "stale"),
    [case[1:] for case in STALE],
    ids=[case[0] for case in STALE],
)
def test_a_static_model_trained_across_a_change_is_stale(
    mode: str, drift_time: Any, promoted: Any, stale: tuple[str, str] | None
) -> None:
    book = Ledger(serving=model("v1", promoted=promoted))
    if drift_time is not None:
        book.note_drift(found(drift_time), 1)
    status = build(book, {}, observe(spec(mode)))
    assert conditions_of(status).get("Stale") == stale


def test_the_newest_change_is_in_status_data() -> None:
    book = Ledger(serving=model("v1"))
    book.note_drift(found(NOW - timedelta(minutes=5)), 2)
    book.note_drift(found(NOW, version="v2"), 1)
    status = build(book, {}, observe(data=_counts()))
    assert status["data"]["drift"] == {
        "detected": 3,
        "lastDetectedTime": "2026-11-27T12:00:00Z",
        "version": "v2",
        "batch": "in/b.csv",
        "action": "Ignore",
        "checks": ["featureDrift"],
        "columns": ["x1"],
        "message": "in/b.csv: featureDrift in x1; trained on (drift.action Ignore)",
    }


def _counts() -> Any:
    from freshet.status import DataCounts

    return DataCounts(arrivals="Polling", seen=3, pending=0, last_arrival=None)


def test_a_skipped_run_is_neither_a_failure_nor_a_model() -> None:
    skipped = RunResult.model_validate(
        {"runId": "r", "status": "Skipped", "reason": "NoNewData", "message": "all refused"}
    )
    decided = judge_run(
        result=skipped,
        job_summary="",
        gate_spec=GateSpec(),
        live=None,
        rolled_back=False,
        pinned=None,
    )
    assert (decided.outcome, decided.reason) == ("Skipped", "NoNewData")
    record = RunRecord(
        run_id="r",
        version="v2",
        outcome="Skipped",
        reason="NoNewData",
        message="all refused",
        finished_time=NOW,
    )
    status = build(Ledger(serving=model("v1"), runs=[record]), {}, observe())
    assert status["lastRun"]["phase"] == RunPhase.SKIPPED
    assert conditions_of(status)["Degraded"] == ("False", "AsExpected")
    assert conditions_of(status)["Ready"] == ("True", "Serving")
    assert "candidate" not in status
