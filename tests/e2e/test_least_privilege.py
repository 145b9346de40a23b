"""Least privilege, proved with the operator's own token on the real API server.

The chart's RBAC (cluster mode) lets the operator act only in namespaces whose
admin bound ClusterRole freshet-operator-tenant (the `namespace` fixture does,
as an admin would), and its ValidatingAdmissionPolicy lets its Jobs run only as
ServiceAccounts the namespace allows, never privileged or on the host. The
escalation this closes: a Job in kube-system running as namespace-controller.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import scenario as sc
import yaml
from devstack import release
from devstack.stack import Stack
from kubernetes import client, config
from kubernetes.client.rest import ApiException

ACCOUNTS = "freshet.dev/training-service-accounts"


@pytest.fixture(scope="module")
def operator_kubeconfig(freshet_release: Stack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kubeconfig holding a token of the operator's ServiceAccount (TokenRequest)."""
    admin = config.new_client_from_config(freshet_release.kubeconfig)
    issued = client.CoreV1Api(admin).create_namespaced_service_account_token(
        release.SERVICE_ACCOUNT,
        release.NAMESPACE,
        client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[])),
    )
    kubeconfig = yaml.safe_load(Path(freshet_release.kubeconfig).read_text())
    kubeconfig["users"] = [{"name": "operator", "user": {"token": issued.status.token}}]
    kubeconfig["contexts"][0]["context"]["user"] = "operator"
    path = tmp_path_factory.mktemp("operator") / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig))
    return path


@pytest.fixture(scope="module")
def as_operator(operator_kubeconfig: Path) -> client.ApiClient:
    return config.new_client_from_config(str(operator_kubeconfig))


@pytest.fixture
def unserved(kube_api: client.ApiClient) -> Iterator[str]:
    """A namespace whose admin did not let freshet in."""
    core = client.CoreV1Api(kube_api)
    name = f"unserved-{secrets.token_hex(3)}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name, propagation_policy="Background")


def can_i(stack: Stack, kubeconfig: Path, *args: str) -> bool:
    p = subprocess.run(
        [*stack.kubectl()[:1], f"--kubeconfig={kubeconfig}", "auth", "can-i", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert p.stdout.strip() in ("yes", "no"), p.stdout + p.stderr
    return p.stdout.strip() == "yes"


def job(name: str, account: str | None = None, **pod: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "freshet-trainer:dev"}
    if "privileged" in pod:
        container["securityContext"] = {"privileged": pod.pop("privileged")}
    spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container], **pod}
    if account:
        spec["serviceAccountName"] = account
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": {"spec": spec}},
    }


def refused(call: Any, *args: Any, status: int = 403, **kwargs: Any) -> ApiException:
    with pytest.raises(ApiException) as raised:
        call(*args, **kwargs)
    assert raised.value.status == status, raised.value.body
    return raised.value


def test_the_operator_may_do_its_work_and_nothing_more(
    stack: Stack, operator_kubeconfig: Path, ns: str, unserved: str
) -> None:
    k = operator_kubeconfig
    # What it needs, where it serves.
    assert can_i(stack, k, "get", "secrets", "-n", ns)
    assert can_i(stack, k, "create", "jobs", "-n", ns)
    assert can_i(stack, k, "patch", "deployments", "-n", ns)
    assert can_i(stack, k, "patch", "trainingpolicies.freshet.dev", "--subresource=status", "-A")
    assert can_i(stack, k, "watch", "jobs", "--all-namespaces")
    # Nothing where it does not.
    for where in ("kube-system", unserved):
        assert not can_i(stack, k, "get", "secrets", "-n", where)
        assert not can_i(stack, k, "create", "jobs", "-n", where)
        assert not can_i(stack, k, "patch", "deployments", "-n", where)
    # Nowhere: no pods, no tokens, no RBAC of its own.
    assert not can_i(stack, k, "list", "secrets", "-n", ns)
    assert not can_i(stack, k, "create", "pods", "-n", ns)
    assert not can_i(stack, k, "create", "serviceaccounts", "--subresource=token", "-n", ns)
    assert not can_i(stack, k, "create", "rolebindings", "-n", ns)
    assert not can_i(stack, k, "bind", "clusterroles", "--all-namespaces")
    assert not can_i(stack, k, "escalate", "clusterroles", "--all-namespaces")
    assert not can_i(stack, k, "patch", "namespaces", "--all-namespaces")


def _admitted(batch: client.BatchV1Api, ns: str, body: dict[str, Any]) -> bool:
    """A dry-run create is admitted; False while the admission policy still refuses it."""
    try:
        batch.create_namespaced_job(ns, body, dry_run="All")
    except ApiException as e:
        if e.status == 403 and "freshet.dev/training-service-accounts" in (e.body or ""):
            return False
        raise
    return True


def test_the_escalation_through_a_job_is_refused(
    kube_api: client.ApiClient, as_operator: client.ApiClient, ns: str, unserved: str
) -> None:
    core, batch = client.CoreV1Api(as_operator), client.BatchV1Api(as_operator)
    assert core.read_namespaced_secret("store", ns).data  # its policy's store Secret
    for where in ("kube-system", unserved):
        denied = refused(core.read_namespaced_secret, "store", where)
        assert "cannot get resource" in denied.body

    # The escalation the issue found: a Job in kube-system as namespace-controller.
    denied = refused(
        batch.create_namespaced_job,
        "kube-system",
        job("escalate", "namespace-controller"),
        dry_run="All",
    )
    assert "cannot create resource" in denied.body

    # Where it serves: only the ServiceAccounts the namespace allows.
    as_other = job("as-other", "namespace-controller")
    denied = refused(batch.create_namespaced_job, ns, as_other, dry_run="All")
    assert "freshet.dev/training-service-accounts" in denied.body, denied.body
    batch.create_namespaced_job(ns, job("as-default"), dry_run="All")
    client.CoreV1Api(kube_api).patch_namespace(
        ns, {"metadata": {"annotations": {ACCOUNTS: "trainer"}}}
    )
    # The admission policy reads the namespace from the API server's informer cache,
    # which sees the annotation a moment after the patch returns.
    sc.wait_for(
        "the allowed ServiceAccount to be admitted",
        lambda: _admitted(batch, ns, job("as-trainer", "trainer")),
        timeout=30,
    )

    # And never with the node's powers. (kube-apiserver's default
    # --allow-privileged=false refuses privileged containers for everyone here, 422
    # before any policy; the admission policy's rule holds where they are allowed.)
    privileged = job("privileged", privileged=True)
    refused(batch.create_namespaced_job, ns, privileged, status=422, dry_run="All")
    for name, pod in {
        "host-network": {"hostNetwork": True},
        "host-pid": {"hostPID": True},
        "host-path": {"volumes": [{"name": "root", "hostPath": {"path": "/"}}]},
    }.items():
        denied = refused(batch.create_namespaced_job, ns, job(name, **pod), dry_run="All")
        assert "ValidatingAdmissionPolicy" in denied.body, denied.body

    # The policy binds to the operator's requests only: an admin's Job is not judged.
    client.BatchV1Api(kube_api).create_namespaced_job(
        ns, job("admin", "namespace-controller", hostNetwork=True), dry_run="All"
    )


def test_a_namespace_that_did_not_let_freshet_in_is_told_how(
    kube_api: client.ApiClient,
    stack: Stack,
    freshet_operator: Stack,
    unserved: str,
    bucket: str,
    s3: Any,
) -> None:
    sc.store_secret(kube_api, unserved, stack, bucket)
    sc.create_policy(kube_api, unserved, sc.policy("outside", serving=None))
    sc.put(s3, bucket, "incoming/b0.csv", sc.batch_csv(300, seed=5))
    p = sc.wait_for(
        "Forbidden in status",
        lambda: (
            (q := sc.get_policy(kube_api, unserved, "outside"))
            and sc.condition(q, "Ready").get("reason") == "Forbidden"
            and q
        ),
        timeout=60,
    )
    message = sc.condition(p, "Ready")["message"]
    assert "secrets" in message and release.TENANT_ROLE in message, message
    assert sc.jobs_of(kube_api, unserved, "outside") == []

    release.serve_namespace(kube_api, unserved)
    sc.wait_for(
        "a Job once freshet is let in",
        lambda: sc.jobs_of(kube_api, unserved, "outside"),
        timeout=120,
    )
