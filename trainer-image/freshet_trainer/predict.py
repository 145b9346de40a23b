"""The one way a model predicts rows: the model server and batch scoring both call
this, so a file scored in a Job gets what the server answers for the same rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from freshet_trainer.artifact import ModelArtifact


@dataclass(frozen=True)
class Predictions:
    labels: npt.NDArray[Any]
    """`predict`: the class, or the value for a regressor."""
    classes: list[Any] | None = None
    probabilities: npt.NDArray[np.float64] | None = None
    """`predict_proba`, one column per class in `classes`; None for a regressor."""


def predict(model: ModelArtifact, frame: pd.DataFrame) -> Predictions:
    """Preprocess the rows once, then predict (and give class probabilities).

    Preprocessing dominates the cost of a small request, so it is not repeated
    for the probabilities; and a classifier's class is the most probable one, so
    the estimator runs once (`predict` is `classes_[argmax(predict_proba)]` for
    every classifier on the allow-list).
    """
    return predict_features(model, model.features(frame))


def predict_features(model: ModelArtifact, features: pd.DataFrame) -> Predictions:
    """`predict` for a frame that is already the model's input (`rows_frame`)."""
    encoded = model.pipeline[:-1].transform(features)
    estimator = model.pipeline[-1]
    if model.classification and hasattr(estimator, "predict_proba"):
        probabilities = estimator.predict_proba(encoded)
        labels = np.asarray(estimator.classes_)[np.argmax(probabilities, axis=1)]
        return Predictions(labels, model.classes, probabilities)
    return Predictions(estimator.predict(encoded))


def rows_frame(model: ModelArtifact, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """JSON rows as the model's input frame, built column by column with the training
    schema's types (what `model.features` would give, without a generic record
    frame, a reindex and a conversion per column: most of a small request's cost)."""
    data: dict[str, Any] = {}
    for column in model.numeric:
        values = [row.get(column) for row in rows]
        try:
            data[column] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        except (ValueError, TypeError) as error:
            raise ValueError(f"column {column!r} must be numeric: {error}") from error
    for column in model.categorical:
        data[column] = np.array([row.get(column) for row in rows], dtype=object)
    return pd.DataFrame(data, copy=False)
