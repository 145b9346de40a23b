"""`freshet-train` with late labels on the real S3 server: join, publish, monitor, reproduce."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from freshet_trainer.artifact import sha256_hex
from freshet_trainer.reproduce import main as reproduce_main
from freshet_trainer.store import ObjectStore

from .synthetic import EPOCH, encode, event_frames, late_labels_block, run_spec
from .test_train_s3 import put_batch, train

DAY = pd.Timedelta(days=1)
DELAY = 6 * 3600


def put_day(store: ObjectStore, day: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """400 events a minute apart (6h40m) starting `day` days after EPOCH, and their label file."""
    key = f"conv/events/day-{day}.csv"
    features, positives = event_frames(400, seed=day, start=EPOCH + day * DAY, prefix=f"d{day}")
    batch = put_batch(store, key, encode(features, "csv"))
    labels = put_batch(store, f"conv/labels/day-{day}/part-1.csv", encode(positives, "csv"))
    return batch, {"batch": key, **labels}


def test_late_labels_train_publish_monitor_and_reproduce(
    store: ObjectStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (day0, labels0), (day1, labels1) = put_day(store, 0), put_day(store, 1)
    conflicting = put_batch(
        store,
        "conv/labels/day-1/part-2.csv",
        b"event_id,y\nd1-3,1\nd1-3,0\n",
    )
    files = [labels0, labels1, {"batch": day1["key"], **conflicting}]
    spec = run_spec([day0, day1])
    spec["data"]["labels"] = late_labels_block(files, delaySeconds=DELAY)

    code, first, message = train(store, spec, tmp_path, monkeypatch)

    assert code == 0 and first is not None and first.model is not None, message
    assert first.status == "Succeeded", first.message
    assert sha256_hex(store.get_bytes(first.model.model_key)) == first.model.sha256
    assert [(q.key, q.reason) for q in first.quarantined] == [
        ("conv/labels/day-1/part-2.csv", "IdLabelConflict")
    ]
    labels = first.labels
    assert labels is not None and labels.watermark is not None and labels.cutoff is not None
    newest = EPOCH + DAY + pd.Timedelta(minutes=399)
    assert pd.Timestamp(labels.watermark) == newest
    assert pd.Timestamp(labels.cutoff) == newest - pd.Timedelta(seconds=DELAY)
    # day 0 has matured; of day 1 the first 40 minutes have
    assert [(b.key, b.matured, b.immature) for b in labels.batches] == [
        (day0["key"], 400, 0),
        (day1["key"], 40, 360),
    ]
    rows = labels.rows
    assert (rows.matured, rows.immature, rows.fake_negatives) == (440, 360, 0)
    assert rows.labeled + rows.defaulted == 440 and rows.labeled > 50
    assert rows.unmatched_labels == 0  # labels of immature rows still match their rows
    assert first.rows is not None and first.rows.train + first.rows.holdout == 440
    assert first.monitoring is None  # no serving model yet

    manifest = json.loads(store.get_bytes(first.model.manifest_key))
    assert [(f["key"], f["etag"]) for f in manifest["data"]["labelFiles"]] == [
        (labels0["key"], labels0["etag"]),
        (labels1["key"], labels1["etag"]),
    ]
    assert manifest["data"]["labels"]["rows"]["matured"] == 440
    assert set(manifest["features"]["numeric"]) | set(manifest["features"]["categorical"]) == {
        "x1",
        "x2",
        "color",
    }

    # The next run: a new day, the serving model scored on the rows matured since v1's cutoff.
    day2, labels2 = put_day(store, 2)
    baseline = {"version": "v1", "modelKey": first.model.model_key, "sha256": first.model.sha256}
    spec = run_spec([day0, day1, day2], version="v2", baseline=baseline)
    spec["data"]["newBatches"] = [day2["key"]]
    spec["data"]["labels"] = late_labels_block(
        [labels0, labels1, labels2],
        delaySeconds=DELAY,
        watermarkFloor=labels.watermark.isoformat(),
        previousCutoff=labels.cutoff.isoformat(),
    )

    code, second, message = train(store, spec, tmp_path, monkeypatch)

    assert code == 0 and second is not None and second.status == "Succeeded", message
    assert second.labels is not None and second.monitoring is not None
    assert [(b.matured, b.immature) for b in second.labels.batches] == [
        (400, 0),
        (400, 0),
        (40, 360),
    ]
    assert second.monitoring.rows == second.labels.rows.matured - rows.matured == 400
    assert set(second.monitoring.serving) == {"accuracy", "f1", "roc_auc", "log_loss"}

    # freshet-reproduce retrains v1 from its manifest, with the same label files.
    code = reproduce_main(["--manifest-key", first.model.manifest_key, "--output-prefix", "re/"])

    report = json.loads(capsys.readouterr().out)
    assert code == 0, report
    assert report["reproduced"] and report["bitIdentical"]
