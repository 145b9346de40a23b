"""The reference window: what "normal" looks like, learned from earlier batches.

The reference is the run's window minus its new batches (the batches earlier
runs already accepted) that pass this run's checks too. From it come the
expected columns and types (schema `Inferred`), each column's usual null
fraction, range or category domain and distribution, and the usual label mix.
It is summarised column by column, so building it never copies the window
as a whole, and numeric columns keep a bounded, seeded sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final

import numpy as np
import pandas as pd

from freshet_trainer.validation.columns import (
    CATEGORICAL_MAX_DISTINCT,
    NUMERIC,
    Kind,
    kind_of,
    tokens,
)
from freshet_trainer.validation.measures import conflict_fraction, duplicate_fraction

SAMPLE_SIZE: Final = 20_000
"""Reference values kept per numeric column: enough for KS and decile bins to be
stable, small enough that a long window costs no more than a short one."""


@dataclass(frozen=True)
class ColumnProfile:
    kind: Kind | None
    null_fraction: float
    in_every_batch: bool
    count: int = 0
    """Non-null values (finite ones for numeric columns)."""
    sample: np.ndarray | None = None
    """Numeric columns: finite values, sorted, at most SAMPLE_SIZE of them."""
    minimum: float | None = None
    maximum: float | None = None
    categories: dict[str, int] | None = None
    """Boolean and low-cardinality text columns: how often each value occurred."""


@dataclass(frozen=True)
class Reference:
    batches: tuple[str, ...]
    rows: int
    columns: dict[str, ColumnProfile]
    duplicate_fraction: float
    conflict_fraction: float
    labels: dict[str, int] | None
    """Classification: how often each label occurred (as tokens)."""
    learned_from_new: bool = False
    """Built from the batches under test (a policy's first run): it says what is
    normal for the value checks, but no change can be measured against it."""


def build_reference(
    batches: Sequence[tuple[str, pd.DataFrame]],
    label: str,
    classification: bool,
    *,
    learned_from_new: bool = False,
) -> Reference | None:
    """Summarise the reference batches `(key, frame)`; None when there are none."""
    frames = [frame for _, frame in batches if len(frame)]
    if not frames:
        return None
    names = list(dict.fromkeys(name for frame in frames for name in frame.columns))
    rows = sum(len(frame) for frame in frames)
    labeled = sum(int(frame[label].notna().sum()) for frame in frames)
    labels = None
    if classification:
        labels = pd.concat([tokens(frame[label]) for frame in frames]).value_counts().to_dict()
    return Reference(
        batches=tuple(key for key, _ in batches),
        rows=rows,
        columns={name: _profile_column(name, frames) for name in names},
        duplicate_fraction=sum(duplicate_fraction(f) * len(f) for f in frames) / rows,
        conflict_fraction=(
            sum(conflict_fraction(f, label) * int(f[label].notna().sum()) for f in frames) / labeled
            if classification and labeled
            else 0.0
        ),
        labels={str(k): int(v) for k, v in labels.items()} if labels is not None else None,
        learned_from_new=learned_from_new,
    )


def _profile_column(name: str, frames: list[pd.DataFrame]) -> ColumnProfile:
    present = [frame[name] for frame in frames if name in frame.columns]
    column = pd.concat(present, ignore_index=True)
    kind, _ = kind_of(column)
    profile = ColumnProfile(
        kind=kind,
        null_fraction=float(column.isna().mean()),
        in_every_batch=len(present) == len(frames),
    )
    if kind in NUMERIC:
        values = pd.to_numeric(column, errors="coerce").to_numpy(dtype="float64")
        values = values[np.isfinite(values)]
        if values.size == 0:
            return profile
        sample = values
        if values.size > SAMPLE_SIZE:
            sample = np.random.default_rng(0).choice(values, SAMPLE_SIZE, replace=False)
        return replace(
            profile,
            count=int(values.size),
            sample=np.sort(sample),
            minimum=float(values.min()),
            maximum=float(values.max()),
        )
    if kind in ("boolean", "string"):
        counts = tokens(column).value_counts()
        if len(counts) <= CATEGORICAL_MAX_DISTINCT:
            return replace(
                profile,
                count=int(counts.sum()),
                categories={str(k): int(v) for k, v in counts.items()},
            )
    return profile
