"""Preprocessing and batch scoring on real data that ships with scikit-learn
(the Wisconsin breast cancer dataset, `sklearn.datasets.load_breast_cancer`), with
default settings, through the trainer image's own code against a real S3 store.

1. Preprocessing: the same rows trained as they are, and through a preprocessing
   run (`freshet-preprocess-inputs`, a step that adds two ratio features,
   `freshet-preprocess-publish`, then `freshet-train` on the prepared rows):
   holdout metrics of both, and what validation made of the batches.
2. Batch scoring: rows the model never saw, scored by `freshet-score`; accuracy of
   the scored file against the true labels, and the largest difference from the
   model server's own answers for the same rows.

    .venv/bin/python bench/pipeline_real_data.py
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import pandas as pd
from devstack import s3store
from freshet_contract.preprocess import PreparedData, PreprocessInputs
from freshet_contract.run import RunSpec
from freshet_trainer import preprocess, score
from freshet_trainer.artifact import ModelArtifact
from freshet_trainer.serve import _predict_rows
from freshet_trainer.store import ObjectStore, StoreConfig
from freshet_trainer.train import run
from sklearn.datasets import load_breast_cancer

BUCKET = "bench-real"
ROOT = "freshet/bench/cancer/"


def spec(run_id: str, batches: list[dict[str, object]]) -> dict[str, object]:
    return {
        "apiVersion": "freshet.dev/run/v1",
        "kind": "RunSpec",
        "runId": run_id,
        "policy": {"namespace": "bench", "name": "cancer", "uid": "u", "generation": 1},
        "store": {"bucket": BUCKET, "root": ROOT},
        "data": {
            "format": "csv",
            "label": "target",
            "batches": batches,
            "newBatches": [str(b["key"]) for b in batches],
        },
        "training": {
            "estimator": {"class": "sklearn.linear_model.LogisticRegression", "params": {}},
            "seed": 0,
        },
        "evaluation": {"metric": "roc_auc", "holdoutFraction": 0.2},
        "baseline": None,
        "output": {
            "version": run_id,
            "modelPrefix": f"{ROOT}models/{run_id}/",
            "resultKey": f"{ROOT}runs/{run_id}/result.json",
        },
    }


def ratios(inputs: Path, outputs: Path) -> None:
    """The step: two ratio features a pathologist would look at."""
    doc = json.loads((inputs / "inputs.json").read_text())
    for item in doc["inputs"]:
        frame = pd.read_csv(inputs / item["path"])
        frame["area_per_perimeter"] = frame["mean area"] / frame["mean perimeter"]
        frame["worst_to_mean_radius"] = frame["worst radius"] / frame["mean radius"]
        frame.to_csv(outputs / item["path"], index=False)


def main() -> None:
    state = Path(tempfile.mkdtemp(prefix="freshet-bench-real-"))
    info = s3store.start(state)
    try:
        s3store.client(info).make_bucket(BUCKET)
        env = {
            **s3store.trainer_env(info, BUCKET),
            "FRESHET_TERMINATION_LOG": str(state / "termination"),
        }
        os.environ.update(env)
        store = ObjectStore(StoreConfig.from_env(env))
        data = load_breast_cancer(as_frame=True).frame.sample(frac=1.0, random_state=0)
        train_rows, score_rows = data.iloc[:450], data.iloc[450:]
        batches = []
        for i, start in enumerate(range(0, len(train_rows), 150)):
            part = train_rows.iloc[start : start + 150]
            body = part.to_csv(index=False).encode()
            key = f"cancer/in/b{i}.csv"
            batches.append({"key": key, "etag": store.put_bytes(key, body), "size": len(body)})

        plain = run(RunSpec.model_validate(spec("v1", batches)), store)
        # Through a preprocessing run.
        prep = spec("v2", batches)
        key = f"{ROOT}runs/v2/spec.json"
        store.put_json(key, prep)
        work = state / "work"
        os.environ.update(
            FRESHET_RUN_SPEC_KEY=key,
            FRESHET_INPUT_DIR=str(work / "in"),
            FRESHET_OUTPUT_DIR=str(work / "out"),
        )
        assert preprocess.inputs_main() == 0
        given = PreprocessInputs.model_validate_json((work / "in" / "inputs.json").read_bytes())
        ratios(work / "in", work / "out")
        assert preprocess.publish_main() == 0
        manifest = PreparedData.model_validate_json(
            store.get_bytes(f"{ROOT}runs/v2/prepared/manifest.json")
        )
        prepared = {b.key: b.prepared for b in manifest.batches}
        for b in prep["data"]["batches"]:  # type: ignore[index]
            b["prepared"] = prepared[b["key"]].model_dump(by_alias=True)
        derived = run(RunSpec.model_validate(prep), store)

        def figures(result: object) -> str:
            m = result.metrics.candidate  # type: ignore[attr-defined]
            return (
                f"roc_auc {m['roc_auc']:.4f}, accuracy {m['accuracy']:.4f},"
                f" dummy accuracy {result.metrics.dummy['accuracy']:.4f}"
            )  # type: ignore[attr-defined]

        print(
            f"breast cancer (569 rows, 30 features): {len(train_rows)} to train in 3 batches,"
            f" {len(score_rows)} to score"
        )
        print(f"trained as they are:        {figures(plain)}; quarantined {len(plain.quarantined)}")
        print(
            f"through a preprocessing run: {figures(derived)};"
            f" {len(given.inputs)} batch(es) given to the step,"
            f" {len(manifest.refused)} refused, quarantined {len(derived.quarantined)}"
        )

        # Batch scoring with the plain model.
        assert plain.model is not None
        to_score = score_rows.drop(columns="target").assign(id=range(len(score_rows)))
        body = to_score.to_csv(index=False).encode()
        etag = store.put_bytes("cancer/score/rest.csv", body)
        store.put_json(
            f"{ROOT}scoring/s1/spec.json",
            {
                "apiVersion": "freshet.dev/score/v1",
                "kind": "ScoringSpec",
                "runId": "s1",
                "policy": {"namespace": "bench", "name": "cancer", "uid": "u", "generation": 1},
                "store": {"bucket": BUCKET, "root": ROOT},
                "model": {
                    "version": "v1",
                    "modelKey": plain.model.model_key,
                    "sha256": plain.model.sha256,
                },
                "format": "csv",
                "idColumns": ["id"],
                "inputs": [
                    {
                        "key": "cancer/score/rest.csv",
                        "etag": etag,
                        "size": len(body),
                        "outputKey": "cancer/scored/v1/rest.csv",
                    }
                ],
            },
        )
        os.environ["FRESHET_SCORING_SPEC_KEY"] = f"{ROOT}scoring/s1/spec.json"
        assert score.main() == 0
        out = pd.read_csv(io.BytesIO(store.get_bytes("cancer/scored/v1/rest.csv")))
        accuracy = float((out["prediction"].to_numpy() == score_rows["target"].to_numpy()).mean())
        model = ModelArtifact.loads_verified(
            store.get_bytes(plain.model.model_key), plain.model.sha256
        )
        rows = json.loads(json.dumps(to_score.drop(columns="id").to_dict("records")))
        served = _predict_rows(model, rows)
        same = list(out["prediction"]) == served["predictions"]
        gap = max(
            abs(a - b[1])
            for a, b in zip(out["probability_1"], served["probabilities"], strict=True)
        )
        print(
            f"scored {len(out)} unseen rows: accuracy {accuracy:.4f} against the true labels;"
            f" classes equal to the model server's: {same}; largest probability difference"
            f" {gap:.1e}"
        )
    finally:
        s3store.stop(state)


if __name__ == "__main__":
    main()
