"""Continuing the serving model instead of fitting from scratch (`training.warmStart`).

What each allowed estimator does when a run warm-starts from the serving model:

- `SGDClassifier`, `SGDRegressor` (*partialFit*): one `partial_fit` pass over
  the training rows of the run's new batches (`data.newBatches`), continuing
  the baseline's weights and its learning-rate schedule (`t_`). This is online
  learning: a run costs the new rows, not the history.
- `RandomForestClassifier`, `RandomForestRegressor` (*grow*): `warm_start=True`
  and `n_estimators` raised by the spec's `n_estimators` (default 100): that
  many new trees are fitted on the window's training rows and the old trees are
  kept unchanged, so the forest, and its prediction cost, grows every run,
  unless `training.maxEnsembleSize` caps it: then the oldest trees (fitted on
  the oldest data) are dropped. The trees of a forest are independent, so what
  remains is a forest over more recent windows.
- `GradientBoostingClassifier` (*grow*): `warm_start=True` and `n_estimators`
  raised by the spec's `n_estimators`: the new stages fit the residual of the
  current ensemble on the window; the prior (the first model's `init`) stays.
- `HistGradientBoostingClassifier`, `HistGradientBoostingRegressor` (*grow*):
  `warm_start=True` and `max_iter` raised by the spec's `max_iter`, as above.
  Boosting stages fit each other's residuals and cannot be dropped: one that
  would outgrow `training.maxEnsembleSize` is fitted from scratch instead.
  scikit-learn re-bins the features on the new rows and scores the existing
  trees through their bin thresholds, so when feature quantiles have moved the
  new iterations fit a slightly stale residual; predictions use the real-valued
  thresholds and are unaffected.
- `LogisticRegression` (*initialize*): `warm_start=True`: the solver starts from
  the baseline's coefficients and fits the window's training rows. The problem
  is convex, so this converges to the cold fit's optimum, in fewer iterations.
  The `liblinear` solver ignores warm start and is refused.
- `LinearRegression`, `Ridge`, `DummyClassifier`, `DummyRegressor`: refused
  (closed-form solutions, nothing to continue); the CRD refuses them at
  admission, so this only meets a hand-written run spec.

In every case the baseline's fitted preprocessing (medians, scaling, one-hot
categories) is reused as it is, never refitted: the baseline's weights and
trees are defined over exactly that encoding. A category first seen after it
was fitted therefore encodes as all zeros along a warm-started lineage until
a cold start relearns the encoding.

A baseline that cannot be continued (another estimator class or other
parameters, other feature columns or classes, no new rows) makes the run fit
from scratch instead; the manifest records whether warm start was applied,
how, and otherwise why not.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, SGDClassifier, SGDRegressor
from sklearn.pipeline import Pipeline

from freshet_trainer.artifact import ModelArtifact, feature_kinds, value_buckets
from freshet_trainer.estimators import ESTIMATOR_STEP, PREPROCESS_STEP
from freshet_trainer.reasons import RunFailed, RunReason


class Method(StrEnum):
    PARTIAL_FIT = "partialFit"
    GROW = "grow"
    INITIALIZE = "initialize"


_GROWTH_PARAM: dict[type[BaseEstimator], str] = {
    RandomForestClassifier: "n_estimators",
    RandomForestRegressor: "n_estimators",
    GradientBoostingClassifier: "n_estimators",
    HistGradientBoostingClassifier: "max_iter",
    HistGradientBoostingRegressor: "max_iter",
}
_IGNORED_PARAMS = frozenset({"random_state", "warm_start"})
_FORESTS = (RandomForestClassifier, RandomForestRegressor)


def method_for(estimator: BaseEstimator) -> Method:
    """How this estimator continues a fitted one; refuses the ones that cannot."""
    cls = type(estimator)
    if cls in {SGDClassifier, SGDRegressor}:
        return Method.PARTIAL_FIT
    if cls in _GROWTH_PARAM:
        return Method.GROW
    if cls is LogisticRegression and estimator.get_params()["solver"] != "liblinear":
        return Method.INITIALIZE
    raise RunFailed(
        RunReason.WARM_START_UNSUPPORTED,
        f"training.warmStart is not supported by {cls.__name__}"
        + (" with solver liblinear" if cls is LogisticRegression else ""),
    )


@dataclass(frozen=True)
class WarmStart:
    """What warm start did in a run, as recorded in the manifest."""

    requested: bool
    applied: bool = False
    method: Method | None = None
    baseline: str | None = None
    """The version continued from."""
    reason: str = ""
    """Why it was not applied, when requested."""
    rows: int = 0
    """Rows the continuation was fitted on."""
    size_before: int | None = None
    size_after: int | None = None
    """Trees or boosting iterations before and after, for *grow*."""

    def to_manifest(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "applied": self.applied,
            "method": None if self.method is None else str(self.method),
            "baseline": self.baseline,
            "reason": self.reason,
            "rows": self.rows,
            "sizeBefore": self.size_before,
            "sizeAfter": self.size_after,
        }


@dataclass(frozen=True)
class Continued:
    model: ModelArtifact
    record: WarmStart


def continue_fit(
    baseline: ModelArtifact,
    version: str,
    estimator: BaseEstimator,
    *,
    train: pd.DataFrame,
    new_train: pd.DataFrame,
    label: str,
    max_size: int | None = None,
) -> Continued | WarmStart:
    """Continue `baseline` with `estimator`'s settings; a WarmStart record says why not.

    `train` holds the window's training rows, `new_train` those of the new
    batches (both with the label column). `estimator` is the spec's, unfitted,
    with the run's seed as random_state; `baseline` is never modified.
    `max_size` is `training.maxEnsembleSize`.
    """
    method = method_for(estimator)

    def declined(reason: str) -> WarmStart:
        return WarmStart(requested=True, method=method, baseline=version, reason=reason)

    fitted = baseline.pipeline.named_steps[ESTIMATOR_STEP]
    if type(fitted) is not type(estimator):
        return declined(
            f"serving model is a {type(fitted).__name__}, the spec asks for "
            f"{type(estimator).__name__}"
        )
    changed = _changed_params(fitted, estimator, _GROWTH_PARAM.get(type(estimator)))
    if changed:
        return declined(f"estimator parameters changed: {', '.join(changed)}")
    numeric, categorical = feature_kinds(train, label)
    if set(numeric) != set(baseline.numeric) or set(categorical) != set(baseline.categorical):
        return declined(
            f"feature columns changed: numeric {sorted(numeric)} categorical "
            f"{sorted(categorical)}, serving model has {sorted(baseline.numeric)} and "
            f"{sorted(baseline.categorical)}"
        )
    rows = new_train if method is Method.PARTIAL_FIT else train
    if rows.empty:
        return declined("no new training rows to continue with")
    target = _target(rows[label], baseline.classification)
    if baseline.classification:
        known, seen = set(baseline.classes or ()), set(np.unique(target).tolist())
        fits = seen <= known if method is Method.PARTIAL_FIT else seen == known
        if not fits:
            return declined(f"classes {sorted(seen, key=str)} vs serving {sorted(known, key=str)}")

    growth = _GROWTH_PARAM.get(type(estimator))
    if growth is not None and max_size is not None and not isinstance(estimator, _FORESTS):
        grown = _size(fitted) + int(estimator.get_params()[growth])
        if grown > max_size:
            return declined(
                f"{grown} stages would exceed training.maxEnsembleSize {max_size}; boosting"
                " stages cannot be dropped"
            )

    pipeline = _copy(baseline.pipeline)
    features = pipeline.named_steps[PREPROCESS_STEP].transform(baseline.features(rows))
    continued = pipeline.named_steps[ESTIMATOR_STEP]
    size_before = size_after = None
    if method is Method.PARTIAL_FIT:
        continued.set_params(random_state=estimator.get_params()["random_state"])
        continued.partial_fit(features, target)
    else:
        params: dict[str, Any] = {"warm_start": True}
        if growth is not None:
            size_before = _size(continued)
            size_after = size_before + int(estimator.get_params()[growth])
            params[growth] = size_after
            params["random_state"] = estimator.get_params()["random_state"]
        continued.set_params(**params)
        continued.fit(features, target)
        if max_size is not None and isinstance(continued, _FORESTS):
            _keep_newest_trees(continued, max_size)
        if growth is not None:
            size_after = _size(continued)
    model = ModelArtifact(
        pipeline=pipeline,
        label=baseline.label,
        numeric=baseline.numeric,
        categorical=baseline.categorical,
        classification=baseline.classification,
        holdout_bound=baseline.holdout_bound,
        value_buckets=() if baseline.classification else value_buckets(train[label]),
    )
    record = WarmStart(
        requested=True,
        applied=True,
        method=method,
        baseline=version,
        rows=len(rows),
        size_before=size_before,
        size_after=size_after,
    )
    return Continued(model, record)


def _copy(pipeline: Pipeline) -> Pipeline:
    """An independent copy through pickle, byte-stable unlike `copy.deepcopy`.

    numpy's deepcopy of the trees' structured node arrays leaves their padding
    bytes undefined, so the same continuation would pickle to different bytes;
    unpickling copies the bytes whole.
    """
    copied: Pipeline = pickle.loads(pickle.dumps(pipeline, protocol=pickle.HIGHEST_PROTOCOL))
    return copied


def _changed_params(fitted: BaseEstimator, wanted: BaseEstimator, growth: str | None) -> list[str]:
    ignored = _IGNORED_PARAMS | ({growth} if growth else set())
    before, after = fitted.get_params(deep=False), wanted.get_params(deep=False)
    return sorted(
        f"{name} {before.get(name)!r} -> {after[name]!r}"
        for name in after
        if name not in ignored and before.get(name) != after[name]
    )


def _target(values: pd.Series, classification: bool) -> Any:
    return values if classification else pd.to_numeric(values, errors="raise")


def _keep_newest_trees(forest: RandomForestClassifier | RandomForestRegressor, most: int) -> None:
    """Drop the oldest trees beyond `most`; `n_estimators` follows so the next growth adds."""
    if len(forest.estimators_) > most:
        forest.estimators_ = forest.estimators_[-most:]
        forest.set_params(n_estimators=most)


def _size(estimator: BaseEstimator) -> int:
    """Trees (forests), fitted stages (GradientBoosting) or iterations (HistGradientBoosting)."""
    if hasattr(estimator, "n_iter_") and not hasattr(estimator, "estimators_"):
        return int(estimator.n_iter_)
    return len(estimator.estimators_)
