"""Warm start: how each estimator continues the serving model, and when it declines."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from freshet_contract.run import RunEstimator
from freshet_trainer.artifact import ModelArtifact, sha256_hex
from freshet_trainer.estimators import ESTIMATOR_STEP, PREPROCESS_STEP, build_estimator
from freshet_trainer.reasons import RunFailed, RunReason
from freshet_trainer.train import fit_model
from freshet_trainer.warmstart import Continued, Method, WarmStart, continue_fit, method_for
from sklearn.base import BaseEstimator

from .synthetic import classification_frame, regression_frame

OLD, NEW = classification_frame(400, seed=1), classification_frame(300, seed=2)


def estimator(class_name: str, seed: int = 3, **params: Any) -> BaseEstimator:
    spec = RunEstimator.model_validate({"class": class_name, "params": params})
    return build_estimator(spec, seed)


def baseline(class_name: str, frame: pd.DataFrame = OLD, **params: Any) -> ModelArtifact:
    return fit_model(estimator(class_name, seed=0, **params), frame, "y", holdout_bound=0.2)


def go(
    base: ModelArtifact,
    wanted: BaseEstimator,
    train: pd.DataFrame,
    new: pd.DataFrame | None = None,
    max_size: int | None = None,
) -> Continued | WarmStart:
    return continue_fit(
        base,
        "v1",
        wanted,
        train=train,
        new_train=train if new is None else new,
        label="y",
        max_size=max_size,
    )


def applied(outcome: Continued | WarmStart) -> Continued:
    assert isinstance(outcome, Continued), outcome
    return outcome


@pytest.mark.parametrize("class_name", ["SGDClassifier", "SGDRegressor"])
def test_sgd_continues_with_partial_fit_on_new_rows_and_the_baseline_encoding(
    class_name: str,
) -> None:
    frame = OLD if class_name == "SGDClassifier" else regression_frame(400, seed=1)
    new = NEW if class_name == "SGDClassifier" else regression_frame(300, seed=2)
    full = f"sklearn.linear_model.{class_name}"
    base = baseline(full, frame)
    before = base.pipeline.named_steps[ESTIMATOR_STEP]
    coef, steps = before.coef_.copy(), before.t_

    result = applied(go(base, estimator(full), train=pd.concat([frame, new]), new=new))

    assert (result.record.method, result.record.rows) == (Method.PARTIAL_FIT, 300)
    after = result.model.pipeline.named_steps[ESTIMATOR_STEP]
    assert after.t_ == steps + 300  # one more pass, over the new rows only
    assert not np.array_equal(after.coef_, coef)
    assert np.array_equal(before.coef_, coef)  # the baseline itself is untouched
    scaler = result.model.pipeline.named_steps[PREPROCESS_STEP].named_transformers_["numeric"]
    base_scaler = base.pipeline.named_steps[PREPROCESS_STEP].named_transformers_["numeric"]
    assert np.array_equal(scaler["scale"].mean_, base_scaler["scale"].mean_)  # not refitted
    again = applied(go(base, estimator(full), train=pd.concat([frame, new]), new=new))
    assert sha256_hex(again.model.dumps()) == sha256_hex(result.model.dumps())


@pytest.mark.parametrize(
    ("class_name", "params", "before", "after"),
    [
        ("sklearn.ensemble.RandomForestClassifier", {"n_estimators": 10}, 10, 20),
        ("sklearn.ensemble.GradientBoostingClassifier", {"n_estimators": 10}, 10, 20),
        ("sklearn.ensemble.HistGradientBoostingClassifier", {"max_iter": 10}, 10, 20),
    ],
)
def test_ensembles_grow_and_keep_their_old_members(
    class_name: str, params: dict[str, Any], before: int, after: int
) -> None:
    base = baseline(class_name, **params)

    result = applied(go(base, estimator(class_name, **params), train=NEW))

    assert result.record.method == Method.GROW
    assert (result.record.size_before, result.record.size_after) == (before, after)
    assert result.record.to_manifest()["applied"] is True
    if class_name.endswith("RandomForestClassifier"):
        old, grown = (m.pipeline.named_steps[ESTIMATOR_STEP] for m in (base, result.model))
        probe = base.pipeline.named_steps[PREPROCESS_STEP].transform(base.features(NEW))
        assert all(
            np.array_equal(a.predict(probe), b.predict(probe))
            for a, b in zip(old.estimators_, grown.estimators_[:before], strict=True)
        )


def test_grown_forest_is_deterministic_for_a_seed() -> None:
    name = "sklearn.ensemble.RandomForestRegressor"
    base = baseline(name, regression_frame(300, seed=1), n_estimators=5)
    new = regression_frame(200, seed=2)

    first = applied(go(base, estimator(name, n_estimators=5), train=new))
    second = applied(go(base, estimator(name, n_estimators=5), train=new))

    assert sha256_hex(first.model.dumps()) == sha256_hex(second.model.dumps())
    assert first.model.value_buckets  # regressors carry their prediction buckets


def test_logistic_regression_starts_the_solver_from_the_baseline() -> None:
    name = "sklearn.linear_model.LogisticRegression"
    base = baseline(name)

    result = applied(go(base, estimator(name), train=pd.concat([OLD, NEW])))

    assert (result.record.method, result.record.size_after) == (Method.INITIALIZE, None)
    assert result.model.pipeline.named_steps[ESTIMATOR_STEP].warm_start is True


@pytest.mark.parametrize(
    ("class_name", "params"),
    [
        ("sklearn.linear_model.LinearRegression", {}),
        ("sklearn.linear_model.Ridge", {}),
        ("sklearn.dummy.DummyClassifier", {}),
        ("sklearn.dummy.DummyRegressor", {}),
        ("sklearn.linear_model.LogisticRegression", {"solver": "liblinear"}),
    ],
)
def test_estimators_that_cannot_continue_are_refused(
    class_name: str, params: dict[str, Any]
) -> None:
    with pytest.raises(RunFailed) as refused:
        method_for(estimator(class_name, **params))
    assert refused.value.reason == RunReason.WARM_START_UNSUPPORTED


SGD = "sklearn.linear_model.SGDClassifier"


@pytest.mark.parametrize(
    ("wanted", "train", "new", "why"),
    [
        (estimator("sklearn.linear_model.LogisticRegression"), NEW, NEW, "serving model is a"),
        (estimator(SGD, alpha=0.01), NEW, NEW, "parameters changed: alpha"),
        (estimator(SGD), NEW.assign(x3=1.0), NEW.assign(x3=1.0), "feature columns changed"),
        (estimator(SGD), NEW.assign(y=NEW["y"] + 5), NEW.assign(y=NEW["y"] + 5), "classes"),
        (estimator(SGD), NEW, NEW.iloc[:0], "no new training rows"),
    ],
    ids=["other class", "other params", "other features", "unknown classes", "no new rows"],
)
def test_an_incompatible_baseline_declines_with_a_reason(
    wanted: BaseEstimator, train: pd.DataFrame, new: pd.DataFrame, why: str
) -> None:
    outcome = go(baseline(SGD), wanted, train=train, new=new)

    assert isinstance(outcome, WarmStart)
    assert not outcome.applied and why in outcome.reason


def test_grow_needs_exactly_the_baselines_classes() -> None:
    name = "sklearn.ensemble.RandomForestClassifier"
    one_class = NEW[NEW["y"] == 1]

    outcome = go(baseline(name, n_estimators=5), estimator(name, n_estimators=5), one_class)

    assert isinstance(outcome, WarmStart) and "classes" in outcome.reason


def test_a_capped_forest_drops_its_oldest_trees() -> None:
    name = "sklearn.ensemble.RandomForestClassifier"
    base = baseline(name, n_estimators=10)

    result = applied(go(base, estimator(name, n_estimators=10), train=NEW, max_size=15))

    assert (result.record.size_before, result.record.size_after) == (10, 15)
    old, capped = (m.pipeline.named_steps[ESTIMATOR_STEP] for m in (base, result.model))
    assert capped.n_estimators == 15
    probe = base.pipeline.named_steps[PREPROCESS_STEP].transform(base.features(NEW))
    # The five oldest trees are gone; the next five of the baseline come first.
    assert all(
        np.array_equal(a.predict(probe), b.predict(probe))
        for a, b in zip(old.estimators_[5:], capped.estimators_[:5], strict=True)
    )
    # Grown again, it stays at the cap.
    again = applied(go(result.model, estimator(name, n_estimators=10), train=OLD, max_size=15))
    assert (again.record.size_before, again.record.size_after) == (15, 15)


@pytest.mark.parametrize(
    ("class_name", "param"),
    [
        ("sklearn.ensemble.GradientBoostingClassifier", "n_estimators"),
        ("sklearn.ensemble.HistGradientBoostingClassifier", "max_iter"),
    ],
)
def test_a_boosted_ensemble_that_would_outgrow_the_cap_is_fitted_from_scratch(
    class_name: str, param: str
) -> None:
    base = baseline(class_name, **{param: 10})

    declined = go(base, estimator(class_name, **{param: 10}), train=NEW, max_size=15)
    within = go(base, estimator(class_name, **{param: 10}), train=NEW, max_size=20)

    assert isinstance(declined, WarmStart) and not declined.applied
    assert declined.reason == (
        "20 stages would exceed training.maxEnsembleSize 15; boosting stages cannot be dropped"
    )
    assert applied(within).record.size_after == 20
