"""Is the serving model too old? And is a retrain on that account due?

Drift is not the only reason to retrain: a model nobody has replaced for
longer than the policy allows is suspect even when every check passes (labels
may have stopped arriving, a producer may be stuck). Staleness is reported as
a condition in both modes; a Dynamic policy also retrains on its current
window, at most once per `maxModelAgeSeconds`, so a candidate the gate keeps
rejecting does not turn into a retrain loop.
"""

from __future__ import annotations

from datetime import datetime, timedelta


def age(promoted: datetime | None, now: datetime) -> timedelta | None:
    return None if promoted is None else now - promoted


def is_stale(promoted: datetime | None, now: datetime, max_age: timedelta | None) -> bool:
    model_age = age(promoted, now)
    return max_age is not None and model_age is not None and model_age > max_age


def retrain_due(
    promoted: datetime | None,
    now: datetime,
    max_age: timedelta | None,
    last_stale_retrain: datetime | None,
) -> bool:
    """Stale, and no staleness retrain started within the last `max_age`."""
    if not is_stale(promoted, now, max_age):
        return False
    assert max_age is not None
    return last_stale_retrain is None or now - last_stale_retrain >= max_age


_PAST = timedelta(seconds=1)


def next_change(
    promoted: datetime | None,
    now: datetime,
    max_age: timedelta | None,
    last_stale_retrain: datetime | None,
) -> timedelta | None:
    """How long until `is_stale` or `retrain_due` could change by the clock alone;
    None when they cannot. The loop sleeps at most this long, so a model turns
    stale on time even when nothing else wakes its policy."""
    if max_age is None or promoted is None:
        return None
    turns_stale = promoted + max_age - now
    if turns_stale >= timedelta(0):
        return turns_stale + _PAST  # exactly at the limit the model is still fresh
    if last_stale_retrain is not None and (due := last_stale_retrain + max_age - now) > timedelta(
        0
    ):
        return due
    return None
