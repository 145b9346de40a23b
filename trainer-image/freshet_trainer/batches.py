"""Fetching and judging a run's batches: download, parse, validate, in that order.

The reference for the distribution checks is the part of the window earlier
runs already accepted (`data.batches` minus `data.newBatches`). Those batches
are judged first, on the checks that need no reference (a policy tightened
since they were accepted can still refuse them); the ones that pass become
the reference the new batches are compared with. A run with no such batch
(a policy's first run) records the reference-relative checks as skipped.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from typing import IO, Protocol

import pandas as pd

from freshet_trainer.contract import (
    BatchRef,
    BatchValidation,
    Check,
    QuarantinedBatch,
    RunSpec,
    ValidationReference,
    ValidationReport,
)
from freshet_trainer.holdout import RowHashes, row_hashes
from freshet_trainer.reading import UnreadableBatch, read_batch_file
from freshet_trainer.reasons import BatchReason
from freshet_trainer.store import ETagMismatch, ObjectNotFound, ObjectTooLarge
from freshet_trainer.validation import (
    Accepted,
    Reference,
    build_reference,
    not_evaluated,
    validate,
)
from freshet_trainer.validation.report import Rule

log = logging.getLogger("freshet.trainer")

EXISTS = Rule("exists", BatchReason.NOT_FOUND)
PINNED = Rule("etag", BatchReason.ETAG_MISMATCH)
SIZE = Rule("size", BatchReason.TOO_LARGE)
READABLE = Rule("readable", BatchReason.UNPARSABLE)
COLUMN_COUNT = Rule("columnCount", BatchReason.TOO_MANY_COLUMNS)
COLUMN_NAMES = Rule("columnNames", BatchReason.INVALID_COLUMN_NAMES)
_READ_FAILURES = {rule.code: rule for rule in (READABLE, COLUMN_COUNT, COLUMN_NAMES)}


class BatchSource(Protocol):
    """Where batch files come from: the object store, or a fake in tests."""

    def download(self, key: str, target: IO[bytes], expected_etag: str, max_bytes: int) -> int: ...


@dataclass(frozen=True)
class Batch:
    """A batch that passed validation: its labeled rows and their content hashes."""

    ref: BatchRef
    rows: pd.DataFrame
    hashes: RowHashes


@dataclass(frozen=True)
class LoadedBatches:
    accepted: list[Batch]
    quarantined: list[QuarantinedBatch]
    report: ValidationReport


@dataclass(frozen=True)
class _Judged:
    ref: BatchRef
    new: bool
    checks: list[Check]
    frame: pd.DataFrame | None = None
    accepted: pd.DataFrame | None = None
    reason: str = ""
    message: str = ""


def load_batches(source: BatchSource, spec: RunSpec, *, classification: bool) -> LoadedBatches:
    """Read and judge every batch of the spec; refused ones come back as quarantined."""
    new_keys = set(spec.data.new_batches)
    read = {ref.key: _read(source, ref, spec) for ref in spec.data.batches}
    judged: dict[str, _Judged] = {}
    for ref in spec.data.batches:
        if ref.key not in new_keys:
            judged[ref.key] = _judge(ref, read[ref.key], spec, classification, None, new=False)
    reference_batches = [
        (key, outcome.frame)
        for key, outcome in judged.items()
        if outcome.accepted is not None and outcome.frame is not None
    ]
    reference = build_reference(reference_batches, spec.data.label, classification)
    for ref in spec.data.batches:
        if ref.key in new_keys:
            judged[ref.key] = _judge(ref, read[ref.key], spec, classification, reference, new=True)
    return _collect([judged[ref.key] for ref in spec.data.batches], spec.data.label, reference)


def _read(source: BatchSource, ref: BatchRef, spec: RunSpec) -> pd.DataFrame | Check:
    """The batch as a frame, or the check that says why it cannot be one.

    The object is streamed to an anonymous temporary file under $TMPDIR (the
    only writable place of the trainer's container) and parsed from there.
    """
    limit = spec.validation.max_batch_bytes
    if ref.size > limit:
        return SIZE.outcome(False, value=ref.size, limit=limit, message="size listed by the store")
    with tempfile.TemporaryFile() as handle:
        try:
            size = source.download(ref.key, handle, ref.etag, limit)
        except ObjectNotFound:
            return EXISTS.outcome(False, message="the object is gone")
        except ETagMismatch as error:
            return PINNED.outcome(False, message=f"expected {error.expected}, found {error.actual}")
        except ObjectTooLarge as error:
            return SIZE.outcome(False, value=error.size, limit=limit)
        try:
            frame = read_batch_file(handle, spec.data.format, spec.validation.max_columns)
        except UnreadableBatch as error:
            rule = _READ_FAILURES.get(error.reason, READABLE)
            return rule.outcome(False, value=error.value, limit=error.limit, message=str(error))
    log.info("read batch", extra={"batch": ref.key, "bytes": size, "rows": len(frame)})
    return frame


def _judge(
    ref: BatchRef,
    read: pd.DataFrame | Check,
    spec: RunSpec,
    classification: bool,
    reference: Reference | None,
    *,
    new: bool,
) -> _Judged:
    if isinstance(read, Check):
        checks = not_evaluated([read], f"not evaluated: {read.name} failed")
        return _Judged(ref, new, checks, reason=read.code, message=read.message)
    loaded = [
        SIZE.outcome(True, value=ref.size, limit=spec.validation.max_batch_bytes),
        READABLE.outcome(True, message=spec.data.format),
        COLUMN_COUNT.outcome(True, value=len(read.columns), limit=spec.validation.max_columns),
    ]
    verdict = validate(
        read,
        label=spec.data.label,
        classification=classification,
        settings=spec.validation,
        reference=reference,
    )
    checks = [*loaded, *verdict.checks]
    if isinstance(verdict, Accepted):
        return _Judged(ref, new, checks, frame=read, accepted=verdict.rows)
    return _Judged(ref, new, checks, frame=read, reason=verdict.reason, message=verdict.message)


def _collect(judged: list[_Judged], label: str, reference: Reference | None) -> LoadedBatches:
    accepted: list[Batch] = []
    quarantined: list[QuarantinedBatch] = []
    report: list[BatchValidation] = []
    for outcome in judged:
        ref = outcome.ref
        report.append(
            BatchValidation(
                key=ref.key,
                etag=ref.etag,
                new=outcome.new,
                status="Accepted" if outcome.accepted is not None else "Quarantined",
                reason=outcome.reason,
                rows=len(outcome.frame) if outcome.frame is not None else None,
                checks=outcome.checks,
            )
        )
        if outcome.accepted is not None:
            accepted.append(Batch(ref, outcome.accepted, row_hashes(outcome.accepted, label)))
            continue
        log.warning(
            "batch refused",
            extra={"batch": ref.key, "reason": outcome.reason, "detail": outcome.message},
        )
        quarantined.append(
            QuarantinedBatch(
                key=ref.key,
                etag=ref.etag,
                reason=outcome.reason,
                message=outcome.message,
                checks=outcome.checks,
            )
        )
    described = ValidationReference(
        batches=list(reference.batches) if reference else [],
        rows=reference.rows if reference else 0,
    )
    return LoadedBatches(
        accepted, quarantined, ValidationReport(reference=described, batches=report)
    )
