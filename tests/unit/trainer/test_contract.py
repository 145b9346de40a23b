"""The trainer parses the contract's example documents: strict in types, tolerant of new fields."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from freshet_contract.document import API_VERSION
from freshet_contract.result import RunResult
from freshet_contract.run import RunSpec
from pydantic import ValidationError

from .synthetic import example


def test_example_run_spec_parses() -> None:
    spec = RunSpec.model_validate(example("runspec.example.json"))

    assert spec.api_version == API_VERSION
    assert spec.training.estimator.class_name == "sklearn.linear_model.LogisticRegression"
    assert spec.training.estimator.params == {"C": 1.0, "max_iter": 200}
    assert spec.data.batches[0].etag == "9b2cf535f27731c974343645a3985328"
    assert spec.baseline is not None and spec.baseline.model_key.endswith("v2/model.joblib")
    assert spec.output.model_prefix == "freshet/ml/spam-filter/models/v3/"
    assert spec.validation.max_null_fraction is None  # null in the example: learned
    assert spec.data.selection == "Adaptive" and spec.data.max_batches == 20
    labels = spec.data.labels
    assert labels is not None and labels.id_column == "message_id"
    assert (labels.delay_seconds, labels.negative_value, labels.delayed_feedback) == (
        259200,
        "0",
        "None",
    )
    assert labels.watermark_floor == datetime(2026, 11, 26, 23, tzinfo=UTC)
    assert [f.batch for f in labels.files] == ["spam/incoming/2026-11-27T06-00.csv"] * 2


def test_late_labels_are_optional_and_times_are_utc() -> None:
    document = example("runspec.example.json")
    del document["data"]["labels"]
    assert RunSpec.model_validate(document).data.labels is None

    document = example("runspec.example.json")
    document["data"]["labels"]["watermarkFloor"] = "2026-11-27T01:00:00+02:00"
    document["data"]["labels"]["previousCutoff"] = "2026-11-20T06:00:00"  # naive: UTC
    labels = RunSpec.model_validate_json(json.dumps(document)).data.labels
    assert labels is not None
    assert labels.watermark_floor == datetime(2026, 11, 26, 23, tzinfo=UTC)
    assert labels.previous_cutoff == datetime(2026, 11, 20, 6, tzinfo=UTC)


def test_example_result_round_trips_to_the_same_document() -> None:
    document = example("result.example.json")

    result = RunResult.model_validate_json(json.dumps(document))

    assert result.model is not None and result.model.manifest_key.endswith("manifest.json")
    assert result.labels is not None and result.labels.rows.defaulted == 3658
    assert result.labels.cutoff == datetime(2026, 11, 23, 23, tzinfo=UTC)
    assert json.loads(result.to_json_bytes()) == document


def _spec_with(path: list[str], value: Any) -> dict[str, Any]:
    document = example("runspec.example.json")
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return document


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (["apiVersion"], "freshet.dev/run/v2"),
        (["kind"], "RunResult"),
        (["data", "format"], "xlsx"),
        (["training", "seed"], "0"),
        (["evaluation", "metric"], "precision"),
        (["evaluation", "holdoutFraction"], 1.0),
        (["baseline", "sha256"], "not-a-checksum"),
        (["output", "modelPrefix"], "freshet/ml/spam-filter/models/v3"),
        (["policy", "generation"], 3.5),
        (["data", "labels", "delaySeconds"], -1),
        (["data", "labels", "delayedFeedback"], "Fake"),
        (["data", "labels", "watermarkFloor"], 1764284400),
        (["data", "labels", "previousCutoff"], "last tuesday"),
        (["data", "labels", "files"], [{"key": "k", "etag": "e", "size": 1}]),
    ],
)
def test_run_spec_is_strict(path: list[str], value: Any) -> None:
    with pytest.raises(ValidationError):
        RunSpec.model_validate(_spec_with(path, value))


@pytest.mark.parametrize("path", [["unexpected"], ["data", "labels", "unexpected"]])
def test_unknown_fields_from_a_newer_operator_are_ignored(path: list[str]) -> None:
    # Tolerant on read (freshet_contract.document): a field this trainer does not
    # know is left alone, so an operator one release ahead never breaks it.
    assert RunSpec.model_validate(_spec_with(path, 1)) == RunSpec.model_validate(
        example("runspec.example.json")
    )


def test_baseline_must_be_present_even_when_null() -> None:
    document = example("runspec.example.json")
    document["baseline"] = None
    assert RunSpec.model_validate(document).baseline is None

    del document["baseline"]
    with pytest.raises(ValidationError):
        RunSpec.model_validate(document)
