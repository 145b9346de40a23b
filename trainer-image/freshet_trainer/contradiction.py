"""Labels that contradict the serving model: a label fault that looks like ordinary data.

A new batch whose features look as usual, but on which the serving model
does far worse than a constant guess (the reference's most common class),
carries labels that contradict everything known: flipped or shifted labels
from a join or export bug. A change of concept degrades a model towards the
constant guess, rarely far below it, and a change of the features is caught
by the drift check (a batch that drifted is not judged here: the serving
model may simply not know that region). Such a batch is held as a fault
with its figures; a real reversal the user wants to follow is released from
quarantine, or allowed by `validation.labelContradiction.action: Allow`.

The test is paired, per row: the share of rows the constant guess gets right
and the serving model gets wrong, minus the reverse, must exceed `margin`,
one-sided at `drift.pValue`. Classification only: a regression target has no
constant guess that errors can be compared with this way.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Final

import numpy as np
import pandas as pd
from scipy.stats import norm

from freshet_trainer.artifact import ModelArtifact
from freshet_trainer.batches import Batch, LoadedBatches
from freshet_trainer.contract import BatchValidation, Check, QuarantinedBatch, RunSpec
from freshet_trainer.reasons import BatchReason
from freshet_trainer.validation.columns import tokens
from freshet_trainer.validation.drift import FEATURE_DRIFT
from freshet_trainer.validation.quality import OUT_OF_RANGE
from freshet_trainer.validation.report import Rule

RULE = Rule("labelsContradictModel", BatchReason.LABELS_CONTRADICT_MODEL)
MIN_ROWS: Final = 30
"""Fewer labelled rows than this and the batch is not judged: too little evidence."""


def judge(
    serving_right: np.ndarray, constant_right: np.ndarray, *, margin: float, p: float
) -> Check:
    """The check for one batch from per-row correctness of the two predictors."""
    rows = int(serving_right.size)
    if rows < MIN_ROWS:
        return RULE.skipped(f"{rows} labelled row(s); at least {MIN_ROWS} are needed")
    difference = constant_right.astype(float) - serving_right.astype(float)
    gap = float(difference.mean())
    spread = float(difference.std(ddof=1))
    if spread == 0.0:
        p_value = 0.0 if gap > margin else 1.0
    else:
        p_value = float(norm.sf((gap - margin) / (spread / math.sqrt(rows))))
    contradicted = gap > margin and p_value < p
    return RULE.outcome(
        not contradicted,
        value=gap,
        limit=margin,
        message=(
            f"serving model accuracy {serving_right.mean():.4f}, constant guess"
            f" {constant_right.mean():.4f} on {rows} rows (p={p_value:.3g})"
        ),
    )


def hold_contradicted(
    loaded: LoadedBatches, serving: ModelArtifact | None, spec: RunSpec
) -> LoadedBatches:
    """`loaded` with the new batches whose labels contradict the serving model quarantined."""
    settings = spec.validation.label_contradiction
    new_keys = set(spec.data.new_batches)
    old = [b for b in loaded.accepted if b.ref.key not in new_keys]
    if serving is None or not serving.classification or settings.action == "Allow" or not old:
        return loaded
    constant = _most_common(pd.concat([b.rows[serving.label] for b in old]))
    judged: dict[str, Check] = {}
    for batch in loaded.accepted:
        if batch.ref.key not in new_keys or batch.ref.key in spec.data.released:
            continue
        if _drifted(loaded, batch.ref.key):
            continue
        rows = _labelled(batch)
        truth = tokens(rows[serving.label]).to_numpy()
        predicted = tokens(pd.Series(serving.pipeline.predict(serving.features(rows)))).to_numpy()
        judged[batch.ref.key] = judge(
            predicted == truth,
            truth == constant,
            margin=settings.margin,
            p=spec.validation.drift.p_value,
        )
    held = {key for key, check in judged.items() if not check.passed}
    return replace(
        loaded,
        accepted=[b for b in loaded.accepted if b.ref.key not in held],
        quarantined=[
            *loaded.quarantined,
            *(
                _quarantined(loaded, b, judged[b.ref.key])
                for b in loaded.accepted
                if b.ref.key in held
            ),
        ],
        report=loaded.report.model_copy(
            update={"batches": [_with_check(v, judged.get(v.key)) for v in loaded.report.batches]}
        ),
    )


def _most_common(labels: pd.Series) -> str:
    return str(tokens(labels).value_counts().index[0])


def _labelled(batch: Batch) -> pd.DataFrame:
    """The rows whose label is final (late labels: the matured ones)."""
    if batch.maturity is None:
        return batch.rows
    return batch.rows[batch.maturity.matured].reset_index(drop=True)


_FEATURES_CHANGED = frozenset({FEATURE_DRIFT.name, OUT_OF_RANGE.name})


def _drifted(loaded: LoadedBatches, key: str) -> bool:
    """Whether the batch's features changed (its labels are then not judged here)."""
    return any(d.key == key and _FEATURES_CHANGED & set(d.checks) for d in loaded.drift)


def _with_check(validation: BatchValidation, check: Check | None) -> BatchValidation:
    if check is None:
        return validation
    update: dict[str, object] = {"checks": [*validation.checks, check]}
    if not check.passed:
        update |= {"status": "Quarantined", "reason": check.code}
    return validation.model_copy(update=update)


def _quarantined(loaded: LoadedBatches, batch: Batch, check: Check) -> QuarantinedBatch:
    (validation,) = [v for v in loaded.report.batches if v.key == batch.ref.key]
    return QuarantinedBatch(
        key=batch.ref.key,
        etag=batch.ref.etag,
        reason=check.code,
        message=f"{check.code} value={check.value} limit={check.limit}: {check.message}",
        checks=[*validation.checks, check],
    )
