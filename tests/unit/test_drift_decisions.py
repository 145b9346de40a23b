"""decisions/drift.py: the Events a run's changes of distribution give, and where the
reference starts afterwards."""

from __future__ import annotations

import pytest
from freshet.decisions import drift
from freshet.spec import DriftAction
from freshet_contract.result import DriftedBatch


def drifted(key: str, action: DriftAction, columns: tuple[str, ...] = ("x1",)) -> DriftedBatch:
    return DriftedBatch(
        key=key, etag="e", action=action, checks=["featureDrift"], columns=list(columns)
    )


@pytest.mark.parametrize(
    ("action", "events", "warning"),
    [(DriftAction.RETRAIN, 1, False), (DriftAction.HOLD, 1, True), (DriftAction.IGNORE, 0, None)],
)
def test_an_event_per_drifted_batch_unless_ignored(
    action: DriftAction, events: int, warning: bool | None
) -> None:
    notices = drift.notices([drifted("in/b.csv", action)])
    assert len(notices) == events
    if notices:
        assert notices[0].warning is warning
        assert notices[0].message.startswith("in/b.csv: featureDrift in x1; ")


def test_the_message_names_at_most_eight_columns() -> None:
    many = tuple(f"c{i}" for i in range(11))
    message = drift.describe(drifted("in/b.csv", DriftAction.RETRAIN, many))
    assert "c7 (+3 more)" in message and "c8" not in message


WINDOW = ["in/0", "in/1", "in/2", "in/3"]

# (case id, current start, drifted batches, trained keys, expected start)
CASES = [
    ("nothing-drifted", None, [], WINDOW, None),
    ("retrain-moves-it", None, [drifted("in/3", DriftAction.RETRAIN)], WINDOW, "in/3"),
    (
        "the-oldest-of-two",
        "in/0",
        [drifted("in/3", DriftAction.RETRAIN), drifted("in/2", DriftAction.RETRAIN)],
        WINDOW,
        "in/2",
    ),
    ("hold-leaves-it", "in/1", [drifted("in/3", DriftAction.HOLD)], WINDOW, "in/1"),
    ("ignore-leaves-it", "in/1", [drifted("in/3", DriftAction.IGNORE)], WINDOW, "in/1"),
    ("refused-for-a-fault", None, [drifted("in/3", DriftAction.RETRAIN)], WINDOW[:3], None),
    ("slid-out-of-the-window", "in/old", [], WINDOW, None),
]


@pytest.mark.parametrize(
    ("current", "changes", "trained", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_where_the_reference_starts(
    current: str | None, changes: list[DriftedBatch], trained: list[str], expected: str | None
) -> None:
    assert drift.reference_from(current, changes, WINDOW, set(trained)) == expected
