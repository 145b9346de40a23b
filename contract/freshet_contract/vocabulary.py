"""The words both documents are made of: enumerations and constrained values.

Every enumeration here is the one definition of that term: the operator's
policy model (``freshet.spec``) re-exports them, so a value the CRD admits,
the value the operator sends and the value the trainer acts on cannot drift
apart. They are ``StrEnum`` so that a member is its wire string (``"Hold"``).

The documents are parsed strictly apart from unknown fields (see
``document``), and a strict model only takes enum *members* from Python
objects; ``Lax[...]`` lets an enum field also take its wire string, which is
what ``json.loads`` hands over.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal, TypeVar

from pydantic import AfterValidator, BeforeValidator, Field, Strict

_T = TypeVar("_T")
Lax = Annotated[_T, Strict(False)]
"""An enum field that takes its member or the member's wire string."""


class DataFormat(StrEnum):
    CSV = "csv"
    PARQUET = "parquet"
    JSONL = "jsonl"


class Metric(StrEnum):
    ACCURACY = "accuracy"
    ROC_AUC = "roc_auc"
    F1 = "f1"
    LOG_LOSS = "log_loss"
    RMSE = "rmse"
    MAE = "mae"
    R2 = "r2"

    @property
    def higher_is_better(self) -> bool:
        """Errors and losses shrink as the model improves; scores grow."""
        return self not in _LOWER_IS_BETTER

    @property
    def bounded_by_one(self) -> bool:
        """Scores in [0, 1], where a threshold above 1 can never be met."""
        return self in _UNIT_INTERVAL

    @property
    def for_regression(self) -> bool:
        """Computed for regressors; the others for classifiers (freshet_trainer.metrics)."""
        return self in _REGRESSION


_LOWER_IS_BETTER = frozenset({Metric.LOG_LOSS, Metric.RMSE, Metric.MAE})
_UNIT_INTERVAL = frozenset({Metric.ACCURACY, Metric.ROC_AUC, Metric.F1})
_REGRESSION = frozenset({Metric.RMSE, Metric.MAE, Metric.R2})


class WindowSelection(StrEnum):
    ADAPTIVE = "Adaptive"
    FULL = "Full"


class DelayedFeedback(StrEnum):
    NONE = "None"
    FAKE_NEGATIVE = "FakeNegative"


class SchemaMode(StrEnum):
    INFERRED = "Inferred"
    STRICT = "Strict"


class ColumnType(StrEnum):
    NUMBER = "number"
    INTEGER = "integer"
    STRING = "string"
    BOOLEAN = "boolean"


class DriftMethod(StrEnum):
    AUTO = "Auto"
    PSI = "PSI"
    KS = "KS"
    JS = "JS"
    DISABLED = "Disabled"


class Correction(StrEnum):
    BENJAMINI_HOCHBERG = "BenjaminiHochberg"
    BONFERRONI = "Bonferroni"


class DriftAction(StrEnum):
    """What a batch whose distribution changed (feature drift, label-rate shift) gets."""

    RETRAIN = "Retrain"
    """Accepted and trained on; reported; what counts as normal moves to it."""
    HOLD = "Hold"
    """Quarantined until released, as a data fault would be."""
    IGNORE = "Ignore"
    """Accepted and trained on; only recorded in the run's result."""


class ContradictionAction(StrEnum):
    HOLD = "Hold"
    ALLOW = "Allow"


RunStatus = Literal["Succeeded", "Failed", "Skipped"]
"""Skipped: `newDataRequired` and every new batch was refused; no model."""
BatchStatus = Literal["Accepted", "Quarantined"]

Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
NonEmpty = Annotated[str, Field(min_length=1)]
Prefix = Annotated[str, Field(pattern=r"^.+/$")]
"""A key prefix: a folder, with its trailing slash."""
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Count = Annotated[int, Field(ge=0)]


def _parse_time(value: object) -> object:
    """ISO 8601 text becomes a datetime; anything else is left for the strict check."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError as error:
            raise ValueError(f"not an ISO 8601 time: {value!r}") from error
    return value


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcTime = Annotated[datetime, BeforeValidator(_parse_time), AfterValidator(_as_utc)]
"""An ISO 8601 time on the wire (`2026-11-27T06:00:00Z`); naive means UTC. Numbers
are refused: epoch seconds are not a time here."""
