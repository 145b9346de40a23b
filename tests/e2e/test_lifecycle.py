"""Crash recovery and deletion: an operator whose container is SIGKILLed resumes
without duplicates or loss when kubelet restarts it,
and deleting a policy removes what it owns but never the user's Deployment or data."""

from __future__ import annotations

import json
from typing import Any

import scenario as sc
from devstack import release
from devstack.stack import Stack
from kubernetes import client


def _job_done(api: client.ApiClient, ns: str, name: str) -> bool:
    job = client.BatchV1Api(api).read_namespaced_job(name, ns)
    return bool(job.status.succeeded or job.status.failed)


def test_operator_killed_mid_run_resumes_without_duplicates_or_loss(
    kube_api: client.ApiClient,
    ns: str,
    bucket: str,
    s3: Any,
    stack: Stack,
) -> None:
    sc.create_policy(kube_api, ns, sc.policy("ads"))
    for i in range(2):
        sc.put(s3, bucket, f"incoming/c{i}.csv", sc.batch_csv(400, seed=20 + i))

    first = sc.wait_for("the first Job", lambda: sc.jobs_of(kube_api, ns, "ads"), every=0.05)
    restarts = release.restarts(stack)
    killed = release.kill(stack)  # SIGKILL while the run is in flight
    (container,) = killed.status.container_statuses
    assert container.restart_count == restarts + 1
    assert container.last_state.terminated.exit_code == 137  # 128 + SIGKILL
    job_name = first[0].metadata.name
    assert not _job_done(kube_api, ns, job_name), "the run ended before the crash"
    sc.wait_for("the orphaned run to finish", lambda: _job_done(kube_api, ns, job_name))
    sc.put(s3, bucket, "incoming/c2.csv", sc.batch_csv(400, seed=22))

    release.wait_ready(stack)  # kubelet restarted the container
    p = sc.wait_for(
        "v2 to serve after the restart",
        lambda: (q := sc.get_policy(kube_api, ns, "ads")) and sc.serving_version(q) == "v2" and q,
    )

    jobs = sc.jobs_of(kube_api, ns, "ads")
    assert len(jobs) == 2
    assert job_name in {j.metadata.name for j in jobs}
    history = p["status"]["history"]
    assert [h["version"] for h in history] == ["v2", "v1"]
    assert [h["phase"] for h in history] == ["Promoted", "Promoted"]
    assert history[1]["runId"] == job_name

    root = p["status"]["stateRoot"]
    book = json.loads(s3.get_object(bucket, f"{root}ledger.json").read())
    consumed = [b["key"] for b in book["consumed"]]
    assert sorted(consumed) == ["incoming/c0.csv", "incoming/c1.csv", "incoming/c2.csv"]
    assert book["intent"] is None
    v1_spec = json.loads(s3.get_object(bucket, f"{root}runs/{job_name}/spec.json").read())
    assert sorted(b["key"] for b in v1_spec["data"]["batches"]) == consumed[:2]


def test_deleting_a_policy_removes_its_jobs_but_not_the_deployment_or_data(
    kube_api: client.ApiClient,
    ns: str,
    bucket: str,
    s3: Any,
) -> None:
    sc.create_policy(kube_api, ns, sc.policy("reco"))
    sc.put(s3, bucket, "incoming/d0.csv", sc.batch_csv(400, seed=30))
    sc.wait_for(
        "v1 to serve",
        lambda: sc.serving_version(sc.get_policy(kube_api, ns, "reco")) == "v1",
    )
    assert len(sc.jobs_of(kube_api, ns, "reco")) == 1

    client.CustomObjectsApi(kube_api).delete_namespaced_custom_object(
        sc.GROUP, sc.VERSION, ns, sc.PLURAL, "reco"
    )
    custom = client.CustomObjectsApi(kube_api)
    sc.wait_for(
        "the policy to be gone",
        lambda: (
            not custom.list_namespaced_custom_object(sc.GROUP, sc.VERSION, ns, sc.PLURAL)["items"]
        ),
        timeout=60,
    )
    sc.wait_for(
        "its Jobs to be collected", lambda: not sc.jobs_of(kube_api, ns, "reco"), timeout=60
    )
    dep = client.AppsV1Api(kube_api).read_namespaced_deployment("model-server", ns)
    assert dep.spec.template.metadata.annotations["freshet.dev/model-version"] == "v1"
    keys = {o.object_name for o in s3.list_objects(bucket, prefix="incoming/", recursive=True)}
    assert keys == {"incoming/d0.csv"}
