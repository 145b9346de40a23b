"""Schema checks: which columns a batch has and what types their values are.

The expected schema is declared (`schema: Strict`, with `columns`) or learned
from the reference window (`Inferred`, TFDV's default). Without a reference an
inferred schema expects only the label, and only refuses columns whose values
are no single scalar type.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from freshet_contract.result import Check
from freshet_contract.vocabulary import ColumnType

from freshet_trainer.reasons import BatchReason
from freshet_trainer.validation.context import NO_REFERENCE, BatchUnderTest
from freshet_trainer.validation.report import Rule, figures, worst_column

NON_EMPTY = Rule("nonEmpty", BatchReason.EMPTY)
LABEL_PRESENT = Rule("labelPresent", BatchReason.LABEL_MISSING)
HAS_FEATURES = Rule("hasFeatures", BatchReason.NO_FEATURES)
MISSING_COLUMNS = Rule("missingColumns", BatchReason.MISSING_COLUMNS)
UNEXPECTED_COLUMNS = Rule("unexpectedColumns", BatchReason.UNEXPECTED_COLUMNS)
COLUMN_TYPES = Rule("columnTypes", BatchReason.TYPE_MISMATCH)


def label_present(batch: BatchUnderTest) -> Check:
    found = batch.label in batch.frame.columns
    columns = sorted(map(str, batch.frame.columns))
    return LABEL_PRESENT.outcome(
        found,
        message="" if found else f"no column {batch.label!r} in {columns[:20]}",
    )


def has_features(batch: BatchUnderTest) -> Check:
    count = len(batch.features)
    return HAS_FEATURES.outcome(count > 0, value=count, limit=1)


def missing_columns(batch: BatchUnderTest) -> Check:
    """Every declared column (Strict), or every column of every reference batch."""
    if batch.strict:
        required = [column.name for column in batch.settings.columns]
    elif batch.reference is not None and not batch.reference.learned_from_new:
        required = [n for n, p in batch.reference.columns.items() if p.in_every_batch]
    else:
        return MISSING_COLUMNS.skipped(NO_REFERENCE)
    missing = [name for name in required if name not in batch.frame.columns]
    return MISSING_COLUMNS.outcome(
        not missing,
        value=len(missing),
        limit=0,
        message=f"missing {missing[:20]}" if missing else f"{len(required)} expected column(s)",
    )


def unexpected_columns(batch: BatchUnderTest) -> Check:
    """Columns neither declared nor seen in the reference, unless allowExtraColumns."""
    if batch.strict:
        known = {column.name for column in batch.settings.columns} | {batch.label}
    elif batch.reference is not None and not batch.reference.learned_from_new:
        known = set(batch.reference.columns)
    else:
        return UNEXPECTED_COLUMNS.skipped(NO_REFERENCE)
    extra = [name for name in batch.frame.columns if name not in known]
    allowed = batch.settings.allow_extra_columns
    message = f"not expected: {extra[:20]}" if extra else "none"
    if extra and allowed:
        message += " (allowed by allowExtraColumns)"
    return UNEXPECTED_COLUMNS.outcome(
        allowed or not extra, value=len(extra), limit=0, message=message
    )


def column_types(batch: BatchUnderTest) -> Check:
    """Per column: the share of non-null values that are not of the expected type."""
    per_column = []
    problems = []
    for name in batch.frame.columns:
        kind, detail = batch.kinds[name]
        expected = batch.expected_type(name)
        if batch.well_typed(name):
            per_column.append(figures(name, True, 0.0, 0.0, method=expected or kind))
            continue
        share = _nonconforming_share(batch.frame[name], expected)
        per_column.append(figures(name, False, share, 0.0, method=expected or kind))
        found = detail if kind == "mixed" else kind
        problems.append(
            f"{name!r}: expected {expected}, found {found}" if expected else f"{name!r}: {found}"
        )
    check = worst_column(COLUMN_TYPES, per_column, "of the wrong type", "no columns")
    if problems:
        return check.model_copy(update={"message": "; ".join(problems[:10])})
    return check


def _nonconforming_share(column: pd.Series, expected: ColumnType | None) -> float:
    """How much of the column is off: values not of the expected type, or, with no
    expectation, values not of the column's most common type."""
    present = column.dropna()
    if present.empty:
        return 0.0
    is_bool = present.map(lambda v: isinstance(v, bool | np.bool_)).to_numpy(dtype=bool)
    if expected in ("number", "integer"):
        numbers = pd.to_numeric(present.where(~is_bool), errors="coerce")
        values = numbers.to_numpy(dtype="float64", na_value=np.nan)
        bad = np.isnan(values)
        if expected == "integer":
            bad = bad | (np.isfinite(values) & (values % 1 != 0))
        return float(bad.mean())
    if expected == "boolean":
        return float((~is_bool).mean())
    if expected == "string":
        return float((~present.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)).mean())
    shares = present.map(lambda v: type(v).__name__).value_counts(normalize=True)
    return float(1.0 - shares.iloc[0])
