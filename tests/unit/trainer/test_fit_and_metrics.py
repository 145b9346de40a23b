"""Fitting is reproducible, artifacts load only with their checksum, metrics fit the task."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from freshet_contract.run import RunEstimator
from freshet_trainer.artifact import ChecksumMismatch, ModelArtifact, sha256_hex
from freshet_trainer.estimators import build_estimator
from freshet_trainer.metrics import evaluate
from freshet_trainer.train import fit_model

from .synthetic import classification_frame, multiclass_frame, regression_frame


def fit(class_name: str, frame: pd.DataFrame, seed: int = 0, **params: object) -> ModelArtifact:
    spec = RunEstimator.model_validate({"class": class_name, "params": params})
    return fit_model(build_estimator(spec, seed), frame, "y")


@pytest.mark.parametrize(
    ("class_name", "params"),
    [
        ("sklearn.ensemble.RandomForestClassifier", {"n_estimators": 20}),
        ("sklearn.ensemble.HistGradientBoostingClassifier", {"max_iter": 20}),
        ("sklearn.linear_model.SGDClassifier", {"loss": "log_loss"}),
    ],
)
def test_same_seed_same_predictions_and_bytes(class_name: str, params: dict[str, object]) -> None:
    train, probe = classification_frame(400, seed=1), classification_frame(100, seed=2)

    first = fit(class_name, train, seed=5, **params)
    second = fit(class_name, train, seed=5, **params)

    assert np.array_equal(
        first.pipeline.predict_proba(first.features(probe)),
        second.pipeline.predict_proba(second.features(probe)),
    )
    assert sha256_hex(first.dumps()) == sha256_hex(second.dumps())


def test_artifact_loads_only_with_its_checksum() -> None:
    model = fit("sklearn.linear_model.LogisticRegression", classification_frame(200, seed=1))
    data = model.dumps()

    loaded = ModelArtifact.loads_verified(data, sha256_hex(data))

    assert (loaded.numeric, loaded.categorical, loaded.classes) == (
        ("x1", "x2"),
        ("color",),
        [0, 1],
    )
    with pytest.raises(ChecksumMismatch):
        ModelArtifact.loads_verified(data + b"\0", sha256_hex(data))


def test_binary_classifier_metrics() -> None:
    model = fit("sklearn.linear_model.LogisticRegression", classification_frame(600, seed=1))

    metrics = evaluate(model, classification_frame(300, seed=2))

    assert set(metrics) == {"accuracy", "f1", "roc_auc", "log_loss"}
    assert metrics["accuracy"] > 0.8 and metrics["roc_auc"] > 0.9
    assert 0 < metrics["log_loss"] < 0.5


def test_multiclass_metrics_use_macro_f1_and_one_vs_rest_auc() -> None:
    model = fit("sklearn.ensemble.RandomForestClassifier", multiclass_frame(600, seed=1))

    metrics = evaluate(model, multiclass_frame(300, seed=2))

    assert set(metrics) == {"accuracy", "f1", "roc_auc", "log_loss"}
    assert metrics["roc_auc"] > 0.9


def test_metrics_that_do_not_apply_are_left_out() -> None:
    hinge = fit(
        "sklearn.linear_model.SGDClassifier", classification_frame(400, seed=1), loss="hinge"
    )
    one_class_holdout = classification_frame(300, seed=2).assign(y=1)

    assert set(evaluate(hinge, classification_frame(200, seed=2))) == {"accuracy", "f1", "roc_auc"}
    assert "roc_auc" not in evaluate(hinge, one_class_holdout)


def test_regressor_metrics() -> None:
    model = fit("sklearn.linear_model.Ridge", regression_frame(400, seed=1))

    metrics = evaluate(model, regression_frame(200, seed=2))

    assert set(metrics) == {"rmse", "mae", "r2"}
    assert metrics["r2"] > 0.95 and metrics["mae"] < metrics["rmse"] < 0.5
