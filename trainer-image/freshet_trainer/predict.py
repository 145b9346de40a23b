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
    for the probabilities.
    """
    encoded = model.pipeline[:-1].transform(model.features(frame))
    estimator = model.pipeline[-1]
    labels = estimator.predict(encoded)
    if model.classification and hasattr(estimator, "predict_proba"):
        return Predictions(labels, model.classes, estimator.predict_proba(encoded))
    return Predictions(labels)
