"""Install, upgrade and uninstall as a platform engineer would, with policies
serving throughout: `helm upgrade` from the previous chart (0.1.0, packaged in
tests/e2e/charts) keeps policies and serving and takes the CRD over so later
upgrades update it; `helm uninstall` with a policy present leaves the policy,
the CRD, the Deployment and the data, and nothing that would hang the policy's
deletion (this operator puts no finalizer on policies, and takes off the one
0.1.0 put there). Runs last among the e2e tests; it puts the session's release
back when it ends."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import scenario as sc
from devstack import release
from devstack.stack import Stack
from kubernetes import client

PREVIOUS = Path(__file__).parent / "charts" / "freshet-0.1.0.tgz"
CRD = "trainingpolicies.freshet.dev"
IMAGE = [arg for k, v in release.IMAGE_VALUES.items() for arg in ("--set", f"{k}={v}")]


def _crd(api: client.ApiClient) -> Any:
    return client.ApiextensionsV1Api(api).read_custom_resource_definition(CRD)


def _serving(api: client.ApiClient, ns: str, version: str) -> dict[str, Any]:
    found: dict[str, Any] = sc.wait_for(
        f"{version} to serve",
        lambda: (q := sc.get_policy(api, ns, "kept")) and sc.serving_version(q) == version and q,
        timeout=180,
    )
    return found


def test_upgrade_from_the_previous_chart_then_uninstall_with_a_policy_present(
    stack: Stack, kube_api: client.ApiClient, ns: str, bucket: str, s3: Any
) -> None:
    helm_ns = ["--namespace", release.NAMESPACE]
    try:
        release.uninstall(stack)
        release.helm(stack, "install", "freshet", str(PREVIOUS), *helm_ns, *IMAGE, "--wait")
        sc.create_policy(kube_api, ns, sc.policy("kept"))
        sc.put(s3, bucket, "incoming/b0.csv", sc.batch_csv(400, seed=70))
        _serving(kube_api, ns, "v1")

        # Upgrade: 0.1.0 installed the CRD from crds/ (not owned by the release).
        started = time.monotonic()
        release.helm(
            stack, "upgrade", "freshet", str(release.CHART), *helm_ns, *IMAGE,
            "--reset-values", "--take-ownership", "--wait",
        )  # fmt: skip
        print(f"\nhelm upgrade 0.1.0 -> this chart: {time.monotonic() - started:.1f}s")
        crd = _crd(kube_api)
        assert crd.metadata.annotations["meta.helm.sh/release-name"] == "freshet"
        assert crd.metadata.annotations["helm.sh/resource-policy"] == "keep"
        assert crd.metadata.labels["helm.sh/chart"].startswith("freshet-0.2")
        p = sc.get_policy(kube_api, ns, "kept")
        assert sc.serving_version(p) == "v1"
        # 0.1.0's daemons put a finalizer on each policy; this operator needs none.
        sc.wait_for(
            "0.1.0's finalizer taken off",
            lambda: not sc.get_policy(kube_api, ns, "kept")["metadata"].get("finalizers"),
            timeout=30,
        )
        sc.put(s3, bucket, "incoming/b1.csv", sc.batch_csv(400, seed=71))
        _serving(kube_api, ns, "v2")  # the upgraded operator carries on

        # Uninstall with the policy present.
        release.uninstall(stack)
        assert release.pod(stack) is None
        p = sc.get_policy(kube_api, ns, "kept")
        assert not p["metadata"].get("finalizers")
        assert sc.serving_version(p) == "v2"
        assert _crd(kube_api).metadata.name == CRD  # kept: deleting it deletes every policy
        dep = client.AppsV1Api(kube_api).read_namespaced_deployment("model-server", ns)
        assert dep.spec.template.metadata.annotations["freshet.dev/model-version"] == "v2"
        keys = {o.object_name for o in s3.list_objects(bucket, recursive=True)}
        root = p["status"]["stateRoot"]
        assert {"incoming/b0.csv", "incoming/b1.csv", f"{root}ledger.json"} <= keys

        # With no operator, deleting the policy is not held up.
        client.CustomObjectsApi(kube_api).delete_namespaced_custom_object(
            sc.GROUP, sc.VERSION, ns, sc.PLURAL, "kept"
        )
        sc.wait_for(
            "the policy to be gone",
            lambda: (
                not client.CustomObjectsApi(kube_api).list_namespaced_custom_object(
                    sc.GROUP, sc.VERSION, ns, sc.PLURAL
                )["items"]
            ),
            timeout=15,
        )
    finally:
        if release.installed(stack):
            release.uninstall(stack)
        release.install(stack)
