"""The promotion gate: absolute bar, regression vs serving, direction, ties, bad numbers."""

from __future__ import annotations

import math

import pytest
from freshet.decisions.gate import GateReason, judge
from freshet.spec import GateSpec


def gate(
    metric: str = "accuracy", min_value: str | None = None, max_regression: str = "0"
) -> GateSpec:
    return GateSpec.model_validate(
        {"metric": metric, "minValue": min_value, "maxRegression": max_regression}
    )


NAN = math.nan
INF = math.inf

CASES = [
    # id, gate, candidate, baseline, promote, reason
    ("first model, no bar", gate(), {"accuracy": 0.5}, None, True, GateReason.FIRST_MODEL),
    ("first model meets bar", gate(min_value="0.8"), {"accuracy": 0.81}, None, True,
     GateReason.FIRST_MODEL),
    ("first model exactly at bar", gate(min_value="0.8"), {"accuracy": 0.8}, None, True,
     GateReason.FIRST_MODEL),
    ("first model below bar", gate(min_value="0.8"), {"accuracy": 0.79}, None, False,
     GateReason.BELOW_MIN_VALUE),
    ("better than serving", gate(), {"accuracy": 0.9}, {"accuracy": 0.85}, True,
     GateReason.PASSED),
    ("tie promotes", gate(), {"accuracy": 0.85}, {"accuracy": 0.85}, True, GateReason.PASSED),
    ("worse, no tolerance", gate(), {"accuracy": 0.849}, {"accuracy": 0.85}, False,
     GateReason.REGRESSED),
    ("worse within maxRegression", gate(max_regression="0.01"), {"accuracy": 0.845},
     {"accuracy": 0.85}, True, GateReason.PASSED),
    # 0.85 - 0.84 is 0.010000000000000009 in floats; exactly 0.01 in decimals.
    ("worse exactly by maxRegression", gate(max_regression="0.01"), {"accuracy": 0.84},
     {"accuracy": 0.85}, True, GateReason.PASSED),
    ("worse beyond maxRegression", gate(max_regression="0.01"), {"accuracy": 0.839},
     {"accuracy": 0.85}, False, GateReason.REGRESSED),
    ("better than serving but below bar", gate(min_value="0.9"), {"accuracy": 0.88},
     {"accuracy": 0.7}, False, GateReason.BELOW_MIN_VALUE),
    ("only the gate metric counts", gate(metric="roc_auc"),
     {"roc_auc": 0.91, "accuracy": 0.5}, {"roc_auc": 0.90, "accuracy": 0.9}, True,
     GateReason.PASSED),
    # Lower is better.
    ("rmse lower promotes", gate(metric="rmse"), {"rmse": 1.9}, {"rmse": 2.0}, True,
     GateReason.PASSED),
    ("rmse higher regresses", gate(metric="rmse"), {"rmse": 2.1}, {"rmse": 2.0}, False,
     GateReason.REGRESSED),
    ("log_loss higher within tolerance", gate(metric="log_loss", max_regression="0.05"),
     {"log_loss": 0.34}, {"log_loss": 0.3}, True, GateReason.PASSED),
    ("mae above the worst allowed", gate(metric="mae", min_value="3"), {"mae": 3.5}, None,
     False, GateReason.BELOW_MIN_VALUE),
    ("mae at the worst allowed", gate(metric="mae", min_value="3"), {"mae": 3.0}, None, True,
     GateReason.FIRST_MODEL),
    ("r2 may be negative", gate(metric="r2", min_value="-0.5"), {"r2": -0.2}, {"r2": -0.3},
     True, GateReason.PASSED),
    # Missing and non-finite numbers reject.
    ("no candidate metrics", gate(), None, None, False, GateReason.CANDIDATE_METRIC_MISSING),
    ("candidate lacks the metric", gate(metric="f1"), {"accuracy": 0.9}, None, False,
     GateReason.CANDIDATE_METRIC_MISSING),
    ("candidate NaN", gate(), {"accuracy": NAN}, {"accuracy": 0.8}, False,
     GateReason.CANDIDATE_METRIC_INVALID),
    ("candidate infinite", gate(metric="log_loss"), {"log_loss": INF}, None, False,
     GateReason.CANDIDATE_METRIC_INVALID),
    ("serving model not evaluated", gate(), {"accuracy": 0.9}, {}, False,
     GateReason.BASELINE_METRIC_MISSING),
    ("serving model NaN", gate(metric="roc_auc"), {"roc_auc": 0.9}, {"roc_auc": NAN}, False,
     GateReason.BASELINE_METRIC_INVALID),
]  # fmt: skip


@pytest.mark.parametrize(
    ("gate_spec", "candidate", "baseline", "promote", "reason"),
    [case[1:] for case in CASES],
    ids=[str(case[0]) for case in CASES],
)
def test_judge(
    gate_spec: GateSpec,
    candidate: dict[str, float] | None,
    baseline: dict[str, float] | None,
    promote: bool,
    reason: GateReason,
) -> None:
    decision = judge(gate_spec, candidate, baseline)
    assert (decision.promote, decision.reason) == (promote, reason)
    assert decision.message


@pytest.mark.parametrize(
    ("gate_spec", "candidate", "baseline", "numbers"),
    [
        (gate(max_regression="0.01"), {"accuracy": 0.83}, {"accuracy": 0.85},
         ["0.83", "0.85", "0.02", "0.01"]),
        (gate(min_value="0.8"), {"accuracy": 0.79}, None, ["0.79", "0.8"]),
    ],
)  # fmt: skip
def test_message_shows_the_numbers(
    gate_spec: GateSpec,
    candidate: dict[str, float],
    baseline: dict[str, float] | None,
    numbers: list[str],
) -> None:
    message = judge(gate_spec, candidate, baseline).message
    for number in numbers:
        assert number in message


DUMMY_CASES = [
    # id, gate, candidate, baseline, dummy, promote, reason
    ("first model beats dummy", gate(), {"accuracy": 0.9}, None, {"accuracy": 0.6}, True,
     GateReason.FIRST_MODEL),
    ("first model ties dummy", gate(), {"accuracy": 0.6}, None, {"accuracy": 0.6}, False,
     GateReason.NOT_BETTER_THAN_DUMMY),
    ("first model below dummy", gate(), {"accuracy": 0.55}, None, {"accuracy": 0.6}, False,
     GateReason.NOT_BETTER_THAN_DUMMY),
    ("imbalanced: high accuracy is still the majority rate", gate(min_value="0.9"),
     {"accuracy": 0.95}, {"accuracy": 0.94}, {"accuracy": 0.95}, False,
     GateReason.NOT_BETTER_THAN_DUMMY),
    ("better than dummy and serving", gate(), {"accuracy": 0.9}, {"accuracy": 0.85},
     {"accuracy": 0.6}, True, GateReason.PASSED),
    ("beats dummy but regresses", gate(), {"accuracy": 0.7}, {"accuracy": 0.85},
     {"accuracy": 0.6}, False, GateReason.REGRESSED),
    ("serving model no better than dummy does not excuse the candidate", gate(),
     {"accuracy": 0.6}, {"accuracy": 0.5}, {"accuracy": 0.6}, False,
     GateReason.NOT_BETTER_THAN_DUMMY),
    ("roc_auc above the dummy's 0.5", gate(metric="roc_auc"), {"roc_auc": 0.51}, None,
     {"roc_auc": 0.5}, True, GateReason.FIRST_MODEL),
    # Lower is better: strictly below the dummy.
    ("rmse below dummy", gate(metric="rmse"), {"rmse": 1.0}, None, {"rmse": 2.0}, True,
     GateReason.FIRST_MODEL),
    ("rmse ties dummy", gate(metric="rmse"), {"rmse": 2.0}, None, {"rmse": 2.0}, False,
     GateReason.NOT_BETTER_THAN_DUMMY),
    ("log_loss above dummy", gate(metric="log_loss"), {"log_loss": 0.8}, {"log_loss": 0.9},
     {"log_loss": 0.69}, False, GateReason.NOT_BETTER_THAN_DUMMY),
    ("r2 must beat the mean's 0", gate(metric="r2"), {"r2": 0.0}, None, {"r2": 0.0}, False,
     GateReason.NOT_BETTER_THAN_DUMMY),
    # The bar and the candidate's own numbers are checked first.
    ("below minValue reported before dummy", gate(min_value="0.8"), {"accuracy": 0.5}, None,
     {"accuracy": 0.6}, False, GateReason.BELOW_MIN_VALUE),
    ("candidate NaN reported before dummy", gate(), {"accuracy": NAN}, None,
     {"accuracy": 0.6}, False, GateReason.CANDIDATE_METRIC_INVALID),
    # A dummy that cannot be compared rejects; no dummy at all (older trainer) skips.
    ("dummy lacks the metric", gate(metric="f1"), {"f1": 0.9}, None, {"accuracy": 0.6},
     False, GateReason.NOT_BETTER_THAN_DUMMY),
    ("dummy metric infinite", gate(metric="log_loss"), {"log_loss": 0.3}, None,
     {"log_loss": INF}, False, GateReason.NOT_BETTER_THAN_DUMMY),
    ("no dummy reported", gate(), {"accuracy": 0.6}, None, None, True, GateReason.FIRST_MODEL),
]  # fmt: skip


@pytest.mark.parametrize(
    ("gate_spec", "candidate", "baseline", "dummy", "promote", "reason"),
    [case[1:] for case in DUMMY_CASES],
    ids=[str(case[0]) for case in DUMMY_CASES],
)
def test_judge_against_the_dummy(
    gate_spec: GateSpec,
    candidate: dict[str, float],
    baseline: dict[str, float] | None,
    dummy: dict[str, float] | None,
    promote: bool,
    reason: GateReason,
) -> None:
    decision = judge(gate_spec, candidate, baseline, dummy)
    assert (decision.promote, decision.reason) == (promote, reason)
    assert decision.message


def test_dummy_message_shows_both_numbers() -> None:
    rejected = judge(gate(), {"accuracy": 0.61}, None, {"accuracy": 0.62}).message
    passed = judge(gate(), {"accuracy": 0.9}, {"accuracy": 0.8}, {"accuracy": 0.62}).message
    assert "0.61" in rejected and "0.62" in rejected
    assert "beats dummy 0.62" in passed
