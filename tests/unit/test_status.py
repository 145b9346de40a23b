"""The status document is a pure function of the ledger and the step's observations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from freshet.ledger import AnalysisRecord, Ledger, MeasurementRecord, ModelRef, RollbackRecord
from freshet.spec import PolicySpec
from freshet.status import DataCounts, Observation, build

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def spec(**monitoring: Any) -> PolicySpec:
    body: dict[str, Any] = {
        "mode": "Dynamic",
        "data": {"storeRef": {"name": "s"}, "prefix": "in/", "label": "y"},
        "training": {
            "image": "trainer:1",
            "estimator": {"class": "sklearn.linear_model.LogisticRegression"},
        },
    }
    if monitoring:
        body["monitoring"] = monitoring
    return PolicySpec.model_validate(body)


def model(version: str, promoted: datetime = NOW) -> ModelRef:
    return ModelRef(
        version=version,
        run_id=f"p-{version}",
        model_key=f"k/{version}",
        sha256="0" * 64,
        metrics={"accuracy": 0.9},
        promoted_time=promoted,
    )


def observe(s: PolicySpec | None = None, **kw: Any) -> Observation:
    return Observation(generation=3, state_root="freshet/ns/p/", now=NOW, spec=s or spec(), **kw)


def conditions_of(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_a_new_policy_is_not_ready_and_says_what_it_waits_for() -> None:
    status = build(Ledger(), {}, observe(waiting=("AwaitingBatches", "0 of 1 new batches")))
    conds = conditions_of(status)
    assert conds["Ready"] == ("False", "AwaitingFirstRun")
    assert conds["Training"] == ("False", "AwaitingBatches")
    assert status["observedGeneration"] == 3
    assert all(c["observedGeneration"] == 3 for c in status["conditions"])
    assert "serving" not in status


def test_a_serving_model_is_ready_and_reported_with_its_counts() -> None:
    book = Ledger()
    book.promote(model("v1"))
    data = DataCounts(arrivals="Polling", seen=4, pending=1, last_arrival=NOW)
    status = build(book, {}, observe(data=data))
    assert conditions_of(status)["Ready"] == ("True", "Serving")
    assert status["serving"]["version"] == "v1"
    assert status["data"] == {
        "arrivals": "Polling",
        "seen": 4,
        "consumed": 0,
        "pending": 1,
        "quarantined": 0,
        "lastArrivalTime": "2026-11-27T12:00:00Z",
    }


def test_a_rollback_is_degraded_until_a_new_model_is_promoted() -> None:
    book = Ledger()
    book.promote(model("v1"))
    book.promote(model("v2"))
    book.roll_back(book.previous[0])
    book.last_rollback = RollbackRecord(
        from_version="v2", to_version="v1", time=NOW, reason="AnalysisFailed", message="worse"
    )
    status = build(book, {}, observe())
    assert conditions_of(status)["Degraded"] == ("True", "RolledBack")
    assert status["rejectedVersions"] == ["v2"]
    assert status["lastRollback"]["fromVersion"] == "v2"

    book.promote(model("v3"))
    assert conditions_of(build(book, status, observe()))["Degraded"] == ("False", "AsExpected")


def test_a_failing_analysis_is_reported_before_any_rollback() -> None:
    book = Ledger()
    book.promote(model("v1"))
    book.analysis = AnalysisRecord(
        version="v1",
        since=NOW,
        consecutive_failures=1,
        measurements=1,
        phase="Failing",
        last=MeasurementRecord(time=NOW, verdict="Fail", message="live accuracy 0.5", value=0.5),
    )
    status = build(book, {}, observe(spec(failureLimit=2)))
    assert conditions_of(status)["Degraded"] == ("True", "RegressionSuspected")
    assert status["monitoring"]["lastMeasurement"] == {
        "time": "2026-11-27T12:00:00Z",
        "verdict": "Fail",
        "message": "live accuracy 0.5",
        "value": 0.5,
    }


def test_staleness_follows_the_serving_model_age() -> None:
    book = Ledger()
    book.promote(model("v1", promoted=NOW - timedelta(seconds=30)))
    fresh = build(book, {}, observe(spec(maxModelAgeSeconds=60)))
    assert conditions_of(fresh)["Stale"] == ("False", "Fresh")
    stale = build(book, fresh, observe(spec(maxModelAgeSeconds=20)))
    assert conditions_of(stale)["Stale"] == ("True", "MaxAgeExceeded")
    assert "Stale" not in conditions_of(build(book, {}, observe(spec())))


def test_a_blocked_policy_keeps_serving_but_says_why() -> None:
    book = Ledger()
    book.promote(model("v1"))
    status = build(book, {}, observe(blocked=("StoreSecretNotFound", "Secret 's' not found")))
    assert conditions_of(status)["Ready"] == ("True", "StoreSecretNotFound")


def test_an_unchanged_condition_keeps_its_transition_time() -> None:
    book = Ledger()
    book.promote(model("v1"))
    first = build(book, {}, observe())
    later = Observation(
        generation=4, state_root="freshet/ns/p/", now=NOW + timedelta(hours=1), spec=spec()
    )
    second = build(book, first, later)
    ready = next(c for c in second["conditions"] if c["type"] == "Ready")
    assert ready["lastTransitionTime"] == "2026-11-27T12:00:00Z"
    assert ready["observedGeneration"] == 4


def test_late_labels_report_watermark_cutoff_and_what_awaits_a_backfill() -> None:
    body = spec().model_dump(by_alias=True, mode="json", exclude_none=True)
    body["data"]["labels"] = {
        "prefix": "labels/",
        "idColumn": "id",
        "eventTimeColumn": "t",
        "delaySeconds": 3600,
    }
    with_labels = PolicySpec.model_validate(body)
    book = Ledger(label_watermark=NOW, label_cutoff=NOW - timedelta(hours=1))
    data = DataCounts(arrivals="Polling", seen=2, pending=0, last_arrival=None, labels_changed=2)
    status = build(book, {}, observe(with_labels, data=data))
    assert status["data"]["labels"] == {
        "watermark": "2026-11-27T12:00:00Z",
        "cutoff": "2026-11-27T11:00:00Z",
        "awaitingBackfill": 2,
    }
    # A step that did not plan (a run was active) keeps the count it last knew.
    unplanned = DataCounts(arrivals="Polling", seen=2, pending=0, last_arrival=None)
    again = build(book, status, observe(with_labels, data=unplanned))
    assert again["data"]["labels"]["awaitingBackfill"] == 2
    assert "labels" not in build(book, {}, observe(data=unplanned))["data"]


def test_released_batches_are_not_counted_as_quarantined() -> None:
    book = Ledger(quarantined={"in/a.csv": "1", "in/b.csv": "2"})
    data = DataCounts(arrivals="Polling", seen=2, pending=1, last_arrival=None, released=1)
    status = build(book, {}, observe(data=data))
    assert status["data"]["quarantined"] == 1
    assert conditions_of(status)["DataHealthy"] == ("False", "BatchesQuarantined")
    both = DataCounts(arrivals="Polling", seen=2, pending=2, last_arrival=None, released=2)
    assert conditions_of(build(book, {}, observe(data=both)))["DataHealthy"][0] == "True"
