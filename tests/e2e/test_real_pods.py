"""freshet on a real node: the images built by devstack.images, the operator
installed with `helm install` of charts/freshet as a user would, a policy that
trains in a real pod of `freshet-trainer:dev`, and a model server answering
through its pod IP and its Service.

Shares the real-node stack (`real_stack`, tests/conftest.py) with
tests/integration/test_real_node.py: only one real node can run per machine.
Prints the timings.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import scenario as sc
from devstack import controlplane, images, node, s3store
from devstack import stack as devstack
from kubernetes import client, config

REPO = Path(__file__).resolve().parents[2]
RELEASE_NS = "freshet-system"

RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _poll(what: str, check: Any, timeout: float, every: float = 0.2) -> Any:
    return sc.wait_for(what, check, timeout=timeout, every=every)


@pytest.fixture(scope="module")
def api(real_stack: devstack.Stack) -> client.ApiClient:
    return config.new_client_from_config(real_stack.kubeconfig)  # type: ignore[no-untyped-call]


@pytest.fixture(scope="module")
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture(scope="module")
def imported(real_stack: devstack.Stack) -> dict[str, Path]:
    """Both freshet images (built or taken from the cache) in the node's containerd."""
    started = time.monotonic()
    archives = images.ensure()
    built = time.monotonic()
    for archive in archives.values():
        node.import_image(real_stack.state, archive)
    print(
        f"\nimages ensured in {built - started:.1f}s, "
        f"imported into the node in {time.monotonic() - built:.1f}s"
    )
    return archives


def _helm(real_stack: devstack.Stack, tmp: Path, *args: str) -> str:
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(tmp / "cache"),
        "HELM_CONFIG_HOME": str(tmp / "config"),
        "HELM_DATA_HOME": str(tmp / "data"),
    }
    p = subprocess.run(
        [controlplane.binary("helm"), "--kubeconfig", str(real_stack.kubeconfig), *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
    )
    assert p.returncode == 0, f"helm {' '.join(args)}: {p.stdout}\n{p.stderr}"
    return p.stdout


def _ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


@pytest.fixture(scope="module")
def operator_release(
    real_stack: devstack.Stack,
    core: client.CoreV1Api,
    imported: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Any]:
    """charts/freshet installed with helm (its crds/ come with it); yields the Ready pod."""
    tmp = tmp_path_factory.mktemp("helm")
    started = time.monotonic()
    _helm(
        real_stack,
        tmp,
        "install",
        "freshet",
        str(REPO / "charts" / "freshet"),
        "--namespace",
        RELEASE_NS,
        "--create-namespace",
        "--set",
        "image.repository=freshet-operator",
        "--set",
        "image.tag=dev",
        "--set",
        "image.pullPolicy=Never",
    )
    installed = time.monotonic()

    def ready_pod() -> Any:
        for pod in core.list_namespaced_pod(RELEASE_NS).items:
            if _ready(pod):
                return pod
        return None

    try:
        pod = _poll("the operator pod Ready", ready_pod, 180, every=0.5)
        print(
            f"\nhelm install {installed - started:.1f}s; operator pod Ready "
            f"{time.monotonic() - started:.1f}s after helm install started"
        )
        yield pod
    finally:
        _helm(real_stack, tmp, "uninstall", "freshet", "--namespace", RELEASE_NS, "--wait")


@pytest.fixture
def ns(core: client.CoreV1Api) -> Iterator[str]:
    name = f"rp-{secrets.token_hex(4)}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    _poll(
        "default ServiceAccount",
        lambda: any(
            sa.metadata.name == "default" for sa in core.list_namespaced_service_account(name).items
        ),
        30,
    )
    yield name
    core.delete_namespace(name, grace_period_seconds=0, propagation_policy="Background")


@pytest.fixture
def bucket(real_stack: devstack.Stack) -> Iterator[tuple[Any, str]]:
    s3 = s3store.client(real_stack.s3)
    with s3store.temporary_bucket(s3) as name:
        yield s3, name


def _container_uid(real_stack: devstack.Stack, container_id: str) -> tuple[int, int]:
    """The uid/gid containerd ran a container's process as (from its OCI spec)."""
    cid = container_id.removeprefix("containerd://")
    out = subprocess.run(
        [
            node.binary("ctr"),
            f"--address={node._paths(real_stack.state)['sock']}",
            "--namespace=k8s.io",
            "containers",
            "info",
            cid,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    user = json.loads(out)["Spec"]["process"]["user"]
    return int(user["uid"]), int(user["gid"])


def _post(url: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    req = urllib.request.Request(
        url, data=json.dumps({"rows": rows}).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        answer: dict[str, Any] = json.loads(r.read())
    return answer


def _model_server(api: client.ApiClient, ns: str) -> None:
    """scenario.model_server, restricted as the chart's pod is, with its Service."""
    sc.model_server(api, ns)
    apps = client.AppsV1Api(api)
    apps.patch_namespaced_deployment(
        "model-server",
        ns,
        {
            "spec": {
                "template": {
                    "spec": {
                        "automountServiceAccountToken": False,
                        "containers": [
                            {
                                "name": "server",
                                "imagePullPolicy": "Never",
                                "securityContext": RESTRICTED,
                                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                            }
                        ],
                        "volumes": [{"name": "tmp", "emptyDir": {}}],
                    }
                }
            }
        },
    )
    client.CoreV1Api(api).create_namespaced_service(
        ns,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "model-server"},
            "spec": {
                "selector": {"app": "model-server"},
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        },
    )


def test_operator_release_is_restricted(operator_release: Any) -> None:
    pod = operator_release
    (c,) = pod.spec.containers
    assert c.image == "freshet-operator:dev"
    assert c.image_pull_policy == "Never"
    assert pod.spec.security_context.run_as_non_root is True
    assert pod.spec.security_context.run_as_user == 65532
    assert pod.spec.security_context.run_as_group == 65532
    assert c.security_context.read_only_root_filesystem is True
    assert c.security_context.capabilities.drop == ["ALL"]
    assert c.readiness_probe.http_get.port == "metrics"
    assert [m.mount_path for m in c.volume_mounts if m.name == "tmp"] == ["/tmp"]
    (tmp,) = [v for v in pod.spec.volumes if v.name == "tmp"]
    assert tmp.empty_dir is not None


def test_policy_trains_in_a_real_pod_and_serves(
    real_stack: devstack.Stack,
    api: client.ApiClient,
    core: client.CoreV1Api,
    operator_release: Any,
    ns: str,
    bucket: tuple[Any, str],
) -> None:
    s3, name = bucket
    # With a real node the store listens on the bridge gateway, reachable from pods.
    sc.store_secret(api, ns, real_stack, name)
    _model_server(api, ns)
    for i in range(2):
        sc.put(s3, name, f"incoming/b{i}.csv", sc.batch_csv(400, seed=i))
    created = time.monotonic()
    sc.create_policy(api, ns, sc.policy("real", mode="Static"))

    p = sc.wait_for(
        "v1 to serve",
        lambda: (q := sc.get_policy(api, ns, "real")) and sc.serving_version(q) == "v1" and q,
        timeout=300,
    )
    print(f"\npolicy created -> serving v1: {time.monotonic() - created:.1f}s")
    assert p["status"]["lastRun"]["trigger"] == "Created"

    # The training Job: Complete, its pod ran freshet-trainer:dev as 65532.
    (job,) = sc.jobs_of(api, ns, "real")
    assert any(c.type == "Complete" and c.status == "True" for c in job.status.conditions or [])
    print(f"Job duration: {(job.status.completion_time - job.status.start_time).total_seconds()}s")
    (pod,) = core.list_namespaced_pod(ns, label_selector=f"job-name={job.metadata.name}").items
    (c,) = pod.spec.containers
    assert c.image == "freshet-trainer:dev"
    assert c.image_pull_policy == "IfNotPresent"  # Kubernetes' default for a non-latest tag
    (cs,) = pod.status.container_statuses
    assert cs.image.endswith("/library/freshet-trainer:dev"), cs.image
    assert cs.state.terminated.exit_code == 0
    started = (cs.state.terminated.started_at - pod.metadata.creation_timestamp).total_seconds()
    print(f"training pod start (created -> container started): {started:.0f}s")
    assert _container_uid(real_stack, cs.container_id) == (65532, 65532)

    # The trainer's structured log: JSON lines with the run id.
    log = core.read_namespaced_pod_log(pod.metadata.name, ns)
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert lines, log
    assert {"time", "level", "logger", "msg", "component"} <= set(lines[0]), lines[0]
    assert any(line.get("runId") == job.metadata.name for line in lines), lines[:5]

    # The model server: rolled out with v1, answering on its pod IP and its Service.
    def serving_pod() -> Any:
        for q in core.list_namespaced_pod(ns, label_selector="app=model-server").items:
            annotations = q.metadata.annotations or {}
            if (
                _ready(q)
                and q.metadata.deletion_timestamp is None
                and annotations.get("freshet.dev/model-version") == "v1"
            ):
                return q
        return None

    server = _poll("a Ready model-server pod with v1", serving_pod, 120, every=0.5)
    (scs,) = server.status.container_statuses
    assert _container_uid(real_stack, scs.container_id) == (65532, 65532)
    rows = [{"x1": 1.5, "x2": -1.0, "cat": "b"}, {"x1": -1.5, "x2": 1.0, "cat": "a"}]
    answer = _post(f"http://{server.status.pod_ip}:8080/predict", rows)
    assert len(answer["predictions"]) == 2, answer
    print(f"pod IP {server.status.pod_ip}: {answer}")
    cluster_ip = core.read_namespaced_service("model-server", ns).spec.cluster_ip

    def via_service() -> dict[str, Any] | None:
        try:
            got = _post(f"http://{cluster_ip}/predict", rows)
        except OSError:
            return None  # kube-proxy writes the rules a moment after the endpoints
        return got if len(got.get("predictions", [])) == 2 else None

    answer = _poll("predictions through the Service", via_service, 30)
    print(f"Service {cluster_ip}: {answer}")


def _finished(core: client.CoreV1Api, ns: str, name: str) -> Any:
    pod = core.read_namespaced_pod(name, ns)
    return pod if pod.status.phase in ("Succeeded", "Failed") else None


def test_read_only_root_filesystem_in_the_trainer_image(
    core: client.CoreV1Api, imported: dict[str, Path], ns: str
) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "ro"},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "main",
                    "image": "freshet-trainer:dev",
                    "imagePullPolicy": "Never",
                    "command": ["python", "-c", "open('/x', 'w')"],
                    "securityContext": RESTRICTED,
                }
            ],
        },
    }
    core.create_namespaced_pod(ns, body)
    pod = _poll("pod ro finished", lambda: _finished(core, ns, "ro"), 60)
    assert pod.status.phase == "Failed"
    assert "Read-only file system" in core.read_namespaced_pod_log("ro", ns)


def test_run_as_non_root_refuses_a_root_image(
    real_stack: devstack.Stack, core: client.CoreV1Api, ns: str
) -> None:
    ref, archive = node.image_archive("hello")
    node.import_image(real_stack.state, archive)
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "root"},
        "spec": {
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "main",
                    "image": ref,
                    "imagePullPolicy": "Never",
                    "securityContext": {"runAsNonRoot": True},
                }
            ],
        },
    }
    core.create_namespaced_pod(ns, body)

    def refused() -> Any:
        pod = core.read_namespaced_pod("root", ns)
        for cs in pod.status.container_statuses or []:
            if cs.state.waiting and cs.state.waiting.reason == "CreateContainerConfigError":
                return cs.state.waiting
        return None

    waiting = _poll("CreateContainerConfigError", refused, 60)
    assert "will run as root" in waiting.message
