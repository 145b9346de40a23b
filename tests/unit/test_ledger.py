"""The ledger's transitions: versions given back, analyses replaced, arrivals remembered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from freshet.ledger import AnalysisRecord, BatchRef, Ledger, MeasurementRecord

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("next_version", "failed", "after"),
    [
        pytest.param(4, "v3", 3, id="the failed run's version goes to the next attempt"),
        pytest.param(2, "v1", 1, id="a failed first run leaves v1 for the next"),
        pytest.param(4, "v2", 4, id="only the newest version can go back"),
        pytest.param(1, "v0", 1, id="never below v1"),
    ],
)
def test_a_failed_run_gives_its_version_back(next_version: int, failed: str, after: int) -> None:
    book = Ledger(next_version=next_version)
    book.give_back(failed)
    assert book.next_version == after


def test_three_failures_then_a_success_make_v1() -> None:
    book = Ledger()
    attempts = []
    for _ in range(3):
        attempts.append(f"v{book.next_version}")
        book.next_version += 1  # allocated with the intent
        book.give_back(attempts[-1])  # the run failed
    attempts.append(f"v{book.next_version}")
    book.next_version += 1  # this one trains a model
    assert attempts == ["v1", "v1", "v1", "v1"]
    assert book.next_version == 2


def measured(version: str, count: int) -> AnalysisRecord:
    last = MeasurementRecord(time=NOW, verdict="Pass", message="live accuracy 0.9", value=0.9)
    return AnalysisRecord(
        version=version, since=NOW, measurements=count, phase="Healthy", last=last
    )


def test_a_new_serving_version_keeps_the_analysis_it_replaces() -> None:
    book = Ledger(analysis=measured("v1", 1))
    book.begin_analysis("v2", NOW + timedelta(seconds=5))
    assert book.analysis == AnalysisRecord(version="v2", since=NOW + timedelta(seconds=5))
    assert book.previous_analysis == measured("v1", 1)
    # Restarting the same version's analysis is not a replacement.
    book.begin_analysis("v2", NOW + timedelta(seconds=9))
    assert book.previous_analysis == measured("v1", 1)


def test_measurements_are_counted_by_verdict() -> None:
    book = Ledger()
    for verdict in ("Pass", "Pass", "Fail"):
        book.count_measurement(verdict)
    assert book.measurement_totals == {"Pass": 2, "Fail": 1}


def ref(key: str, minutes: int) -> BatchRef:
    return BatchRef(key=key, etag="e", last_modified=NOW + timedelta(minutes=minutes))


def test_the_newest_arrival_given_to_a_run_is_remembered_and_never_goes_back() -> None:
    book = Ledger()
    book.note_arrivals([ref("a", 1), ref("b", 5)])
    assert book.last_arrival == NOW + timedelta(minutes=5)
    book.note_arrivals([ref("a", 1)])
    assert book.last_arrival == NOW + timedelta(minutes=5)
    book.note_arrivals([])
    assert book.last_arrival == NOW + timedelta(minutes=5)


def test_a_ledger_written_before_these_fields_loads() -> None:
    old = {
        "schemaVersion": 1,
        "nextVersion": 4,
        "failures": 2,
        "retryNotBefore": "2026-11-27T12:01:00Z",
        "analysis": {"version": "v3", "since": "2026-11-27T11:00:00Z", "measurements": 2},
    }
    book = Ledger.model_validate(old)
    assert book.failed_inputs is None
    assert book.previous_analysis is None
    assert book.measurement_totals == {}
    assert book.last_arrival is None
    again = Ledger.model_validate(book.model_dump(by_alias=True, mode="json"))
    assert again == book
