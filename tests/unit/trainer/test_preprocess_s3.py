"""The trainer image's halves of a preprocessing run against a real S3 server:
raw batches checked and handed to the step as files, the step's outputs checked,
published and named by a manifest written last, and the training run reading the
prepared rows. The user's step in the middle is played here by a function."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from freshet_contract.document import to_document
from freshet_contract.preprocess import PreparedData, PreprocessInputs
from freshet_trainer import preprocess
from freshet_trainer.store import ObjectStore

from .synthetic import encode, run_spec
from .test_train_s3 import put_batch, train

GARBAGE = bytes(range(256)) * 8


def xor_frame(rows: int, seed: int) -> pd.DataFrame:
    """A label no linear model gets from x1 and x2, but one does from x1 * x2."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=rows), rng.normal(size=rows)
    return pd.DataFrame({"x1": x1, "x2": x2, "y": (x1 * x2 > 0).astype(int)})


def derive(inputs: Path, outputs: Path) -> None:
    """The user's step: read inputs.json, write each input with the product added."""
    doc = json.loads((inputs / "inputs.json").read_text())
    for item in doc["inputs"]:
        frame = pd.read_csv(inputs / item["path"])
        frame["x1x2"] = frame["x1"] * frame["x2"]
        (outputs / item["path"]).parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(outputs / item["path"], index=False)


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    monkeypatch.setenv("FRESHET_INPUT_DIR", str(inputs))
    monkeypatch.setenv("FRESHET_OUTPUT_DIR", str(outputs))
    monkeypatch.setenv("FRESHET_TERMINATION_LOG", str(tmp_path / "termination"))
    return inputs, outputs


def write_spec(store: ObjectStore, spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> str:
    spec["store"]["bucket"] = store.bucket
    key = f"{spec['store']['root']}runs/{spec['runId']}/spec.json"
    store.put_json(key, spec)
    monkeypatch.setenv("FRESHET_RUN_SPEC_KEY", key)
    return key


def test_inputs_step_and_publish_then_training_on_the_prepared_rows(
    store: ObjectStore, dirs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs, outputs = dirs
    good = [
        put_batch(store, f"in/b{i}.csv", encode(xor_frame(300, seed=i), "csv")) for i in range(2)
    ]
    bad = put_batch(store, "in/broken.csv", GARBAGE)
    spec = run_spec(
        [*good, bad],
        estimator={"class": "sklearn.linear_model.LogisticRegression", "params": {}},
        metric="accuracy",
    )
    write_spec(store, spec, monkeypatch)

    assert preprocess.inputs_main() == 0
    given = PreprocessInputs.model_validate_json((inputs / "inputs.json").read_bytes())
    assert [i.key for i in given.inputs] == ["in/b0.csv", "in/b1.csv"]
    assert [i.path for i in given.inputs] == ["00000.csv", "00001.csv"]  # never the key
    assert given.inputs[0].rows == 300 and given.inputs[0].columns == ["x1", "x2", "y"]
    assert not (inputs / "00002.csv").exists()  # the refused batch is not given to the step

    derive(inputs, outputs)
    assert preprocess.publish_main() == 0
    manifest = PreparedData.model_validate_json(
        store.get_bytes(f"{spec['store']['root']}runs/{spec['runId']}/prepared/manifest.json")
    )
    assert [(b.key, b.rows, b.columns) for b in manifest.batches] == [
        ("in/b0.csv", 300, ["x1", "x2", "y", "x1x2"]),
        ("in/b1.csv", 300, ["x1", "x2", "y", "x1x2"]),
    ]
    assert manifest.batches[0].prepared.key.endswith("runs/demo-v1/prepared/in/b0.csv")
    ((refused),) = manifest.refused
    assert (refused.key, refused.reason) == ("in/broken.csv", "Unparsable")

    # The operator's rewrite of the run spec (freshet.runspec.with_prepared), by hand.
    prepared = {b.key: to_document(b.prepared) for b in manifest.batches}
    for batch in spec["data"]["batches"]:
        if batch["key"] in prepared:
            batch["prepared"] = prepared[batch["key"]]
        else:
            batch["refused"] = {
                "reason": refused.reason,
                "message": refused.message,
                "checks": [to_document(c) for c in refused.checks],
            }
    code, result, _ = train(store, spec, tmp_path, monkeypatch)
    assert code == 0 and result is not None and result.status == "Succeeded", result
    assert [(q.key, q.reason) for q in result.quarantined] == [("in/broken.csv", "Unparsable")]
    # Trained on the derived feature: a linear model separates x1 * x2 > 0 only with it.
    assert result.metrics.candidate["accuracy"] > 0.9
    assert result.model is not None
    model_manifest = json.loads(store.get_bytes(result.model.manifest_key))
    assert "x1x2" in json.dumps(model_manifest["features"])


def test_a_step_that_leaves_an_output_out_fails_the_run_with_the_reason(
    store: ObjectStore, dirs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs, outputs = dirs
    batches = [
        put_batch(store, f"in/c{i}.csv", encode(xor_frame(50, seed=i), "csv")) for i in range(2)
    ]
    spec = run_spec(batches, version="v2")
    write_spec(store, spec, monkeypatch)
    assert preprocess.inputs_main() == 0
    derive(inputs, outputs)
    (outputs / "00001.csv").unlink()
    assert preprocess.publish_main() == 1
    message = (tmp_path / "termination").read_text()
    assert message.startswith("PreprocessOutputInvalid: the step wrote no output for in/c1.csv")
    manifest_key = f"{spec['store']['root']}runs/{spec['runId']}/prepared/manifest.json"
    assert not store.exists(manifest_key)  # no manifest: the run cannot go on as if it had

    (outputs / "00001.csv").write_text("x1,x2\n1,2\n")  # the label column dropped
    assert preprocess.publish_main() == 1
    assert "has no label column 'y'" in (tmp_path / "termination").read_text()
