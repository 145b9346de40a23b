"""Identity and inputs of a training run: run id, model version, window.

Run ids are deterministic so that a reconcile repeated after a crash finds the
Job it already created instead of creating a second one: the same policy, input
batches, version and attempt always give the same id, and the id is the Job's
name.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from enum import StrEnum

from freshet.batches import Batch

NAME_PART_MAX = 40
"""Characters of the policy name kept in a run id: 40 + '-' + 10 hex = 51, under
the 63 that a Job name needs (it becomes the job-name label of its pods)."""
HASH_HEX = 10

_NOT_DNS = re.compile(r"[^a-z0-9-]+")


def run_id(
    policy_name: str,
    policy_uid: str,
    batches: Iterable[Batch],
    version: str,
    attempt: int = 0,
) -> str:
    """``<policy-name ≤40>-<10 hex>``, a valid DNS-1123 label and Job name.

    The hash is sha256 over ``uid``, then each ``key:etag`` of the batches in
    sorted order, then the output version, then, only when ``attempt`` > 0,
    the attempt in decimal, joined by newlines. The uid keeps policies
    recreated under the same name apart; sorting makes the id independent of
    listing order; the ETag makes an overwritten key new input. The version is
    what keeps a run apart from an earlier one over the same batch set (a
    retrain, a spec change, a schedule, a backfill, a batch released from
    quarantine after a run refused it), which would otherwise find that run's
    finished Job and result. A failed run gives its version back, so a retry
    over the same batches would find the failed Job: the attempt (the failed
    runs in a row before it) keeps it apart. Leaving the attempt out at 0
    keeps the id of every run that is not a retry what it always was. Version
    and attempt are taken in the same ledger write as the intent, so a step
    repeated after a crash before that write computes the same id, and one
    after it reads the id back.
    """
    lines = [policy_uid, *sorted(f"{batch.key}:{batch.etag}" for batch in batches), version]
    if attempt > 0:
        lines.append(str(attempt))
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:HASH_HEX]
    return f"{_dns_label_part(policy_name)}-{digest}"


def _dns_label_part(name: str) -> str:
    """The name lowercased, dots and other non-label characters as '-', at most 40.

    Policy names may be DNS subdomains (with dots); a run id must be a label.
    Trimming '-' after truncation keeps the id from having '--' before the hash
    or starting with '-'.
    """
    cleaned = _NOT_DNS.sub("-", name.lower())[:NAME_PART_MAX].strip("-")
    return cleaned or "run"


def select_window(
    consumed: Sequence[Batch], new: Sequence[Batch], max_batches: int | None
) -> tuple[Batch, ...]:
    """The batches a run trains on, oldest first.

    All of consumed + new when ``max_batches`` is None, else the most recent
    ``max_batches`` of them, so a retrain's cost stays flat as history grows.
    A key present in both (overwritten with new content) appears once, as its
    new version: the store only holds the new content anyway. Order is by
    Last-Modified, then key, so the window is the same on every reconcile.
    """
    by_key = {batch.key: batch for batch in consumed}
    by_key.update((batch.key, batch) for batch in new)
    ordered = sorted(by_key.values(), key=lambda batch: (batch.last_modified, batch.key))
    if max_batches is not None:
        ordered = ordered[-max_batches:]
    return tuple(ordered)


class RunPhase(StrEnum):
    """status.lastRun.phase: where a run is, and how it ended."""

    PENDING = "Pending"
    """Intent recorded; the Job does not exist or has no running pod yet."""
    RUNNING = "Running"
    PROMOTED = "Promoted"
    """Trained and passed the gate."""
    REJECTED = "Rejected"
    """Trained and failed the gate; the serving model stays."""
    FAILED = "Failed"
    """No model produced: the Job failed or the trainer reported a failure."""
    SKIPPED = "Skipped"
    """No model produced, nothing failed: every new batch was refused."""

    @property
    def finished(self) -> bool:
        return self in {RunPhase.PROMOTED, RunPhase.REJECTED, RunPhase.FAILED, RunPhase.SKIPPED}
