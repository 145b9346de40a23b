"""A bad batch dropped into the bucket is quarantined with a reason, reported,
and never trained on."""

from __future__ import annotations

import json
from typing import Any

import scenario as sc
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
