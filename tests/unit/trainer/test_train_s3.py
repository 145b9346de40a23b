"""`freshet-train` end to end against a real S3 server (SeaweedFS)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from freshet_contract.result import RunResult
from freshet_trainer.artifact import ModelArtifact, sha256_hex
from freshet_trainer.store import ObjectNotFound, ObjectStore
from freshet_trainer.train import main

from .synthetic import classification_frame, encode, regression_frame, run_spec


def put_batch(store: ObjectStore, key: str, data: bytes) -> dict[str, Any]:
    return {"key": key, "etag": store.put_bytes(key, data), "size": len(data)}


def train(
    store: ObjectStore,
    spec: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[int, RunResult | None, str]:
    """Write the spec like the operator does, run the entrypoint, read what it left."""
    spec["store"]["bucket"] = store.bucket
    spec_key = f"{spec['store']['root']}runs/{spec['runId']}/spec.json"
    store.put_json(spec_key, spec)
    termination = tmp_path / f"termination-{spec['runId']}"
    monkeypatch.setenv("FRESHET_RUN_SPEC_KEY", spec_key)
    monkeypatch.setenv("FRESHET_TERMINATION_LOG", str(termination))

    code = main()

    try:
        result = RunResult.model_validate_json(store.get_bytes(spec["output"]["resultKey"]))
    except ObjectNotFound:
        result = None
    return code, result, termination.read_text()


def test_train_quarantine_publish_and_compare_with_baseline(
    store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = [
        put_batch(store, f"in/b{i}.csv", encode(classification_frame(300, seed=i), "csv"))
        for i in range(2)
    ]
    no_label = put_batch(store, "in/bad.csv", b"x1,x2,color\n1,2,red\n")
    changed = put_batch(store, "in/changed.csv", encode(classification_frame(50, seed=9), "csv"))
    changed["etag"] = "0" * 32  # the operator pinned an earlier version of this file

    code, result, message = train(
        store, run_spec([*good, no_label, changed]), tmp_path, monkeypatch
    )

    assert code == 0 and result is not None and result.model is not None
    assert result.status == "Succeeded", result.message
    assert {(q.key, q.reason) for q in result.quarantined} == {
        ("in/bad.csv", "LabelMissing"),
        ("in/changed.csv", "ETagMismatch"),
    }
    assert result.rows is not None and result.rows.train + result.rows.holdout == 600
    assert result.metrics.baseline is None
    assert set(result.metrics.candidate) == {"accuracy", "f1", "roc_auc", "log_loss"}
    model_bytes = store.get_bytes(result.model.model_key)
    assert sha256_hex(model_bytes) == result.model.sha256
    assert store.get_bytes("freshet/ml/demo/models/v1/model.sha256").decode().strip() == (
        result.model.sha256
    )
    manifest = json.loads(store.get_bytes(result.model.manifest_key))
    assert [(b["key"], b["etag"]) for b in manifest["data"]["batches"]] == [
        (b["key"], b["etag"]) for b in good
    ]
    assert manifest["seed"] == 7 and manifest["packages"]["scikit-learn"]
    assert manifest["holdout"]["sha256"] == result.holdout.sha256  # type: ignore[union-attr]
    assert message.startswith(f"Succeeded v1 roc_auc={result.metrics.candidate['roc_auc']:.4f}")

    # A retried Job (same spec) produces the very same model.
    _, again, _ = train(store, run_spec([*good, no_label, changed]), tmp_path, monkeypatch)
    assert again is not None and again.model is not None
    assert again.model.sha256 == result.model.sha256

    # The next run compares its candidate with the serving model on the same holdout.
    newer = put_batch(store, "in/b2.csv", encode(classification_frame(300, seed=2), "csv"))
    baseline = {
        "version": "v1",
        "modelKey": result.model.model_key,
        "sha256": result.model.sha256,
    }
    code, second, message = train(
        store, run_spec([*good, newer], version="v2", baseline=baseline), tmp_path, monkeypatch
    )
    assert code == 0 and second is not None and second.status == "Succeeded"
    assert second.metrics.baseline is not None
    assert set(second.metrics.baseline) == set(second.metrics.candidate)
    assert second.rows is not None and second.rows.train + second.rows.holdout == 900


def test_baseline_with_wrong_checksum_is_never_unpickled(
    store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = put_batch(store, "in/b.csv", encode(classification_frame(200, seed=1), "csv"))
    store.put_bytes("models/evil/model.joblib", b"cos\nsystem\n(S'touch /tmp/pwned'\ntR.")
    baseline = {"version": "v0", "modelKey": "models/evil/model.joblib", "sha256": "a" * 64}

    code, result, message = train(
        store, run_spec([batch], baseline=baseline), tmp_path, monkeypatch
    )

    assert code == 0 and result is not None
    assert (result.status, result.reason, result.model) == ("Failed", "ChecksumMismatch", None)
    assert message.startswith("Failed ChecksumMismatch: baseline v0: sha256 is ")


def test_estimator_off_the_allow_list_fails_the_run(
    store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = put_batch(store, "in/b.csv", encode(classification_frame(50, seed=1), "csv"))
    estimator = {"class": "subprocess.Popen", "params": {"args": "id"}}

    code, result, _ = train(store, run_spec([batch], estimator=estimator), tmp_path, monkeypatch)

    assert code == 0 and result is not None
    assert (result.status, result.reason) == ("Failed", "EstimatorNotAllowed")


def test_no_usable_batch_fails_with_the_quarantine_list(
    store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = put_batch(store, "in/empty.csv", b"")
    missing = {"key": "in/gone.csv", "etag": "1" * 32, "size": 10}

    code, result, _ = train(store, run_spec([empty, missing]), tmp_path, monkeypatch)

    assert code == 0 and result is not None
    assert (result.status, result.reason) == ("Failed", "NoTrainingData")
    assert [q.reason for q in result.quarantined] == ["EmptyBatch", "BatchNotFound"]


def test_regressor_on_jsonl(
    store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = put_batch(store, "in/r.jsonl", encode(regression_frame(300, seed=1), "jsonl"))
    estimator = {"class": "sklearn.linear_model.Ridge", "params": {"alpha": 0.5}}
    spec = run_spec([batch], estimator=estimator, data_format="jsonl", metric="rmse")

    code, result, message = train(store, spec, tmp_path, monkeypatch)

    assert code == 0 and result is not None and result.model is not None
    assert set(result.metrics.candidate) == {"rmse", "mae", "r2"}
    model = ModelArtifact.loads_verified(
        store.get_bytes(result.model.model_key), result.model.sha256
    )
    assert not model.classification and model.categorical == ("kind",)
    assert message.startswith("Succeeded v1 rmse=")


def test_unreadable_spec_exits_non_zero_without_a_result(
    store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    termination = tmp_path / "termination"
    monkeypatch.setenv("FRESHET_RUN_SPEC_KEY", "freshet/ml/demo/runs/nope/spec.json")
    monkeypatch.setenv("FRESHET_TERMINATION_LOG", str(termination))

    assert main() == 1
    assert termination.read_text().startswith("Error: object 'freshet/ml/demo/runs/nope/spec.json'")


_WRITE_AUDIT = """
import os, sys
allowed = (os.environ["TMPDIR"], os.environ["FRESHET_TERMINATION_LOG"])
writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND
def audit(event, args):
    if event == "open" and isinstance(args[0], (str, bytes)):
        path, mode, flags = os.fsdecode(args[0]), args[1], args[2]
        writing = any(c in mode for c in "wax+") if mode else bool(flags & writes)
        if writing and not path.startswith(allowed):
            print("WROTE", path, file=sys.stderr)
            os._exit(99)
    elif event in {"os.mkdir", "os.rename", "os.remove"}:
        if not os.fsdecode(args[0]).startswith(allowed):  # batches are staged in $TMPDIR
            print("WROTE", args[0], file=sys.stderr)
            os._exit(99)
sys.addaudithook(audit)
from freshet_trainer.train import main
sys.exit(main())
"""


def test_writes_nothing_outside_tmpdir(
    store: ObjectStore, s3_env: dict[str, str], tmp_path: Path
) -> None:
    """What a read-only root filesystem needs, checked on every file the process opens."""
    batch = put_batch(store, "in/b.csv", encode(classification_frame(300, seed=1), "csv"))
    spec = run_spec([batch])
    spec["store"]["bucket"] = store.bucket
    store.put_json("spec.json", spec)
    env = {
        **os.environ,
        **s3_env,
        "FRESHET_RUN_SPEC_KEY": "spec.json",
        "FRESHET_TERMINATION_LOG": str(tmp_path / "termination"),
        "TMPDIR": str(tmp_path / "tmp"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    (tmp_path / "tmp").mkdir()

    done = subprocess.run(
        [sys.executable, "-c", _WRITE_AUDIT], env=env, capture_output=True, text=True, check=False
    )

    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "termination").read_text().startswith("Succeeded v1")


def test_a_warm_started_forest_is_capped_by_max_ensemble_size(
    store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the entrypoint on real S3: each run adds 10 trees, the cap keeps 15."""
    forest = {"class": "sklearn.ensemble.RandomForestClassifier", "params": {"n_estimators": 10}}
    batches = [
        put_batch(store, f"in/f{i}.csv", encode(classification_frame(300, seed=i), "csv"))
        for i in range(3)
    ]
    baseline: dict[str, Any] | None = None
    sizes = []
    for version, window in (("v1", batches[:1]), ("v2", batches[:2]), ("v3", batches)):
        spec = run_spec(window, version=version, estimator=forest, baseline=baseline)
        spec["data"]["newBatches"] = [window[-1]["key"]]
        spec["training"] |= {"warmStart": True, "maxEnsembleSize": 15}
        code, result, _ = train(store, spec, tmp_path, monkeypatch)
        assert code == 0 and result is not None and result.model is not None, result
        warm = json.loads(store.get_bytes(result.model.manifest_key))["warmStart"]
        sizes.append((warm["applied"], warm.get("sizeBefore"), warm.get("sizeAfter")))
        model = ModelArtifact.loads_verified(
            store.get_bytes(result.model.model_key), result.model.sha256
        )
        assert len(model.pipeline.named_steps["estimator"].estimators_) == min(
            10 * (len(sizes)), 15
        )
        baseline = {
            "version": version,
            "modelKey": result.model.model_key,
            "sha256": result.model.sha256,
        }
    assert sizes[1:] == [(True, 10, 15), (True, 15, 15)]
