"""Per-batch validation: the checks that decide whether a batch may be trained on.

The anomaly taxonomy follows TensorFlow Data Validation (schema, values,
distribution skew/drift), with reference-relative defaults in the spirit of
Evidently's presets. Every rule yields a check for every batch. A few checks
make the rest meaningless when they fail (no rows, no label column, no
feature); the rest all run, so a refused batch's reason lists every problem
at once instead of one per release-and-retry.

The checks are of two kinds. A failed *fault* check (unreadable, schema,
types, non-finite values, a null or duplicate surge, impossible values,
label faults) always refuses the batch: it has a bug. A failed *change* check
(`CHANGE`: feature drift, values beyond the reference's range, a shifted
label rate) says the data is different,
which is what a Dynamic policy exists to learn from: `drift.action` decides
(Retrain and Ignore accept the batch, Hold refuses it), and a batch the user
released from quarantine is accepted whatever its distribution.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd
from freshet_contract.result import Check
from freshet_contract.run import RunValidation

from freshet_trainer.reasons import BatchReason
from freshet_trainer.validation import drift, labels, quality, schema
from freshet_trainer.validation.context import BatchUnderTest
from freshet_trainer.validation.reference import Reference, build_reference
from freshet_trainer.validation.report import Rule, summary

__all__ = [
    "CHANGE",
    "Accepted",
    "Reference",
    "Refused",
    "build_reference",
    "not_evaluated",
    "validate",
]

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
CHANGE: frozenset[str] = frozenset(
    {drift.FEATURE_DRIFT.name, quality.OUT_OF_RANGE.name, labels.LABEL_RATE_SHIFT.name}
)
"""Checks that measure a change of distribution rather than a fault. Values beyond
the reference's range or categories are the first sign of a shift, not a bug:
impossible values are the ones no schema allows (types, infinities, labels
outside labelValues, nulls in a non-nullable column)."""

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
    changes: list[Check] = field(default_factory=list)
    """The change checks it failed (accepted by drift.action or a release)."""


@dataclass(frozen=True)
class Refused:
    """The batch must not be used: the first failed check's code, and every check."""

    reason: BatchReason
    message: str
    checks: list[Check]
    changes: list[Check] = field(default_factory=list)
    """The change checks it failed; the batch is refused for these alone when every
    fault check passed (drift.action Hold)."""

    @property
    def only_changed(self) -> bool:
        """Refused for a change of distribution, not for a fault: its labels are sound."""
        return bool(self.changes) and all(c.passed for c in self.checks if c.name not in CHANGE)


def not_evaluated(checks: list[Check], why: str) -> list[Check]:
    """`checks`, then every rule that has not run yet, recorded as skipped."""
    done = {check.name for check in checks}
    return [*checks, *(rule.skipped(why) for rule in RULES if rule.name not in done)]


def validate(
    frame: pd.DataFrame,
    *,
    label: str,
    classification: bool,
    settings: RunValidation,
    reference: Reference | None,
    labels_pending: bool = False,
    released: bool = False,
) -> Accepted | Refused:
    """Judge one batch against the policy's rules and the reference window (None: first run).

    `labels_pending` is for late labels (`data.labels`): the label column then
    holds only matured labels, and a batch with none yet is waiting, not broken.
    `released`: the user put the batch back from quarantine, accepting its change.
    """
    batch = BatchUnderTest(frame, label, classification, settings, reference)
    checks = [schema.NON_EMPTY.outcome(len(frame) > 0, value=len(frame), limit=1)]
    for _, blocking in _BLOCKING:
        if not checks[-1].passed:
            break
        checks.append(blocking(batch))
    accept_change = released or settings.drift.action != "Hold"
    if not checks[-1].passed:
        why = f"not evaluated: {checks[-1].name} failed"
        return _verdict(batch, not_evaluated(checks, why), accept_change)
    checks.extend(check(batch) for _, check in _TABLE_CHECKS)
    has_labels = labels.labeled(batch, pending=labels_pending)
    checks.append(has_labels)
    if has_labels.passed and not has_labels.skipped:
        checks.extend(check(batch) for _, check in _LABEL_CHECKS)
    return _verdict(batch, not_evaluated(checks, "not evaluated: no labeled row"), accept_change)


def _verdict(batch: BatchUnderTest, checks: list[Check], accept_change: bool) -> Accepted | Refused:
    failed = [check for check in checks if not check.passed]
    changes = [check for check in failed if check.name in CHANGE]
    refusing = [check for check in failed if check.name not in CHANGE or not accept_change]
    if refusing:
        return Refused(BatchReason(refusing[0].code), summary(refusing), checks, changes)
    rows = batch.frame[batch.frame[batch.label].notna()].reset_index(drop=True)
    return Accepted(rows, checks, changes)
