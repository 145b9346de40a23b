"""Does a candidate model go live? A pure function of the run's metrics and the policy.

The trainer evaluates the candidate and the serving model on the same holdout
and reports both; the operator decides here. Comparing on the same rows is what
makes the regression check fair, and keeping the decision out of the trainer
means a compromised or buggy Job cannot promote itself.

Metric values arrive as floats and thresholds as ``Decimal``. Each float is
converted through its shortest repr (``0.1`` stays ``0.1``, not
``0.1000000000000000055...``) so that a candidate exactly at a threshold passes,
as the policy author would expect.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from freshet.spec import GateSpec


class GateReason(StrEnum):
    FIRST_MODEL = "FirstModel"
    PASSED = "Passed"
    CANDIDATE_METRIC_MISSING = "CandidateMetricMissing"
    CANDIDATE_METRIC_INVALID = "CandidateMetricInvalid"
    BASELINE_METRIC_MISSING = "BaselineMetricMissing"
    BASELINE_METRIC_INVALID = "BaselineMetricInvalid"
    BELOW_MIN_VALUE = "BelowMinValue"
    NOT_BETTER_THAN_DUMMY = "NotBetterThanDummy"
    REGRESSED = "Regressed"


@dataclass(frozen=True, slots=True)
class GateDecision:
    promote: bool
    reason: GateReason
    message: str
    """Human-readable, with the numbers the decision was made on."""


def judge(
    gate: GateSpec,
    candidate: Mapping[str, float] | None,
    baseline: Mapping[str, float] | None,
    dummy: Mapping[str, float] | None = None,
) -> GateDecision:
    """Decide whether the candidate replaces the serving model.

    ``candidate`` is the run result's ``metrics.candidate``. ``baseline`` is
    ``metrics.baseline``: None only when nothing is serving (the first model),
    in which case the candidate only has to meet ``minValue``. When a model is
    serving but was not evaluated, pass its metrics as ``{}``: the gate then
    rejects, because promoting without a comparison could replace a good model
    with a worse one.

    ``dummy`` is ``metrics.dummy``: a majority-class or mean-target model scored
    on the same holdout. The candidate must be strictly better than it, first
    model included: a model that only ties a constant has learned nothing from
    the features, however high its accuracy on an imbalanced holdout. A dummy
    without the metric rejects (nothing shows the candidate beats it); None
    skips the check, for results from trainers that predate the dummy.

    A tie with the serving model promotes: with equal evidence the newer model,
    trained on fresher data, is the better bet. A missing or non-finite metric
    rejects, since no comparison with NaN means anything.
    """
    metric = gate.metric
    name = metric.value
    raw_cand = None if candidate is None else candidate.get(name)
    if raw_cand is None:
        return _reject(GateReason.CANDIDATE_METRIC_MISSING, f"candidate has no {name} metric")
    if not math.isfinite(raw_cand):
        return _reject(GateReason.CANDIDATE_METRIC_INVALID, f"candidate {name} is {raw_cand}")
    cand = _exact(raw_cand)

    if gate.min_value is not None:
        if metric.higher_is_better and cand < gate.min_value:
            return _reject(
                GateReason.BELOW_MIN_VALUE,
                f"candidate {name} {cand:.4g} < minValue {gate.min_value:.4g}",
            )
        if not metric.higher_is_better and cand > gate.min_value:
            return _reject(
                GateReason.BELOW_MIN_VALUE,
                f"candidate {name} {cand:.4g} > {gate.min_value:.4g}, the worst allowed (minValue;"
                " lower is better)",
            )
    bar = f"; minValue {gate.min_value:.4g} met" if gate.min_value is not None else ""

    if dummy is not None:
        raw_dummy = dummy.get(name)
        if raw_dummy is None or not math.isfinite(raw_dummy):
            return _reject(
                GateReason.NOT_BETTER_THAN_DUMMY,
                f"dummy baseline {name} is {raw_dummy}; cannot show the candidate beats it",
            )
        floor = _exact(raw_dummy)
        beats = cand > floor if metric.higher_is_better else cand < floor
        if not beats:
            return _reject(
                GateReason.NOT_BETTER_THAN_DUMMY,
                f"candidate {name} {cand:.4g} is not better than the dummy baseline's {floor:.4g}",
            )
        bar += f"; beats dummy {floor:.4g}"

    if baseline is None:
        return GateDecision(
            promote=True,
            reason=GateReason.FIRST_MODEL,
            message=f"first model: candidate {name} {cand:.4g}{bar}",
        )
    raw_base = baseline.get(name)
    if raw_base is None:
        return _reject(
            GateReason.BASELINE_METRIC_MISSING,
            f"serving model has no {name} on the holdout; cannot compare",
        )
    if not math.isfinite(raw_base):
        return _reject(GateReason.BASELINE_METRIC_INVALID, f"serving model {name} is {raw_base}")
    base = _exact(raw_base)

    # Positive regression means worse than serving, whichever way the metric points.
    regression = base - cand if metric.higher_is_better else cand - base
    comparison = (
        f"candidate {name} {cand:.4g} vs serving {base:.4g} (regression {regression:.4g},"
        f" maxRegression {gate.max_regression:.4g})"
    )
    if regression > gate.max_regression:
        return _reject(GateReason.REGRESSED, comparison)
    return GateDecision(promote=True, reason=GateReason.PASSED, message=comparison + bar)


def _exact(value: float) -> Decimal:
    """The decimal the float was written as (shortest repr), not its binary expansion."""
    return Decimal(repr(float(value)))


def _reject(reason: GateReason, message: str) -> GateDecision:
    return GateDecision(promote=False, reason=reason, message=message)
