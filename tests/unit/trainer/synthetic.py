"""Small synthetic frames and specs for the trainer tests (no downloads)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

CONTRACT = Path(__file__).resolve().parents[3] / "contract"


def example(name: str) -> dict[str, Any]:
    """One of the contract's example documents, as a dict."""
    document: dict[str, Any] = json.loads((CONTRACT / name).read_text())
    return document


def classification_frame(rows: int, seed: int, label: str = "y") -> pd.DataFrame:
    """Two numeric features, one categorical, a binary label that depends on all three."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=rows)
    x2 = rng.normal(size=rows)
    color = rng.choice(["red", "green", "blue"], size=rows)
    score = 2 * x1 - x2 + np.where(color == "red", 1.0, -0.5) + rng.normal(scale=0.5, size=rows)
    return pd.DataFrame({"x1": x1, "x2": x2, "color": color, label: (score > 0).astype(int)})


def multiclass_frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=rows)
    x2 = rng.normal(size=rows)
    label = np.select([x1 > 0.5, x2 > 0.0], ["high", "mid"], default="low")
    return pd.DataFrame({"x1": x1, "x2": x2, "y": label})


def regression_frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=rows)
    kind = rng.choice(["a", "b"], size=rows)
    target = 3 * x1 + np.where(kind == "a", 2.0, -2.0) + rng.normal(scale=0.1, size=rows)
    return pd.DataFrame({"x1": x1, "kind": kind, "y": target})


def encode(frame: pd.DataFrame, data_format: str) -> bytes:
    """The frame as a batch file of the given format."""
    buffer = io.BytesIO()
    if data_format == "csv":
        frame.to_csv(buffer, index=False)
    elif data_format == "jsonl":
        frame.to_json(buffer, orient="records", lines=True)
    else:
        frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def run_spec(
    batches: list[dict[str, Any]],
    *,
    version: str = "v1",
    estimator: dict[str, Any] | None = None,
    baseline: dict[str, Any] | None = None,
    data_format: str = "csv",
    metric: str = "roc_auc",
) -> dict[str, Any]:
    """A RunSpec document (as the operator would write it) for policy ml/demo."""
    root = "freshet/ml/demo/"
    run_id = f"demo-{version}"
    return {
        "apiVersion": "freshet.dev/run/v1",
        "kind": "RunSpec",
        "runId": run_id,
        "policy": {"namespace": "ml", "name": "demo", "uid": "uid-1", "generation": 1},
        "store": {"bucket": "set-by-test", "root": root},
        "data": {
            "format": data_format,
            "label": "y",
            "batches": batches,
            "newBatches": [batch["key"] for batch in batches],
        },
        "training": {
            "estimator": estimator
            or {
                "class": "sklearn.linear_model.LogisticRegression",
                "params": {"C": 1.0, "max_iter": 200},
            },
            "seed": 7,
            "warmStart": False,
        },
        "evaluation": {"metric": metric, "holdoutFraction": 0.25},
        "baseline": baseline,
        "output": {
            "version": version,
            "modelPrefix": f"{root}models/{version}/",
            "resultKey": f"{root}runs/{run_id}/result.json",
        },
    }


EPOCH = pd.Timestamp("2026-11-20T00:00:00Z")


def event_frames(
    rows: int, seed: int, *, start: pd.Timestamp = EPOCH, step: int = 60, prefix: str = "e"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features of a conversion-like stream and its label file.

    The feature frame has `event_id`, `event_time` (ISO 8601, one event every
    `step` seconds from `start`) and the features of `classification_frame`;
    the label frame lists the positives only (`event_id`, `y`), as a
    conversion log would: a missing id is a negative once matured.
    """
    frame = classification_frame(rows, seed)
    times = [start + pd.Timedelta(seconds=step * i) for i in range(rows)]
    ids = [f"{prefix}-{i}" for i in range(rows)]
    features = frame.drop(columns="y").assign(
        event_id=ids, event_time=[t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in times]
    )
    positives = frame["y"] == 1
    labels = pd.DataFrame({"event_id": pd.Series(ids)[positives], "y": 1})
    return features, labels.reset_index(drop=True)


def late_labels_block(files: list[dict[str, Any]], **settings: Any) -> dict[str, Any]:
    """A RunSpec `data.labels` block for frames of `event_frames`."""
    return {
        "idColumn": "event_id",
        "eventTimeColumn": "event_time",
        "delaySeconds": 3600,
        "negativeValue": "0",
        "delayedFeedback": "None",
        "watermarkFloor": None,
        "previousCutoff": None,
        "files": files,
        **settings,
    }
