"""Fetching and judging a run's batches: download, parse, validate, in that order.

The reference for the distribution checks is the part of the window earlier
runs already accepted (`data.batches` minus `data.newBatches`). Those batches
are judged first, on the checks that need no reference (a policy tightened
since they were accepted can still refuse them); the ones that pass become
the reference the new batches are compared with. After an accepted change
the operator names where the new regime starts (`data.referenceFrom`), and
only the batches from there on are the reference: normal moves with the
change. A run with no such batch (a policy's first run) learns what is normal
from its new batches themselves: the null, duplicate and conflicting-label
checks compare each batch with all of them, the distribution checks are
skipped (there is nothing earlier to compare with).

A new batch refused only because its distribution changed (drift.action
Hold) is still labelled data the serving model can be scored on: it is kept
aside for monitoring (`LoadedBatches.changed`), never for training.

With late labels (`data.labels`, see late_labels.py) a feature batch first
passes its id and event-time checks; its label files are read and checked
(a refused one is quarantined on its own, and the batch trains without its
labels); then the batch is validated with the labels of its matured rows.
Maturity depends on the watermark, the newest event time of the batches that
pass validation: when a refused batch held it, the others are judged again
at the watermark they set themselves, until it no longer moves.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import IO, Protocol

import pandas as pd
from freshet_contract.result import (
    BatchValidation,
    Check,
    DriftedBatch,
    LabelReport,
    QuarantinedBatch,
    ValidationReference,
    ValidationReport,
)
from freshet_contract.run import BatchRef, LabelFile, PreparedRef, RunLabels, RunSpec
from freshet_contract.vocabulary import DataFormat, DriftAction

from freshet_trainer import late_labels
from freshet_trainer.holdout import RowHashes, row_hashes
from freshet_trainer.late_labels import EventRows, Joined, LabelTable, Maturity
from freshet_trainer.reading import UnreadableBatch, read_batch_file
from freshet_trainer.reasons import BatchReason
from freshet_trainer.store import ETagMismatch, ObjectNotFound, ObjectTooLarge
from freshet_trainer.validation import (
    Accepted,
    Reference,
    Refused,
    build_reference,
    not_evaluated,
    validate,
)
from freshet_trainer.validation.report import Rule, summary

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
    maturity: Maturity | None = None
    """Late labels: which of `rows` matured, and when; None means every row did."""


@dataclass(frozen=True)
class LoadedBatches:
    accepted: list[Batch]
    quarantined: list[QuarantinedBatch]
    report: ValidationReport
    drift: list[DriftedBatch] = field(default_factory=list)
    """New batches whose distribution changed, accepted or held."""
    changed: list[Batch] = field(default_factory=list)
    """New batches held only for their change of distribution: scored, not trained on."""
    labels: LabelReport | None = None
    """Late labels only: watermark, cutoff and row counts (the result's `labels`)."""
    label_files: list[LabelFile] = field(default_factory=list)
    """Late labels only: the label files the accepted batches were labeled from."""


@dataclass(frozen=True)
class _Input:
    """What validation judges for one batch, and the checks it already passed."""

    frame: pd.DataFrame
    before: list[Check]


@dataclass(frozen=True)
class _Judged:
    ref: BatchRef
    new: bool
    checks: list[Check]
    frame: pd.DataFrame | None = None
    accepted: pd.DataFrame | None = None
    reason: str = ""
    message: str = ""
    changes: list[Check] = field(default_factory=list)
    """Failed change checks (feature drift, label-rate shift)."""
    only_changed: bool = False
    """Refused for its change of distribution alone."""


def load_batches(source: BatchSource, spec: RunSpec, *, classification: bool) -> LoadedBatches:
    """Read and judge every batch of the spec; refused ones come back as quarantined."""
    read = {
        ref.key: _without(spec.data.exclude, _read(source, ref, spec)) for ref in spec.data.batches
    }
    if spec.data.labels is not None:
        return _load_late(source, spec, spec.data.labels, read, classification)
    inputs: dict[str, _Input | Check] = {}
    for ref in spec.data.batches:
        raw = read[ref.key]
        inputs[ref.key] = raw if isinstance(raw, Check) else _Input(raw, _loaded(ref, raw, spec))
    judged, reference = _judge_window(spec, inputs, classification)
    label = spec.data.label

    def batch(outcome: _Judged, rows: pd.DataFrame) -> Batch:
        return Batch(outcome.ref, rows, row_hashes(rows, label))

    return _collect(
        [judged[ref.key] for ref in spec.data.batches], reference, batch, spec, monitor_held=True
    )


def _judge_window(
    spec: RunSpec,
    inputs: Mapping[str, _Input | Check],
    classification: bool,
    *,
    pending: bool = False,
) -> tuple[dict[str, _Judged], Reference | None]:
    """Judge the batches of `inputs`: the reference window first, then the new ones."""
    new_keys = set(spec.data.new_batches)
    refs = [ref for ref in spec.data.batches if ref.key in inputs]
    label = spec.data.label

    def judge_all(batches: list[BatchRef], reference: Reference | None) -> dict[str, _Judged]:
        return {
            ref.key: _judge(
                ref,
                inputs[ref.key],
                spec,
                classification,
                reference,
                new=ref.key in new_keys,
                pending=pending,
            )
            for ref in batches
        }

    def sound(judged: dict[str, _Judged]) -> list[tuple[str, pd.DataFrame]]:
        return [
            (key, outcome.frame)
            for key, outcome in judged.items()
            if outcome.accepted is not None and outcome.frame is not None
        ]

    old = [ref for ref in refs if ref.key not in new_keys]
    new = [ref for ref in refs if ref.key in new_keys]
    judged = judge_all(old, None)
    regime = _regime(old, spec.data.reference_from)
    reference = build_reference(
        [(key, frame) for key, frame in sound(judged) if key in regime], label, classification
    )
    if reference is None:  # nothing earlier: the new batches say what is normal
        first = sound(judge_all(new, None))
        reference = build_reference(first, label, classification, learned_from_new=True)
    judged.update(judge_all(new, reference))
    return judged, reference


def _regime(old: list[BatchRef], start: str | None) -> set[str]:
    """The earlier batches of the current regime: from `start` on, or all of them."""
    keys = [ref.key for ref in old]
    if start is None or start not in keys:
        return set(keys)
    return set(keys[keys.index(start) :])


def _without(columns: list[str], raw: pd.DataFrame | Check) -> pd.DataFrame | Check:
    """The batch without its non-feature columns (`data.exclude`)."""
    if isinstance(raw, Check) or not columns:
        return raw
    return raw.drop(columns=[name for name in columns if name in raw.columns])


def _load_late(
    source: BatchSource,
    spec: RunSpec,
    labels: RunLabels,
    read: Mapping[str, pd.DataFrame | Check],
    classification: bool,
) -> LoadedBatches:
    """`load_batches` for late labels (see the module docstring)."""
    label = spec.data.label
    settled: dict[str, _Judged] = {}  # batches whose verdict no watermark can change
    events: dict[str, tuple[EventRows, list[Check]]] = {}
    for ref in spec.data.batches:
        outcome = _bookkeeping(ref, read[ref.key], spec, labels, classification)
        if isinstance(outcome, _Judged):
            settled[ref.key] = outcome
        else:
            events[ref.key] = outcome

    tables, used, refused_files = _read_label_files(source, spec, labels, set(events))
    negative = None
    if labels.negative_value is not None:
        observed = [table.labels for table in tables.values() if len(table)]
        negative = late_labels.negative_label(
            labels.negative_value, pd.concat(observed) if observed else pd.Series([], dtype=object)
        )
    floor = labels.watermark_floor
    candidates = list(events)
    while True:
        mark = late_labels.watermark(floor, (events[key][0].times for key in candidates))
        cut = late_labels.cutoff(mark, labels.delay_seconds)
        joined: dict[str, Joined] = {
            key: late_labels.join(
                events[key][0],
                tables[key],
                label=label,
                cut=cut,
                negative=negative,
                fake_negative=labels.delayed_feedback == "FakeNegative",
            )
            for key in candidates
        }
        inputs = {key: _Input(joined[key].validation_frame, events[key][1]) for key in candidates}
        judged, reference = _judge_window(spec, inputs, classification, pending=True)
        accepted = [key for key in candidates if judged[key].accepted is not None]
        if late_labels.watermark(floor, (events[key][0].times for key in accepted)) == mark:
            break
        log.info("a refused batch held the watermark: judging the others again")
        settled.update({key: judged[key] for key in candidates if key not in accepted})
        candidates = accepted
    settled.update(judged)

    def batch(outcome: _Judged, _: pd.DataFrame) -> Batch:
        late = joined[outcome.ref.key]
        return Batch(outcome.ref, late.rows, row_hashes(late.rows, label), late.maturity)

    collected = _collect(
        [settled[ref.key] for ref in spec.data.batches],
        reference,
        batch,
        spec,
        monitor_held=False,
    )
    trained = set(accepted)
    return replace(
        collected,
        quarantined=[*collected.quarantined, *refused_files],
        labels=late_labels.summary(mark, cut, [(key, joined[key]) for key in accepted]),
        label_files=[ref for ref in used if ref.batch in trained],
    )


def _bookkeeping(
    ref: BatchRef,
    raw: pd.DataFrame | Check,
    spec: RunSpec,
    labels: RunLabels,
    classification: bool,
) -> _Judged | tuple[EventRows, list[Check]]:
    """A feature batch's id and event-time checks: its rows and the checks so far, or
    its verdict when it cannot be judged by maturity (unreadable, empty, bad bookkeeping)."""
    new = ref.key in spec.data.new_batches
    if isinstance(raw, Check):
        return _judge(ref, raw, spec, classification, None, new=new, pending=True)
    loaded = _loaded(ref, raw, spec)
    if len(raw) == 0:  # validation refuses it as an empty batch
        why = [rule.skipped("not evaluated: no rows") for rule in late_labels.FEATURE_RULES]
        return _judge(ref, _Input(raw, [*loaded, *why]), spec, classification, None, new=new)
    checks, rows = late_labels.event_rows(
        raw,
        id_column=labels.id_column,
        event_time_column=labels.event_time_column,
        label=spec.data.label,
    )
    if rows is None:
        return _refused(ref, new, [*loaded, *checks], raw)
    return rows, [*loaded, *checks]


def _read_label_files(
    source: BatchSource, spec: RunSpec, labels: RunLabels, batches: set[str]
) -> tuple[dict[str, LabelTable], list[LabelFile], list[QuarantinedBatch]]:
    """Each batch's labels (its files merged in key order), the files used, the files refused.

    Only the files of `batches` (those whose ids and event times are sound) are read.
    """
    files: dict[str, list[LabelFile]] = {key: [] for key in batches}
    for ref in labels.files:
        if ref.batch in files:
            files[ref.batch].append(ref)
    tables: dict[str, LabelTable] = {}
    used: list[LabelFile] = []
    refused: dict[str, QuarantinedBatch] = {}
    for key in sorted(batches):
        read: list[LabelTable] = []
        for ref in sorted(files[key], key=lambda r: r.key):
            pinned = BatchRef(key=ref.key, etag=ref.etag, size=ref.size)
            raw = _read(source, pinned, spec)
            if isinstance(raw, Check):
                why = f"not evaluated: {raw.name} failed"
                checks = [raw, *(rule.skipped(why) for rule in late_labels.LABEL_FILE_RULES)]
                refused[ref.key] = _quarantined(
                    pinned, _refused(pinned, True, checks, None, batch=False)
                )
                continue
            checks, table = late_labels.label_table(
                raw,
                id_column=labels.id_column,
                label=spec.data.label,
                label_values=spec.validation.label_values,
            )
            if table is None:
                checks = [*_loaded(pinned, raw, spec), *checks]
                refused[ref.key] = _quarantined(
                    pinned, _refused(pinned, True, checks, raw, batch=False)
                )
                continue
            read.append(table)
            used.append(ref)
        tables[key] = late_labels.merge_tables(read)
    return tables, used, list(refused.values())


def _refused(
    ref: BatchRef,
    new: bool,
    checks: list[Check],
    frame: pd.DataFrame | None,
    *,
    batch: bool = True,
) -> _Judged:
    """A batch refused by checks before validation proper (whose rules are then skipped),
    or a label file (`batch` False), which has no other checks."""
    failed = [check for check in checks if not check.passed]
    if batch:
        checks = not_evaluated(checks, f"not evaluated: {failed[0].name} failed")
    else:  # batches are logged when collected
        log.warning(
            "label file refused",
            extra={"labelFile": ref.key, "reason": failed[0].code, "detail": summary(failed)},
        )
    return _Judged(ref, new, checks, frame=frame, reason=failed[0].code, message=summary(failed))


def _read(source: BatchSource, ref: BatchRef, spec: RunSpec) -> pd.DataFrame | Check:
    """The batch as a frame, or the check that says why it cannot be one.

    With a preprocessing step the rows are the step's output for the batch
    (`ref.prepared`), and a batch the preprocessing run refused is not read at
    all: its failed check stands. The object is streamed to an anonymous
    temporary file under $TMPDIR (the only writable place of the trainer's
    container) and parsed from there.
    """
    if ref.refused is not None:
        failed = [c for c in ref.refused.checks if not c.passed and not c.skipped]
        if failed:
            return failed[0]
        return READABLE.outcome(False, message=ref.refused.message or ref.refused.reason)
    source_ref = ref.prepared or ref
    with tempfile.TemporaryFile() as handle:
        return read_for_run(source, source_ref, handle, spec)


def read_into(
    source: BatchSource,
    ref: BatchRef | PreparedRef,
    handle: IO[bytes],
    *,
    data_format: DataFormat,
    max_bytes: int,
    max_columns: int,
) -> pd.DataFrame | Check:
    """Download the object (pinned to its ETag) into `handle` and parse it; the frame,
    or the file-level check it failed (exists, etag, size, readable, column count and
    names). Training, the preprocessing run and batch scoring all read files with it."""
    if ref.size > max_bytes:
        return SIZE.outcome(
            False, value=ref.size, limit=max_bytes, message="size listed by the store"
        )
    try:
        got = source.download(ref.key, handle, ref.etag, max_bytes)
    except ObjectNotFound:
        return EXISTS.outcome(False, message="the object is gone")
    except ETagMismatch as error:
        return PINNED.outcome(False, message=f"expected {error.expected}, found {error.actual}")
    except ObjectTooLarge as error:
        return SIZE.outcome(False, value=error.size, limit=max_bytes)
    try:
        frame = read_batch_file(handle, data_format, max_columns)
    except UnreadableBatch as error:
        rule = _READ_FAILURES.get(error.reason, READABLE)
        return rule.outcome(False, value=error.value, limit=error.limit, message=str(error))
    log.info("read batch", extra={"batch": ref.key, "bytes": got, "rows": len(frame)})
    return frame


def read_for_run(
    source: BatchSource, ref: BatchRef | PreparedRef, handle: IO[bytes], spec: RunSpec
) -> pd.DataFrame | Check:
    """`read_into` with a run spec's format and limits."""
    return read_into(
        source,
        ref,
        handle,
        data_format=spec.data.format,
        max_bytes=spec.validation.max_batch_bytes,
        max_columns=spec.validation.max_columns,
    )


def _loaded(ref: BatchRef, frame: pd.DataFrame, spec: RunSpec) -> list[Check]:
    """The checks a file passed by being downloaded and parsed."""
    return [
        SIZE.outcome(True, value=ref.size, limit=spec.validation.max_batch_bytes),
        READABLE.outcome(True, message=spec.data.format),
        COLUMN_COUNT.outcome(True, value=len(frame.columns), limit=spec.validation.max_columns),
    ]


def _judge(
    ref: BatchRef,
    item: _Input | Check,
    spec: RunSpec,
    classification: bool,
    reference: Reference | None,
    *,
    new: bool,
    pending: bool = False,
) -> _Judged:
    if isinstance(item, Check):
        skipped = late_labels.FEATURE_RULES if pending else ()
        checks = [item, *(rule.skipped(f"not evaluated: {item.name} failed") for rule in skipped)]
        checks = not_evaluated(checks, f"not evaluated: {item.name} failed")
        return _Judged(ref, new, checks, reason=item.code, message=item.message)
    verdict = validate(
        item.frame,
        label=spec.data.label,
        classification=classification,
        settings=spec.validation,
        reference=reference,
        labels_pending=pending,
        released=ref.key in spec.data.released,
    )
    checks, frame = [*item.before, *verdict.checks], item.frame
    if isinstance(verdict, Accepted):
        return _Judged(
            ref, new, checks, frame=frame, accepted=verdict.rows, changes=verdict.changes
        )
    assert isinstance(verdict, Refused)
    return _Judged(
        ref,
        new,
        checks,
        frame=frame,
        reason=verdict.reason,
        message=verdict.message,
        changes=verdict.changes,
        only_changed=verdict.only_changed,
    )


def _quarantined(ref: BatchRef, outcome: _Judged) -> QuarantinedBatch:
    return QuarantinedBatch(
        key=ref.key,
        etag=ref.etag,
        reason=outcome.reason,
        message=outcome.message,
        checks=outcome.checks,
    )


def _collect(
    judged: list[_Judged],
    reference: Reference | None,
    batch: Callable[[_Judged, pd.DataFrame], Batch],
    spec: RunSpec,
    *,
    monitor_held: bool,
) -> LoadedBatches:
    """Sort the verdicts into what trains, what is quarantined, and the report.

    `monitor_held`: keep the labelled rows of batches held for their change of
    distribution, for monitoring (not with late labels, whose rows need maturing).
    """
    accepted: list[Batch] = []
    quarantined: list[QuarantinedBatch] = []
    report: list[BatchValidation] = []
    drift: list[DriftedBatch] = []
    changed: list[Batch] = []
    label = spec.data.label
    for outcome in judged:
        if outcome.new and outcome.changes:
            drift.append(_drifted(outcome, spec))
        if outcome.only_changed and outcome.new and monitor_held and outcome.frame is not None:
            frame = outcome.frame
            changed.append(batch(outcome, frame[frame[label].notna()].reset_index(drop=True)))
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
            accepted.append(batch(outcome, outcome.accepted))
            continue
        log.warning(
            "batch refused",
            extra={"batch": ref.key, "reason": outcome.reason, "detail": outcome.message},
        )
        quarantined.append(_quarantined(ref, outcome))
    described = ValidationReference(
        batches=list(reference.batches) if reference else [],
        rows=reference.rows if reference else 0,
    )
    return LoadedBatches(
        accepted,
        quarantined,
        ValidationReport(reference=described, batches=report),
        drift=drift,
        changed=changed,
    )


def _drifted(outcome: _Judged, spec: RunSpec) -> DriftedBatch:
    """What changed in a new batch, and what it got: held, or accepted by the policy's
    action (a released batch's change is accepted as Retrain would)."""
    action = spec.validation.drift.action
    if outcome.accepted is not None and action == DriftAction.HOLD:
        action = DriftAction.RETRAIN
    if outcome.accepted is None and not outcome.only_changed:
        action = DriftAction.HOLD  # refused for a fault as well; the change is only recorded
    columns = [
        figure.column for check in outcome.changes for figure in check.columns if not figure.passed
    ] or [check.column for check in outcome.changes if check.column]
    return DriftedBatch(
        key=outcome.ref.key,
        etag=outcome.ref.etag,
        action=action,
        checks=[check.name for check in outcome.changes],
        columns=list(dict.fromkeys(columns)),
        message=summary(outcome.changes),
    )
