"""`freshet-score` against a real S3 server: each shard scores its share of the
inputs with the model server's own prediction function, keeps the id and
passthrough columns, refuses what it cannot score with the check that says why,
and refuses a model whose checksum is not the recorded one."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
from freshet_contract.scoring import ShardReport
from freshet_trainer import score
from freshet_trainer.artifact import ModelArtifact
from freshet_trainer.serve import _predict_rows
from freshet_trainer.store import ObjectStore

from .synthetic import classification_frame, encode, run_spec
from .test_train_s3 import put_batch, train


@pytest.fixture
def model(store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    batches = [
        put_batch(store, f"in/t{i}.csv", encode(classification_frame(300, seed=i), "csv"))
        for i in range(2)
    ]
    code, result, _ = train(store, run_spec(batches), tmp_path, monkeypatch)
    assert code == 0 and result is not None and result.model is not None
    return {"version": "v1", "modelKey": result.model.model_key, "sha256": result.model.sha256}


def to_score(store: ObjectStore, key: str, rows: int, seed: int) -> dict[str, object]:
    frame = classification_frame(rows, seed=seed).drop(columns=["y"])
    frame.insert(0, "id", range(rows))
    frame["shop"] = "s1"
    return {
        **put_batch(store, key, encode(frame, "csv")),
        "outputKey": key.replace("score/in/", "score/out/v1/"),
    }


def scoring_spec(
    store: ObjectStore, model: dict[str, str], inputs: list[dict[str, object]], shards: int
) -> str:
    doc = {
        "apiVersion": "freshet.dev/score/v1",
        "kind": "ScoringSpec",
        "runId": "demo-s1",
        "policy": {"namespace": "ml", "name": "demo", "uid": "u", "generation": 1},
        "store": {"bucket": store.bucket, "root": "freshet/ml/demo/"},
        "model": model,
        "format": "csv",
        "idColumns": ["id"],
        "passthroughColumns": ["shop"],
        "inputs": inputs,
        "shards": shards,
    }
    key = "freshet/ml/demo/scoring/demo-s1/spec.json"
    store.put_json(key, doc)
    return key


def test_shards_score_their_share_as_the_model_server_would(
    store: ObjectStore, model: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs = [to_score(store, f"score/in/f{i}.csv", 50 + i, seed=10 + i) for i in range(3)]
    bad = classification_frame(5, seed=3).drop(columns=["y", "x2"])
    bad.insert(0, "id", range(5))
    bad["shop"] = "s1"
    inputs.append(
        {
            **put_batch(store, "score/in/bad.csv", encode(bad, "csv")),
            "outputKey": "score/out/v1/bad.csv",
        }
    )
    monkeypatch.setenv("FRESHET_SCORING_SPEC_KEY", scoring_spec(store, model, inputs, shards=2))
    reports = []
    for index in (0, 1):
        monkeypatch.setenv("JOB_COMPLETION_INDEX", str(index))
        assert score.main() == 0
        reports.append(
            ShardReport.model_validate_json(
                store.get_bytes(f"freshet/ml/demo/scoring/demo-s1/shard-{index}.json")
            )
        )
    assert [s.key for s in reports[0].scored] == ["score/in/f0.csv", "score/in/f2.csv"]
    assert [s.key for s in reports[1].scored] == ["score/in/f1.csv"]
    ((refused),) = reports[1].refused
    assert (refused.key, refused.reason) == ("score/in/bad.csv", "MissingColumns")
    assert "x2" in refused.message

    artifact = ModelArtifact.loads_verified(store.get_bytes(model["modelKey"]), model["sha256"])
    for item in inputs[:3]:
        out = pd.read_csv(io.BytesIO(store.get_bytes(str(item["outputKey"]))))
        given = pd.read_csv(io.BytesIO(store.get_bytes(str(item["key"]))))
        assert list(out.columns) == ["id", "shop", "prediction", "probability_0", "probability_1"]
        assert list(out["id"]) == list(given["id"])
        served = _predict_rows(
            artifact, json.loads(json.dumps(given[["x1", "x2", "color"]].to_dict("records")))
        )
        assert list(out["prediction"]) == served["predictions"]
        ours = out[["probability_0", "probability_1"]].to_numpy().ravel().tolist()
        theirs = [p for row in served["probabilities"] for p in row]
        assert ours == pytest.approx(theirs, abs=1e-12)


def test_a_model_that_is_not_the_recorded_one_is_refused(
    store: ObjectStore, model: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs = [to_score(store, "score/in/g.csv", 10, seed=5)]
    tampered = {**model, "sha256": "0" * 64}
    monkeypatch.setenv("FRESHET_SCORING_SPEC_KEY", scoring_spec(store, tampered, inputs, 1))
    monkeypatch.setenv("FRESHET_TERMINATION_LOG", str(tmp_path / "t"))
    assert score.main() == 1
    assert "expected " + "0" * 64 in (tmp_path / "t").read_text()  # the checksum refused
    assert not store.exists("score/out/v1/g.csv")
