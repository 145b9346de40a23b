"""A user rolls back by annotation and pins a version from the spec; freshet obeys and resumes."""

from __future__ import annotations

from typing import Any

import scenario as sc
from kubernetes import client


def _deployment_version(api: client.ApiClient, ns: str) -> str | None:
    dep = client.AppsV1Api(api).read_namespaced_deployment("model-server", ns)
    return (dep.spec.template.metadata.annotations or {}).get("freshet.dev/model-version")


def _patch(api: client.ApiClient, ns: str, body: dict[str, Any]) -> None:
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        sc.GROUP, sc.VERSION, ns, sc.PLURAL, "pricing", body
    )


def test_manual_rollback_and_pin(
    kube_api: client.ApiClient,
    ns: str,
    bucket: str,
    s3: Any,
) -> None:
    sc.create_policy(kube_api, ns, sc.policy("pricing"))
    for i, version in ((0, "v1"), (1, "v2")):
        sc.put(s3, bucket, f"incoming/p{i}.csv", sc.batch_csv(400, seed=80 + i))
        sc.wait_for(
            f"{version} to serve",
            lambda v=version: sc.serving_version(sc.get_policy(kube_api, ns, "pricing")) == v,
        )

    # Roll back by annotation: a pointer switch to v1, and v2 is rejected.
    _patch(kube_api, ns, {"metadata": {"annotations": {"freshet.dev/rollback": "r1"}}})
    p = sc.wait_for(
        "the requested rollback",
        lambda: (
            (q := sc.get_policy(kube_api, ns, "pricing")) and q["status"].get("lastRollback") and q
        ),
    )
    assert p["status"]["lastRollback"]["reason"] == "RollbackRequested"
    assert (p["status"]["lastRollback"]["fromVersion"], sc.serving_version(p)) == ("v2", "v1")
    assert p["status"]["rejectedVersions"] == ["v2"]
    sc.wait_for("the Deployment on v1", lambda: _deployment_version(kube_api, ns) == "v1")
    jobs_before = len(sc.jobs_of(kube_api, ns, "pricing"))

    # Pin v2 (a human may override the analysis): the Deployment runs v2, and
    # new data waits instead of training.
    _patch(kube_api, ns, {"spec": {"serving": {"pinnedVersion": "v2"}}})
    sc.wait_for("the Deployment on the pin", lambda: _deployment_version(kube_api, ns) == "v2")
    sc.put(s3, bucket, "incoming/p2.csv", sc.batch_csv(400, seed=82))
    p = sc.wait_for(
        "the policy to report the pin",
        lambda: (
            (q := sc.get_policy(kube_api, ns, "pricing"))
            and sc.condition(q, "Training").get("reason") == "Pinned"
            and q["status"]["data"]["pending"] == 1
            and q
        ),
        timeout=60,
    )
    assert len(sc.jobs_of(kube_api, ns, "pricing")) == jobs_before

    # Unpin: freshet takes the Deployment back to what it serves, then trains
    # on the batch that waited.
    _patch(kube_api, ns, {"spec": {"serving": {"pinnedVersion": None}}})
    p = sc.wait_for(
        "v3 to serve after the unpin",
        lambda: (
            (q := sc.get_policy(kube_api, ns, "pricing")) and sc.serving_version(q) == "v3" and q
        ),
    )
    assert p["status"]["history"][0]["trigger"] == "NewData"
    sc.wait_for("the Deployment on v3", lambda: _deployment_version(kube_api, ns) == "v3")
