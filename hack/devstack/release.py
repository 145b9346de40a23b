"""freshet installed on the stack as a user installs it: `helm upgrade --install` of
charts/freshet (CRDs, RBAC, the operator Deployment running `freshet-operator:dev`
as the chart's ServiceAccount), and the ways tests and benchmarks observe and
disturb it the cluster way: its pod's log through the API, its metrics on the pod
IP, a SIGKILL of its container (kubelet restarts it), scaling it to zero and back.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubernetes import client, config

from devstack import controlplane, node
from devstack.stack import Stack

RELEASE = "freshet"
NAMESPACE = "freshet-system"
DEPLOYMENT = "freshet-operator"
CONTAINER = "operator"
SERVICE_ACCOUNT = "freshet-operator"
TENANT_ROLE = "freshet-operator-tenant"
DASHBOARD = "freshet-operator-dashboard"
"""The dashboard's ServiceAccount, Service and Deployment (chart value dashboard.enabled)."""
DASHBOARD_STORE_ROLE = f"{DASHBOARD}-store"
SELECTOR = "app.kubernetes.io/name=freshet,app.kubernetes.io/component=operator"
METRICS_PORT = 9090
CHART = Path(__file__).resolve().parents[2] / "charts" / "freshet"
# The image devstack.images builds, imported into the node by stack.up.
IMAGE_VALUES = {
    "image.repository": "freshet-operator",
    "image.tag": "dev",
    "image.pullPolicy": "Never",
}


def _api(s: Stack) -> client.ApiClient:
    # kubernetes.config is unannotated.
    api: client.ApiClient = config.new_client_from_config(s.kubeconfig)  # type: ignore[no-untyped-call]
    return api


def helm(s: Stack, *args: str) -> str:
    """Run helm against the stack with its own cache and config under the state dir."""
    home = s.state / "helm"
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    p = subprocess.run(
        [controlplane.binary("helm"), "--kubeconfig", s.kubeconfig, *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
    )
    if p.returncode != 0:
        raise RuntimeError(f"helm {' '.join(args)} failed:\n{p.stdout}\n{p.stderr}")
    return p.stdout


def install(s: Stack, values: Mapping[str, str] | None = None, timeout: float = 180) -> Any:
    """Install or upgrade the release with the chart's defaults plus `values`
    (`--set` paths); return the operator's Ready pod.

    Every call starts from the chart's defaults (`--reset-values`), so calling it
    without `values` puts back what a test changed.
    """
    settings = {**IMAGE_VALUES, **(values or {})}
    sets = [arg for k, v in settings.items() for arg in ("--set", f"{k}={v}")]
    helm(
        s,
        "upgrade",
        "--install",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--create-namespace",
        "--reset-values",
        *sets,
        "--wait",
        "--timeout",
        f"{timeout:.0f}s",
    )
    return wait_ready(s, timeout)


def serve_namespace(api: client.ApiClient, namespace: str) -> None:
    """What a namespace's admin does to let freshet act there (cluster mode): bind
    the chart's ClusterRole freshet-operator-tenant to the operator's ServiceAccount,
    and freshet-operator-dashboard-store to the dashboard's (it reads the store
    Secret to show results; a binding to a role not installed grants nothing)."""
    rbac = client.RbacAuthorizationV1Api(api)
    for name, role, account in (
        ("freshet", TENANT_ROLE, SERVICE_ACCOUNT),
        ("freshet-dashboard", DASHBOARD_STORE_ROLE, DASHBOARD),
    ):
        binding = client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name=name),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=role
            ),
            subjects=[
                client.RbacV1Subject(kind="ServiceAccount", name=account, namespace=NAMESPACE)
            ],
        )
        rbac.create_namespaced_role_binding(namespace, binding)


def uninstall(s: Stack) -> None:
    helm(s, "uninstall", RELEASE, "--namespace", NAMESPACE, "--wait")


def installed(s: Stack) -> bool:
    listed = json.loads(helm(s, "list", "--namespace", NAMESPACE, "--output", "json"))
    return any(r.get("name") == RELEASE for r in listed)


def _pods(s: Stack) -> list[Any]:
    return list(
        client.CoreV1Api(_api(s)).list_namespaced_pod(NAMESPACE, label_selector=SELECTOR).items
    )


def _ready(pod: Any) -> bool:
    conditions = pod.status.conditions or [] if pod.status is not None else []
    return pod.metadata.deletion_timestamp is None and any(
        c.type == "Ready" and c.status == "True" for c in conditions
    )


def pod(s: Stack) -> Any | None:
    """The operator's Ready pod, if there is one."""
    return next((p for p in _pods(s) if _ready(p)), None)


def wait_ready(s: Stack, timeout: float = 180) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = pod(s)
        if found is not None:
            return found
        time.sleep(0.3)
    raise RuntimeError(f"no Ready operator pod in {NAMESPACE} after {timeout:.0f}s: {_pods(s)}")


def _container(p: Any) -> Any:
    return next(c for c in p.status.container_statuses or [] if c.name == CONTAINER)


def restarts(s: Stack) -> int:
    """How often the operator's container was restarted (in its current pod)."""
    return sum(_container(p).restart_count for p in _pods(s))


def metrics(s: Stack) -> str:
    """The operator's /metrics, fetched from its pod IP as Prometheus would."""
    ip = wait_ready(s, 60).status.pod_ip
    with urllib.request.urlopen(f"http://{ip}:{METRICS_PORT}/metrics", timeout=5) as r:
        return str(r.read().decode())


def logs(s: Stack, previous: bool = False) -> str:
    """The log of the operator's container (`kubectl logs`; `previous`: before its restart)."""
    core = client.CoreV1Api(_api(s))
    out = []
    for p in _pods(s):
        try:
            out.append(
                core.read_namespaced_pod_log(
                    p.metadata.name, NAMESPACE, container=CONTAINER, previous=previous
                )
            )
        except client.ApiException as e:
            if e.status not in (400, 404):  # no such (previous) container yet
                raise
    return "".join(out)


def kill(s: Stack) -> Any:
    """SIGKILL the operator's container, no grace: what a crash looks like. Returns
    once kubelet has seen it die; kubelet then restarts it (`wait_ready`)."""
    p = wait_ready(s, 60)
    before = _container(p).restart_count
    cid = _container(p).container_id.removeprefix("containerd://")
    node.kill_container(s.state, cid)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        current = next((q for q in _pods(s) if q.metadata.uid == p.metadata.uid), None)
        if current is None or _container(current).restart_count > before:
            return current
        time.sleep(0.1)
    raise RuntimeError(f"the operator's container {cid} still runs after SIGKILL")


def operator_pid(s: Stack) -> int:
    """The host PID of the operator's process, to read its /proc (benchmarks)."""
    cid = _container(wait_ready(s, 60)).container_id.removeprefix("containerd://")
    return node.container_pid(s.state, cid)


def scale(s: Stack, replicas: int, timeout: float = 120) -> None:
    """Scale the operator's Deployment; wait for its pods to be gone or one Ready."""
    client.AppsV1Api(_api(s)).patch_namespaced_deployment_scale(
        DEPLOYMENT, NAMESPACE, {"spec": {"replicas": replicas}}
    )
    if replicas:
        wait_ready(s, timeout)
        return
    deadline = time.monotonic() + timeout
    while _pods(s):
        if time.monotonic() > deadline:
            raise RuntimeError(f"operator pods still there {timeout:.0f}s after scaling to 0")
        time.sleep(0.3)


DASHBOARD_SELECTOR = "app.kubernetes.io/name=freshet,app.kubernetes.io/component=dashboard"
DASHBOARD_PORT = 8080


def dashboard_url(s: Stack, timeout: float = 120) -> str:
    """The URL of the dashboard's Ready pod (chart value dashboard.enabled), on its pod
    IP: the node's bridge is routed from here, as a port-forward would be."""
    core = client.CoreV1Api(_api(s))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pods: list[Any] = core.list_namespaced_pod(
            NAMESPACE, label_selector=DASHBOARD_SELECTOR
        ).items
        ready = [p for p in pods if _ready(p)]
        if ready:
            return f"http://{ready[0].status.pod_ip}:{DASHBOARD_PORT}"
        time.sleep(0.3)
    raise RuntimeError(f"no Ready dashboard pod in {NAMESPACE} after {timeout:.0f}s")
