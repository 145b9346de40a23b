"""Row-level figures shared by the checks and the reference profile.

Both duplicate rows and conflicting labels are found by hashing rows, which
works for any mix of column types and costs one pass, instead of a group-by
over every column.
"""

from __future__ import annotations

import pandas as pd

from freshet_trainer.validation.columns import tokens


def duplicate_fraction(frame: pd.DataFrame) -> float:
    """Share of rows that repeat an earlier row exactly (label included)."""
    if frame.empty:
        return 0.0
    hashes = pd.util.hash_pandas_object(frame, index=False)
    return float(hashes.duplicated().mean())


def conflict_fraction(frame: pd.DataFrame, label: str) -> float:
    """Share of labeled rows whose features equal another row's with a different label."""
    labeled = frame[frame[label].notna()]
    features = [name for name in labeled.columns if name != label]
    if labeled.empty or not features:
        return 0.0
    keyed = pd.DataFrame(
        {
            "features": pd.util.hash_pandas_object(labeled[features], index=False).to_numpy(),
            "label": tokens(labeled[label]).to_numpy(),
        }
    )
    distinct = keyed.groupby("features")["label"].transform("nunique")
    return float((distinct > 1).mean())
