"""Warm start through a real run, the dummy baseline, and retraining from a manifest (real S3)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from freshet_contract.result import RunResult
from freshet_trainer.artifact import ModelArtifact
from freshet_trainer.reproduce import main as reproduce_main
from freshet_trainer.store import ObjectStore

from .synthetic import classification_frame, encode, run_spec
from .test_train_s3 import put_batch, train

SGD = {"class": "sklearn.linear_model.SGDClassifier", "params": {"loss": "log_loss"}}


def two_runs(
    store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[RunResult, RunResult, list[dict[str, Any]]]:
    """v1 cold on two batches, then v2 warm-started from v1 with one new batch."""
    batches = [
        put_batch(store, f"in/b{i}.csv", encode(classification_frame(300, seed=i), "csv"))
        for i in range(3)
    ]
    _, first, _ = train(store, run_spec(batches[:2], estimator=SGD), tmp_path, monkeypatch)
    assert first is not None and first.model is not None
    spec = run_spec(
        batches,
        version="v2",
        estimator=SGD,
        baseline={"version": "v1", "modelKey": first.model.model_key, "sha256": first.model.sha256},
    )
    spec["training"]["warmStart"] = True
    spec["data"]["newBatches"] = [batches[2]["key"]]
    _, second, _ = train(store, spec, tmp_path, monkeypatch)
    assert second is not None and second.model is not None, second
    return first, second, batches


def test_warm_start_continues_the_serving_model_and_says_so(
    store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second, _ = two_runs(store, tmp_path, monkeypatch)
    assert second.model is not None and second.metrics.baseline is not None

    manifest = json.loads(store.get_bytes(second.model.manifest_key))
    warm = manifest["warmStart"]
    assert (warm["applied"], warm["method"], warm["baseline"]) == (True, "partialFit", "v1")
    assert 200 < warm["rows"] < 300  # the new batch's training rows only
    assert manifest["holdout"]["modelBound"] == 0.25
    cold = json.loads(store.get_bytes(first.model.manifest_key))["warmStart"]  # type: ignore[union-attr]
    assert (cold["requested"], cold["applied"]) == (False, False)

    # Same holdout for all three models; the dummy is the majority class.
    assert second.metrics.dummy is not None and second.metrics.dummy["roc_auc"] == 0.5
    assert second.metrics.candidate["roc_auc"] > second.metrics.dummy["roc_auc"]
    assert set(second.metrics.dummy) == set(second.metrics.candidate)


def test_a_warm_started_model_retrained_from_its_manifest_predicts_the_same(
    store: ObjectStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, second, _ = two_runs(store, tmp_path, monkeypatch)
    assert second.model is not None

    code = reproduce_main(["--manifest-key", second.model.manifest_key, "--output-prefix", "re/"])

    report = json.loads(capsys.readouterr().out)
    assert code == 0, report
    assert report["reproduced"] and report["predictionsEqual"]
    assert report["rowsCompared"] == 900 and report["resultKey"] == "re/result.json"
    result = RunResult.model_validate_json(store.get_bytes("re/result.json"))
    assert result.model is not None and result.metrics == second.metrics
    # The model itself, checked independently of the command's own comparison.
    original, again = (
        ModelArtifact.loads_verified(store.get_bytes(ref.model_key), ref.sha256)
        for ref in (second.model, result.model)
    )
    probe = classification_frame(500, seed=11)
    assert np.array_equal(
        original.pipeline.predict_proba(original.features(probe)),
        again.pipeline.predict_proba(again.features(probe)),
    )


def test_a_batch_changed_since_training_makes_reproduction_fail(
    store: ObjectStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, second, batches = two_runs(store, tmp_path, monkeypatch)
    assert second.model is not None
    store.put_bytes(batches[0]["key"], encode(classification_frame(300, seed=99), "csv"))

    code = reproduce_main(["--manifest-key", second.model.manifest_key])

    report = json.loads(capsys.readouterr().out)
    assert (code, report["reproduced"]) == (1, False)
    assert report["message"] == (
        "batches the model was trained on were refused: in/b0.csv (ETagMismatch)"
    )
    assert report["resultKey"] == "freshet/ml/demo/reproductions/v2/result.json"
