"""Feature drift: does a column's distribution differ from the reference window's?

The method is chosen per column type: `Auto` uses Kolmogorov-Smirnov for
numeric columns and Jensen-Shannon for categorical ones (booleans and text
with at most 100 distinct reference values); `PSI` and `JS` bin numeric
columns on the reference's deciles; `KS` falls back to Jensen-Shannon for
categorical columns, which have no order. A column drifts when its distance
exceeds the threshold AND its test (KS, or chi-square on the binned counts)
stays significant after correcting for the number of columns tested.
Regression targets are compared like features (their "label rate" is their
distribution); classification labels have their own check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd
from freshet_contract.result import Check, ColumnFigures

from freshet_trainer.reasons import BatchReason
from freshet_trainer.validation.columns import tokens
from freshet_trainer.validation.context import FIRST_BATCHES, NO_REFERENCE, BatchUnderTest
from freshet_trainer.validation.reference import ColumnProfile
from freshet_trainer.validation.report import Rule, figures, worst_column
from freshet_trainer.validation.statistics import (
    adjust,
    binned,
    homogeneity_p,
    js_distance,
    ks,
    psi,
    quantile_edges,
)

FEATURE_DRIFT = Rule("featureDrift", BatchReason.FEATURE_DRIFT)

DEFAULT_THRESHOLDS: Final = {"PSI": 0.2, "KS": 0.1, "JS": 0.1}
"""Distances below these are not material: PSI 0.2 is the usual "moderate shift"
line, KS and JS 0.1 are Evidently's defaults."""
MIN_VALUES: Final = 30
"""Fewer non-null values than this, here or in the reference, and a column is not tested."""
_OTHER: Final = "\x00other"


@dataclass(frozen=True)
class _Comparison:
    column: str
    method: str
    distance: float
    p_value: float


def feature_drift(batch: BatchUnderTest) -> Check:
    method = batch.settings.drift.method
    if method == "Disabled":
        return FEATURE_DRIFT.skipped("drift.method is Disabled")
    if batch.reference is None:
        return FEATURE_DRIFT.skipped(NO_REFERENCE)
    if batch.reference.learned_from_new:
        return FEATURE_DRIFT.skipped(FIRST_BATCHES)
    columns = batch.features if batch.classification else list(batch.frame.columns)
    comparisons = [
        comparison
        for name in batch.comparable(columns)
        if (comparison := _compare(name, batch.frame[name], batch.reference.columns[name], method))
    ]
    drift = batch.settings.drift
    adjusted = adjust([c.p_value for c in comparisons], drift.correction)
    per_column: list[ColumnFigures] = []
    for comparison, p_value in zip(comparisons, adjusted, strict=True):
        threshold = (
            drift.threshold
            if drift.threshold is not None
            else DEFAULT_THRESHOLDS[comparison.method]
        )
        drifted = comparison.distance > threshold and p_value < drift.p_value
        per_column.append(
            figures(
                comparison.column,
                not drifted,
                comparison.distance,
                threshold,
                p_value=p_value,
                method=comparison.method,
            )
        )
    return worst_column(
        FEATURE_DRIFT,
        per_column,
        f"drifted (distance over the threshold, corrected p < {drift.p_value})",
        f"no column with at least {MIN_VALUES} values here and in the reference",
    )


def _compare(
    name: str, column: pd.Series, profile: ColumnProfile, method: str
) -> _Comparison | None:
    if profile.sample is not None:
        values = pd.to_numeric(column, errors="coerce").dropna().to_numpy(dtype="float64")
        values = values[np.isfinite(values)]
        if values.size < MIN_VALUES or profile.sample.size < MIN_VALUES:
            return None
        if method in ("Auto", "KS"):
            distance, p_value = ks(profile.sample, values)
            return _Comparison(name, "KS", distance, p_value)
        edges = quantile_edges(profile.sample)
        return _binned(name, method, binned(profile.sample, edges), binned(values, edges))
    if profile.categories is not None:
        current = tokens(column)
        if current.size < MIN_VALUES or sum(profile.categories.values()) < MIN_VALUES:
            return None
        categories = [*profile.categories, _OTHER]
        counts = current.where(current.isin(profile.categories), _OTHER).value_counts()
        return _binned(
            name,
            "PSI" if method == "PSI" else "JS",
            np.array([profile.categories.get(c, 0) for c in categories], dtype="float64"),
            np.array([counts.get(c, 0) for c in categories], dtype="float64"),
        )
    return None


def _binned(name: str, method: str, reference: np.ndarray, current: np.ndarray) -> _Comparison:
    distance = psi(reference, current) if method == "PSI" else js_distance(reference, current)
    return _Comparison(name, method, distance, homogeneity_p(reference, current))
