"""Which estimators a run spec may ask for, and the pipeline around them.

A run spec is data written by whoever can edit a TrainingPolicy; importing a
class path taken from it would let that person run arbitrary code in the
trainer. So the spec names a class from a fixed allow-list, and its parameters
are checked against that class (names and, through scikit-learn's own
constraints, values) before any data is read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from freshet_contract.run import RunEstimator
from pydantic import JsonValue
from sklearn.base import BaseEstimator, is_classifier
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import (
    LinearRegression,
    LogisticRegression,
    Ridge,
    SGDClassifier,
    SGDRegressor,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils import get_tags

from freshet_trainer.reasons import RunFailed, RunReason

ALLOWED_ESTIMATORS: Mapping[str, type[BaseEstimator]] = {
    "sklearn.linear_model.LogisticRegression": LogisticRegression,
    "sklearn.linear_model.SGDClassifier": SGDClassifier,
    "sklearn.ensemble.RandomForestClassifier": RandomForestClassifier,
    "sklearn.ensemble.GradientBoostingClassifier": GradientBoostingClassifier,
    "sklearn.ensemble.HistGradientBoostingClassifier": HistGradientBoostingClassifier,
    "sklearn.linear_model.LinearRegression": LinearRegression,
    "sklearn.linear_model.Ridge": Ridge,
    "sklearn.linear_model.SGDRegressor": SGDRegressor,
    "sklearn.ensemble.RandomForestRegressor": RandomForestRegressor,
    "sklearn.ensemble.HistGradientBoostingRegressor": HistGradientBoostingRegressor,
    "sklearn.dummy.DummyClassifier": DummyClassifier,
    "sklearn.dummy.DummyRegressor": DummyRegressor,
}
"""Public class path (as in scikit-learn's docs) → class: the only classes a spec can name."""

PREPROCESS_STEP = "preprocess"
ESTIMATOR_STEP = "estimator"


class EstimatorRefused(RunFailed):
    """The spec's estimator may not be built."""


def build_estimator(spec: RunEstimator, seed: int) -> BaseEstimator:
    """An unfitted, validated estimator; the run's seed becomes its random_state."""
    cls = ALLOWED_ESTIMATORS.get(spec.class_name)
    if cls is None:
        raise EstimatorRefused(
            RunReason.ESTIMATOR_NOT_ALLOWED,
            f"estimator {spec.class_name!r} is not allowed; allowed: "
            f"{', '.join(sorted(ALLOWED_ESTIMATORS))}",
        )
    accepted = cls().get_params(deep=False)
    problems = [
        f"{name}: {problem}"
        for name, value in spec.params.items()
        if (problem := _param_problem(name, value, accepted)) is not None
    ]
    if problems:
        raise EstimatorRefused(
            RunReason.INVALID_ESTIMATOR_PARAMS,
            f"{spec.class_name}: {'; '.join(sorted(problems))}",
        )
    params: dict[str, JsonValue] = dict(spec.params)
    if "random_state" in accepted:
        params["random_state"] = seed
    estimator = cls(**params)
    try:
        # The same constraint check fit() starts with, run now so a bad value is
        # refused before any data is downloaded. Pinned scikit-learn; see tests.
        estimator._validate_params()
    except (ValueError, TypeError) as error:  # InvalidParameterError is both
        raise EstimatorRefused(RunReason.INVALID_ESTIMATOR_PARAMS, str(error)) from error
    return estimator


def _param_problem(name: str, value: JsonValue, accepted: Mapping[str, object]) -> str | None:
    if name == "random_state":
        return "set by training.seed, not by params"
    if name not in accepted:
        return "unknown parameter"
    if isinstance(value, dict | list):
        return "only scalar values are accepted"
    return None


def build_pipeline(
    estimator: BaseEstimator, numeric: Sequence[str], categorical: Sequence[str]
) -> Pipeline:
    """Impute and scale numbers, impute and one-hot encode categories, then the estimator.

    Unknown categories at prediction time encode as all zeros instead of failing:
    new values are normal in a live stream. Estimators that cannot take sparse
    input get a dense matrix.
    """
    transformers = []
    if numeric:
        numeric_steps = Pipeline(
            [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
        )
        transformers.append(("numeric", numeric_steps, list(numeric)))
    if categorical:
        categorical_steps = Pipeline(
            [
                ("impute", SimpleImputer(strategy="most_frequent")),
                ("onehot", OneHotEncoder(handle_unknown="ignore")),
            ]
        )
        transformers.append(("categorical", categorical_steps, list(categorical)))
    sparse_threshold = 0.3 if get_tags(estimator).input_tags.sparse else 0.0
    preprocess = ColumnTransformer(transformers, sparse_threshold=sparse_threshold)
    return Pipeline([(PREPROCESS_STEP, preprocess), (ESTIMATOR_STEP, estimator)])


def dummy_estimator(classification: bool) -> BaseEstimator:
    """The baseline every candidate must beat: the majority class, or the mean target.

    A model that does no better than this has learned nothing from the features,
    however good its numbers look on an imbalanced or low-variance holdout.
    """
    if classification:
        return DummyClassifier(strategy="most_frequent")
    return DummyRegressor(strategy="mean")


def is_classification(estimator: BaseEstimator) -> bool:
    """Whether the estimator predicts classes (else a number)."""
    return bool(is_classifier(estimator))
