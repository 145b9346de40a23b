"""The holdout split depends on row content only: stable across runs and batches."""

from __future__ import annotations

import numpy as np
import pandas as pd
from freshet_trainer.holdout import holdout_digest, holdout_mask, row_hashes, units

from .synthetic import classification_frame


def test_same_rows_land_on_the_same_side_whatever_else_is_in_the_run() -> None:
    old = classification_frame(300, seed=1)
    new = classification_frame(300, seed=2)

    alone = holdout_mask(row_hashes(old, "y"), 0.2)
    together = holdout_mask(row_hashes(pd.concat([new, old], ignore_index=True), "y"), 0.2)

    assert np.array_equal(alone, together[len(new) :])


def test_split_ignores_label_and_column_order() -> None:
    frame = classification_frame(200, seed=3)
    relabeled = frame.assign(y=1 - frame["y"])[["y", "color", "x2", "x1"]]

    assert np.array_equal(row_hashes(frame, "y"), row_hashes(relabeled, "y"))


def test_fraction_is_respected_and_digest_identifies_the_holdout() -> None:
    hashes = row_hashes(classification_frame(5000, seed=4), "y")

    mask = holdout_mask(hashes, 0.2)

    assert 0.18 < mask.mean() < 0.22
    assert holdout_digest(hashes[mask]) == holdout_digest(hashes[holdout_mask(hashes, 0.2)])
    assert holdout_digest(hashes[mask]) != holdout_digest(hashes[holdout_mask(hashes, 0.3)])
    assert not holdout_mask(hashes, 0.2)[~holdout_mask(hashes, 0.3)].any()  # nested fractions


def test_a_row_hashes_the_same_whichever_file_typed_its_numbers() -> None:
    ints = pd.DataFrame({"n": [1, 2, 0], "c": ["a", "b", "c"], "y": [0, 1, 0]})
    floats = pd.DataFrame({"n": [1.0, 2.0, -0.0], "c": ["a", "b", "c"], "y": [0, 1, 0]})

    assert np.array_equal(row_hashes(ints, "y"), row_hashes(floats, "y"))
    assert not np.array_equal(row_hashes(ints, "y"), row_hashes(ints.assign(n=[1, 2, 3]), "y"))


def test_a_smaller_bound_gives_a_holdout_inside_both_models_unseen_rows() -> None:
    """Serving model trained above 0.2, candidate above 0.3: compare below 0.2 only."""
    hashes = row_hashes(classification_frame(2000, seed=5), "y")
    unit = units(hashes)

    candidate_trained, serving_trained = unit >= 0.3, unit >= 0.2
    holdout = holdout_mask(hashes, min(0.3, 0.2))

    assert holdout.any() and not (holdout & (candidate_trained | serving_trained)).any()
