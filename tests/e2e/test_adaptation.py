"""Dynamic training follows real change with default settings, and still refuses faults.

Each scenario runs on the real stack: batches land in the bucket, the operator
runs training Jobs, and the served models are asked for predictions over HTTP.
"""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
from typing import Any

import pandas as pd
import scenario as sc
from devstack.synthetic import batch_csv, census_csv, shifted_csv
from kubernetes import client


def predict(api: client.ApiClient, ns: str, app: str, frame: pd.DataFrame) -> dict[str, Any]:
    """The answer of one Ready pod of `app` for the rows of `frame` (label left out)."""
    url = sc.wait_for(f"a Ready {app} pod", lambda: sc.server_urls(api, ns, app))[0]
    rows = json.loads(frame.drop(columns="label").to_json(orient="records"))
    request = urllib.request.Request(
        f"{url}/predict",
        data=json.dumps({"rows": rows}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return dict(json.loads(answer.read()))
    except urllib.error.HTTPError as error:
        raise AssertionError(f"{app} answered {error.code}: {error.read().decode()}") from error


def accuracy(api: client.ApiClient, ns: str, app: str, data: bytes) -> float:
    frame = pd.read_csv(io.BytesIO(data))
    answer = predict(api, ns, app, frame)
    return float((pd.Series(answer["predictions"]) == frame["label"]).mean())


def events(api: client.ApiClient, ns: str, name: str, reason: str) -> list[Any]:
    return [
        e
        for e in client.CoreV1Api(api).list_namespaced_event(ns).items
        if e.involved_object.name == name and e.reason == reason
    ]


def status(api: client.ApiClient, ns: str, name: str) -> dict[str, Any]:
    return dict(sc.get_policy(api, ns, name).get("status") or {})


def runs_finished(api: client.ApiClient, ns: str, name: str) -> int:
    """How many runs of the policy have finished (its history, newest first)."""
    return len(status(api, ns, name).get("history") or [])


def served_by(
    api: client.ApiClient, ns: str, app: str, version: str, probe: bytes | None = None
) -> bool:
    """A Ready pod of `app` answers with `version` for the rows of `probe` (a CSV with
    the model's columns; by default those of `batch_csv`)."""
    if not sc.server_urls(api, ns, app):
        return False
    rows = pd.read_csv(io.BytesIO(probe or batch_csv(1, seed=0))).head(5)
    try:
        return predict(api, ns, app, rows).get("version") == version
    except AssertionError as error:  # still loading (503), or rolling out
        if "answered 503" in str(error):
            return False
        raise


def test_a_lasting_covariate_shift_is_followed_not_quarantined(
    kube_api: client.ApiClient, ns: str, bucket: str, s3: Any
) -> None:
    """Fashion: after x1 moves for good, the Dynamic policy (every validation and
    window setting at its default) trains on the shifted batches, says so with a
    DriftDetected Event, and its served model beats the Static one on new data."""
    sc.model_server(kube_api, ns, name="static-server")
    sc.create_policy(kube_api, ns, sc.policy("fashion"))
    sc.create_policy(kube_api, ns, sc.policy("physics", mode="Static", serving="static-server"))
    sc.put(s3, bucket, "incoming/00-before.csv", shifted_csv(1200, seed=1, shifted=False))
    for name in ("fashion", "physics"):
        sc.wait_for(f"{name} v1", lambda n=name: sc.serving_version(sc.get_policy(kube_api, ns, n)))

    sc.put(s3, bucket, "incoming/01-after.csv", shifted_csv(1200, seed=2, shifted=True))
    drift = sc.wait_for(
        "a DriftDetected event", lambda: events(kube_api, ns, "fashion", "DriftDetected")
    )
    assert "incoming/01-after.csv" in drift[0].message
    sc.wait_for("the run on the shifted batch", lambda: runs_finished(kube_api, ns, "fashion") >= 2)
    sc.put(s3, bucket, "incoming/02-after.csv", shifted_csv(1200, seed=3, shifted=True))
    sc.wait_for("the second run after it", lambda: runs_finished(kube_api, ns, "fashion") >= 3)

    after = status(kube_api, ns, "fashion")
    assert after["data"]["quarantined"] == 0, after["data"]
    assert after["data"]["drift"]["batch"] in ("incoming/01-after.csv", "incoming/02-after.csv")
    assert [h["phase"] for h in after["history"]].count("Promoted") >= 2, after["history"]
    version = after["serving"]["version"]
    fresh = shifted_csv(1000, seed=99, shifted=True)
    sc.wait_for(
        f"{version} to serve",
        lambda: served_by(kube_api, ns, "model-server", version, fresh),
    )
    dynamic = accuracy(kube_api, ns, "model-server", fresh)
    static = accuracy(kube_api, ns, "static-server", fresh)
    assert dynamic > static + 0.1, (dynamic, static)


def test_a_realistic_first_batch_trains_and_a_null_surge_is_still_quarantined(
    kube_api: client.ApiClient, ns: str, bucket: str, s3: Any
) -> None:
    """Normal is learned: 10% nulls, a quarter duplicate rows and 14% conflicting
    labels are what this data looks like, so the first batch trains with default
    limits; a later batch half null in the same column is a fault."""
    sc.create_policy(kube_api, ns, sc.policy("census"))
    sc.put(s3, bucket, "incoming/00.csv", census_csv(1200, seed=1))
    p = sc.wait_for(
        "v1 from the realistic batch",
        lambda: (q := sc.get_policy(kube_api, ns, "census")) and sc.serving_version(q) and q,
    )
    assert p["status"]["data"]["quarantined"] == 0

    sc.put(s3, bucket, "incoming/01.csv", census_csv(1200, seed=2, null_share=0.5))
    p = sc.wait_for(
        "the null surge quarantined",
        lambda: (
            (q := sc.get_policy(kube_api, ns, "census"))
            and (q.get("status") or {}).get("data", {}).get("quarantined") == 1
            and q
        ),
    )
    root = p["status"]["stateRoot"]
    reason = json.loads(
        s3.get_object(bucket, f"{root}quarantine/incoming/01.csv.reason.json").read()
    )
    assert reason["reason"] == "NullFractionExceeded"
    (null_check,) = [c for c in reason["checks"] if c["name"] == "nullFraction"]
    assert null_check["column"] == "occupation" and null_check["value"] > 0.4


def test_flipped_labels_are_held_and_make_no_version_and_no_rollout(
    kube_api: client.ApiClient, ns: str, bucket: str, s3: Any
) -> None:
    """A batch whose labels are all flipped looks normal feature by feature; the
    serving model contradicts it far worse than a constant guess, so it is held as
    a label fault. It was the run's only new batch: the run is Skipped, uses no
    version number and leaves the Deployment alone; the next good batch is v2."""
    sc.create_policy(kube_api, ns, sc.policy("flips"))
    sc.put(s3, bucket, "incoming/00.csv", batch_csv(800, seed=1))
    sc.wait_for("v1", lambda: served_by(kube_api, ns, "model-server", "v1"))
    apps = client.AppsV1Api(kube_api)
    generation = apps.read_namespaced_deployment("model-server", ns).metadata.generation

    sc.put(s3, bucket, "incoming/01-flipped.csv", batch_csv(800, seed=2, flip=True))
    p = sc.wait_for(
        "the flipped batch held",
        lambda: (
            (q := sc.get_policy(kube_api, ns, "flips"))
            and (q.get("status") or {}).get("lastRun", {}).get("phase") == "Skipped"
            and q
        ),
    )
    assert p["status"]["data"]["quarantined"] == 1
    assert p["status"]["lastRun"]["reason"] == "NoNewData"
    root = p["status"]["stateRoot"]
    key = f"{root}quarantine/incoming/01-flipped.csv.reason.json"
    assert json.loads(s3.get_object(bucket, key).read())["reason"] == "LabelsContradictModel"
    assert sc.serving_version(p) == "v1"
    assert apps.read_namespaced_deployment("model-server", ns).metadata.generation == generation

    sc.put(s3, bucket, "incoming/02.csv", batch_csv(800, seed=3))
    p = sc.wait_for(
        "the next good batch promoted",
        lambda: (
            (q := sc.get_policy(kube_api, ns, "flips"))
            and (q.get("status") or {}).get("lastRun", {}).get("phase") == "Promoted"
            and q
        ),
    )
    assert sc.serving_version(p) == "v2"


def test_excluded_columns_stay_out_of_the_model(
    kube_api: client.ApiClient, ns: str, bucket: str, s3: Any
) -> None:
    """An id column in every batch would be a free-text feature; `data.exclude`
    keeps it out of validation, hashing and the model, so the server predicts
    rows that do not carry it."""
    sc.create_policy(kube_api, ns, sc.policy("ids", data__exclude=["user_id"]))
    frame = pd.read_csv(io.BytesIO(batch_csv(600, seed=1)))
    frame.insert(0, "user_id", [f"user-{i:05d}" for i in range(len(frame))])
    sc.put(s3, bucket, "incoming/00.csv", frame.to_csv(index=False).encode())
    p = sc.wait_for(
        "v1", lambda: (q := sc.get_policy(kube_api, ns, "ids")) and sc.serving_version(q) and q
    )

    manifest_key = p["status"]["serving"]["modelKey"].replace("model.joblib", "manifest.json")
    manifest = json.loads(s3.get_object(bucket, manifest_key).read())
    assert "user_id" not in manifest["features"]["numeric"] + manifest["features"]["categorical"]
    sc.wait_for("v1 to serve", lambda: served_by(kube_api, ns, "model-server", "v1"))
    answer = predict(kube_api, ns, "model-server", frame.drop(columns="user_id").head(5))
    assert len(answer["predictions"]) == 5
