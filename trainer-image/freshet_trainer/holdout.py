"""Deterministic holdout split by row content.

Every row gets a 64-bit hash of its feature values, mapped onto [0, 1) (its
*unit*). A run with holdout fraction `f` trains only on rows with unit >= f and
evaluates on rows with unit < f.

Why the holdout is never in any model's training data:

1. The unit is a function of the row's feature values alone: not of its batch,
   its position, the other rows of the run or its label. So a row has the same
   unit in every run, and a row that repeats (in one batch or across batches)
   has one unit for all its copies. The label is left out so a row whose label
   arrives late, or is corrected, stays on its side. With late labels
   (late_labels.py) the id and event-time columns are not features and are
   dropped before hashing too, and only matured rows may be held out.
2. Every model records the bound it was trained above (`ModelArtifact.holdout_bound`):
   a cold fit trained on units >= f, so its bound is f; a model warm-started
   from a baseline also carries the baseline's rows, so its bound is the
   smaller of the two.
3. A run compares candidate and serving model on units below min(f, the serving
   model's bound), so on rows neither was fitted on, even after
   `holdoutFraction` changed between them. The rows in between are used by
   neither side in that run.

Values are normalized before hashing so one row hashes the same whichever file
it came from: numbers (not booleans) as float64 with -0.0 folded into 0.0, so an
integer column and the same column read as floats (a CSV with a blank cell)
agree. Rows are hashed per batch, as parsed from that batch's own bytes,
because column dtypes of a combined frame depend on which batches are in it.
"""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt
import pandas as pd

RowHashes = npt.NDArray[np.uint64]

_UNIT_BITS = 53  # a float64 holds 53 bits exactly


def row_hashes(frame: pd.DataFrame, label: str) -> RowHashes:
    """A stable 64-bit hash of each row's feature values (column order does not matter)."""
    features = frame[sorted(name for name in frame.columns if name != label)].copy()
    for name in features.columns:
        column = features[name]
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            features[name] = column.astype(np.float64) + 0.0  # -0.0 + 0.0 == +0.0
    hashed = pd.util.hash_pandas_object(features, index=False)
    return np.asarray(hashed.to_numpy(dtype=np.uint64), dtype=np.uint64)


def units(hashes: RowHashes) -> npt.NDArray[np.float64]:
    """Each hash mapped onto [0, 1): uniform, and nested (unit < a implies unit < b for a < b)."""
    return np.asarray(
        (hashes >> np.uint64(64 - _UNIT_BITS)).astype(np.float64) / float(2**_UNIT_BITS)
    )


def holdout_mask(hashes: RowHashes, fraction: float) -> npt.NDArray[np.bool_]:
    """True for rows held out at this fraction: their unit is below it."""
    return np.asarray(units(hashes) < fraction, dtype=np.bool_)


def holdout_digest(hashes: RowHashes) -> str:
    """sha256 over the holdout's row hashes in order: equal digests mean equal holdouts."""
    return hashlib.sha256(hashes.astype(">u8").tobytes()).hexdigest()
