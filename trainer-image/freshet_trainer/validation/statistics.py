"""Distances between distributions, their significance, and the multiple-testing correction.

Each comparison yields a distance (is the change material?) and a p-value (is
it more than sampling noise?). Distances alone flag noise in small batches;
p-values alone flag immaterial changes in large ones. The drift and label
checks require both.
"""

from __future__ import annotations

from typing import Final, cast

import numpy as np
from freshet_contract.vocabulary import Correction
from scipy.spatial.distance import jensenshannon
from scipy.stats import betabinom, binom, chi2_contingency, false_discovery_control, ks_2samp

BINS: Final = 10
"""Numeric columns are binned on the reference's deciles (PSI's usual binning)."""
_EPSILON: Final = 1e-4
"""Floor for an empty bin's share, so PSI stays finite (Evidently uses the same)."""


def quantile_edges(reference: np.ndarray) -> np.ndarray:
    """Interior bin edges at the reference's deciles, merged where values repeat."""
    return np.unique(np.quantile(reference, np.linspace(0.0, 1.0, BINS + 1)[1:-1]))


def binned(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per bin: (-inf, e1], (e1, e2], ..., (ek, inf)."""
    bins = np.searchsorted(edges, values, side="left")
    return cast(np.ndarray, np.bincount(bins, minlength=edges.size + 1))


def _shares(counts: np.ndarray) -> np.ndarray:
    return cast(np.ndarray, np.clip(counts / max(counts.sum(), 1), _EPSILON, None))


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index over matching bins (0: same; >0.25: a major shift)."""
    expected, actual = _shares(reference), _shares(current)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def js_distance(reference: np.ndarray, current: np.ndarray) -> float:
    """Jensen-Shannon distance in base 2: 0 for equal distributions, 1 for disjoint ones."""
    return float(jensenshannon(reference / reference.sum(), current / current.sum(), base=2))


def homogeneity_p(reference: np.ndarray, current: np.ndarray) -> float:
    """Chi-square test that both count vectors come from one distribution."""
    used = (reference + current) > 0
    if used.sum() < 2 or reference.sum() == 0 or current.sum() == 0:
        return 1.0
    table = np.vstack([reference[used], current[used]])
    return float(chi2_contingency(table).pvalue)


def ks(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov: the largest gap between the CDFs, and its p-value."""
    result = ks_2samp(reference, current)
    return float(result.statistic), float(result.pvalue)


def outside_range_p(outside: int, values: int, reference: int) -> float:
    """p-value of `outside` of `values` new values falling outside the [min, max] of
    `reference` values from the same continuous distribution.

    Under that hypothesis the share of the distribution outside the reference's
    range is Beta(2, reference - 1) (the two extremes among reference + 1
    exchangeable values), so the count outside is beta-binomial: exact for
    continuous values, conservative for discrete ones (ties are never outside).
    """
    if outside == 0:
        return 1.0
    return float(betabinom.sf(outside - 1, values, 2, max(reference - 1, 1)))


def unseen_p(unseen: int, values: int, singletons: int, reference: int) -> float:
    """p-value of `unseen` of `values` new values being categories the reference never
    had, when new categories appear at the Good-Turing rate (categories seen once,
    plus one, over the reference's size)."""
    if unseen == 0:
        return 1.0
    rate = min((singletons + 1) / (reference + 1), 1.0)
    return float(binom.sf(unseen - 1, values, rate))


def adjust(p_values: list[float], correction: Correction) -> list[float]:
    """p-values corrected for testing many columns at once.

    Benjamini-Hochberg bounds the share of false alarms among flagged columns
    and keeps power when several columns really moved; Bonferroni bounds the
    chance of any false alarm, and is stricter.
    """
    if not p_values:
        return []
    raw = np.asarray(p_values, dtype="float64")
    if correction == "Bonferroni":
        return list(np.minimum(raw * raw.size, 1.0))
    return list(false_discovery_control(raw, method="bh"))
