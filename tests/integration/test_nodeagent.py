"""The node agent runs pods as local processes on the real local control plane.

Jobs complete or fail with their exit code and termination message, Deployments
become Available through readiness probes and roll out and back, each pod answers
at `<podIP>:<containerPort>` on the loopback pod network, env and volumes come
from Secrets and ConfigMaps, and deletion is graceful (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from devstack import procs
from devstack import stack as devstack
from kubernetes import client
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.integration

T = TypeVar("T")
PORTS_ANNOTATION = "devstack.freshet.dev/ports"


def wait_for(check: Callable[[], T | None], what: str, timeout: float = 60.0) -> T:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except ApiException as e:
            last_error, result = e, None
        if result:
            return result
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} ({last_error})")


def job_condition(batch: client.BatchV1Api, ns: str, name: str) -> str | None:
    job = batch.read_namespaced_job_status(name, ns)
    for c in job.status.conditions or []:
        if c.type in ("Complete", "Failed") and c.status == "True":
            return str(c.type)
    return None


def job_pod(core: client.CoreV1Api, ns: str, job: str) -> Any:
    pods = core.list_namespaced_pod(ns, label_selector=f"job-name={job}").items
    assert len(pods) == 1, [p.metadata.name for p in pods]
    return pods[0]


def python_job(name: str, code: str, **container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "main",
                            "image": "freshet/trainer:dev",
                            "command": ["python", "-c", code],
                            **container,
                        }
                    ],
                }
            },
        },
    }


def run_pod(core: client.CoreV1Api, ns: str, pod: dict[str, Any]) -> None:
    core.create_namespaced_pod(ns, pod)


def pod_phase(core: client.CoreV1Api, ns: str, name: str) -> str | None:
    phase = core.read_namespaced_pod_status(name, ns).status.phase
    return str(phase) if phase in ("Succeeded", "Failed") else None


def is_pod_address(ip: str | None) -> bool:
    """An address of the agent's pod network: in 127.0.0.0/8, not the host's 127.0.0.1."""
    if not ip or ip == "127.0.0.1":
        return False
    return ipaddress.ip_address(ip) in ipaddress.ip_network("127.0.0.0/8")


def pod_gone(core: client.CoreV1Api, ns: str, name: str) -> bool:
    try:
        core.read_namespaced_pod(name, ns)
    except ApiException as e:
        if e.status == 404:
            return True
        raise
    return False


# --------------------------------------------------------------------------- node


def test_node_is_ready_with_a_fresh_lease(
    node_agent: devstack.Stack, kube_api: client.ApiClient
) -> None:
    core = client.CoreV1Api(kube_api)
    node = core.read_node("local")
    ready = {c.type: c.status for c in node.status.conditions}
    assert ready["Ready"] == "True"
    assert node.status.allocatable["pods"] == "250"
    assert {a.type: a.address for a in node.status.addresses}["InternalIP"] == "127.0.0.1"
    # A new node is created with a not-ready taint (admission); the node lifecycle
    # controller lifts it once it sees the node Ready and adds none after that.
    wait_for(lambda: not (core.read_node("local").spec.taints or []), "the node's taints to go", 30)
    lease = client.CoordinationV1Api(kube_api).read_namespaced_lease("local", "kube-node-lease")
    assert lease.spec.holder_identity == "local"
    age = time.time() - lease.spec.renew_time.timestamp()
    assert age < 30, f"lease renewed {age:.0f}s ago"


# --------------------------------------------------------------------------- jobs


def test_job_succeeds_and_logs_are_kept(
    node_agent: devstack.Stack, kube_api: client.ApiClient, namespace: str
) -> None:
    batch, core = client.BatchV1Api(kube_api), client.CoreV1Api(kube_api)
    code = "import os, sys; print('hi from', os.environ['POD_NAME'], sys.executable)"
    env = [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    batch.create_namespaced_job(namespace, python_job("hello", code, env=env))

    assert wait_for(lambda: job_condition(batch, namespace, "hello"), "job to finish") == "Complete"
    pod = job_pod(core, namespace, "hello")
    assert pod.status.phase == "Succeeded"
    assert is_pod_address(pod.status.pod_ip)
    assert [i.ip for i in pod.status.pod_ips] == [pod.status.pod_ip]
    assert pod.status.host_ip == "127.0.0.1"
    term = pod.status.container_statuses[0].state.terminated
    assert term.exit_code == 0
    assert term.reason == "Completed"
    conditions = {c.type: c.status for c in pod.status.conditions}
    assert conditions["Initialized"] == "True"
    assert conditions["Ready"] == "False"

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "devstack.nodeagent",
            "logs",
            f"{namespace}/{pod.metadata.name}",
            "--state-dir",
            str(node_agent.state / "agent"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # The venv's interpreter runs the command: its bin directory is first on PATH.
    venv_bin = Path(sys.executable).parent
    assert out.split() == ["hi", "from", pod.metadata.name, str(venv_bin / "python")]


def test_failing_job_reports_exit_code_and_termination_message(
    node_agent: devstack.Stack, kube_api: client.ApiClient, namespace: str
) -> None:
    batch, core = client.BatchV1Api(kube_api), client.CoreV1Api(kube_api)
    code = (
        "import os, sys\n"
        "assert os.environ['FRESHET_TERMINATION_LOG'] == os.environ['DEVSTACK_TERMINATION_LOG']\n"
        "with open('/dev/termination-log', 'w') as f:\n"
        "    f.write('bad batch: 3 rows')\n"
        "sys.exit(3)\n"
    )
    batch.create_namespaced_job(namespace, python_job("fails", code))

    assert wait_for(lambda: job_condition(batch, namespace, "fails"), "job to finish") == "Failed"
    pod = job_pod(core, namespace, "fails")
    assert pod.status.phase == "Failed"
    term = pod.status.container_statuses[0].state.terminated
    assert term.exit_code == 3
    assert term.reason == "Error"
    assert term.message == "bad batch: 3 rows"


def test_termination_message_falls_back_to_the_log(
    node_agent: devstack.Stack, kube_api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    code = "import sys\nfor i in range(100): print('line', i)\nsys.exit(2)"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "fallback"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "main",
                    "image": "x",
                    "command": ["python", "-c", code],
                    "terminationMessagePolicy": "FallbackToLogsOnError",
                }
            ],
        },
    }
    run_pod(core, namespace, pod)
    assert wait_for(lambda: pod_phase(core, namespace, "fallback"), "pod to finish") == "Failed"
    term = core.read_namespaced_pod("fallback", namespace).status.container_statuses[0]
    message = term.state.terminated.message
    assert message.splitlines()[-1] == "line 99"
    assert len(message.splitlines()) <= 80


def test_on_failure_restarts_in_place(
    node_agent: devstack.Stack, kube_api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    # Fails on the first run, succeeds on the second: the emptyDir survives restarts.
    code = (
        "import os, sys\n"
        "p = '/scratch/runs'\n"
        "n = int(open(p).read()) if os.path.exists(p) else 0\n"
        "open(p, 'w').write(str(n + 1))\n"
        "sys.exit(0 if n else 1)\n"
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "flaky"},
        "spec": {
            "restartPolicy": "OnFailure",
            "volumes": [{"name": "scratch", "emptyDir": {}}],
            "initContainers": [
                {
                    "name": "prepare",
                    "image": "x",
                    "command": ["python", "-c", "open('/scratch/init', 'w').write('ok')"],
                    "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
                }
            ],
            "containers": [
                {
                    "name": "main",
                    "image": "x",
                    "command": [
                        "python",
                        "-c",
                        "assert open('/scratch/init').read() == 'ok'\n" + code,
                    ],
                    "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
                }
            ],
        },
    }
    run_pod(core, namespace, pod)
    assert wait_for(lambda: pod_phase(core, namespace, "flaky"), "pod to finish") == "Succeeded"
    status = core.read_namespaced_pod("flaky", namespace).status
    main = status.container_statuses[0]
    assert main.restart_count == 1
    assert main.last_state.terminated.exit_code == 1
    assert main.state.terminated.exit_code == 0
    assert status.init_container_statuses[0].state.terminated.exit_code == 0


# --------------------------------------------------------------------------- deployments

SERVER = """
import http.server, os, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = (os.environ['VERSION'] + ' ' + os.environ['POD_NAME']).encode()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), Handler).serve_forever()
"""


def web_deployment(version: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [
                        {
                            "name": "server",
                            "image": "freshet/server:dev",
                            "command": ["python", "-c", SERVER, "$(PORT)"],
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "env": [
                                {"name": "VERSION", "value": version},
                                {
                                    "name": "POD_NAME",
                                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                                },
                            ],
                            "readinessProbe": {
                                "httpGet": {"path": "/", "port": "http"},
                                "periodSeconds": 1,
                            },
                        }
                    ],
                },
            },
        },
    }


def rolled_out(apps: client.AppsV1Api, ns: str, name: str) -> bool:
    d = apps.read_namespaced_deployment_status(name, ns)
    s = d.status
    return bool(
        s.observed_generation is not None
        and s.observed_generation >= d.metadata.generation
        and s.updated_replicas == d.spec.replicas
        and s.replicas == d.spec.replicas
        and s.available_replicas == d.spec.replicas
        and any(c.type == "Available" and c.status == "True" for c in s.conditions or [])
    )


def served(core: client.CoreV1Api, ns: str) -> dict[str, str]:
    """Pod name -> what its server answers, for every ready, not terminating web pod."""
    out: dict[str, str] = {}
    for pod in core.list_namespaced_pod(ns, label_selector="app=web").items:
        ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
        if not ready or pod.metadata.deletion_timestamp:
            continue
        port = json.loads(pod.metadata.annotations[PORTS_ANNOTATION])["server/8080"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
            out[pod.metadata.name] = r.read().decode()
    return out


def active_replicaset(apps: client.AppsV1Api, ns: str) -> str:
    sets = [
        rs
        for rs in apps.list_namespaced_replica_set(ns, label_selector="app=web").items
        if rs.spec.replicas
    ]
    assert len(sets) == 1, [(rs.metadata.name, rs.spec.replicas) for rs in sets]
    return str(sets[0].metadata.name)


def test_deployment_becomes_available_rolls_out_and_back(
    node_agent: devstack.Stack, kube_api: client.ApiClient, namespace: str
) -> None:
    apps, core = client.AppsV1Api(kube_api), client.CoreV1Api(kube_api)
    apps.create_namespaced_deployment(namespace, web_deployment("v1"))
    wait_for(lambda: rolled_out(apps, namespace, "web"), "v1 to become available", 90)
    first = active_replicaset(apps, namespace)
    answers = served(core, namespace)
    assert len(answers) == 2
    assert {a.split()[0] for a in answers.values()} == {"v1"}
    assert {a.split()[1] for a in answers.values()} == set(answers)  # each pod answers itself

    apps.patch_namespaced_deployment("web", namespace, web_deployment("v2"))
    wait_for(lambda: rolled_out(apps, namespace, "web"), "v2 to roll out", 90)
    second = active_replicaset(apps, namespace)
    assert second != first
    assert {a.split()[0] for a in served(core, namespace).values()} == {"v2"}

    subprocess.run(
        [*node_agent.kubectl(), "-n", namespace, "rollout", "undo", "deployment/web"],
        check=True,
        capture_output=True,
    )
    wait_for(
        lambda: (
            apps.read_namespaced_deployment("web", namespace)
            .spec.template.spec.containers[0]
            .env[0]
            .value
            == "v1"
        ),
        "the undo to change the template",
    )
    wait_for(lambda: rolled_out(apps, namespace, "web"), "the undo to roll out", 90)
    assert active_replicaset(apps, namespace) == first
    wait_for(
        lambda: {a.split()[0] for a in served(core, namespace).values()} == {"v1"},
        "only v1 pods to serve",
    )


# --------------------------------------------------------------------------- pod network


def _refused(ip: str, port: int) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


def test_pods_answer_on_their_own_address_and_container_port(
    node_agent: devstack.Stack, kube_api: client.ApiClient, namespace: str
) -> None:
    apps, core = client.AppsV1Api(kube_api), client.CoreV1Api(kube_api)
    deployment = web_deployment("v1")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    # The server answers with its address, from the downward API, and its name.
    container["env"][0] = {"name": "VERSION", "value": "$(POD_IP)"}
    container["env"].insert(
        0, {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
    )
    apps.create_namespaced_deployment(namespace, deployment)
    wait_for(lambda: rolled_out(apps, namespace, "web"), "the deployment to become available", 90)

    pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
    assert len(pods) == 2
    ips = {p.metadata.name: p.status.pod_ip for p in pods}
    assert all(is_pod_address(ip) for ip in ips.values()), ips
    assert len(set(ips.values())) == 2, ips
    for pod in pods:
        assert [i.ip for i in pod.status.pod_ips] == [pod.status.pod_ip]
        assert pod.status.host_ip == "127.0.0.1"
        # The process still listens on its mapped host port, as published.
        port = json.loads(pod.metadata.annotations[PORTS_ANNOTATION])["server/8080"]
        assert port != 8080
        # Scraped like in a cluster: http://<podIP>:<containerPort>/, each pod answering itself.
        url = f"http://{pod.status.pod_ip}:8080/"
        with urllib.request.urlopen(url, timeout=5) as r:
            assert r.read().decode() == f"{pod.status.pod_ip} {pod.metadata.name}"

    apps.delete_namespaced_deployment(namespace=namespace, name="web")
    core.delete_collection_namespaced_pod(namespace, label_selector="app=web")
    for name, ip in ips.items():
        wait_for(lambda n=name: pod_gone(core, namespace, n), f"{name} to be deleted", 60)
        wait_for(lambda i=ip: _refused(i, 8080), f"{name}'s forwarder to stop", 10)


# --------------------------------------------------------------------------- env and volumes


def test_secret_and_configmap_env_and_volumes(
    node_agent: devstack.Stack, kube_api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": "creds"},
            "stringData": {"user": "alice", "password": "s3cr3t"},
        },
    )
    core.create_namespaced_config_map(
        namespace,
        {"metadata": {"name": "settings"}, "data": {"mode": "fast", "threshold": "0.5"}},
    )
    code = (
        "import json, os, sys\n"
        "keys = ('USER_NAME', 'MODE', 'CFG_threshold', 'URL', 'NS')\n"
        "out = {k: os.environ.get(k) for k in keys}\n"
        "out['password_file'] = open(sys.argv[1]).read()\n"
        "out['mode_file'] = open('/etc/settings/mode').read()\n"
        "out['config_env'] = os.environ['CONFIG_DIR']\n"
        "open('/dev/termination-log', 'w').write(json.dumps(out))\n"
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "configured"},
        "spec": {
            "restartPolicy": "Never",
            "volumes": [
                {"name": "creds", "secret": {"secretName": "creds"}},
                {"name": "settings", "configMap": {"name": "settings"}},
            ],
            "containers": [
                {
                    "name": "main",
                    "image": "x",
                    "command": ["python", "-c", code],
                    "args": ["/etc/creds/password"],
                    "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
                    "env": [
                        {
                            "name": "USER_NAME",
                            "valueFrom": {"secretKeyRef": {"name": "creds", "key": "user"}},
                        },
                        {
                            "name": "MODE",
                            "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}},
                        },
                        {
                            "name": "NS",
                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
                        },
                        {"name": "URL", "value": "http://$(USER_NAME)@host/$(MODE)"},
                        {"name": "CONFIG_DIR", "value": "/etc/settings"},
                    ],
                    "volumeMounts": [
                        {"name": "creds", "mountPath": "/etc/creds", "readOnly": True},
                        {"name": "settings", "mountPath": "/etc/settings"},
                    ],
                }
            ],
        },
    }
    run_pod(core, namespace, pod)
    assert (
        wait_for(lambda: pod_phase(core, namespace, "configured"), "pod to finish") == "Succeeded"
    )
    term = core.read_namespaced_pod("configured", namespace).status.container_statuses[0]
    out = json.loads(term.state.terminated.message)
    assert out["USER_NAME"] == "alice"
    assert out["MODE"] == "fast"
    assert out["CFG_threshold"] == "0.5"
    assert out["URL"] == "http://alice@host/fast"
    assert out["NS"] == namespace
    assert out["password_file"] == "s3cr3t"
    assert out["mode_file"] == "fast"
    # The mount path was translated to a host directory under the agent's state dir.
    state = str(node_agent.state / "agent")
    assert out["config_env"].startswith(state)
    assert Path(out["config_env"], "mode").read_text() == "fast"


# --------------------------------------------------------------------------- deletion

TRAP = """
import os, signal, sys, time
marker = sys.argv[1]
def on_term(signum, frame):
    with open(marker, 'a') as f:
        f.write('SIGTERM\\n')
    sys.exit(0)
if os.environ.get('IGNORE_TERM'):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, on_term)
with open(marker, 'w') as f:
    f.write(f'started {os.getpid()}\\n')
while True:
    time.sleep(0.1)
"""


def trap_pod(name: str, marker: Path, grace: int, ignore_term: bool) -> dict[str, Any]:
    env = [{"name": "IGNORE_TERM", "value": "1"}] if ignore_term else []
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": grace,
            "containers": [
                {
                    "name": "main",
                    "image": "x",
                    "command": ["python", "-c", TRAP, str(marker)],
                    "env": env,
                }
            ],
        },
    }


def _running_pid(marker: Path) -> int | None:
    try:
        first = marker.read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    return int(first.split()[1]) if first.startswith("started ") else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in _proc_state(pid)


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def test_graceful_deletion_sends_sigterm(
    node_agent: devstack.Stack, kube_api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    core = client.CoreV1Api(kube_api)
    marker = tmp_path / "marker"
    run_pod(core, namespace, trap_pod("trapper", marker, grace=30, ignore_term=False))
    pid = wait_for(lambda: _running_pid(marker), "the process to start")
    wait_for(
        lambda: core.read_namespaced_pod("trapper", namespace).status.phase == "Running",
        "pod to run",
    )

    started = time.monotonic()
    core.delete_namespaced_pod("trapper", namespace)
    wait_for(lambda: pod_gone(core, namespace, "trapper"), "the pod to be deleted", 30)
    assert time.monotonic() - started < 20, "deletion waited for the grace period"
    assert marker.read_text().splitlines()[1:] == ["SIGTERM"]
    assert not _alive(pid)


def test_deletion_kills_after_the_grace_period(
    node_agent: devstack.Stack, kube_api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    core = client.CoreV1Api(kube_api)
    marker = tmp_path / "marker"
    run_pod(core, namespace, trap_pod("stubborn", marker, grace=2, ignore_term=True))
    pid = wait_for(lambda: _running_pid(marker), "the process to start")

    started = time.monotonic()
    core.delete_namespaced_pod("stubborn", namespace)
    wait_for(lambda: pod_gone(core, namespace, "stubborn"), "the pod to be deleted", 30)
    assert time.monotonic() - started >= 1.5, "SIGKILL came before the grace period"
    assert not _alive(pid)


# --------------------------------------------------------------------------- agent restart


def test_restarted_agent_kills_leftovers_and_restarts_pods(
    node_agent: devstack.Stack, kube_api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    core = client.CoreV1Api(kube_api)
    always, never, legacy = tmp_path / "always", tmp_path / "never", tmp_path / "legacy"
    run_pod(core, namespace, trap_pod("always", always, grace=5, ignore_term=False))
    never_pod = trap_pod("never", never, grace=5, ignore_term=False)
    never_pod["spec"]["restartPolicy"] = "Never"
    run_pod(core, namespace, never_pod)
    run_pod(core, namespace, trap_pod("legacy", legacy, grace=5, ignore_term=False))
    old_always = wait_for(lambda: _running_pid(always), "the Always pod to start")
    old_never = wait_for(lambda: _running_pid(never), "the Never pod to start")
    wait_for(lambda: _running_pid(legacy), "the legacy pod to start")
    always_ip = wait_for(
        lambda: core.read_namespaced_pod_status("always", namespace).status.pod_ip,
        "the Always pod's address",
    )
    assert is_pod_address(always_ip)

    agent_pid = procs.pid_of(devstack.AGENT, node_agent.state)
    assert agent_pid is not None
    os.kill(agent_pid, signal.SIGKILL)
    wait_for(lambda: procs.pid_of(devstack.AGENT, node_agent.state) is None, "the agent to die")
    assert _alive(old_always) and _alive(old_never)  # nobody stopped them
    # A pod run by an older agent, which gave every pod 127.0.0.1.
    wait_for(
        lambda: core.read_namespaced_pod_status("legacy", namespace).status.pod_ip,
        "the legacy pod's address",
    )
    core.patch_namespaced_pod_status(
        "legacy",
        namespace,
        {"status": {"podIP": "127.0.0.1", "podIPs": [{"$patch": "replace"}, {"ip": "127.0.0.1"}]}},
    )

    devstack.start_agent(node_agent.state, node_agent.plane)
    wait_for(lambda: not _alive(old_always) and not _alive(old_never), "leftovers to be killed")

    def restarted() -> bool:
        st = core.read_namespaced_pod_status("always", namespace).status
        ready = any(c.type == "Ready" and c.status == "True" for c in st.conditions)
        return bool(ready and st.container_statuses[0].restart_count == 1)

    wait_for(restarted, "the Always pod to run again")
    new_pid = wait_for(lambda: _running_pid(always), "the restarted process")
    assert new_pid != old_always and _alive(new_pid)
    # The re-adopted pod keeps its address; the legacy one gets one of the pod network.
    assert core.read_namespaced_pod_status("always", namespace).status.pod_ip == always_ip

    def readdressed() -> str | None:
        st = core.read_namespaced_pod_status("legacy", namespace).status
        return str(st.pod_ip) if st.pod_ip != "127.0.0.1" else None

    legacy_ip = wait_for(readdressed, "the legacy pod to get a pod address")
    assert is_pod_address(legacy_ip) and legacy_ip != always_ip
    pod_ips = core.read_namespaced_pod_status("legacy", namespace).status.pod_ips
    assert [i.ip for i in pod_ips] == [legacy_ip]
    assert wait_for(lambda: pod_phase(core, namespace, "never"), "Never pod to fail") == "Failed"
    term = core.read_namespaced_pod("never", namespace).status.container_statuses[0]
    assert term.state.terminated.reason == "ContainerStatusUnknown"
