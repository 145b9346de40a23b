"""Label checks: present at all, from the known classes, consistent, at the usual rate.

Rows without a label are not a fault (labels arrive late); a batch with no
labeled row at all has nothing to train on, unless the policy's labels come in
their own files (`data.labels`), where it is simply not matured yet. The class checks apply to
classification only: a regression target has no classes, and its
distribution is compared by the drift check instead.
"""

from __future__ import annotations

import numpy as np
from freshet_contract.result import Check

from freshet_trainer.reasons import BatchReason
from freshet_trainer.validation.columns import tokens
from freshet_trainer.validation.context import FIRST_BATCHES, NO_REFERENCE, BatchUnderTest
from freshet_trainer.validation.measures import conflict_fraction
from freshet_trainer.validation.quality import LEARNED, relative_limit
from freshet_trainer.validation.report import Rule
from freshet_trainer.validation.statistics import homogeneity_p

LABELED = Rule("labelNotAllNull", BatchReason.LABEL_ALL_NULL)
UNKNOWN_LABELS = Rule("unknownLabels", BatchReason.UNKNOWN_LABELS)
CONFLICTING_LABELS = Rule("conflictingLabels", BatchReason.CONFLICTING_LABELS)
LABEL_RATE_SHIFT = Rule("labelRateShift", BatchReason.LABEL_RATE_SHIFT)

REGRESSION = "regression target: no classes"


def labeled(batch: BatchUnderTest, *, pending: bool = False) -> Check:
    """At least one labeled row; with late labels (`pending`) none is a skip, not a fault:
    the batch's rows are still inside the label delay."""
    count = int(batch.frame[batch.label].notna().sum())
    if count == 0 and pending:
        return LABELED.skipped("no matured label yet: the rows wait for their label delay")
    return LABELED.outcome(count > 0, value=count, limit=1)


def unknown_labels(batch: BatchUnderTest) -> Check:
    """Labels outside `labelValues`, or, when it is not set, outside the reference's classes."""
    if batch.settings.label_values is not None:
        allowed, source = set(batch.settings.label_values), "labelValues"
    elif not batch.classification:
        return UNKNOWN_LABELS.skipped(REGRESSION)
    elif batch.reference is not None and batch.reference.labels is not None:
        allowed, source = set(batch.reference.labels), "the reference's classes"
    else:
        return UNKNOWN_LABELS.skipped(NO_REFERENCE + "; set labelValues to check the first batch")
    if not batch.well_typed(batch.label):
        return UNKNOWN_LABELS.skipped("not evaluated: the label column has the wrong type")
    present = tokens(batch.frame[batch.label])
    unknown = present[~present.isin(allowed)]
    share = len(unknown) / len(present) if len(present) else 0.0
    shown = sorted(set(unknown))[:5]
    return UNKNOWN_LABELS.outcome(
        share == 0.0,
        value=share,
        limit=0.0,
        column=batch.label,
        message=f"not in {source}: {shown}" if shown else f"all in {source}",
    )


def conflicting_labels(batch: BatchUnderTest) -> Check:
    """Rows with equal features and different labels: a join or labeling bug."""
    if not batch.classification:
        return CONFLICTING_LABELS.skipped(REGRESSION)
    if not batch.all_scalar:
        return CONFLICTING_LABELS.skipped("not evaluated: some columns hold non-scalar values")
    reference = batch.reference.conflict_fraction if batch.reference else None
    limit = relative_limit(batch, batch.settings.max_conflicting_label_fraction, reference)
    if limit is None:
        return CONFLICTING_LABELS.skipped(LEARNED)
    value = conflict_fraction(batch.frame, batch.label)
    return CONFLICTING_LABELS.outcome(
        value <= limit,
        value=value,
        limit=limit,
        column=batch.label,
        message="" if reference is None else f"reference {reference:.4f}",
    )


def label_rate_shift(batch: BatchUnderTest) -> Check:
    """The largest change in any class's share; fails when it is both larger than
    `maxLabelRateShift` and significant (chi-square at drift.pValue)."""
    if not batch.classification:
        return LABEL_RATE_SHIFT.skipped(REGRESSION + "; its distribution is in featureDrift")
    if batch.reference is None or batch.reference.labels is None:
        return LABEL_RATE_SHIFT.skipped(NO_REFERENCE)
    if batch.reference.learned_from_new:
        return LABEL_RATE_SHIFT.skipped(FIRST_BATCHES)
    if not batch.well_typed(batch.label):
        return LABEL_RATE_SHIFT.skipped("not evaluated: the label column has the wrong type")
    counts = tokens(batch.frame[batch.label]).value_counts()
    classes = sorted(set(batch.reference.labels) | set(counts.index))
    reference = np.array([batch.reference.labels.get(c, 0) for c in classes], dtype="float64")
    current = np.array([counts.get(c, 0) for c in classes], dtype="float64")
    gaps = np.abs(current / current.sum() - reference / reference.sum())
    worst = int(np.argmax(gaps))
    shift, p_value = float(gaps[worst]), homogeneity_p(reference, current)
    limit = batch.settings.max_label_rate_shift
    significant = p_value < batch.settings.drift.p_value
    return LABEL_RATE_SHIFT.outcome(
        not (shift > limit and significant),
        value=shift,
        limit=limit,
        column=batch.label,
        message=(
            f"class {classes[worst]!r}: {current[worst] / current.sum():.4f} here,"
            f" {reference[worst] / reference.sum():.4f} in the reference; p={p_value:.3g}"
        ),
    )
