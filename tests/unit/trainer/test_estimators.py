"""Only allow-listed estimators with known, valid parameters are ever built."""

from __future__ import annotations

import pytest
from freshet_contract.run import RunEstimator
from freshet_trainer.estimators import (
    ALLOWED_ESTIMATORS,
    EstimatorRefused,
    build_estimator,
    build_pipeline,
)
from freshet_trainer.reasons import RunReason


def spec(class_name: str, **params: object) -> RunEstimator:
    return RunEstimator.model_validate({"class": class_name, "params": params})


@pytest.mark.parametrize("class_name", sorted(ALLOWED_ESTIMATORS))
def test_every_allowed_estimator_builds_with_the_seed(class_name: str) -> None:
    estimator = build_estimator(spec(class_name), seed=11)

    assert type(estimator) is ALLOWED_ESTIMATORS[class_name]
    params = estimator.get_params()
    if "random_state" in params:
        assert params["random_state"] == 11


@pytest.mark.parametrize(
    "class_name",
    [
        "os.system",
        "sklearn.svm.SVC",  # real, but not on the list
        "LogisticRegression",  # short names are not accepted
        "sklearn.linear_model._logistic.LogisticRegression",  # private path of an allowed class
    ],
)
def test_classes_off_the_list_are_refused(class_name: str) -> None:
    with pytest.raises(EstimatorRefused) as refused:
        build_estimator(spec(class_name), seed=0)

    assert refused.value.reason is RunReason.ESTIMATOR_NOT_ALLOWED


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"no_such_param": 1}, "no_such_param: unknown parameter"),
        ({"random_state": 3}, "set by training.seed"),
        ({"C": {"nested": 1}}, "only scalar values"),
        ({"C": -1.0}, "'C' parameter"),  # scikit-learn's own constraint, checked up front
        ({"max_iter": "many"}, "'max_iter' parameter"),
    ],
)
def test_bad_params_are_refused_before_training(params: dict[str, object], fragment: str) -> None:
    with pytest.raises(EstimatorRefused) as refused:
        build_estimator(spec("sklearn.linear_model.LogisticRegression", **params), seed=0)

    assert refused.value.reason is RunReason.INVALID_ESTIMATOR_PARAMS
    assert fragment in str(refused.value)


def test_pipeline_is_dense_only_for_estimators_that_need_it() -> None:
    sparse_ok = build_estimator(spec("sklearn.linear_model.LogisticRegression"), seed=0)
    dense_only = build_estimator(spec("sklearn.ensemble.HistGradientBoostingClassifier"), seed=0)

    assert build_pipeline(sparse_ok, ["a"], ["b"])[0].sparse_threshold > 0
    assert build_pipeline(dense_only, ["a"], ["b"])[0].sparse_threshold == 0
