"""The real node (devstack.node): kubelet + containerd + runc on a bridge of the
stack's own, kube-proxy for Services, CoreDNS for cluster DNS.

On the session's stack (`stack` in tests/conftest.py; one real node runs per
machine, so every tier shares it).
The test image is `hello` (hack/hello/main.go): one static binary that prints
a line and serves HTTP on :8080, and with arguments says something, GETs a URL
or touches a file, so exec and in-pod HTTP checks need no shell.
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

import pytest
from devstack import controlplane, node
from devstack import stack as devstack
from kubernetes import client, config
from kubernetes.stream import stream

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def core(stack: devstack.Stack) -> client.CoreV1Api:
    api = config.new_client_from_config(stack.kubeconfig)  # type: ignore[no-untyped-call]
    return client.CoreV1Api(api)


@pytest.fixture(scope="session")
def hello_image(stack: devstack.Stack) -> str:
    """The test image, assembled once per binary (cached next to it) and imported."""
    started = time.monotonic()
    ref, archive = node.image_archive("hello")
    node.import_image(stack.state, archive)
    print(f"\nhello image built and imported in {time.monotonic() - started:.2f}s")
    return ref


@pytest.fixture
def ns(namespace: str) -> str:
    return namespace


def _poll(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout}s")


def _pod(
    name: str,
    image: str,
    args: list[str] | None = None,
    labels: dict[str, str] | None = None,
    security: dict[str, Any] | None = None,
    restart: str = "Always",
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "main",
        "image": image,
        "imagePullPolicy": "Never",
        "ports": [{"containerPort": 8080}],
    }
    if args:
        container["args"] = args
    if security:
        container["securityContext"] = security
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "containers": [container],
            "restartPolicy": restart,
            "terminationGracePeriodSeconds": 1,
            "automountServiceAccountToken": False,
        },
    }


def _run_pod(core: client.CoreV1Api, ns: str, body: dict[str, Any]) -> tuple[Any, float]:
    """Create a pod, wait until it is Running; return it and apply → Running seconds."""
    started = time.monotonic()
    core.create_namespaced_pod(ns, body)
    name = body["metadata"]["name"]

    def running() -> Any:
        pod = core.read_namespaced_pod(name, ns)
        return pod if pod.status.phase == "Running" else None

    pod = _poll(running, 60, f"pod {name} Running")
    return pod, time.monotonic() - started


def _exec(core: client.CoreV1Api, ns: str, pod: str, command: list[str]) -> str:
    out = stream(
        core.connect_get_namespaced_pod_exec,
        pod,
        ns,
        command=command,
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
    )
    return str(out)


def test_node_registers_ready(stack: devstack.Stack, core: client.CoreV1Api) -> None:
    n = core.read_node(node.NODE_NAME)
    ready = {c.type: c.status for c in n.status.conditions}
    assert ready["Ready"] == "True", ready
    assert n.status.node_info.kubelet_version == controlplane.versions()["KUBE_VERSION"]
    assert n.status.node_info.container_runtime_version.startswith("containerd://")
    net = node.load_network(stack.state)
    assert net is not None
    addresses = {a.type: a.address for a in n.status.addresses}
    assert addresses["InternalIP"] == net.gateway


def test_pod_runs_with_logs_and_exec(core: client.CoreV1Api, hello_image: str, ns: str) -> None:
    pod, latency = _run_pod(core, ns, _pod("hello", hello_image))
    print(f"\npod start latency (apply -> Running): {latency:.2f}s")
    assert pod.status.pod_ip

    def logged() -> str | None:
        log = core.read_namespaced_pod_log("hello", ns)
        return log if "hello from hello" in log else None

    _poll(logged, 15, "pod log")
    assert _exec(core, ns, "hello", ["/hello", "say", "exec", "works"]).strip() == "exec works"


def test_pods_have_no_route_off_the_bridge(
    stack: devstack.Stack, core: client.CoreV1Api, hello_image: str, ns: str
) -> None:
    """Pods reach their /24 and the Service CIDR via the gateway, nothing else;
    the host forwards nothing between the bridge and another interface."""
    _run_pod(core, ns, _pod("routes", hello_image))
    net = node.load_network(stack.state)
    assert net is not None
    netns_dir = stack.state / "node" / "containerd" / "state" / "io.containerd.grpc.v1.cri"
    namespaces = list((netns_dir / "netns").iterdir())
    assert namespaces
    for path in namespaces:
        routes = subprocess.run(
            ["nsenter", f"--net={path}", "ip", "-4", "route"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        assert "default" not in routes, routes
        for line in routes.splitlines():
            dst = line.split()[0]
            assert dst in (net.subnet, controlplane.SERVICE_CIDR), routes
    rules = subprocess.run(
        ["iptables", "-t", "mangle", "-S", "FORWARD"], check=True, capture_output=True, text=True
    ).stdout
    assert f"-i {net.bridge} ! -o {net.bridge}" in rules, rules


def test_run_as_non_root_refuses_a_root_image(
    core: client.CoreV1Api, hello_image: str, ns: str
) -> None:
    core.create_namespaced_pod(ns, _pod("nonroot", hello_image, security={"runAsNonRoot": True}))

    def refused() -> Any:
        pod = core.read_namespaced_pod("nonroot", ns)
        for cs in pod.status.container_statuses or []:
            if cs.state.waiting and cs.state.waiting.reason == "CreateContainerConfigError":
                return cs.state.waiting
        return None

    waiting = _poll(refused, 60, "CreateContainerConfigError")
    assert "will run as root" in waiting.message


def test_read_only_root_filesystem_is_enforced(
    core: client.CoreV1Api, hello_image: str, ns: str
) -> None:
    body = _pod(
        "ro",
        hello_image,
        args=["touch", "/written"],
        security={"readOnlyRootFilesystem": True},
        restart="Never",
    )
    core.create_namespaced_pod(ns, body)
    pod = _poll(
        lambda: (
            (p := core.read_namespaced_pod("ro", ns)).status.phase in ("Succeeded", "Failed") and p
        ),
        60,
        "pod ro finished",
    )
    assert pod.status.phase == "Failed"
    assert "read-only file system" in core.read_namespaced_pod_log("ro", ns)


def test_services_and_dns_from_a_pod(
    stack: devstack.Stack, core: client.CoreV1Api, hello_image: str, ns: str
) -> None:
    _run_pod(core, ns, _pod("web", hello_image, labels={"app": "web"}))
    svc = core.create_namespaced_service(
        ns,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )
    _run_pod(core, ns, _pod("client", hello_image))
    kubernetes_ip = core.read_namespaced_service("kubernetes", "default").spec.cluster_ip

    def get(url: str) -> str | None:
        out = _exec(core, ns, "client", ["/hello", "get", url])
        return out if out.startswith("status ") else None

    # kube-proxy writes the rules a moment after the Service and its endpoints exist.
    out = _poll(lambda: get(f"https://{kubernetes_ip}:443/version"), 30, "kubernetes Service")
    print(f"\nkubernetes Service from a pod: {out.splitlines()[0]}")
    out = _poll(lambda: get(f"http://{svc.spec.cluster_ip}/"), 30, "web by ClusterIP")
    assert "hello from web" in out
    out = _poll(lambda: get(f"http://web.{ns}.svc.cluster.local/"), 30, "web by DNS name")
    assert "hello from web" in out
    out = _poll(lambda: get(f"{stack.s3.url}/"), 15, "S3 store")
    print(f"S3 store from a pod: {out.splitlines()[0]}")
