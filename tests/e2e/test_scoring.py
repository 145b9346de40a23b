"""Batch scoring on the real stack (spec.scoring): two input files scored by an
Indexed Job with the serving model equal the model server's answers for the same
rows; the manifest names the version and its checksum; a bad input is
quarantined with its reason; a new promotion scores everything again into the
new version's folder; and nothing is scored twice."""

from __future__ import annotations

import io
import json
import time
import urllib.request
from typing import Any

import pandas as pd
import scenario as sc
from kubernetes import client

STEP_LABEL = "freshet.dev/step"


def scoring_input(rows: int, seed: int, start: int) -> bytes:
    """Rows to score: the training features, an id and a passthrough column, no label."""
    frame = pd.read_csv(io.BytesIO(sc.batch_csv(rows, seed=seed))).drop(columns=["label"])
    frame.insert(0, "id", [f"r{start + i}" for i in range(rows)])
    frame["region"] = ["north", "south"] * (rows // 2) + ["north"] * (rows % 2)
    return frame.to_csv(index=False).encode()


def scoring_jobs(api: client.ApiClient, ns: str) -> list[str]:
    return sorted(
        j.metadata.name
        for j in sc.jobs_of(api, ns, "scorer")
        if (j.metadata.labels or {}).get(STEP_LABEL) == "score"
    )


def outputs(s3: Any, bucket: str, prefix: str) -> dict[str, str]:
    return {o.object_name: o.etag for o in s3.list_objects(bucket, prefix=prefix, recursive=True)}


def last_scoring(api: client.ApiClient, ns: str, version: str) -> dict[str, Any] | None:
    st = (sc.get_policy(api, ns, "scorer").get("status") or {}).get("scoring") or {}
    last = st.get("lastRun") or {}
    done = last.get("version") == version and last.get("outcome") == "Succeeded"
    return st if done and st.get("pending") == 0 and not st.get("running") else None


def predict(url: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    body = json.dumps({"rows": rows}).encode()
    request = urllib.request.Request(
        f"{url}/predict", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        answer: dict[str, Any] = json.loads(r.read())
    return answer


def test_scoring_with_the_serving_model(
    kube_api: client.ApiClient, ns: str, bucket: str, s3: Any
) -> None:
    policy = sc.policy(
        "scorer",
        gate={"metric": "accuracy", "maxRegression": "0.2"},
        scoring={
            "prefix": "score/in/",
            "outputPrefix": "score/out/",
            "idColumns": ["id"],
            "passthroughColumns": ["region"],
            "shards": 2,
        },
    )
    sc.create_policy(kube_api, ns, policy)
    sc.put(s3, bucket, "incoming/b0.csv", sc.batch_csv(400, seed=60))
    p = sc.wait_for(
        "v1",
        lambda: (
            (q := sc.get_policy(kube_api, ns, "scorer")) and sc.serving_version(q) == "v1" and q
        ),
    )
    inputs = {
        "score/in/a.csv": scoring_input(120, seed=61, start=0),
        "score/in/day2/b.csv": scoring_input(81, seed=62, start=1000),
    }
    for key, data in inputs.items():
        sc.put(s3, bucket, key, data)
    frame = pd.read_csv(io.BytesIO(scoring_input(10, seed=63, start=0))).drop(columns=["x1"])
    sc.put(s3, bucket, "score/in/bad.csv", frame.to_csv(index=False).encode())

    st = sc.wait_for("both inputs scored with v1", lambda: last_scoring(kube_api, ns, "v1"))
    assert st["scored"] == 2 and st["lastRun"]["refused"] == 1, st
    (job,) = scoring_jobs(kube_api, ns)
    indexed = client.BatchV1Api(kube_api).read_namespaced_job(job, ns)
    assert (indexed.spec.completion_mode, indexed.spec.completions) == ("Indexed", 2)

    # The manifest, written last, names the version and its checksum and every input.
    manifest = json.loads(s3.get_object(bucket, st["lastRun"]["manifestKey"]).read())
    serving = p["status"]["serving"]
    assert manifest["model"] == {
        "version": "v1",
        "modelKey": serving["modelKey"],
        "sha256": serving["sha256"],
    }
    etags = {
        o.object_name: o.etag.strip('"')
        for o in s3.list_objects(bucket, prefix="score/in/", recursive=True)
    }
    assert {(s["key"], s["etag"], s["rows"]) for s in manifest["scored"]} == {
        ("score/in/a.csv", etags["score/in/a.csv"], 120),
        ("score/in/day2/b.csv", etags["score/in/day2/b.csv"], 81),
    }
    assert [(q["key"], q["reason"]) for q in manifest["refused"]] == [
        ("score/in/bad.csv", "MissingColumns")
    ]
    reason = json.loads(
        s3.get_object(
            bucket, f"{p['status']['stateRoot']}quarantine/score/in/bad.csv.reason.json"
        ).read()
    )
    assert "x1" in reason["message"]

    # Equal to the model server's answers for the same rows; ids and passthrough kept.
    (url,) = sc.server_urls(kube_api, ns)
    for key, data in inputs.items():
        out_key = key.replace("score/in/", "score/out/v1/")
        scored = pd.read_csv(io.BytesIO(s3.get_object(bucket, out_key).read()))
        given = pd.read_csv(io.BytesIO(data))
        assert list(scored["id"]) == list(given["id"])
        assert list(scored["region"]) == list(given["region"])
        rows = given[["x1", "x2", "cat"]].to_dict("records")
        answer = predict(url, rows)
        assert list(scored["prediction"]) == answer["predictions"]
        for i, label in enumerate(answer["classes"]):
            ours = scored[f"probability_{label}"].to_numpy()
            theirs = [p[i] for p in answer["probabilities"]]
            assert max(abs(a - b) for a, b in zip(ours, theirs, strict=True)) < 1e-12

    # A new promotion scores every input again, into its own folder; v1's stay as they were.
    before = outputs(s3, bucket, "score/out/v1/")
    sc.get_policy(kube_api, ns, "scorer")
    client.CustomObjectsApi(kube_api).patch_namespaced_custom_object(
        "freshet.dev",
        "v1alpha1",
        ns,
        "trainingpolicies",
        "scorer",
        {"metadata": {"annotations": {"freshet.dev/retrain": "now"}}},
    )
    sc.wait_for("v2", lambda: sc.serving_version(sc.get_policy(kube_api, ns, "scorer")) == "v2")
    st = sc.wait_for("both inputs scored with v2", lambda: last_scoring(kube_api, ns, "v2"))
    assert st["scored"] == 2
    v2 = outputs(s3, bucket, "score/out/v2/")
    assert {k for k in v2 if "_manifests" not in k} == {
        "score/out/v2/a.csv",
        "score/out/v2/day2/b.csv",
    }
    assert outputs(s3, bucket, "score/out/v1/") == before

    # Nothing is scored twice: a few more looks change nothing.
    jobs = scoring_jobs(kube_api, ns)
    assert len(jobs) == 2
    time.sleep(12)
    assert scoring_jobs(kube_api, ns) == jobs
    assert outputs(s3, bucket, "score/out/") == {**before, **v2}
