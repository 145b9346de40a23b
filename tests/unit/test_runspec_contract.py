"""The operator's contract models read and write the shared example documents exactly."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from freshet.batches import Batch
from freshet.runspec import build_run_spec, run_labels_from_policy
from freshet.spec import PolicySpec
from freshet_contract import to_json_bytes
from freshet_contract.result import RunResult
from freshet_contract.run import LabelFile, ModelRef, PolicyRef, RunSpec
from policies import CONTRACT_DIR, minimal_spec
from pydantic import ValidationError


def example(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((CONTRACT_DIR / f"{name}.example.json").read_text())
    return document


@pytest.mark.parametrize(("name", "model"), [("runspec", RunSpec), ("result", RunResult)])
def test_example_round_trips(name: str, model: type[RunSpec] | type[RunResult]) -> None:
    document = example(name)
    parsed = model.model_validate(document)
    # exclude_unset: optional fields the example leaves out stay out, while an
    # explicit null (the first model's baseline) stays in.
    assert parsed.model_dump(mode="json", exclude_unset=True) == document
    assert model.model_validate_json(parsed.model_dump_json()) == parsed


def test_build_run_spec_writes_the_example() -> None:
    """Built from the facts the example describes, the spec is the example (plus defaults)."""
    document = example("runspec")  # its validation block is the defaults, spelled out
    body = minimal_spec("Dynamic")
    body["data"]["label"] = "is_spam"
    body["training"]["estimator"]["params"] = {"C": 1.0, "max_iter": 200}
    body["gate"] = {"metric": "roc_auc"}
    body["data"]["window"] = {"maxBatches": 20}
    labels = document["data"]["labels"]
    body["data"]["labels"] = {
        "prefix": "spam/reports/",
        "idColumn": labels["idColumn"],
        "eventTimeColumn": labels["eventTimeColumn"],
        "delaySeconds": labels["delaySeconds"],
        "negativeValue": labels["negativeValue"],
    }
    spec = PolicySpec.model_validate(body)
    assert spec.data.labels is not None
    when = datetime(2026, 11, 27, 7, tzinfo=UTC)
    window = [Batch(b["key"], b["etag"], b["size"], when) for b in document["data"]["batches"]]
    built = build_run_spec(
        policy=PolicyRef.model_validate(document["policy"]),
        spec=spec,
        bucket="ml-data",
        run_id=document["runId"],
        version="v3",
        window=window,
        new_batches=window[1:],
        baseline=ModelRef.model_validate(document["baseline"]),
        labels=run_labels_from_policy(
            spec.data.labels,
            [LabelFile.model_validate(f) for f in labels["files"]],
            watermark_floor=_time(labels["watermarkFloor"]),
            previous_cutoff=_time(labels["previousCutoff"]),
        ),
        new_data_required=True,
    )
    assert built.model_dump(mode="json") == document


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_first_model_has_a_null_baseline() -> None:
    document = example("runspec") | {"baseline": None}
    assert RunSpec.model_validate(document).model_dump(mode="json")["baseline"] is None


EVERY_VALIDATION_KNOB = {
    "schema": "Strict",
    "columns": [
        {"name": "x", "type": "number", "nullable": False},
        {"name": "y", "type": "integer"},
    ],
    "maxNullFraction": "0.1",
    "referenceTolerance": "0.02",
    "allowExtraColumns": True,
    "maxDuplicateFraction": "0.2",
    "maxConflictingLabelFraction": "0.3",
    "labelValues": ["0", "1"],
    "maxLabelRateShift": "0.15",
    "maxOutOfRangeFraction": "0.02",
    "drift": {"method": "PSI", "threshold": "0.25", "pValue": "0.05", "correction": "Bonferroni"},
    "maxBatchBytes": "64Mi",
    "maxColumns": 50,
}


def test_the_trainer_accepts_what_the_operator_writes() -> None:
    """Checked against the strict contract models the trainer reads with, on the wire form.

    (Until the contract package the trainer had its own models; the previous
    release's are checked in test_contract_skew.py.)"""
    trainer_contract = pytest.importorskip("freshet_contract.run")
    body = minimal_spec("Dynamic")
    body["validation"] = EVERY_VALIDATION_KNOB
    window = [Batch("in/a.csv", "e1", 10, datetime(2026, 11, 27, tzinfo=UTC))]
    built = build_run_spec(
        policy=PolicyRef(namespace="ml", name="p", uid="u", generation=1),
        spec=PolicySpec.model_validate(body),
        bucket="b",
        run_id="p-0123456789",
        version="v1",
        window=window,
        new_batches=window,
        baseline=None,
    )
    parsed = trainer_contract.RunSpec.model_validate_json(to_json_bytes(built))
    rules = parsed.validation
    assert (rules.schema_mode, rules.max_null_fraction, rules.reference_tolerance) == (
        "Strict",
        0.1,
        0.02,
    )
    assert [(c.name, c.type, c.nullable) for c in rules.columns] == [
        ("x", "number", False),
        ("y", "integer", True),
    ]
    assert rules.allow_extra_columns is True
    assert (rules.max_duplicate_fraction, rules.max_conflicting_label_fraction) == (0.2, 0.3)
    assert rules.label_values == ["0", "1"]
    assert (rules.max_label_rate_shift, rules.max_out_of_range_fraction) == (0.15, 0.02)
    assert (rules.drift.method, rules.drift.threshold, rules.drift.p_value) == ("PSI", 0.25, 0.05)
    assert rules.drift.correction == "Bonferroni"
    assert (rules.max_batch_bytes, rules.max_columns) == (64 * 1024 * 1024, 50)
    assert parsed.output.result_key == "freshet/ml/p/runs/p-0123456789/result.json"


def test_reads_quarantine_checks() -> None:
    check = {
        "name": "maxNullFraction",
        "passed": False,
        "value": 0.4,
        "limit": 0.05,
        "message": "column x is 40% null",
    }
    batch = {"key": "in/a.csv", "etag": "e", "reason": "TooManyNulls", "checks": [check]}
    document = example("result") | {"quarantined": [batch]}
    result = RunResult.model_validate(document)
    assert result.quarantined[0].checks[0].value == 0.4
    assert result.model_dump(mode="json", exclude_unset=True) == document


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"apiVersion": "freshet.dev/run/v2"}, "apiVersion"),
        ({"kind": "RunSpec"}, "kind"),
        ({"status": "Done"}, "status"),
        ({"model": None}, "must name its model"),
        ({"status": "Failed", "reason": "", "model": None}, "must give a reason"),
    ],
)
def test_result_refuses_incomplete_outcomes(changes: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        RunResult.model_validate(example("result") | changes)


def test_failed_result_needs_no_model_or_metrics() -> None:
    result = RunResult.model_validate(
        {
            "apiVersion": "freshet.dev/run/v1",
            "kind": "RunResult",
            "runId": "spam-filter-3f9a1c0d2e",
            "status": "Failed",
            "reason": "NoTrainingData",
            "message": "every batch was quarantined",
        }
    )
    assert result.model is None
    assert result.metrics.candidate == {}


def test_unknown_fields_from_a_newer_trainer_are_ignored() -> None:
    assert RunResult.model_validate(example("result") | {"durationSeconds": 3.2}).run_id
