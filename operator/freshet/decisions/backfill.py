"""Late labels: which batches' labels changed since they were trained, and when to retrain.

Labels that arrive after the features live in their own files, one folder per
batch: the labels of ``<data.prefix><name>.<ext>`` are the files under
``<labels.prefix><name>/``. That convention lets the operator see from a
bucket listing alone which batches' labels changed, without reading data
(the trainer does the join).

Every run records, per batch of its window, the fingerprint of the label files
it trained that batch with (in the ledger). A backfill is due when a batch of
the next run's window has other label files now than the ones recorded. The
plan is a pure function of the listing and the ledger, so it is idempotent
(the run that trains a change records it, and the change is never planned
again), and it catches up after downtime by construction: whatever changed
while the operator was down differs from the ledger when it starts.

Maturity (``labels.delaySeconds``) is not planned here: it moves with the event
time of new data, which only a run for that data brings, and that run trains
every batch of its window at the new cutoff anyway. For the same reason a
batch whose rows were all still immature at the last run is not backfilled
when its labels change (unless immature rows are trained as fake negatives):
its labels cannot reach a model before a run that matures it, and that run
reads the label files as they are then.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from freshet.batches import Batch
from freshet.spec import BackfillSpec

CONCURRENCY_RETRY = timedelta(seconds=5)


@dataclass(frozen=True, slots=True)
class LabelFile:
    """A label file as listed, assigned to the batch whose rows it labels."""

    batch: str
    key: str
    etag: str
    size: int
    last_modified: datetime


def partition(data_prefix: str, batch_key: str) -> str:
    """The batch's name: its key under the data prefix without the file extension."""
    name = batch_key.removeprefix(data_prefix)
    folder, _, file = name.rpartition("/")
    stem = file.rsplit(".", 1)[0] if "." in file.lstrip(".") else file
    return f"{folder}/{stem}" if folder else stem


def assign(
    data_prefix: str,
    labels_prefix: str,
    batch_keys: Iterable[str],
    listed: Iterable[Batch],
    quarantined: Mapping[str, str],
) -> dict[str, tuple[LabelFile, ...]]:
    """Each batch's label files, sorted by key; quarantined content is left out.

    A file directly under the labels prefix, or in a folder no batch is named
    after, labels nothing and is ignored (its batch may not have arrived yet).
    """
    by_partition = {partition(data_prefix, key): key for key in batch_keys}
    files: dict[str, list[LabelFile]] = {key: [] for key in by_partition.values()}
    for obj in listed:
        folder, _, _ = obj.key.removeprefix(labels_prefix).rpartition("/")
        batch = by_partition.get(folder)
        if batch is None or quarantined.get(obj.key) == obj.etag:
            continue
        files[batch].append(LabelFile(batch, obj.key, obj.etag, obj.size, obj.last_modified))
    return {key: tuple(sorted(found, key=lambda f: f.key)) for key, found in files.items()}


def fingerprint(files: Iterable[tuple[str, str]]) -> str:
    """A short digest of a batch's label files as ``(key, etag)`` pairs; "" for none."""
    lines = sorted(f"{key}:{etag}" for key, etag in files)
    if not lines:
        return ""
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def fingerprint_of(files: Iterable[LabelFile]) -> str:
    return fingerprint((f.key, f.etag) for f in files)


class WaitReason(StrEnum):
    SETTLING = "LabelsSettling"
    TOO_SOON = "BackfillInterval"
    CONCURRENCY = "BackfillConcurrencyLimit"


@dataclass(frozen=True, slots=True)
class Backfill:
    """Retrain over the window now; ``changed`` are the batches whose labels changed."""

    changed: tuple[str, ...]
    message: str


@dataclass(frozen=True, slots=True)
class Wait:
    reason: WaitReason
    message: str
    changed: tuple[str, ...]
    retry_after: timedelta


@dataclass(frozen=True, slots=True, kw_only=True)
class BackfillFacts:
    now: datetime
    window: Sequence[Batch]
    """The consumed batches the next run would train on."""
    files: Mapping[str, Sequence[LabelFile]]
    """Each window batch's label files now (see `assign`)."""
    trained: Mapping[str, str | None]
    """The label fingerprint each batch was last trained with; None or "" for none."""
    first_event: Mapping[str, datetime | None]
    """Each batch's earliest event time, as its last run reported it."""
    cutoff: datetime | None
    """Rows with event times up to this had matured at the last run."""
    immature_rows_train: bool
    """delayedFeedback FakeNegative: an immature batch's labels reach the model too."""
    last_backfill: datetime | None
    in_flight: int
    """Backfill runs in flight operator-wide, not counting this policy's."""
    limit: int


def _has_matured(facts: BackfillFacts, key: str) -> bool:
    """Some of the batch's rows had matured at the last run (unknown counts as matured)."""
    first = facts.first_event.get(key)
    return first is None or (facts.cutoff is not None and first <= facts.cutoff)


def plan(settings: BackfillSpec, facts: BackfillFacts) -> Backfill | Wait | None:
    """None when no batch of the window has new label files; else start or wait.

    Rules, in order: a burst of label files settles for ``quietSeconds`` after
    the newest one; two backfills of a policy are ``minIntervalSeconds``
    apart, so changes meanwhile are trained on together; and at most
    ``limit`` backfills run operator-wide, so catching up after downtime
    cannot flood the cluster.
    """
    changed = tuple(
        b.key
        for b in facts.window
        if fingerprint_of(facts.files.get(b.key, ())) != (facts.trained.get(b.key) or "")
        and (facts.immature_rows_train or _has_matured(facts, b.key))
    )
    if not changed:
        return None
    what = f"labels of {len(changed)} batch(es) changed since they were trained"
    newest = max(
        (f.last_modified for key in changed for f in facts.files.get(key, ())), default=None
    )
    quiet = timedelta(seconds=settings.quiet_seconds)
    # As for batches: a store clock ahead of ours must not stretch the wait.
    settles = None if newest is None else min(newest, facts.now) + quiet
    if settles is not None and facts.now < settles:
        return Wait(
            WaitReason.SETTLING,
            f"{what}; waiting {settings.quiet_seconds}s after the newest label file",
            changed,
            settles - facts.now,
        )
    interval = timedelta(seconds=settings.min_interval_seconds)
    if facts.last_backfill is not None and facts.now < facts.last_backfill + interval:
        return Wait(
            WaitReason.TOO_SOON,
            f"{what}; the last backfill was less than {settings.min_interval_seconds}s ago",
            changed,
            facts.last_backfill + interval - facts.now,
        )
    if facts.in_flight >= facts.limit:
        return Wait(
            WaitReason.CONCURRENCY,
            f"{what}; {facts.in_flight} backfill run(s) in flight operator-wide",
            changed,
            CONCURRENCY_RETRY,
        )
    shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
    return Backfill(changed, f"{what}: {shown}")
