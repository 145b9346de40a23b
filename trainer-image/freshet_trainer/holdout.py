"""Deterministic holdout split by row content.

A row goes to the holdout when the hash of its feature values falls below the
holdout fraction, so the same row lands on the same side in every run: rows a
model was trained on never reappear in a later run's holdout, and the
candidate and the serving model are compared on data neither was fitted on.
The label is left out of the hash so a row whose label arrives late stays on
its side. Rows are hashed per batch, as parsed from that batch's own bytes,
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
    features = sorted(name for name in frame.columns if name != label)
    hashed = pd.util.hash_pandas_object(frame[features], index=False)
    return np.asarray(hashed.to_numpy(dtype=np.uint64), dtype=np.uint64)


def holdout_mask(hashes: RowHashes, fraction: float) -> npt.NDArray[np.bool_]:
    """True for rows in the holdout: a hash mapped onto [0, 1) is below the fraction."""
    unit = (hashes >> np.uint64(64 - _UNIT_BITS)).astype(np.float64) / float(2**_UNIT_BITS)
    return np.asarray(unit < fraction, dtype=np.bool_)


def holdout_digest(hashes: RowHashes) -> str:
    """sha256 over the holdout's row hashes in order: equal digests mean equal holdouts."""
    return hashlib.sha256(hashes.astype(">u8").tobytes()).hexdigest()
