"""The model artifact (`model.joblib`): what it holds and how it is loaded safely.

Unpickling runs code, so an artifact is only ever unpickled after its bytes
match a checksum that came from a trusted place (the run spec or Kubernetes),
never one read from the bucket next to it. The pickle holds a plain dict of
scikit-learn objects and builtins, so loading it needs scikit-learn but no
freshet class: a later trainer can still read an older model.
"""

from __future__ import annotations

import hashlib
import hmac
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

ARTIFACT_FORMAT = "freshet.dev/model/v1"


class ChecksumMismatch(ValueError):
    """The artifact's bytes are not the ones that were recorded."""

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f"sha256 is {actual}, expected {expected}")
        self.expected = expected
        self.actual = actual


class ArtifactUnreadable(ValueError):
    """The bytes passed the checksum but are not a freshet model artifact."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def feature_frame(
    frame: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str]
) -> pd.DataFrame:
    """The model's input columns in its order; absent ones are null (and imputed).

    Numeric columns are converted to numbers so a value the model cannot use
    fails here, with the column named, instead of deep inside a transformer.
    """
    features = frame.reindex(columns=[*numeric, *categorical])
    for column in numeric:
        try:
            features[column] = pd.to_numeric(features[column], errors="raise")
        except (ValueError, TypeError) as error:
            raise ValueError(f"column {column!r} must be numeric: {error}") from error
    return features


def feature_kinds(frame: pd.DataFrame, label: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(numeric, categorical) feature columns: numbers except booleans are numeric."""
    features = [name for name in frame.columns if name != label]
    numeric = tuple(
        name
        for name in features
        if pd.api.types.is_numeric_dtype(frame[name])
        and not pd.api.types.is_bool_dtype(frame[name])
    )
    return numeric, tuple(name for name in features if name not in numeric)


_VALUE_QUANTILES = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)


def value_buckets(target: pd.Series) -> tuple[float, ...]:
    """Distinct quantiles of a numeric training target, for a histogram of predictions."""
    values = pd.to_numeric(target, errors="coerce").dropna()
    if values.empty:
        return ()
    quantiles = np.quantile(values.to_numpy(dtype=np.float64), _VALUE_QUANTILES)
    return tuple(sorted({float(q) for q in quantiles if np.isfinite(q)}))


@dataclass(frozen=True)
class ModelArtifact:
    """A fitted pipeline plus the feature schema it was fitted on."""

    pipeline: Pipeline
    label: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    classification: bool
    holdout_bound: float | None = None
    """Rows whose holdout unit is below this were never fitted by this model, nor by a
    model it was warm-started from (see holdout.py); None in artifacts from before it
    was recorded."""
    value_buckets: tuple[float, ...] = ()
    """Regressors: quantiles of the training target, the server's histogram buckets
    for predicted values (so the distribution is visible at the model's own scale)."""

    def features(self, frame: pd.DataFrame) -> pd.DataFrame:
        return feature_frame(frame, self.numeric, self.categorical)

    @property
    def classes(self) -> list[Any] | None:
        """Class labels in the column order of predict_proba; None for a regressor."""
        if not self.classification:
            return None
        return list(np.asarray(self.pipeline.classes_).tolist())

    def dumps(self) -> bytes:
        buffer = io.BytesIO()
        joblib.dump(
            {
                "format": ARTIFACT_FORMAT,
                "pipeline": self.pipeline,
                "label": self.label,
                "numeric": list(self.numeric),
                "categorical": list(self.categorical),
                "classification": self.classification,
                "holdoutBound": self.holdout_bound,
                "valueBuckets": list(self.value_buckets),
            },
            buffer,
            compress=3,
        )
        return buffer.getvalue()

    @classmethod
    def loads_verified(cls, data: bytes, expected_sha256: str) -> ModelArtifact:
        """Verify the checksum, then unpickle; raises ChecksumMismatch or ArtifactUnreadable."""
        actual = sha256_hex(data)
        if not hmac.compare_digest(actual, expected_sha256.strip().lower()):
            raise ChecksumMismatch(expected_sha256, actual)
        try:
            content = joblib.load(io.BytesIO(data))
        except Exception as error:  # unpickling can fail in any way the pickle dictates
            raise ArtifactUnreadable(f"cannot unpickle model: {error!r}") from error
        if not isinstance(content, dict) or content.get("format") != ARTIFACT_FORMAT:
            raise ArtifactUnreadable(f"not a {ARTIFACT_FORMAT} artifact")
        try:
            artifact = cls(
                pipeline=content["pipeline"],
                label=str(content["label"]),
                numeric=tuple(content["numeric"]),
                categorical=tuple(content["categorical"]),
                classification=bool(content["classification"]),
                holdout_bound=_optional_float(content.get("holdoutBound")),
                value_buckets=tuple(float(v) for v in content.get("valueBuckets", ())),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ArtifactUnreadable(f"incomplete {ARTIFACT_FORMAT} artifact: {error!r}") from error
        if not isinstance(artifact.pipeline, Pipeline):
            raise ArtifactUnreadable("artifact holds no scikit-learn pipeline")
        return artifact


def _optional_float(value: object) -> float | None:
    if value is None:
        return None
    if not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return float(value)
