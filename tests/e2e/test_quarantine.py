"""A bad batch dropped into the bucket is quarantined with a reason, reported,
and never trained on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC
from pathlib import Path
from typing import Any

import scenario as sc
from devstack.stack import Stack
from kubernetes import client


def test_bad_batch_is_quarantined_and_never_reaches_training(
    kube_api: client.ApiClient,
    ns: str,
    bucket: str,
    s3: Any,
) -> None:
    sc.create_policy(kube_api, ns, sc.policy("spam", trigger__onArrival={"minBatches": 2}))
    sc.put(s3, bucket, "incoming/good-0.csv", sc.batch_csv(400, seed=40))
    garbage = bytes(range(256)) * 40  # binary, not CSV
    sc.put(s3, bucket, "incoming/broken.csv", garbage)

    p = sc.wait_for(
        "the bad batch to be quarantined",
        lambda: (
            (q := sc.get_policy(kube_api, ns, "spam"))
            and (q.get("status") or {}).get("data", {}).get("quarantined") == 1
            and q
        ),
    )
    assert sc.condition(p, "DataHealthy")["status"] == "False"
    assert sc.condition(p, "DataHealthy")["reason"] == "BatchesQuarantined"
    root = p["status"]["stateRoot"]
    keys = {o.object_name for o in s3.list_objects(bucket, recursive=True)}
    assert "incoming/broken.csv" not in keys
    assert f"{root}quarantine/incoming/broken.csv" in keys
    reason = json.loads(
        s3.get_object(bucket, f"{root}quarantine/incoming/broken.csv.reason.json").read()
    )
    assert reason["key"] == "incoming/broken.csv"
    assert reason["reason"]
    assert s3.get_object(bucket, f"{root}quarantine/incoming/broken.csv").read() == garbage
    events = [
        e
        for e in client.CoreV1Api(kube_api).list_namespaced_event(ns).items
        if e.involved_object.name == "spam" and e.reason == "Quarantined"
    ]
    assert events and "incoming/broken.csv" in events[0].message

    # The run that found it trained on the good batch alone, and later runs
    # never list it again.
    p = sc.wait_for(
        "v1 to serve",
        lambda: (q := sc.get_policy(kube_api, ns, "spam")) and sc.serving_version(q) == "v1" and q,
    )
    manifest = json.loads(s3.get_object(bucket, f"{root}models/v1/manifest.json").read())
    assert [b["key"] for b in manifest["data"]["batches"]] == ["incoming/good-0.csv"]
    assert [q["key"] for q in manifest["data"]["quarantined"]] == ["incoming/broken.csv"]

    for i in (1, 2):
        sc.put(s3, bucket, f"incoming/good-{i}.csv", sc.batch_csv(400, seed=40 + i))
    p = sc.wait_for(
        "v2 to serve",
        lambda: (q := sc.get_policy(kube_api, ns, "spam")) and sc.serving_version(q) == "v2" and q,
    )
    run_id = p["status"]["serving"]["runId"]
    spec = json.loads(s3.get_object(bucket, f"{root}runs/{run_id}/spec.json").read())
    trained_on = sorted(b["key"] for b in spec["data"]["batches"])
    assert trained_on == ["incoming/good-0.csv", "incoming/good-1.csv", "incoming/good-2.csv"]
    assert p["status"]["data"]["quarantined"] == 1


def test_last_arrival_time_does_not_go_back_when_the_newest_batch_is_quarantined(
    kube_api: client.ApiClient,
    ns: str,
    bucket: str,
    s3: Any,
) -> None:
    sc.create_policy(kube_api, ns, sc.policy("fresh"))
    sc.put(s3, bucket, "incoming/ok.csv", sc.batch_csv(400, seed=90))
    sc.wait_for("v1", lambda: sc.serving_version(sc.get_policy(kube_api, ns, "fresh")) == "v1")
    time.sleep(1.5)  # a later Last-Modified at the store's one-second precision
    sc.put(s3, bucket, "incoming/broken.csv", bytes(range(256)) * 40)
    arrived = s3.stat_object(bucket, "incoming/broken.csv").last_modified
    expected = arrived.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    # Quarantined, and gone from the listing: the listing alone would say ok.csv.
    p = sc.wait_for(
        "the newest batch to be quarantined and no longer listed",
        lambda: (
            (q := sc.get_policy(kube_api, ns, "fresh"))
            and (d := (q.get("status") or {}).get("data", {})).get("quarantined") == 1
            and d.get("seen") == 1
            and q
        ),
    )
    assert p["status"]["data"]["lastArrivalTime"] == expected
    time.sleep(3)  # a few more listings and steps
    p = sc.get_policy(kube_api, ns, "fresh")
    assert p["status"]["data"]["lastArrivalTime"] == expected
    root = p["status"]["stateRoot"]
    book = json.loads(s3.get_object(bucket, f"{root}ledger.json").read())
    assert book["lastArrival"].startswith(expected.removesuffix("Z"))


def _with_nulls(data: bytes, share: float) -> bytes:
    """The batch with x1 blanked in every n-th row (`share` of the rows)."""
    lines = data.decode().splitlines()
    every = round(1 / share)
    out = [lines[0]]
    for i, line in enumerate(lines[1:]):
        out.append("," + line.split(",", 1)[1] if i % every == 0 else line)
    return ("\n".join(out) + "\n").encode()


def test_a_released_batch_is_trained_on_and_leaves_the_quarantine(
    kube_api: client.ApiClient,
    ns: str,
    bucket: str,
    s3: Any,
    stack: Stack,
) -> None:
    """The user loosens the rule that refused a batch and releases it with the CLI:
    the next run trains on it, and it is no longer counted as quarantined."""
    sc.create_policy(kube_api, ns, sc.policy("churn", validation={"maxNullFraction": "0.05"}))
    sc.put(s3, bucket, "incoming/a.csv", sc.batch_csv(400, seed=70))
    sc.wait_for(
        "v1",
        lambda: sc.serving_version(sc.get_policy(kube_api, ns, "churn")) == "v1",
    )
    sc.put(s3, bucket, "incoming/holes.csv", _with_nulls(sc.batch_csv(400, seed=71), 0.25))
    p = sc.wait_for(
        "the batch with holes to be quarantined",
        lambda: (
            (q := sc.get_policy(kube_api, ns, "churn"))
            and (q.get("status") or {}).get("data", {}).get("quarantined") == 1
            and q
        ),
    )
    assert sc.condition(p, "DataHealthy")["status"] == "False"

    client.CustomObjectsApi(kube_api).patch_namespaced_custom_object(
        sc.GROUP, sc.VERSION, ns, sc.PLURAL, "churn",
        {"spec": {"validation": {"maxNullFraction": "0.5"}}},
    )  # fmt: skip
    # `kubectl freshet`, with the user's kubeconfig and no store credentials of its own.
    env = {
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "KUBECONFIG": stack.kubeconfig,
    }
    released = subprocess.run(
        [stack.kubectl()[0], "freshet", "-n", ns, "quarantine", "release", "churn",
         "incoming/holes.csv"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert released.returncode == 0, released.stderr
    assert released.stdout.strip() == "released incoming/holes.csv"

    p = sc.wait_for(
        "a run to train on the released batch",
        lambda: (
            (q := sc.get_policy(kube_api, ns, "churn"))
            and q["status"]["data"]["quarantined"] == 0
            and q["status"]["data"]["pending"] == 0
            and (q.get("status") or {}).get("lastRun", {}).get("phase") in ("Promoted", "Rejected")
            and q
        ),
    )
    assert sc.condition(p, "DataHealthy")["status"] == "True"
    root = p["status"]["stateRoot"]
    book = json.loads(s3.get_object(bucket, f"{root}ledger.json").read())
    assert "incoming/holes.csv" in {b["key"] for b in book["consumed"]}
    assert book["quarantined"] == {}
