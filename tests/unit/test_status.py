"""The status document is a pure function of the ledger and the step's observations."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from freshet.ledger import (
    AnalysisRecord,
    BatchRef,
    Ledger,
    MeasurementRecord,
    ModelRef,
    RollbackRecord,
    RunIntent,
    RunRecord,
)
from freshet.spec import PolicySpec
from freshet.status import DataCounts, Observation, build, last_arrival
from policies import CRD_PATH

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def spec(mode: str = "Dynamic", **monitoring: Any) -> PolicySpec:
    body: dict[str, Any] = {
        "mode": mode,
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


def test_degraded_keeps_its_transition_time_after_a_promoted_run_was_rolled_back() -> None:
    """The last run promoted (not degraded) and the live model was rolled back (degraded):
    one owner decides Degraded, so it is not set False then True in every step."""
    book = Ledger()
    book.promote(model("v1"))
    book.promote(model("v2"))
    book.record(
        RunRecord(
            run_id="p-v2", version="v2", outcome="Promoted", reason="Improved", message="",
            finished_time=NOW,
        )
    )  # fmt: skip
    book.roll_back(book.previous[0])
    book.last_rollback = RollbackRecord(
        from_version="v2", to_version="v1", time=NOW, reason="AnalysisFailed", message="worse"
    )
    first = build(book, {}, observe())
    later = Observation(
        generation=3, state_root="freshet/ns/p/", now=NOW + timedelta(minutes=5), spec=spec()
    )
    second = build(book, first, later)
    degraded = [c for c in second["conditions"] if c["type"] == "Degraded"]
    assert [(c["status"], c["reason"]) for c in degraded] == [("True", "RolledBack")]
    assert degraded[0]["lastTransitionTime"] == "2026-11-27T12:00:00Z"
    assert second["conditions"] == first["conditions"]


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


def pass_on(version: str, at: datetime, count: int = 1) -> AnalysisRecord:
    return AnalysisRecord(
        version=version,
        since=at - timedelta(minutes=1),
        measurements=count,
        phase="Healthy",
        last=MeasurementRecord(time=at, verdict="Pass", message="live accuracy 0.9", value=0.9),
    )


def test_a_promotion_keeps_the_measurements_of_the_version_it_replaced() -> None:
    """Prequential: a run measures the serving model, then its promotion replaces it.

    Status said ``Baking, measurements: 0`` after every run while the counter
    counted every measurement: the replaced version's analysis must stay
    visible, and the totals count what freshet_monitoring_measurements_total counts.
    """
    book = Ledger(analysis=pass_on("v1", NOW), measurement_totals={"Pass": 5})
    book.promote(model("v1"))
    book.promote(model("v2"))
    book.begin_analysis("v2", NOW + timedelta(seconds=3))
    monitoring = build(book, {}, observe(spec(source="Prequential")))["monitoring"]
    assert monitoring == {
        "source": "Prequential",
        "version": "v2",
        "phase": "Baking",
        "since": "2026-11-27T12:00:03Z",
        "measurements": 0,
        "consecutiveFailures": 0,
        "consecutiveErrors": 0,
        "previous": {
            "version": "v1",
            "phase": "Healthy",
            "since": "2026-11-27T11:59:00Z",
            "measurements": 1,
            "consecutiveFailures": 0,
            "consecutiveErrors": 0,
            "lastMeasurement": {
                "time": "2026-11-27T12:00:00Z",
                "verdict": "Pass",
                "message": "live accuracy 0.9",
                "value": 0.9,
            },
        },
        "totals": {"Pass": 5},
    }


def test_a_static_policy_reports_new_data_as_untrained_not_pending() -> None:
    static = PolicySpec.model_validate(
        spec().model_dump(by_alias=True, mode="json", exclude_none=True)
        | {"mode": "Static", "trigger": None}
    )
    data = DataCounts(arrivals="Polling", seen=4, pending=0, last_arrival=NOW, untrained=2)
    reported = build(Ledger(), {}, observe(static, data=data))["data"]
    assert (reported["pending"], reported["untrained"]) == (0, 2)
    dynamic = DataCounts(arrivals="Polling", seen=4, pending=2, last_arrival=NOW)
    assert "untrained" not in build(Ledger(), {}, observe(data=dynamic))["data"]


EARLY, LATE = NOW - timedelta(minutes=5), NOW


@pytest.mark.parametrize(
    ("listed", "recorded", "reported", "expected"),
    [
        pytest.param(LATE, None, None, LATE, id="the listing"),
        pytest.param(None, None, None, None, id="nothing arrived"),
        pytest.param(EARLY, None, "2026-11-27T12:00:00Z", LATE,
                     id="the newest batch was quarantined: status does not go back"),
        pytest.param(None, None, "2026-11-27T12:00:00Z", LATE,
                     id="every batch was moved out"),
        pytest.param(EARLY, LATE, None, LATE, id="the ledger remembers what status lost"),
        pytest.param(LATE, EARLY, "2026-11-27T11:55:00Z", LATE, id="a newer arrival"),
        pytest.param(EARLY, None, "not a time", EARLY, id="an unreadable status is ignored"),
    ],
)  # fmt: skip
def test_last_arrival_never_goes_back(
    listed: datetime | None, recorded: datetime | None, reported: Any, expected: datetime | None
) -> None:
    assert last_arrival(listed, recorded, reported) == expected


def test_last_arrival_time_survives_a_quarantine() -> None:
    before = DataCounts(arrivals="Polling", seen=2, pending=1, last_arrival=LATE)
    first = build(Ledger(), {}, observe(data=before))
    moved = DataCounts(arrivals="Polling", seen=1, pending=0, last_arrival=EARLY)
    assert build(Ledger(), first, observe(data=moved))["data"]["lastArrivalTime"] == (
        "2026-11-27T12:00:00Z"
    )


def _paths(doc: Any, path: str = "") -> Iterator[str]:
    """Every field path in a status document; list items as ``[]``."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield f"{path}.{key}"
            yield from _paths(value, f"{path}.{key}")
    elif isinstance(doc, list):
        for item in doc:
            yield from _paths(item, f"{path}[]")


def _declared(schema: dict[str, Any], path: str) -> bool:
    node = schema
    for part in path.strip(".").replace("[]", ".[]").split("."):
        if part == "[]":
            node = node["items"]
        elif part in node.get("properties", {}):
            node = node["properties"][part]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return False
    return True


def test_every_field_the_operator_writes_is_declared_in_the_crd() -> None:
    """The API server prunes undeclared status fields: they would vanish silently
    (and the operator would patch them again at every step)."""
    crd = yaml.safe_load(CRD_PATH.read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    book = Ledger(
        analysis=pass_on("v3", NOW),
        previous_analysis=pass_on("v2", EARLY),
        measurement_totals={"Pass": 3, "Fail": 1},
        last_arrival=NOW,
        retrain_request="r1",
        last_schedule_time=NOW,
        label_watermark=NOW,
        label_cutoff=NOW,
        last_backfill=NOW,
        quarantined={"in/x.csv": "e"},
    )
    book.promote(model("v2"))
    book.promote(model("v3"))
    book.roll_back(book.previous[0])
    book.last_rollback = RollbackRecord(
        from_version="v3", to_version="v2", time=NOW, reason="AnalysisFailed", message="worse"
    )
    book.record(
        RunRecord(
            run_id="p-1", version="v3", outcome="Promoted", reason="Improved", message="ok",
            trigger="NewData", started_time=EARLY, finished_time=NOW, metrics={"accuracy": 0.9},
            baseline_metrics={"accuracy": 0.8}, batches=2,
        )
    )  # fmt: skip
    body = spec(source="Prequential").model_dump(by_alias=True, mode="json", exclude_none=True)
    body["mode"], body["trigger"] = "Static", None
    body["data"]["labels"] = {
        "prefix": "labels/",
        "idColumn": "id",
        "eventTimeColumn": "t",
        "delaySeconds": 60,
    }
    static = PolicySpec.model_validate(body)
    data = DataCounts(
        arrivals="Polling", seen=3, pending=0, last_arrival=NOW, labels_changed=1, untrained=1
    )
    finished = build(book, {}, observe(static, data=data))
    book.intent = RunIntent(
        run_id="p-2", version="v4", reason="NewData", batches=[BatchRef(key="in/a.csv", etag="e",
        last_modified=NOW)], new_batches=["in/a.csv"], spec_key="s", result_key="r",
        spec_hash="h", trigger="NewData", created_time=NOW,
    )  # fmt: skip
    running = build(book, {}, observe(static, data=data))
    written = set(_paths(finished)) | set(_paths(running))
    assert {".monitoring.previous.lastMeasurement.value", ".monitoring.totals.Pass"} <= written
    assert {".data.untrained", ".candidate.baselineMetrics.accuracy"} <= written
    undeclared = sorted(p for p in written if not _declared(schema, p))
    assert undeclared == []


def test_a_problem_gets_one_event_when_its_condition_turns_to_it() -> None:
    from freshet.status import new_problems

    book = Ledger()
    blocked = observe(blocked=("StoreUnavailable", "cannot list the bucket"))
    first = build(book, {}, blocked)
    assert new_problems({}, first) == [("StoreUnavailable", "cannot list the bucket")]
    again = build(book, first, observe(blocked=("StoreUnavailable", "still down")))
    assert new_problems(first, again) == []
    waiting = build(book, first, observe(waiting=("Settling", "quiet period")))
    assert new_problems(first, waiting) == []


def test_a_stalled_policy_gets_one_event_not_two() -> None:
    """Stalled repeats Ready's reason for kstatus; the Event comes from Ready alone."""
    from freshet.status import new_problems

    forbidden = build(Ledger(), {}, observe(blocked=("Forbidden", "cannot get secrets")))
    assert conditions_of(forbidden)["Stalled"] == ("True", "Forbidden")
    assert new_problems({}, forbidden) == [("Forbidden", "cannot get secrets")]
