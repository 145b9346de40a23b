"""Version skew, both ways: this release and the previous one read each other's documents.

"The previous release" is commit 3d6886a. Its two contract modules are vendored,
frozen, in tests/unit/skew/ (see their headers): the trainer's strict models,
which refuse unknown fields, and the operator's models with its build_run_spec.
During an upgrade either side may be the older one for a while (the operator is
upgraded first, but Jobs of old trainer images keep running, and a policy may pin
an old trainer image for good), so:

(a) a run spec this operator writes must pass the previous trainer's strict parse;
(b) a run spec the previous operator wrote must mean the same to this trainer;
(c) a result this trainer writes must be read by the previous operator;
(d) a result the previous trainer wrote must be read by this operator.

Note on (a) and the base commit: the previous release's trainer (3d6886a)
already declares `maxEnsembleSize`, so the `"maxEnsembleSize": null` the base
commit's operator sends passes *there* (checked by hand: the base writer,
``model_dump(by_alias=True, mode="json")``, passes (a) against 3d6886a). The
trainer that refuses that null is one built before acc876e added the field
(vendored as skew/trainer_contract_before_ensemble_cap.py);
``test_a_null_field_is_what_an_older_trainer_refuses`` checks that the base
writer's null fails it and that this writer no longer sends the key. That older
trainer also refuses fields added after it with real values (`data.selection`,
`validation.drift.action`, ...), so a full run spec cannot go to it either way.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from freshet.batches import Batch
from freshet.runspec import build_run_spec, run_labels_from_policy
from freshet.spec import PolicySpec
from freshet_contract import to_document, to_json_bytes
from freshet_contract.result import RunResult
from freshet_contract.run import LabelFile, ModelRef, PolicyRef, RunSpec
from policies import CONTRACT_DIR, minimal_spec
from pydantic import ValidationError
from skew import previous_operator_runspec as previous_operator
from skew import previous_trainer_contract as previous_trainer
from skew import trainer_contract_before_ensemble_cap as uncapped_trainer
from test_runspec_contract import EVERY_VALIDATION_KNOB

SKEW_DIR = Path(__file__).parent / "skew"
WHEN = datetime(2026, 11, 27, 7, tzinfo=UTC)
WINDOW = [
    Batch("in/a.csv", "e1", 10, WHEN),
    Batch("in/b.csv", "e2", 20, WHEN),
    Batch("in/c.csv", "e3", 30, WHEN),
]
SERVING = {"version": "v2", "modelKey": "freshet/ml/p/models/v2/model.joblib", "sha256": "a" * 64}
GOOD = {"version": "v1", "modelKey": "freshet/ml/p/models/v1/model.joblib", "sha256": "b" * 64}
LABEL_FILE = {"batch": "in/a.csv", "key": "labels/a/1.csv", "etag": "l1", "size": 5}
LABELS = {
    "prefix": "labels/",
    "idColumn": "id",
    "eventTimeColumn": "ts",
    "delaySeconds": 3600,
    "negativeValue": "0",
}


def _static(body: dict[str, Any]) -> None:
    pass


def _dynamic_defaults(body: dict[str, Any]) -> None:
    body["mode"] = "Dynamic"


def _every_validation_knob(body: dict[str, Any]) -> None:
    body["mode"] = "Dynamic"
    body["validation"] = EVERY_VALIDATION_KNOB


def _drift_hold_and_contradiction_allowed(body: dict[str, Any]) -> None:
    body["validation"] = {
        "drift": {"method": "KS", "action": "Hold", "threshold": "0.3"},
        "labelContradiction": {"action": "Allow", "margin": "0.2"},
        "maxNullFraction": "0.5",
    }


def _drift_disabled(body: dict[str, Any]) -> None:
    body["mode"] = "Dynamic"
    body["validation"] = {"drift": {"method": "Disabled", "action": "Ignore"}}


def _late_labels(body: dict[str, Any]) -> None:
    body["mode"] = "Dynamic"
    body["data"]["labels"] = dict(LABELS)


def _late_labels_fake_negatives(body: dict[str, Any]) -> None:
    body["mode"] = "Dynamic"
    body["data"]["labels"] = dict(LABELS, delayedFeedback="FakeNegative")
    body["validation"] = {"labelValues": ["0", "1"]}


def _window_adaptive(body: dict[str, Any]) -> None:
    body["mode"] = "Dynamic"
    body["data"]["window"] = {"maxBatches": 2, "selection": "Adaptive"}
    body["data"]["exclude"] = ["id"]


def _window_full_static(body: dict[str, Any]) -> None:
    body["data"]["window"] = {"maxBatches": 5, "selection": "Full"}
    body["data"]["format"] = "parquet"


def _warm_forest_capped(body: dict[str, Any]) -> None:
    body["mode"] = "Dynamic"
    body["training"]["estimator"] = {
        "class": "sklearn.ensemble.RandomForestClassifier",
        # A null parameter is a value (all features), not an absent field: it stays.
        "params": {"n_estimators": 20, "max_features": None},
    }
    body["training"]["warmStart"] = True
    body["training"]["maxEnsembleSize"] = 100
    body["gate"] = {"metric": "roc_auc"}


POLICIES: dict[str, Callable[[dict[str, Any]], None]] = {
    "static defaults": _static,
    "dynamic defaults": _dynamic_defaults,
    "every validation knob": _every_validation_knob,
    "drift hold, contradiction allowed": _drift_hold_and_contradiction_allowed,
    "drift disabled": _drift_disabled,
    "late labels": _late_labels,
    "late labels, fake negatives": _late_labels_fake_negatives,
    "adaptive window": _window_adaptive,
    "full window, parquet": _window_full_static,
    "warm-started forest, capped": _warm_forest_capped,
}


def _policy(name: str) -> PolicySpec:
    body = minimal_spec()
    POLICIES[name](body)
    return PolicySpec.model_validate(body)


def _build(name: str, *, first: bool = False) -> RunSpec:
    """This operator's run spec for policy ``name`` (``first``: no model yet)."""
    spec = _policy(name)
    labels = None
    if spec.data.labels is not None:
        labels = run_labels_from_policy(
            spec.data.labels,
            [LabelFile.model_validate(LABEL_FILE)],
            watermark_floor=None if first else WHEN,
            previous_cutoff=None if first else datetime(2026, 11, 26, tzinfo=UTC),
        )
    return build_run_spec(
        policy=PolicyRef(namespace="ml", name="p", uid="u", generation=1),
        spec=spec,
        bucket="b",
        run_id="p-0123456789",
        version="v1" if first else "v3",
        window=WINDOW,
        new_batches=WINDOW[-1:] if not first else WINDOW,
        baseline=None if first else ModelRef.model_validate(SERVING),
        previous=None if first else ModelRef.model_validate(GOOD),
        labels=labels,
        reference_from=None if first else "in/b.csv",
        released=() if first else ["in/b.csv"],
        new_data_required=first,
    )


CASES = [(name, first) for name in POLICIES for first in (True, False)]
IDS = [f"{name}{', first run' if first else ''}" for name, first in CASES]


def _old_meaning(document: dict[str, Any]) -> dict[str, Any]:
    """A spec as the previous trainer understood it, every default spelled out."""
    dumped: dict[str, Any] = previous_trainer.RunSpec.model_validate(document).model_dump(
        by_alias=True, mode="json"
    )
    return dumped


# (a) this operator -> the previous trainer


@pytest.mark.parametrize(("name", "first"), CASES, ids=IDS)
def test_the_previous_trainer_accepts_what_this_operator_writes(name: str, first: bool) -> None:
    built = _build(name, first=first)
    document = to_document(built)
    assert "maxEnsembleSize" in document["training"] or built.training.max_ensemble_size is None
    parsed = previous_trainer.RunSpec.model_validate(document)
    # ...and the previous trainer takes it to mean what this one does.
    assert parsed.model_dump(by_alias=True, mode="json") == _old_meaning(
        json.loads(to_json_bytes(RunSpec.model_validate(document)))
    )
    assert parsed.run_id == built.run_id
    assert parsed.baseline is None if first else parsed.baseline is not None
    assert parsed.training.max_ensemble_size == built.training.max_ensemble_size
    assert parsed.training.estimator.params == built.training.estimator.params
    assert parsed.validation.drift.action == built.validation.drift.action
    assert parsed.data.selection == built.data.selection
    assert (parsed.data.labels is None) == (built.data.labels is None)


def test_a_null_field_is_what_an_older_trainer_refuses() -> None:
    """The base commit's writer (None fields sent as null) fails (a): keep it that way."""
    built = _build("dynamic defaults")
    with_nulls = previous_operator.RunSpec.model_validate(to_document(built)).model_dump(
        by_alias=True, mode="json"
    )
    assert with_nulls["training"]["maxEnsembleSize"] is None
    with pytest.raises(ValidationError, match="maxEnsembleSize"):
        uncapped_trainer.RunSpec.model_validate(with_nulls)
    assert "maxEnsembleSize" not in to_document(built)["training"]


def test_the_first_model_still_sends_a_null_baseline() -> None:
    """The previous trainer requires `baseline` even when null: the one null on the wire."""
    document = to_document(_build("static defaults", first=True))
    assert document["baseline"] is None
    del document["baseline"]
    with pytest.raises(ValidationError, match="baseline"):
        previous_trainer.RunSpec.model_validate(document)


# (b) the previous operator -> this trainer


def _previous_operator_spec(name: str, *, first: bool = False) -> dict[str, Any]:
    """What the previous operator wrote for policy ``name`` (its own dump, nulls and all)."""
    spec = _policy(name)
    labels = None
    if spec.data.labels is not None:
        labels = previous_operator.RunLabels.from_policy(
            spec.data.labels,
            [
                previous_operator.LabelFile(
                    batch="in/a.csv", key="labels/a/1.csv", etag="l1", size=5
                )
            ],
            watermark_floor=None if first else WHEN,
            previous_cutoff=None if first else datetime(2026, 11, 26, tzinfo=UTC),
        )
    built = previous_operator.build_run_spec(
        policy=previous_operator.PolicyRef(namespace="ml", name="p", uid="u", generation=1),
        spec=spec,
        bucket="b",
        run_id="p-0123456789",
        version="v1" if first else "v3",
        window=WINDOW,
        new_batches=WINDOW[-1:] if not first else WINDOW,
        baseline=None if first else previous_operator.ModelRef.model_validate(SERVING),
        previous=None if first else previous_operator.ModelRef.model_validate(GOOD),
        labels=labels,
        reference_from=None if first else "in/b.csv",
        released=() if first else ["in/b.csv"],
        new_data_required=first,
    )
    dumped: dict[str, Any] = built.model_dump(by_alias=True, mode="json")
    return dumped


def _previous_example(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((SKEW_DIR / f"previous_{name}.example.json").read_text())
    return document


def test_this_trainer_reads_the_previous_run_spec_example() -> None:
    document = _previous_example("runspec")
    assert document["training"]["maxEnsembleSize"] is None  # the base commit's wire form
    parsed = RunSpec.model_validate(document)
    assert _old_meaning(to_document(parsed)) == _old_meaning(document)
    # The current example is the same document, written without its nulls.
    current = json.loads((CONTRACT_DIR / "runspec.example.json").read_text())
    assert RunSpec.model_validate(current) == parsed


@pytest.mark.parametrize(("name", "first"), CASES, ids=IDS)
def test_this_trainer_reads_what_the_previous_operator_writes(name: str, first: bool) -> None:
    old = _previous_operator_spec(name, first=first)
    parsed = RunSpec.model_validate(old)
    # Same meaning: read back by the previous trainer, the two are one spec ...
    assert _old_meaning(to_document(parsed)) == _old_meaning(old)
    # ... and this operator writes that very spec for the same policy and facts.
    assert parsed == _build(name, first=first)


# (c) this trainer -> the previous operator


def _current_results() -> list[RunResult]:
    example = RunResult.model_validate_json((CONTRACT_DIR / "result.example.json").read_bytes())
    failed = RunResult(run_id="p-0123456789", status="Failed", reason="NoTrainingData")
    skipped = RunResult(
        run_id="p-0123456789", status="Skipped", reason="NoNewData", message="all refused"
    )
    return [example, failed, skipped]


@pytest.mark.parametrize("result", _current_results(), ids=["example", "failed", "skipped"])
def test_the_previous_operator_reads_what_this_trainer_writes(result: RunResult) -> None:
    written = to_json_bytes(result)
    assert b"null" not in written
    old = previous_operator.RunResult.model_validate_json(written)
    assert old.model_dump(mode="json") == previous_operator.RunResult.model_validate(
        result.model_dump(mode="json", by_alias=True)
    ).model_dump(mode="json")
    assert (old.status, old.reason, old.run_id) == (result.status, result.reason, result.run_id)
    assert (old.model is None) == (result.model is None)
    assert [d.action for d in old.drift] == [d.action for d in result.drift]
    assert (old.metrics.candidate, old.metrics.baseline, old.metrics.dummy) == (
        result.metrics.candidate,
        result.metrics.baseline,
        result.metrics.dummy,
    )


# (d) the previous trainer -> this operator


def test_this_operator_reads_the_previous_result_example() -> None:
    document = _previous_example("result")
    parsed = RunResult.model_validate(document)
    old = previous_trainer.RunResult.model_validate(document)
    # Same meaning: the previous trainer's own reading of it, spelled out, is this one's.
    assert json.loads(to_json_bytes(parsed)) == json.loads(
        old.model_dump_json(by_alias=True, exclude_none=True)
    )
    current = json.loads((CONTRACT_DIR / "result.example.json").read_text())
    assert RunResult.model_validate(current) == parsed
