"""Staleness: when a model is too old, and when that retrains it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from freshet.decisions import staleness
from freshet.decisions.staleness import is_stale, retrain_due

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.mark.parametrize(
    ("promoted", "max_age", "stale"),
    [
        (None, HOUR, False),  # nothing serves yet
        (NOW - 2 * HOUR, None, False),  # no limit configured
        (NOW - HOUR, HOUR, False),  # exactly at the limit is still fresh
        (NOW - HOUR - timedelta(seconds=1), HOUR, True),
    ],
)
def test_is_stale(promoted: datetime | None, max_age: timedelta | None, stale: bool) -> None:
    assert is_stale(promoted, NOW, max_age) is stale


@pytest.mark.parametrize(
    ("last_retrain", "due"),
    [
        (None, True),
        (NOW - 30 * timedelta(minutes=1), False),  # retrained on staleness half an hour ago
        (NOW - HOUR, True),
    ],
)
def test_a_stale_model_retrains_at_most_once_per_max_age(
    last_retrain: datetime | None, due: bool
) -> None:
    assert retrain_due(NOW - 3 * HOUR, NOW, HOUR, last_retrain) is due


def test_a_fresh_model_never_retrains_on_age() -> None:
    assert not retrain_due(NOW - timedelta(minutes=5), NOW, HOUR, None)


def test_the_loop_wakes_when_the_model_turns_stale_and_when_a_stale_retrain_falls_due() -> None:
    promoted = datetime(2026, 1, 1, tzinfo=UTC)
    day = timedelta(days=1)
    second = timedelta(seconds=1)  # a model exactly at the limit is still fresh
    assert staleness.next_change(promoted, promoted + timedelta(hours=6), day, None) == (
        timedelta(hours=18) + second
    )
    assert staleness.next_change(promoted, promoted + day, day, None) == second
    stale_now = promoted + 2 * day
    retrained = stale_now - timedelta(hours=1)
    assert staleness.next_change(promoted, stale_now, day, retrained) == timedelta(hours=23)
    assert staleness.next_change(promoted, stale_now, day, None) is None  # due already
    assert staleness.next_change(promoted, stale_now, None, None) is None
    assert staleness.next_change(None, stale_now, day, None) is None
