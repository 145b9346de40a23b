"""freshet on a real node: the images built by devstack.images, the operator
installed with `helm upgrade --install` of charts/freshet as a user would (the
session's `freshet_release`), a policy that trains in a real pod of
`freshet-trainer:dev`, and a model server answering through its pod IP and its
Service. Prints the timings.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from typing import Any

import scenario as sc
from devstack import node, release
from devstack import stack as devstack
from kubernetes import client


def _poll(what: str, check: Any, timeout: float, every: float = 0.2) -> Any:
    return sc.wait_for(what, check, timeout=timeout, every=every)


def _ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def _container_uid(stack: devstack.Stack, container_id: str) -> tuple[int, int]:
    """The uid/gid containerd ran a container's process as (from its OCI spec)."""
    cid = container_id.removeprefix("containerd://")
    out = subprocess.run(
        [
            node.binary("ctr"),
            f"--address={node._paths(stack.state)['sock']}",
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


def test_operator_release_is_restricted(
    freshet_operator: devstack.Stack, kube_api: client.ApiClient
) -> None:
    pod = release.wait_ready(freshet_operator)
    (c,) = pod.spec.containers
    assert c.image == "freshet-operator:dev"
    assert c.image_pull_policy == "Never"
    assert pod.spec.security_context.run_as_non_root is True
    assert pod.spec.security_context.run_as_user == 65532
    assert pod.spec.security_context.run_as_group == 65532
    assert c.security_context.read_only_root_filesystem is True
    assert c.security_context.capabilities.drop == ["ALL"]
    assert c.readiness_probe.tcp_socket.port == "metrics"  # not a GET: rendering costs CPU
    assert [m.mount_path for m in c.volume_mounts if m.name == "tmp"] == ["/tmp"]
    (tmp,) = [v for v in pod.spec.volumes if v.name == "tmp"]
    assert tmp.empty_dir is not None

    # Its liveness endpoint answers, and a probe is not a line in the log.
    with urllib.request.urlopen(f"http://{pod.status.pod_ip}:8080/healthz", timeout=5) as r:
        assert r.status == 200
    core = client.CoreV1Api(kube_api)
    log = core.read_namespaced_pod_log(pod.metadata.name, pod.metadata.namespace)
    assert "freshet operator started" in log
    assert "/healthz" not in log


def test_policy_trains_in_a_real_pod_and_serves(
    stack: devstack.Stack, kube_api: client.ApiClient, ns: str, bucket: str, s3: Any
) -> None:
    api, core = kube_api, client.CoreV1Api(kube_api)
    for i in range(2):
        sc.put(s3, bucket, f"incoming/b{i}.csv", sc.batch_csv(400, seed=i))
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
    assert _container_uid(stack, cs.container_id) == (65532, 65532)

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
    assert _container_uid(stack, scs.container_id) == (65532, 65532)
    rows = [{"x1": 1.5, "x2": -1.0, "cat": "b"}, {"x1": -1.5, "x2": 1.0, "cat": "a"}]
    answer = _post(f"http://{server.status.pod_ip}:8080/predict", rows)
    assert len(answer["predictions"]) == 2, answer
    print(f"pod IP {server.status.pod_ip}: {answer}")
    # The same rows through the Open Inference Protocol, with a v2 client library.
    assert _v2_predictions(f"{server.status.pod_ip}:8080", rows) == answer["predictions"]
    cluster_ip = core.read_namespaced_service("model-server", ns).spec.cluster_ip

    def via_service() -> dict[str, Any] | None:
        try:
            got = _post(f"http://{cluster_ip}/predict", rows)
        except OSError:
            return None  # kube-proxy writes the rules a moment after the endpoints
        return got if len(got.get("predictions", [])) == 2 else None

    answer = _poll("predictions through the Service", via_service, 30)
    print(f"Service {cluster_ip}: {answer}")


def _v2_predictions(url: str, rows: list[dict[str, Any]]) -> list[Any]:
    import numpy as np
    import tritonclient.http as v2

    client = v2.InferenceServerClient(url=url)
    tensors = []
    for column in ("x1", "x2", "cat"):
        values = np.array([r[column] for r in rows], dtype=object if column == "cat" else None)
        tensor = v2.InferInput(column, [len(rows)], "BYTES" if column == "cat" else "FP64")
        tensor.set_data_from_numpy(values, binary_data=False)
        tensors.append(tensor)
    result = client.infer("model", tensors)
    predictions: list[Any] = result.as_numpy("predict").tolist()
    return predictions


def _finished(core: client.CoreV1Api, ns: str, name: str) -> Any:
    pod = core.read_namespaced_pod(name, ns)
    return pod if pod.status.phase in ("Succeeded", "Failed") else None


def test_read_only_root_filesystem_in_the_trainer_image(
    kube_api: client.ApiClient, namespace: str
) -> None:
    core, ns = client.CoreV1Api(kube_api), namespace
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
                    "securityContext": sc.RESTRICTED,
                }
            ],
        },
    }
    core.create_namespaced_pod(ns, body)
    pod = _poll("pod ro finished", lambda: _finished(core, ns, "ro"), 60)
    assert pod.status.phase == "Failed"
    assert "Read-only file system" in core.read_namespaced_pod_log("ro", ns)
