"""After a failed run: decisions.retry, the backoff and which runs it holds back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from freshet.batches import Batch
from freshet.decisions.retry import RetryFacts, backoff, fingerprint, hold

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def batch(key: str, etag: str | None = None) -> Batch:
    return Batch(key, etag or f"etag-{key}", 10, NOW - timedelta(hours=1))


A, B = batch("in/a.csv"), batch("in/b.csv")
FAILED = fingerprint([A], [], "h1")


@pytest.mark.parametrize(
    ("failures", "wait"),
    [
        (0, timedelta(0)),
        (1, timedelta(seconds=30)),
        (2, timedelta(seconds=60)),
        (3, timedelta(seconds=120)),
        (7, timedelta(seconds=1920)),
        (8, timedelta(hours=1)),  # 3840 s, capped
        (10_000, timedelta(hours=1)),
    ],
)
def test_backoff_doubles_from_30s_up_to_an_hour(failures: int, wait: timedelta) -> None:
    assert backoff(failures) == wait


@pytest.mark.parametrize(
    ("left", "right", "same"),
    [
        pytest.param(([A, B], [], "h1"), ([B, A], [], "h1"), True, id="listing order"),
        pytest.param(([A], [], "h1"), ([batch("in/a.csv", '"etag-in/a.csv"')], [], "h1"), True,
                     id="quoted etag is the same content"),
        pytest.param(([A], [], "h1"), ([A, B], [], "h1"), False, id="a new batch"),
        pytest.param(([A], [], "h1"), ([batch("in/a.csv", "new")], [], "h1"), False,
                     id="an overwritten batch"),
        pytest.param(([A, B], [], "h1"), ([A], [], "h1"), False, id="a batch quarantined"),
        pytest.param(([A], [], "h1"), ([A], [], "h2"), False, id="the training spec changed"),
        pytest.param(([A], [("l/a/1.csv", "e1")], "h1"), ([A], [("l/a/1.csv", "e2")], "h1"),
                     False, id="late labels changed"),
        pytest.param(([A], [("l/a/1.csv", "e1"), ("l/a/2.csv", "e2")], "h1"),
                     ([A], [("l/a/2.csv", '"e2"'), ("l/a/1.csv", "e1")], "h1"), True,
                     id="label files in any order"),
        pytest.param(([A], [("in/b.csv", "etag-in/b.csv")], "h1"), ([A, B], [], "h1"), False,
                     id="a label file is not a batch"),
    ],
)  # fmt: skip
def test_fingerprint_changes_with_the_inputs(
    left: tuple[list[Batch], list[tuple[str, str]], str],
    right: tuple[list[Batch], list[tuple[str, str]], str],
    same: bool,
) -> None:
    assert (fingerprint(*left) == fingerprint(*right)) is same


def facts(**changes: object) -> RetryFacts:
    base: dict[str, object] = {
        "now": NOW,
        "failures": 1,
        "retry_not_before": NOW + timedelta(seconds=20),
        "failed_inputs": FAILED,
        "inputs": FAILED,
    }
    return RetryFacts(**(base | changes))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("state", "wait"),
    [
        pytest.param(facts(failures=0, retry_not_before=None, failed_inputs=None), None,
                     id="no failure"),
        pytest.param(facts(), timedelta(seconds=20), id="same inputs wait out the backoff"),
        pytest.param(facts(retry_not_before=NOW), None, id="backoff over"),
        pytest.param(facts(retry_not_before=NOW - timedelta(seconds=1)), None,
                     id="backoff long over"),
        pytest.param(facts(inputs=fingerprint([A, B], [], "h1")), None,
                     id="a new batch starts at once"),
        pytest.param(facts(inputs=fingerprint([batch("in/a.csv", "v2")], [], "h1")), None,
                     id="an overwritten batch starts at once"),
        pytest.param(facts(inputs=fingerprint([A], [], "h2")), None,
                     id="a spec change starts at once"),
        pytest.param(facts(failed_inputs=None), timedelta(seconds=20),
                     id="a ledger from before failedInputs keeps the backoff"),
        pytest.param(facts(failures=5, retry_not_before=NOW + timedelta(minutes=8)),
                     timedelta(minutes=8), id="a long streak waits its longer backoff"),
    ],
)  # fmt: skip
def test_hold(state: RetryFacts, wait: timedelta | None) -> None:
    assert hold(state) == wait
