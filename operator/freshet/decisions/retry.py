"""After a failed run: does the next one wait for the backoff? A pure function of plain data.

A failed run consumes nothing, so the trigger asks for the same run again at
once; the backoff (30 s doubling per failure in a row, at most 1 h) keeps a
run that fails for a lasting reason (a broken image, a refused estimator, a
store it cannot read) from being retried in a tight loop. It is meant for that
run only: new inputs (a batch arrived, a batch was overwritten or quarantined,
late labels changed, the training spec changed) are another run, which may
well succeed, so it starts at once instead of waiting out the old run's
backoff. What the inputs were is recorded as a fingerprint when the run fails
(`Ledger.failed_inputs`), compared here with the next run's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from freshet.batches import Batch

BASE_BACKOFF = timedelta(seconds=30)
MAX_BACKOFF = timedelta(hours=1)
_QUOTE = '"'


def backoff(failures: int) -> timedelta:
    """The wait after ``failures`` failed runs in a row: 30 s, 60 s, 120 s, ... at most 1 h."""
    if failures <= 0:
        return timedelta(0)
    # Capped before exponentiating so that a long failure streak cannot overflow.
    return min(BASE_BACKOFF * (1 << min(failures - 1, 16)), MAX_BACKOFF)


def fingerprint(
    batches: Iterable[Batch], label_files: Iterable[tuple[str, str]], training_hash: str
) -> str:
    """What a run trains on, as one hex digest: its window, its late-label files, its spec.

    ``batches`` and ``label_files`` as ``key:etag`` in sorted order (so the
    listing order does not matter and an overwritten key is new input), then
    the training spec hash. Label files are input too: changed late labels
    are new data.
    """
    parts = sorted(f"{b.key}:{b.etag}" for b in batches)
    labels = sorted(f"{key}:{etag.strip(_QUOTE)}" for key, etag in label_files)
    lines = ["batches", *parts, "labels", *labels, "spec", training_hash]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryFacts:
    """What the ledger says about the last failures, and what the next run would train on."""

    now: datetime
    failures: int
    """Failed runs in a row (``Ledger.failures``)."""
    retry_not_before: datetime | None
    failed_inputs: str | None
    """Fingerprint of the last failed run's inputs; None in ledgers written before it was kept."""
    inputs: str
    """Fingerprint of the run that would start now."""


def hold(facts: RetryFacts) -> timedelta | None:
    """How long the next run still waits for the backoff, or None to start it now.

    Rules, in order:

    1. No failure, or the backoff is over: start.
    2. The inputs changed since the failed run: start; the backoff was for
       that run, not for new data.
    3. The same inputs (or a ledger that does not say which inputs failed,
       where waiting is the old, safe behaviour): wait out the backoff.
    """
    until = facts.retry_not_before
    if facts.failures <= 0 or until is None or until <= facts.now:
        return None
    if facts.failed_inputs is not None and facts.failed_inputs != facts.inputs:
        return None
    return until - facts.now
