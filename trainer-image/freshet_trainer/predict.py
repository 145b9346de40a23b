"""The one way a model predicts rows: the model server and batch scoring both call
this, so a file scored in a Job gets what the server answers for the same rows.

Two paths give the same numbers. `predict` hands a frame to the fitted
scikit-learn pipeline. `Predictor` is the model server's: scikit-learn's
`ColumnTransformer` validates and converts its input per column and per step,
which costs a small request several milliseconds, far more than the estimator;
so when the fitted preprocessing is the trainer's own (`build_pipeline`:
impute and scale numbers, impute and one-hot encode categories) the server
applies its fitted statistics itself, on arrays built once per request column
by column, and gives the estimator the same matrix. Every `Predictor` checks on
load that both paths encode a probe of every category, missing values and
unknown values identically, and uses the pipeline's own path otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from freshet_trainer.artifact import ModelArtifact

log = logging.getLogger("freshet.predict")

Columns = Mapping[str, Sequence[Any]]
"""A request's rows by column: feature name -> one value per row (None when missing)."""


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
    return _estimate(model, model.pipeline[:-1].transform(features))


def _estimate(model: ModelArtifact, encoded: Any) -> Predictions:
    estimator = model.pipeline[-1]
    if model.classification and hasattr(estimator, "predict_proba"):
        probabilities = estimator.predict_proba(encoded)
        labels = np.asarray(estimator.classes_)[np.argmax(probabilities, axis=1)]
        return Predictions(labels, model.classes, probabilities)
    return Predictions(estimator.predict(encoded))


def columns_of(model: ModelArtifact, rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """JSON rows as the model's feature columns (an absent value is None)."""
    names = (*model.numeric, *model.categorical)
    return {column: [row.get(column) for row in rows] for column in names}


def rows_frame(model: ModelArtifact, rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """JSON rows as the model's input frame (what `model.features` would give)."""
    return columns_frame(model, columns_of(model, rows))


def columns_frame(model: ModelArtifact, columns: Columns) -> pd.DataFrame:
    """Feature columns as the model's input frame, built column by column with the
    training schema's types: numbers as float64 (None is NaN), categories as objects
    with None as NaN, which the pipeline's imputer fills as it filled the training
    file's empty cells, whatever else the request holds."""
    data: dict[str, Any] = {}
    for column in model.numeric:
        data[column] = _numbers(column, columns[column])
    for column in model.categorical:
        values = np.array(columns[column], dtype=object)
        values[_missing(values)] = np.nan
        data[column] = values
    return pd.DataFrame(data, copy=False)


def _numbers(column: str, values: Sequence[Any]) -> npt.NDArray[np.float64]:
    try:
        return np.array(values, dtype=np.float64)  # None is NaN
    except (ValueError, TypeError) as error:
        raise ValueError(f"column {column!r} must be numeric: {error}") from error


def _missing(values: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """None or NaN in an object array."""
    return np.fromiter((_absent(v) for v in values), dtype=bool, count=len(values))


def _absent(value: Any) -> bool:
    """None, or NaN (the one value that is not equal to itself)."""
    return value is None or value != value  # noqa: PLR0124


@dataclass(frozen=True)
class _Compiled:
    """The trainer's fitted preprocessing as array operations (see the module doc)."""

    numeric: tuple[str, ...]
    medians: npt.NDArray[np.float64]
    means: npt.NDArray[np.float64]
    scales: npt.NDArray[np.float64]
    numeric_at: slice
    categorical: tuple[str, ...]
    fills: tuple[Any, ...]
    """Per categorical column: the value a missing one is imputed to."""
    codes: tuple[dict[Any, int], ...]
    """Per categorical column: category -> its one-hot column in the output."""
    width: int

    def encode(self, columns: Columns, rows: int) -> npt.NDArray[np.float64]:
        out = np.zeros((rows, self.width), dtype=np.float64)
        if self.numeric:
            block = np.empty((rows, len(self.numeric)), dtype=np.float64)
            for j, column in enumerate(self.numeric):
                block[:, j] = _numbers(column, columns[column])
            missing = np.isnan(block)
            if np.isinf(block).any():
                raise ValueError("Input X contains infinity or a value too large for float64.")
            if missing.any():
                block = np.where(missing, self.medians, block)
            block -= self.means
            block /= self.scales
            out[:, self.numeric_at] = block
        for column, fill, codes in zip(self.categorical, self.fills, self.codes, strict=True):
            get = codes.get
            for i, given in enumerate(columns[column]):
                at = get(fill if given is None or given != given else given)  # noqa: PLR0124
                if at is not None:
                    out[i, at] = 1.0
        return out


def _compile(model: ModelArtifact) -> _Compiled | None:
    """The fitted preprocessing as `_Compiled`, or None when it is not the trainer's
    own shape (then the pipeline's own transform is used)."""
    pipeline = model.pipeline
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
        return None
    ct = pipeline.steps[0][1]
    if not isinstance(ct, ColumnTransformer) or getattr(ct, "sparse_output_", True):
        return None
    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    medians = means = scales = np.zeros(0)
    numeric_at = slice(0, 0)
    fills: tuple[Any, ...] = ()
    codes: tuple[dict[Any, int], ...] = ()
    width = 0
    for name, transformer, selected in ct.transformers_:
        at = ct.output_indices_[name]
        width = max(width, at.stop)
        if name == "remainder":
            if transformer != "drop" and len(selected):
                return None
            continue
        steps = [s for _, s in getattr(transformer, "steps", ())]
        if len(steps) != 2 or not _plain_imputer(steps[0]):
            return None
        imputer, second = steps
        columns = tuple(str(c) for c in selected)
        if isinstance(second, StandardScaler) and not numeric:
            if not (second.with_mean and second.with_std and second.scale_ is not None):
                return None
            medians = np.asarray(imputer.statistics_, dtype=np.float64)
            if not np.isfinite(medians).all() or len(medians) != len(columns):
                return None
            numeric, numeric_at = columns, at
            means = np.asarray(second.mean_, dtype=np.float64)
            scales = np.asarray(second.scale_, dtype=np.float64)
        elif isinstance(second, OneHotEncoder) and not categorical:
            if not _plain_encoder(second) or len(imputer.statistics_) != len(columns):
                return None
            categorical, fills = columns, tuple(imputer.statistics_)
            offset, tables = at.start, []
            for categories in second.categories_:
                tables.append({c: offset + k for k, c in enumerate(categories.tolist())})
                offset += len(categories)
            if offset != at.stop or any(_absent(f) for f in fills):
                return None
            codes = tuple(tables)
        else:
            return None
    if set(numeric) != set(model.numeric) or set(categorical) != set(model.categorical):
        return None
    return _Compiled(numeric, medians, means, scales, numeric_at, categorical, fills, codes, width)


def _plain_imputer(step: object) -> bool:
    missing = getattr(step, "missing_values", None)
    return (
        isinstance(step, SimpleImputer)
        and not step.add_indicator
        and isinstance(missing, float)
        and _absent(missing)
    )


def _plain_encoder(encoder: OneHotEncoder) -> bool:
    return (
        encoder.handle_unknown == "ignore"
        and encoder.drop is None
        and not encoder._infrequent_enabled
        and encoder.dtype in (np.float64, float)
        and all(c.dtype == object for c in encoder.categories_)
    )


class Predictor:
    """A loaded model's request path (the model server's): rows or columns in,
    `Predictions` out, with the estimator run once."""

    def __init__(self, model: ModelArtifact) -> None:
        self.model = model
        self.compiled = _compile(model)
        if self.compiled is not None and not self._agrees(self.compiled):
            log.warning("fast preprocessing disagrees with the pipeline; using the pipeline")
            self.compiled = None

    def rows(self, rows: Sequence[Mapping[str, Any]]) -> Predictions:
        return self.columns(columns_of(self.model, rows), len(rows))

    def columns(self, columns: Columns, rows: int) -> Predictions:
        """Predictions for ROWS rows given by column (every feature present)."""
        return _estimate(self.model, self.encode(columns, rows))

    def encode(self, columns: Columns, rows: int) -> Any:
        """The estimator's input matrix."""
        if self.compiled is not None:
            return self.compiled.encode(columns, rows)
        return self.model.pipeline[:-1].transform(columns_frame(self.model, columns))

    def _agrees(self, compiled: _Compiled) -> bool:
        """Both paths encode the same probe: every category, a missing value and an
        unknown one for each categorical column; medians, missing and extremes."""
        model = self.model
        height = max([3, *(len(c) + 3 for c in compiled.codes)])
        probe: dict[str, list[Any]] = {}
        for j, column in enumerate(compiled.numeric):
            median = float(compiled.medians[j])
            numbers: list[Any] = [median, None, median * 3 + 1.5, -1e6, 0.0]
            probe[column] = [numbers[i % len(numbers)] for i in range(height)]
        for column, codes in zip(compiled.categorical, compiled.codes, strict=True):
            categories: list[Any] = [*codes, None, float("nan"), "\x00unknown"]
            probe[column] = [categories[i % len(categories)] for i in range(height)]
        try:
            fast = compiled.encode(probe, height)
            slow = model.pipeline[:-1].transform(columns_frame(model, probe))
        except (ValueError, TypeError) as error:
            log.warning("fast preprocessing probe failed", extra={"error": str(error)})
            return False
        return (
            isinstance(slow, np.ndarray)
            and slow.shape == fast.shape
            and bool(np.array_equal(slow, fast))
        )
