"""A Static policy trains once, ignores new data, and retrains only when asked."""

from __future__ import annotations

from typing import Any

import scenario as sc
from kubernetes import client

from tests.gitops import argocd_health


def test_static_policy_trains_once_and_on_request(
    kube_api: client.ApiClient,
    ns: str,
    bucket: str,
    s3: Any,
) -> None:
    for i in range(2):
        sc.put(s3, bucket, f"incoming/s{i}.csv", sc.batch_csv(400, seed=10 + i))
    sc.create_policy(kube_api, ns, sc.policy("fraud", mode="Static"))

    # Argo CD's health check (docs/gitops/health.lua) on the live status: Progressing
    # while the first model trains, Healthy once it serves.
    sc.wait_for(
        "Argo CD health Progressing while the first model trains",
        lambda: (
            (h := argocd_health(sc.get_policy(kube_api, ns, "fraud")))[0] == "Progressing"
            and "FirstModelTraining" in h[1]
            and h
        ),
        every=0.2,
    )
    p = sc.wait_for(
        "v1 to serve",
        lambda: (q := sc.get_policy(kube_api, ns, "fraud")) and sc.serving_version(q) == "v1" and q,
    )
    assert argocd_health(p) == ("Healthy", "Serving: model v1 is serving")
    assert p["status"]["lastRun"]["trigger"] == "Created"
    assert len(sc.jobs_of(kube_api, ns, "fraud")) == 1

    # New data is seen (status counts it) but does not retrain a Static policy:
    # it is untrained, not pending, since no run will take it by itself.
    for i in range(2, 4):
        sc.put(s3, bucket, f"incoming/s{i}.csv", sc.batch_csv(400, seed=10 + i))
    p = sc.wait_for(
        "the new batches to be seen",
        lambda: (
            (q := sc.get_policy(kube_api, ns, "fraud"))
            and q["status"].get("data", {}).get("untrained") == 2
            and q
        ),
        timeout=60,
    )
    assert p["status"]["data"]["pending"] == 0
    assert p["status"]["data"]["seen"] == 4
    training = sc.condition(p, "Training")
    assert training["reason"] == "UpToDate"
    assert "2 newer batch(es) stay untrained" in training["message"]
    assert "spec change or a retrain request" in training["message"]
    assert len(sc.jobs_of(kube_api, ns, "fraud")) == 1
    assert sc.serving_version(p) == "v1"

    # The retrain annotation asks for one run, over all four batches.
    client.CustomObjectsApi(kube_api).patch_namespaced_custom_object(
        sc.GROUP,
        sc.VERSION,
        ns,
        sc.PLURAL,
        "fraud",
        {"metadata": {"annotations": {"freshet.dev/retrain": "2026-11-27T10:00"}}},
    )
    p = sc.wait_for(
        "v2 to serve",
        lambda: (q := sc.get_policy(kube_api, ns, "fraud")) and sc.serving_version(q) == "v2" and q,
    )
    assert p["status"]["history"][0]["trigger"] == "RetrainRequested"
    assert p["status"]["retrainRequest"] == "2026-11-27T10:00"
    assert p["status"]["data"]["consumed"] == 4
    assert (p["status"]["data"]["pending"], p["status"]["data"]["untrained"]) == (0, 0)
    assert len(sc.jobs_of(kube_api, ns, "fraud")) == 2
    dep = client.AppsV1Api(kube_api).read_namespaced_deployment("model-server", ns)
    assert dep.spec.template.metadata.annotations["freshet.dev/model-version"] == "v2"
