"""Value checks: nulls, non-finite numbers, values outside the reference, duplicates.

Fraction limits are learned from the data (Evidently's default): a column
that is normally 30% null is not refused for being 31% null, so the allowed
fraction is the reference's own fraction plus `referenceTolerance`, or the
policy's absolute limit when one is set and it is larger. On a policy's first
run the reference is the first batches themselves (see `batches.py`), so what
real data normally looks like is never refused for want of history.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from freshet_contract.result import Check, ColumnFigures

from freshet_trainer.reasons import BatchReason
from freshet_trainer.validation.columns import NUMERIC, tokens
from freshet_trainer.validation.context import FIRST_BATCHES, NO_REFERENCE, BatchUnderTest
from freshet_trainer.validation.measures import duplicate_fraction
from freshet_trainer.validation.report import Rule, figures, worst_column
from freshet_trainer.validation.statistics import adjust, outside_range_p, unseen_p

NULL_FRACTION = Rule("nullFraction", BatchReason.TOO_MANY_NULLS)
NON_FINITE = Rule("nonFiniteValues", BatchReason.NON_FINITE)
OUT_OF_RANGE = Rule("outOfRange", BatchReason.OUT_OF_RANGE)
DUPLICATE_ROWS = Rule("duplicateRows", BatchReason.DUPLICATE_ROWS)


LEARNED = "no limit set and no reference to learn one from"


def relative_limit(
    batch: BatchUnderTest, absolute: float | None, reference: float | None
) -> float | None:
    """The allowed fraction: learned (reference + tolerance), at least `absolute` when set;
    None when neither exists (the check is then skipped)."""
    learned = None if reference is None else reference + batch.settings.reference_tolerance
    if absolute is None or learned is None:
        return learned if absolute is None else absolute
    return max(absolute, learned)


def null_fraction(batch: BatchUnderTest) -> Check:
    """Per feature column; the label is exempt (unlabeled rows wait for late labels).

    A column declared `nullable: false` (Strict) allows no null at all.
    """
    non_nullable = {c.name for c in batch.settings.columns if not c.nullable}
    fractions = batch.frame[batch.features].isna().mean()
    per_column = []
    for name in batch.features:
        profile = batch.reference.columns.get(name) if batch.reference else None
        reference = profile.null_fraction if profile else None
        limit = (
            0.0
            if name in non_nullable
            else relative_limit(batch, batch.settings.max_null_fraction, reference)
        )
        if limit is None:
            continue
        value = float(fractions[name])
        per_column.append(figures(name, value <= limit, value, limit, reference=reference))
    empty = LEARNED if batch.features else "no feature columns"
    return worst_column(NULL_FRACTION, per_column, "too often null", empty)


def non_finite(batch: BatchUnderTest) -> Check:
    """Infinities in numeric columns (label included): no model can fit them. NaN is a
    null, and is judged by nullFraction."""
    per_column = []
    for name in batch.frame.columns:
        kind, _ = batch.kinds[name]
        if kind not in NUMERIC:
            continue
        values = pd.to_numeric(batch.frame[name], errors="coerce").dropna()
        share = float(np.isinf(values.to_numpy(dtype="float64")).mean()) if len(values) else 0.0
        per_column.append(figures(name, share == 0.0, share, 0.0))
    return worst_column(NON_FINITE, per_column, "with infinite values", "no numeric columns")


def out_of_range(batch: BatchUnderTest) -> Check:
    """Numeric values outside the reference's [min, max]; text or boolean values
    outside the reference's categories (TFDV's domain check).

    A column fails when its share outside exceeds `maxOutOfRangeFraction` AND
    that many values outside is unlikely for a batch from the reference's own
    distribution (corrected over columns, at drift.pValue): a reference of a
    hundred rows has a narrow range, and a fresh batch lands a few percent of
    its values beyond it by chance alone.
    """
    if batch.reference is None:
        return OUT_OF_RANGE.skipped(NO_REFERENCE)
    if batch.reference.learned_from_new:
        return OUT_OF_RANGE.skipped(FIRST_BATCHES)
    measured: list[tuple[str, float, float]] = []  # column, share outside, p-value
    for name in batch.comparable(batch.features):
        profile = batch.reference.columns[name]
        column = batch.frame[name]
        if profile.minimum is not None and profile.maximum is not None:
            values = pd.to_numeric(column, errors="coerce").dropna().to_numpy(dtype="float64")
            values = values[np.isfinite(values)]
            outside = int(((values < profile.minimum) | (values > profile.maximum)).sum())
            p_value = outside_range_p(outside, values.size, profile.count)
            total = values.size
        elif profile.categories is not None:
            present = tokens(column)
            outside = int((~present.isin(profile.categories)).sum())
            once = sum(1 for count in profile.categories.values() if count == 1)
            p_value = unseen_p(outside, present.size, once, profile.count)
            total = present.size
        else:
            continue  # free text: no domain
        measured.append((name, outside / total if total else 0.0, p_value))
    drift = batch.settings.drift
    adjusted = adjust([p for _, _, p in measured], drift.correction)
    limit = batch.settings.max_out_of_range_fraction
    per_column: list[ColumnFigures] = [
        figures(name, not (share > limit and p < drift.p_value), share, limit, p_value=p)
        for (name, share, _), p in zip(measured, adjusted, strict=True)
    ]
    return worst_column(
        OUT_OF_RANGE, per_column, "outside the reference", "no column with a reference domain"
    )


def duplicate_rows(batch: BatchUnderTest) -> Check:
    if not batch.all_scalar:
        return DUPLICATE_ROWS.skipped("not evaluated: some columns hold non-scalar values")
    reference = batch.reference.duplicate_fraction if batch.reference else None
    limit = relative_limit(batch, batch.settings.max_duplicate_fraction, reference)
    if limit is None:
        return DUPLICATE_ROWS.skipped(LEARNED)
    value = duplicate_fraction(batch.frame)
    return DUPLICATE_ROWS.outcome(
        value <= limit,
        value=value,
        limit=limit,
        message="" if reference is None else f"reference {reference:.4f}",
    )
