"""Reading one batch file and deciding whether it may be trained on.

A batch that fails a check is never used; the run reports it in `quarantined`
with the figures each check measured, so whoever moves it to quarantine (the
operator) and whoever reads the reason (a human) both see why. Deeper checks
(declared schemas, drift) come later; these catch the bugs that most often
reach a bucket: broken files, empty exports, a renamed label, a dead column.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import pandas as pd

from freshet_trainer.contract import Check, DataFormat
from freshet_trainer.reasons import BatchReason


class UnparsableBatch(ValueError):
    """The bytes are not a readable file of the declared format."""


def read_batch(raw: bytes, data_format: DataFormat) -> pd.DataFrame:
    """Parse a batch into a frame; a zero-byte file is an empty frame, not an error."""
    if not raw.strip():
        return pd.DataFrame()
    try:
        with warnings.catch_warnings():
            # A row longer than the header would otherwise be truncated silently.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            if data_format == "csv":
                frame = pd.read_csv(io.BytesIO(raw), index_col=False, on_bad_lines="error")
            elif data_format == "jsonl":
                frame = pd.read_json(io.BytesIO(raw), lines=True)
            else:
                frame = pd.read_parquet(io.BytesIO(raw))
    except (ValueError, pd.errors.ParserWarning) as error:  # pandas/pyarrow parse errors
        raise UnparsableBatch(f"not a readable {data_format} file: {error}") from error
    if not all(isinstance(name, str) for name in frame.columns):
        raise UnparsableBatch("column names must be strings")
    return frame.reset_index(drop=True)


@dataclass(frozen=True)
class Accepted:
    """The batch may be trained on: its labeled rows, and the checks it passed."""

    rows: pd.DataFrame
    checks: list[Check]


@dataclass(frozen=True)
class Refused:
    """The batch must not be used: the reason, and every check run up to the failing one."""

    reason: BatchReason
    checks: list[Check]


def validate_batch(frame: pd.DataFrame, label: str, max_null_fraction: float) -> Accepted | Refused:
    """Run the checks in order; stop at the first one that makes later ones meaningless.

    Rows whose label is null are dropped, not counted against the batch: with
    late labels a batch legitimately arrives partly unlabeled.
    """
    checks: list[Check] = []

    rows = len(frame)
    checks.append(Check(name="nonEmpty", passed=rows > 0, value=float(rows), limit=1.0))
    if rows == 0:
        return Refused(BatchReason.EMPTY, checks)

    has_label = label in frame.columns
    checks.append(
        Check(
            name="labelPresent",
            passed=has_label,
            message="" if has_label else f"no column {label!r} in {sorted(frame.columns)}",
        )
    )
    if not has_label:
        return Refused(BatchReason.LABEL_MISSING, checks)

    features = [name for name in frame.columns if name != label]
    checks.append(
        Check(name="hasFeatures", passed=bool(features), value=float(len(features)), limit=1.0)
    )
    if not features:
        return Refused(BatchReason.NO_FEATURES, checks)

    labeled = int(frame[label].notna().sum())
    checks.append(
        Check(name="labelNotAllNull", passed=labeled > 0, value=float(labeled), limit=1.0)
    )
    if labeled == 0:
        return Refused(BatchReason.LABEL_ALL_NULL, checks)

    null_fractions = frame[features].isna().mean()
    worst = str(null_fractions.idxmax())
    worst_fraction = float(null_fractions[worst])
    within = worst_fraction <= max_null_fraction
    checks.append(
        Check(
            name="maxNullFraction",
            passed=within,
            value=round(worst_fraction, 6),
            limit=max_null_fraction,
            message=f"column {worst!r}",
        )
    )
    if not within:
        return Refused(BatchReason.TOO_MANY_NULLS, checks)

    return Accepted(frame[frame[label].notna()].reset_index(drop=True), checks)
