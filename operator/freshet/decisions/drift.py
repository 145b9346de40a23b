"""What the operator makes of a run's changes of distribution. Pure functions.

The trainer detects a change (feature drift, values beyond the reference's
range, a shifted label rate) and acts on it per `validation.drift.action`:
it trains on the batch (Retrain, Ignore) or holds it (Hold). The operator
reports and remembers, in this order of precedence:

1. every drifted new batch whose change matters to the user (Retrain, Hold)
   becomes one `DriftDetected` Event, a Warning when the batch was held;
   Ignore only records it (result, status, metric);
2. the newest change is what `status.data.drift` shows;
3. a change the run trained on under Retrain moves the reference: later runs
   compare new batches with the batches from the oldest such one on
   (`data.referenceFrom`), so what counts as normal moves with the change
   and the same shift is not reported again on every batch.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from freshet_contract.result import DriftedBatch

from freshet.spec import DriftAction

_WHAT = {
    DriftAction.RETRAIN: "trained on (drift.action Retrain); the reference now starts here",
    DriftAction.HOLD: "quarantined until released (drift.action Hold)",
    DriftAction.IGNORE: "trained on (drift.action Ignore)",
}


@dataclass(frozen=True, slots=True)
class Notice:
    """One Event: its type and message."""

    warning: bool
    message: str


def describe(drifted: DriftedBatch) -> str:
    """One line: which batch, which checks on which columns, what it got."""
    columns = ", ".join(drifted.columns[:8]) or "-"
    more = f" (+{len(drifted.columns) - 8} more)" if len(drifted.columns) > 8 else ""
    checks = ", ".join(drifted.checks)
    return f"{drifted.key}: {checks} in {columns}{more}; {_WHAT[drifted.action]}"


def notices(drifted: Sequence[DriftedBatch]) -> list[Notice]:
    """The Events for a finished run's drifted batches (none for Ignore)."""
    return [
        Notice(warning=d.action is DriftAction.HOLD, message=describe(d))
        for d in drifted
        if d.action is not DriftAction.IGNORE
    ]


def reference_from(
    current: str | None,
    drifted: Sequence[DriftedBatch],
    window: Sequence[str],
    trained: Collection[str],
) -> str | None:
    """Where the current regime starts after a run over `window` (keys, oldest first).

    The oldest batch that drifted and was trained on under Retrain; otherwise the
    start stays where it was, as long as that batch is still in the window.
    """
    moved = [d.key for d in drifted if d.action is DriftAction.RETRAIN and d.key in trained]
    if moved:
        return min(moved, key=lambda key: window.index(key) if key in window else len(window))
    return current if current in window else None
