"""Holdout metrics for a model, computed only where they are defined.

A metric that does not apply (roc_auc for a regressor, log_loss for a
classifier without probabilities, roc_auc when the holdout has one class) is
left out rather than reported as a number, so the gate never compares against
a placeholder. Every value is a finite float (the result is JSON).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)
from sklearn.pipeline import Pipeline

from freshet_trainer.artifact import ModelArtifact


def evaluate(model: ModelArtifact, holdout: pd.DataFrame) -> dict[str, float]:
    """The metrics of `model` on labeled rows `holdout` (label column included)."""
    features = model.features(holdout)
    truth = holdout[model.label].to_numpy()
    if model.classification:
        metrics = _classification(model.pipeline, features, truth)
    else:
        metrics = _regression(model.pipeline, features, truth)
    return {name: float(value) for name, value in metrics.items() if math.isfinite(value)}


def _classification(pipeline: Pipeline, features: pd.DataFrame, truth: Any) -> dict[str, float]:
    classes = list(pipeline.classes_)
    predicted = pipeline.predict(features)
    seen = set(np.unique(truth).tolist())
    known = seen <= set(classes)
    binary = len(classes) == 2 and known
    metrics = {"accuracy": accuracy_score(truth, predicted)}
    if binary:
        metrics["f1"] = f1_score(truth, predicted, pos_label=classes[1], average="binary")
    else:
        metrics["f1"] = f1_score(truth, predicted, average="macro")

    scores: Any = None
    if hasattr(pipeline, "predict_proba"):
        scores = pipeline.predict_proba(features)
        if known:
            metrics["log_loss"] = log_loss(truth, scores, labels=classes)
    if binary and len(seen) == 2:
        positive = np.asarray(truth == classes[1])
        if scores is not None:
            metrics["roc_auc"] = roc_auc_score(positive, scores[:, 1])
        elif hasattr(pipeline, "decision_function"):
            metrics["roc_auc"] = roc_auc_score(positive, pipeline.decision_function(features))
    elif len(classes) > 2 and scores is not None and seen == set(classes):
        metrics["roc_auc"] = roc_auc_score(truth, scores, multi_class="ovr", labels=classes)
    return metrics


def _regression(pipeline: Pipeline, features: pd.DataFrame, truth: Any) -> dict[str, float]:
    truth = np.asarray(truth, dtype=np.float64)
    predicted = pipeline.predict(features)
    metrics = {
        "rmse": root_mean_squared_error(truth, predicted),
        "mae": mean_absolute_error(truth, predicted),
    }
    if len(truth) >= 2:
        metrics["r2"] = r2_score(truth, predicted)
    return metrics
