"""The one prediction path (freshet_trainer.predict): the server's column-by-column
frame is what the model's own feature conversion gives, and the class is the most
probable one, as `predict` says."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from freshet_contract.run import RunEstimator
from freshet_trainer.estimators import build_estimator
from freshet_trainer.predict import predict, predict_features, rows_frame
from freshet_trainer.train import fit_model

from .synthetic import classification_frame

ROWS = [
    {"x1": 0.5, "x2": -1, "color": "red"},
    {"x1": None, "x2": 2.5, "color": None},
    {"x1": -2.0, "x2": 1.0, "color": "violet", "y": 1},
]


@pytest.mark.parametrize(
    "estimator",
    [
        "sklearn.linear_model.LogisticRegression",
        "sklearn.ensemble.HistGradientBoostingClassifier",
        "sklearn.ensemble.RandomForestClassifier",
    ],
)
def test_rows_frame_and_one_estimator_call_agree_with_predict(estimator: str) -> None:
    spec = RunEstimator.model_validate({"class": estimator})
    model = fit_model(build_estimator(spec, 0), classification_frame(300, seed=4), "y")
    fast = rows_frame(model, ROWS)
    slow = model.features(pd.DataFrame.from_records(ROWS))
    pd.testing.assert_frame_equal(fast, slow, check_dtype=False)
    made = predict_features(model, fast)
    assert made.probabilities is not None
    assert list(made.labels) == list(model.pipeline.predict(slow))
    assert np.allclose(made.probabilities, model.pipeline.predict_proba(slow))
    assert list(predict(model, pd.DataFrame.from_records(ROWS)).labels) == list(made.labels)


def test_a_value_that_is_not_a_number_names_its_column() -> None:
    spec = RunEstimator.model_validate({"class": "sklearn.linear_model.LogisticRegression"})
    model = fit_model(build_estimator(spec, 0), classification_frame(100, seed=5), "y")
    with pytest.raises(ValueError, match="column 'x1' must be numeric"):
        rows_frame(model, [{"x1": "lots", "x2": 1.0, "color": "red"}])
