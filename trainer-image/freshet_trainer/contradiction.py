"""Labels that contradict the serving model: a label fault that looks like ordinary data.

A new batch whose features look as usual, but whose labels the serving model
gets far less often right than chance would (anti-correlated predictions),
carries labels that contradict everything known: flipped or shifted labels
from a join or export bug. A change of concept degrades a model towards
chance, rarely far below it; a change of the features is caught by the drift
checks, and a batch whose features changed is not judged here (the serving
model may simply not know that region, and a wrong model and wrong labels
then look alike). Such a batch is held as a fault with its figures; a real
reversal the user wants to follow is released from quarantine, or allowed
with `validation.labelContradiction.action: Allow`.

Chance is the accuracy the model's predictions would have if they were
independent of the labels, given how often it predicts each class and how
often each label occurs in the batch (Cohen's expected agreement), so a
shifted class balance alone never looks like a contradiction. The batch is
held when chance exceeds the model's accuracy by more than `margin`,
one-sided at `drift.pValue`. Classification only.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Final

import numpy as np
import pandas as pd
from freshet_contract.result import BatchValidation, Check, QuarantinedBatch
from freshet_contract.run import RunSpec
from scipy.stats import norm

from freshet_trainer.artifact import ModelArtifact
from freshet_trainer.batches import Batch, LoadedBatches
from freshet_trainer.reasons import BatchReason
from freshet_trainer.validation.columns import tokens
from freshet_trainer.validation.drift import FEATURE_DRIFT
from freshet_trainer.validation.quality import OUT_OF_RANGE
from freshet_trainer.validation.report import Rule

RULE = Rule("labelsContradictModel", BatchReason.LABELS_CONTRADICT_MODEL)
MIN_ROWS: Final = 30
"""Fewer labelled rows than this and the batch is not judged: too little evidence."""


def judge(predicted: np.ndarray, truth: np.ndarray, *, margin: float, p: float) -> Check:
    """The check for one batch from the serving model's predictions and the labels."""
    rows = int(truth.size)
    if rows < MIN_ROWS:
        return RULE.skipped(f"{rows} labelled row(s); at least {MIN_ROWS} are needed")
    accuracy = float((predicted == truth).mean())
    predicted_share = pd.Series(predicted).value_counts(normalize=True)
    truth_share = pd.Series(truth).value_counts(normalize=True)
    chance = float(sum(share * truth_share.get(c, 0.0) for c, share in predicted_share.items()))
    gap = chance - accuracy
    spread = math.sqrt(max(chance * (1.0 - chance), 1e-12) / rows)
    p_value = float(norm.sf((gap - margin) / spread))
    contradicted = gap > margin and p_value < p
    return RULE.outcome(
        not contradicted,
        value=gap,
        limit=margin,
        message=(
            f"serving model accuracy {accuracy:.4f} vs {chance:.4f} by chance on {rows} rows"
            f" (p={p_value:.3g})"
        ),
    )


def hold_contradicted(
    loaded: LoadedBatches,
    spec: RunSpec,
    serving: ModelArtifact | None,
    previous: ModelArtifact | None = None,
) -> LoadedBatches:
    """`loaded` with the new batches whose labels contradict what is known quarantined.

    What is known is the serving model and, when there is one, the previous good
    model: a batch the previous model agrees with does not contradict everything
    known, only a serving model that went wrong (which monitoring then sees)."""
    settings = spec.validation.label_contradiction
    new_keys = set(spec.data.new_batches)
    if serving is None or not serving.classification or settings.action == "Allow":
        return loaded
    judged: dict[str, Check] = {}
    for batch in loaded.accepted:
        if batch.ref.key not in new_keys or batch.ref.key in spec.data.released:
            continue
        if _drifted(loaded, batch.ref.key):
            continue
        rows = _labelled(batch)
        if len(rows) < MIN_ROWS:  # e.g. late labels not matured yet: nothing to judge
            judged[batch.ref.key] = RULE.skipped(
                f"{len(rows)} labelled row(s); at least {MIN_ROWS} are needed"
            )
            continue
        truth = tokens(rows[serving.label]).to_numpy()
        checks = [
            judge(
                _predict(model, rows),
                truth,
                margin=settings.margin,
                p=spec.validation.drift.p_value,
            )
            for model in (serving, previous)
            if model is not None
        ]
        judged[batch.ref.key] = next((c for c in checks if c.passed), checks[0])
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


def _predict(model: ModelArtifact, rows: pd.DataFrame) -> np.ndarray:
    predicted = model.pipeline.predict(model.features(rows))
    return np.asarray(tokens(pd.Series(predicted)).to_numpy())


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
