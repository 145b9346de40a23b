"""A preprocessing step on the real stack: the example policy's step
(docs/examples/policy-preprocess.yaml) derives a feature the trained model needs;
a raw batch that is not a CSV file is refused before the step sees it; and the
operator, away while the prep Job finishes, resumes into training without a
second prep Job."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scenario as sc
import yaml
from devstack import release
from devstack.stack import Stack
from kubernetes import client

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "policy-preprocess.yaml"
GARBAGE = bytes(range(256)) * 40
STEP_LABEL = "freshet.dev/step"


def xor_csv(rows: int, seed: int) -> bytes:
    """A label no linear model gets from x1 and x2, and one that does from x1 * x2."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=rows), rng.normal(size=rows)
    frame = pd.DataFrame({"x1": x1, "x2": x2, "label": (x1 * x2 > 0).astype(int)})
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def example_policy(step_seconds: int) -> dict[str, Any]:
    doc = yaml.safe_load(EXAMPLE.read_text())
    spec = doc["spec"]
    spec["data"].update(prefix="incoming/", storeRef={"name": "store"})
    spec["trigger"] = {"pollIntervalSeconds": 1, "onArrival": {"minBatches": 1, "quietSeconds": 1}}
    spec["preprocess"].update(image="freshet-trainer:dev", args=[str(step_seconds)])
    spec["training"]["image"] = "freshet-trainer:dev"
    return doc


def steps(api: client.ApiClient, ns: str, name: str) -> tuple[list[Any], list[Any]]:
    jobs = sc.jobs_of(api, ns, name)
    prep = [j for j in jobs if (j.metadata.labels or {}).get(STEP_LABEL) == "preprocess"]
    return prep, [j for j in jobs if j not in prep]


def test_a_derived_feature_and_an_operator_away_between_the_phases(
    stack: Stack, kube_api: client.ApiClient, ns: str, bucket: str, s3: Any
) -> None:
    sc.create_policy(kube_api, ns, example_policy(step_seconds=12))
    sc.put(s3, bucket, "incoming/b0.csv", xor_csv(600, seed=1))
    sc.put(s3, bucket, "incoming/broken.csv", GARBAGE)

    prep_jobs = sc.wait_for(
        "the prep Job", lambda: steps(kube_api, ns, "interactions")[0], every=0.1
    )
    (prep,) = prep_jobs
    assert prep.metadata.name.endswith("-prep")
    release.scale(stack, 0)  # the operator is away until the prep Job has finished
    try:
        sc.wait_for(
            "the prep Job to succeed",
            lambda: (
                client.BatchV1Api(kube_api)
                .read_namespaced_job(prep.metadata.name, ns)
                .status.succeeded
            ),
        )
        assert steps(kube_api, ns, "interactions")[1] == [], "training started without it"
    finally:
        release.scale(stack, 1)

    p = sc.wait_for(
        "v1 trained on the prepared data",
        lambda: (
            (q := sc.get_policy(kube_api, ns, "interactions"))
            and (q.get("status") or {}).get("lastRun", {}).get("phase") == "Promoted"
            and q
        ),
    )
    prep_jobs, training = steps(kube_api, ns, "interactions")
    assert [j.metadata.name for j in prep_jobs] == [prep.metadata.name]  # never a second one
    assert [j.metadata.name for j in training] == [p["status"]["lastRun"]["runId"]]
    assert prep.metadata.name == f"{training[0].metadata.name}-prep"

    # The model needed the step's feature: x1 * x2 > 0 is out of a linear model's reach.
    assert p["status"]["candidate"]["metrics"]["accuracy"] > 0.9, p["status"]["candidate"]
    root, run_id = p["status"]["stateRoot"], p["status"]["lastRun"]["runId"]
    spec = json.loads(s3.get_object(bucket, f"{root}runs/{run_id}/spec.json").read())
    by_key = {b["key"]: b for b in spec["data"]["batches"]}
    assert by_key["incoming/b0.csv"]["prepared"]["key"] == (
        f"{root}runs/{run_id}/prepared/incoming/b0.csv"
    )
    assert by_key["incoming/broken.csv"]["refused"]["reason"] == "Unparsable"
    result = json.loads(s3.get_object(bucket, f"{root}runs/{run_id}/result.json").read())
    model = json.loads(s3.get_object(bucket, result["model"]["manifestKey"]).read())
    assert "x1x2" in json.dumps(model["features"])
    # Refused before the step: quarantined with its reason, like any bad batch.
    reason = json.loads(
        s3.get_object(bucket, f"{root}quarantine/incoming/broken.csv.reason.json").read()
    )
    assert reason["reason"] == "Unparsable"
    events = (
        client.CoreV1Api(kube_api)
        .list_namespaced_event(ns, field_selector="involvedObject.name=interactions")
        .items
    )
    assert any(e.reason == "Preprocessed" for e in events), [e.reason for e in events]
    log = release.logs(stack)
    assert "Traceback" not in log


def test_a_failing_step_fails_the_run_with_its_message(
    kube_api: client.ApiClient, ns: str, bucket: str, s3: Any
) -> None:
    policy = example_policy(step_seconds=0)
    policy["metadata"]["name"] = "broken-step"
    policy["spec"]["preprocess"]["command"] = [
        "python",
        "-c",
        "import sys; sys.exit('no features today')",
    ]
    sc.create_policy(kube_api, ns, policy)
    sc.put(s3, bucket, "incoming/b0.csv", xor_csv(200, seed=2))
    p = sc.wait_for(
        "the run to fail",
        lambda: (
            (q := sc.get_policy(kube_api, ns, "broken-step"))
            and (q.get("status") or {}).get("lastRun", {}).get("phase") == "Failed"
            and q
        ),
    )
    last = p["status"]["lastRun"]
    assert last["reason"] == "PreprocessFailed"
    assert "container step exited 1" in last["message"] and "no features today" in last["message"]
    prep_jobs, training = steps(kube_api, ns, "broken-step")
    assert training == [] and len(prep_jobs) == 1
    assert sc.condition(p, "Degraded")["status"] == "True"
