"""What the operator knows of the trainer's estimators, without scikit-learn.

The operator image carries no scikit-learn, so the constructor parameters of
every allow-listed estimator, and whether it is a classifier or a regressor,
come from ``estimator_params.json``, generated at build time by
``hack/gen-estimator-params.py`` from the trainer's allow-list
(``freshet_trainer.estimators.ALLOWED_ESTIMATORS``); a unit test keeps the
committed table equal to what the script generates.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any, Final

RESERVED_PARAMS: Final[dict[str, str]] = {
    "random_state": "it is set by training.seed; remove it from params and set training.seed",
}
"""Parameters the trainer sets itself and refuses in params (freshet_trainer.estimators)."""

PROBABILISTIC_SGD_LOSSES: Final[frozenset[str]] = frozenset({"log_loss", "modified_huber"})
"""SGDClassifier has predict_proba, which log_loss needs, only with these losses."""


class EstimatorKind(StrEnum):
    CLASSIFIER = "classifier"
    REGRESSOR = "regressor"


@dataclass(frozen=True)
class EstimatorInfo:
    kind: EstimatorKind
    params: frozenset[str]


@cache
def table() -> dict[str, EstimatorInfo]:
    """Estimator class path -> what the trainer accepts for it."""
    text = resources.files("freshet").joinpath("estimator_params.json").read_text()
    raw: dict[str, Any] = json.loads(text)["estimators"]
    return {
        name: EstimatorInfo(EstimatorKind(entry["kind"]), frozenset(entry["params"]))
        for name, entry in raw.items()
    }


def param_problem(class_name: str, name: str, value: object) -> str | None:
    """Why the trainer would refuse ``name: value`` for this estimator, or None."""
    if name in RESERVED_PARAMS:
        return f"{name} cannot be set in params: {RESERVED_PARAMS[name]}"
    known = table()[class_name].params - RESERVED_PARAMS.keys()
    short = class_name.rsplit(".", 1)[-1]
    if name not in known:
        close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
        hint = (
            f"did you mean {' or '.join(close)}?"
            if close
            else f"its parameters are {', '.join(sorted(known))}"
        )
        return f"{short} has no parameter {name!r}: {hint}"
    if isinstance(value, dict | list):
        return f"{short} parameter {name} must be a scalar (a number, string, boolean or null)"
    return None
