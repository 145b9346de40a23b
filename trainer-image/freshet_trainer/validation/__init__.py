"""Per-batch validation: the checks that decide whether a batch may be trained on.

The anomaly taxonomy follows TensorFlow Data Validation (schema, values,
distribution skew/drift), with reference-relative defaults in the spirit of
Evidently's presets. Every rule yields a check for every batch. A few checks
make the rest meaningless when they fail (no rows, no label column, no
feature); the rest all run, so a refused batch's reason lists every problem
at once instead of one per release-and-retry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from freshet_trainer.contract import Check, ValidationSpec
from freshet_trainer.reasons import BatchReason
from freshet_trainer.validation import drift, labels, quality, schema
from freshet_trainer.validation.context import BatchUnderTest
from freshet_trainer.validation.reference import Reference, build_reference
from freshet_trainer.validation.report import Rule, summary

__all__ = ["Accepted", "Reference", "Refused", "build_reference", "not_evaluated", "validate"]

_BLOCKING: tuple[tuple[Rule, Callable[[BatchUnderTest], Check]], ...] = (
    (schema.LABEL_PRESENT, schema.label_present),
    (schema.HAS_FEATURES, schema.has_features),
)
_TABLE_CHECKS: tuple[tuple[Rule, Callable[[BatchUnderTest], Check]], ...] = (
    (schema.MISSING_COLUMNS, schema.missing_columns),
    (schema.UNEXPECTED_COLUMNS, schema.unexpected_columns),
    (schema.COLUMN_TYPES, schema.column_types),
    (quality.NULL_FRACTION, quality.null_fraction),
    (quality.NON_FINITE, quality.non_finite),
    (quality.OUT_OF_RANGE, quality.out_of_range),
    (quality.DUPLICATE_ROWS, quality.duplicate_rows),
    (drift.FEATURE_DRIFT, drift.feature_drift),
)
_LABEL_CHECKS: tuple[tuple[Rule, Callable[[BatchUnderTest], Check]], ...] = (
    (labels.UNKNOWN_LABELS, labels.unknown_labels),
    (labels.CONFLICTING_LABELS, labels.conflicting_labels),
    (labels.LABEL_RATE_SHIFT, labels.label_rate_shift),
)
RULES: tuple[Rule, ...] = (
    schema.NON_EMPTY,
    *(rule for rule, _ in _BLOCKING),
    *(rule for rule, _ in _TABLE_CHECKS),
    labels.LABELED,
    *(rule for rule, _ in _LABEL_CHECKS),
)


@dataclass(frozen=True)
class Accepted:
    """The batch may be trained on: its labeled rows, and every check's figures."""

    rows: pd.DataFrame
    checks: list[Check]


@dataclass(frozen=True)
class Refused:
    """The batch must not be used: the first failed check's code, and every check."""

    reason: BatchReason
    message: str
    checks: list[Check]


def not_evaluated(checks: list[Check], why: str) -> list[Check]:
    """`checks`, then every rule that has not run yet, recorded as skipped."""
    done = {check.name for check in checks}
    return [*checks, *(rule.skipped(why) for rule in RULES if rule.name not in done)]


def validate(
    frame: pd.DataFrame,
    *,
    label: str,
    classification: bool,
    settings: ValidationSpec,
    reference: Reference | None,
    labels_pending: bool = False,
) -> Accepted | Refused:
    """Judge one batch against the policy's rules and the reference window (None: first run).

    `labels_pending` is for late labels (`data.labels`): the label column then
    holds only matured labels, and a batch with none yet is waiting, not broken.
    """
    batch = BatchUnderTest(frame, label, classification, settings, reference)
    checks = [schema.NON_EMPTY.outcome(len(frame) > 0, value=len(frame), limit=1)]
    for _, blocking in _BLOCKING:
        if not checks[-1].passed:
            break
        checks.append(blocking(batch))
    if not checks[-1].passed:
        return _verdict(batch, not_evaluated(checks, f"not evaluated: {checks[-1].name} failed"))
    checks.extend(check(batch) for _, check in _TABLE_CHECKS)
    has_labels = labels.labeled(batch, pending=labels_pending)
    checks.append(has_labels)
    if has_labels.passed and not has_labels.skipped:
        checks.extend(check(batch) for _, check in _LABEL_CHECKS)
    return _verdict(batch, not_evaluated(checks, "not evaluated: no labeled row"))


def _verdict(batch: BatchUnderTest, checks: list[Check]) -> Accepted | Refused:
    failed = [check for check in checks if not check.passed]
    if failed:
        return Refused(BatchReason(failed[0].code), summary(failed), checks)
    rows = batch.frame[batch.frame[batch.label].notna()].reset_index(drop=True)
    return Accepted(rows, checks)
