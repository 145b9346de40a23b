"""Which batches of the window a model trains on: physics or fashion, decided by the data.

When a relationship is stable (physics), more data makes a better model; when
it moves (fashion), old batches teach the old relationship and a model fitted
on the whole window lags behind the change. `Adaptive` selection decides
this anew on every run, from the newest labelled rows (the prequential idea:
judge a model on data it has not seen, in the order the data came):

1. the new batches' rows are split by row hash into a fitting half and a
   scoring half;
2. candidates are fitted on the fitting half plus the newest 0, 1, 2, 4, ...
   earlier batches (and all of them), and scored on the scoring half with
   the policy's gate metric;
3. the longest candidate whose score is within one standard error of the
   best wins (the one-standard-error rule: prefer more data unless less is
   clearly better), the error measured over five folds of the scoring half;
4. the model is fitted on the chosen earlier batches plus every new one.

After a lasting change the earlier batches score worse, so the window
restarts at the change within one run; on a stationary stream every
candidate scores alike and the whole window is kept. `Full` trains on every
batch of the window, as Static policies do by default.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd
from freshet_contract.result import WindowCandidate, WindowReport
from freshet_contract.vocabulary import WindowSelection

from freshet_trainer.artifact import ModelArtifact
from freshet_trainer.batches import Batch
from freshet_trainer.holdout import units

FOLDS: Final = 5
MIN_SCORING_ROWS: Final = 20
"""Fewer scoring rows than this and the choice would be noise: the whole window trains."""
LOWER_IS_BETTER: Final = frozenset({"log_loss", "rmse", "mae"})

Fit = Callable[[pd.DataFrame], ModelArtifact]
Measure = Callable[[ModelArtifact, pd.DataFrame], float | None]
"""The gate metric of a model on labelled rows (None: not defined there)."""


@dataclass(frozen=True)
class Choice:
    batches: list[Batch]
    report: WindowReport


def newest(batches: Sequence[Batch], max_batches: int | None) -> list[Batch]:
    """The newest `max_batches` accepted batches (all when None), oldest first.

    The operator lists more batches than the window holds so that a refused
    batch leaves no gap: the window is counted among the batches that passed.
    """
    kept = list(batches)
    return kept if max_batches is None else kept[-max_batches:]


def full(batches: list[Batch], message: str = "") -> Choice:
    keys = [b.ref.key for b in batches]
    return Choice(
        batches, WindowReport(selection=WindowSelection.FULL, batches=keys, message=message)
    )


def choose(
    batches: list[Batch], new_keys: set[str], metric: str, fit: Fit, measure: Measure
) -> Choice:
    """The adaptive choice over `batches` (oldest first) for a run whose new ones are `new_keys`."""
    old = [b for b in batches if b.ref.key not in new_keys]
    new = [b for b in batches if b.ref.key in new_keys]
    if not old or not new:
        return _adaptive(batches, [], 0, "no earlier batch to weigh against the new ones")
    fitting, scoring, folds = _halves(new)
    if len(scoring) < MIN_SCORING_ROWS:
        return _adaptive(
            batches, [], len(scoring), f"only {len(scoring)} new row(s) to score on: whole window"
        )
    lengths = sorted(
        {0, len(old), *(2**k for k in range(len(old).bit_length()) if 2**k <= len(old))}
    )
    scores: dict[int, float | None] = {}
    models: dict[int, ModelArtifact] = {}
    for length in lengths:
        earlier = [b.rows for b in old[len(old) - length :]] if length else []
        try:
            models[length] = fit(_concat([*earlier, fitting]))
        except (ValueError, TypeError):  # e.g. one class only in the newest rows
            scores[length] = None
            continue
        scores[length] = measure(models[length], scoring)
    scored = {length: value for length, value in scores.items() if value is not None}
    candidates = [WindowCandidate(batches=n, score=scores[n]) for n in lengths]
    if not scored:
        return _adaptive(batches, candidates, len(scoring), "no candidate could be scored")
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    best = max(scored, key=lambda n: (sign * scored[n], n))
    error = _standard_error(models[best], scoring, folds, measure)
    chosen = max(n for n, value in scored.items() if sign * value >= sign * scored[best] - error)
    kept = [*old[len(old) - chosen :], *new] if chosen else new
    message = (
        f"{chosen} of {len(old)} earlier batch(es) with the new ones: the longest within one"
        f" standard error ({error:.4f}) of the best {metric} {scored[best]:.4f}"
        f" on {len(scoring)} new rows"
    )
    return _adaptive(kept, candidates, len(scoring), message)


def _adaptive(
    batches: list[Batch], candidates: list[WindowCandidate], rows: int, message: str
) -> Choice:
    keys = [b.ref.key for b in batches]
    report = WindowReport(
        selection=WindowSelection.ADAPTIVE,
        batches=keys,
        candidates=candidates,
        rows=rows,
        message=message,
    )
    return Choice(batches, report)


def _halves(new: list[Batch]) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """The new rows to fit on, those to score on (matured ones only), and their fold."""
    fit_parts, score_parts, fold_parts = [], [], []
    for batch in new:
        unit = units(batch.hashes)
        matured = (
            np.ones(len(batch.rows), dtype=bool)
            if batch.maturity is None
            else batch.maturity.matured
        )
        scoring = (unit < 0.5) & matured
        fit_parts.append(batch.rows[unit >= 0.5])
        score_parts.append(batch.rows[scoring])
        fold_parts.append(np.minimum((unit[scoring] * 2 * FOLDS).astype(int), FOLDS - 1))
    return _concat(fit_parts), _concat(score_parts), np.concatenate(fold_parts)


def _standard_error(
    model: ModelArtifact, scoring: pd.DataFrame, folds: np.ndarray, measure: Measure
) -> float:
    """How much the best candidate's score varies across folds of the scoring rows."""
    values = [
        value
        for fold in range(FOLDS)
        if (part := scoring[folds == fold]).shape[0]
        and (value := measure(model, part.reset_index(drop=True))) is not None
    ]
    if len(values) < 2:
        return 0.0
    return float(np.std(values, ddof=1) / math.sqrt(len(values)))


def _concat(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    present = [frame for frame in frames if len(frame)]
    if not present:
        return frames[0].iloc[0:0] if frames else pd.DataFrame()
    return pd.concat(present, ignore_index=True)
