"""Every validation rule: a batch that trips it, and a clean batch under the same rules
that does not."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pytest
from freshet_contract.result import Check
from freshet_contract.run import RunValidation
from freshet_trainer.validation import RULES, Accepted, Refused, build_reference, validate

from .synthetic import classification_frame, regression_frame

Mutation = Callable[[pd.DataFrame], pd.DataFrame]


def reference_frames() -> list[tuple[str, pd.DataFrame]]:
    return [(f"in/ref{seed}.csv", classification_frame(400, seed=seed)) for seed in (1, 2)]


def clean() -> pd.DataFrame:
    return classification_frame(400, seed=3)


def _with_nan(column: str, share: float) -> Mutation:
    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        frame.loc[: int(len(frame) * share) - 1, column] = np.nan
        return frame

    return mutate


def _set_rows(column: str, share: float, value: Any) -> Mutation:
    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy().astype({column: object} if isinstance(value, str) else {})
        frame.loc[: int(len(frame) * share) - 1, column] = value
        return frame

    return mutate


def _duplicated(share: float) -> Mutation:
    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        return pd.concat([frame, frame.head(int(len(frame) * share))], ignore_index=True)

    return mutate


def _conflicting(share: float) -> Mutation:
    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        copies = frame.head(int(len(frame) * share)).assign(y=lambda f: 1 - f["y"])
        return pd.concat([frame, copies], ignore_index=True)

    return mutate


def _mostly_positive(frame: pd.DataFrame) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return frame.assign(y=(rng.random(len(frame)) < 0.85).astype(int))


STRICT: dict[str, Any] = {
    "schema": "Strict",
    "columns": [
        {"name": "x1", "type": "number", "nullable": False},
        {"name": "x2", "type": "number"},
        {"name": "color", "type": "string"},
        {"name": "y", "type": "integer"},
    ],
}


@dataclass(frozen=True)
class Case:
    rule: str
    code: str
    mutate: Mutation
    settings: dict[str, Any] = field(default_factory=dict)
    reference: bool = True


CASES = {
    "empty": Case("nonEmpty", "EmptyBatch", lambda f: f.head(0)),
    "label-missing": Case("labelPresent", "LabelMissing", lambda f: f.drop(columns="y")),
    "no-features": Case("hasFeatures", "NoFeatures", lambda f: f[["y"]]),
    "missing-column": Case("missingColumns", "MissingColumns", lambda f: f.drop(columns="x2")),
    "missing-declared-column": Case(
        "missingColumns", "MissingColumns", lambda f: f.drop(columns="x2"), STRICT, False
    ),
    "extra-column": Case("unexpectedColumns", "UnexpectedColumns", lambda f: f.assign(z=1.0)),
    "extra-undeclared-column": Case(
        "unexpectedColumns", "UnexpectedColumns", lambda f: f.assign(z=1.0), STRICT, False
    ),
    "text-in-numeric-column": Case("columnTypes", "TypeMismatch", _set_rows("x1", 0.05, "n/a")),
    "declared-type": Case(
        "columnTypes", "TypeMismatch", lambda f: f.assign(y=f["y"] + 0.5), STRICT, False
    ),
    "mixed-types-first-batch": Case(
        "columnTypes", "TypeMismatch", _set_rows("x1", 0.05, "n/a"), reference=False
    ),
    "nulls": Case("nullFraction", "NullFractionExceeded", _with_nan("x2", 0.10)),
    "nulls-first-batch-over-an-explicit-limit": Case(
        "nullFraction",
        "NullFractionExceeded",
        _with_nan("x2", 0.10),
        {"maxNullFraction": 0.05},
        reference=False,
    ),
    "null-in-non-nullable": Case(
        "nullFraction", "NullFractionExceeded", _with_nan("x1", 0.01), STRICT, False
    ),
    "infinity": Case("nonFiniteValues", "NonFiniteValues", _set_rows("x1", 0.01, np.inf)),
    "out-of-range": Case("outOfRange", "OutOfRangeValues", _set_rows("x1", 0.05, 1e6)),
    "unseen-category": Case("outOfRange", "OutOfRangeValues", _set_rows("color", 0.05, "mauve")),
    "duplicates": Case("duplicateRows", "DuplicateRows", _duplicated(0.10)),
    "all-labels-null": Case(
        "labelNotAllNull", "LabelAllNull", lambda f: f.assign(y=np.nan), reference=False
    ),
    "label-not-allowed": Case(
        "unknownLabels",
        "UnknownLabels",
        _set_rows("y", 0.01, 2),
        {"labelValues": ["0", "1"]},
        False,
    ),
    "label-not-in-reference": Case("unknownLabels", "UnknownLabels", _set_rows("y", 0.01, 2)),
    "conflicting-labels": Case("conflictingLabels", "ConflictingLabels", _conflicting(0.10)),
    "label-rate-shift": Case("labelRateShift", "LabelRateShift", _mostly_positive),
    "drift-ks": Case("featureDrift", "FeatureDrift", lambda f: f.assign(x1=f["x1"] + 1.0)),
    "drift-psi": Case(
        "featureDrift",
        "FeatureDrift",
        lambda f: f.assign(x1=f["x1"] + 1.0),
        {"drift": {"method": "PSI"}},
    ),
    "drift-js-categorical": Case(
        "featureDrift",
        "FeatureDrift",
        lambda f: f.assign(color="red"),
        {"maxOutOfRangeFraction": 1.0},
    ),
}


def judge(frame: pd.DataFrame, case: Case) -> Accepted | Refused:
    settings = RunValidation.model_validate(case.settings)
    reference = build_reference(reference_frames(), "y", True) if case.reference else None
    return validate(frame, label="y", classification=True, settings=settings, reference=reference)


def check_named(checks: list[Check], name: str) -> Check:
    (check,) = [c for c in checks if c.name == name]
    return check


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_rule_trips_on_a_bad_batch(case: Case) -> None:
    verdict = judge(case.mutate(clean()), case)

    assert isinstance(verdict, Refused), "the bad batch was accepted"
    check = check_named(verdict.checks, case.rule)
    assert (check.passed, check.skipped, check.code) == (False, False, case.code)
    assert case.code in verdict.message
    assert [c.name for c in verdict.checks] == [r.name for r in RULES]  # every rule recorded


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_rule_passes_a_clean_batch(case: Case) -> None:
    verdict = judge(clean(), case)

    assert isinstance(verdict, Accepted), getattr(verdict, "message", "")
    assert check_named(verdict.checks, case.rule).passed
    assert [c.name for c in verdict.checks] == [r.name for r in RULES]


def test_first_run_skips_the_reference_checks_instead_of_failing_them() -> None:
    shifted = clean().assign(x1=lambda f: f["x1"] + 5.0)

    verdict = validate(
        shifted, label="y", classification=True, settings=RunValidation(), reference=None
    )

    assert isinstance(verdict, Accepted)
    skipped = {c.name for c in verdict.checks if c.skipped}
    assert skipped == {
        "missingColumns",
        "unexpectedColumns",
        "nullFraction",  # no limit set: learned from a reference, and there is none
        "duplicateRows",
        "conflictingLabels",
        "outOfRange",
        "featureDrift",
        "unknownLabels",
        "labelRateShift",
    }
    assert all("no reference" in check_named(verdict.checks, n).message for n in skipped)


def test_figures_are_recorded_for_a_passing_batch() -> None:
    verdict = judge(clean(), Case("featureDrift", "FeatureDrift", lambda f: f))

    drift = check_named(verdict.checks, "featureDrift")
    assert {(f.column, f.method) for f in drift.columns} == {
        ("x1", "KS"),
        ("x2", "KS"),
        ("color", "JS"),
    }
    assert all(f.value is not None and f.p_value is not None for f in drift.columns)
    nulls = check_named(verdict.checks, "nullFraction")
    assert [f.reference for f in nulls.columns] == [0.0, 0.0, 0.0]


def test_a_column_normally_null_is_judged_against_its_reference() -> None:
    """30% null in the reference: 32% passes on referenceTolerance, 50% does not."""
    reference = [(k, _with_nan("x2", 0.30)(f)) for k, f in reference_frames()]
    profile = build_reference(reference, "y", True)
    settings = RunValidation()

    usual = validate(
        _with_nan("x2", 0.32)(clean()), label="y", classification=True, settings=settings,
        reference=profile,
    )  # fmt: skip
    worse = validate(
        _with_nan("x2", 0.50)(clean()), label="y", classification=True, settings=settings,
        reference=profile,
    )  # fmt: skip

    assert isinstance(usual, Accepted)
    assert isinstance(worse, Refused) and worse.reason == "NullFractionExceeded"
    assert check_named(worse.checks, "nullFraction").limit == pytest.approx(0.35)


def test_drift_disabled_is_recorded_as_skipped() -> None:
    case = Case("featureDrift", "FeatureDrift", lambda f: f, {"drift": {"method": "Disabled"}})
    verdict = judge(clean().assign(x1=lambda f: f["x1"] + 1.0), case)

    assert check_named(verdict.checks, "featureDrift").skipped


def test_regression_target_drift_is_a_feature_drift() -> None:
    reference = build_reference(
        [("a", regression_frame(400, seed=1)), ("b", regression_frame(400, seed=2))], "y", False
    )
    shifted = regression_frame(400, seed=3).assign(y=lambda f: f["y"] + 3.0)

    verdict = validate(
        shifted, label="y", classification=False, settings=RunValidation(), reference=reference
    )

    assert isinstance(verdict, Refused)
    drift = check_named(verdict.checks, "featureDrift")
    assert drift.column == "y" and not drift.passed
    assert check_named(verdict.checks, "labelRateShift").skipped
