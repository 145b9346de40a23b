"""Run the real freshet operator process against the local stack.

It runs as a local process (there is no container runtime), but with the
chart's own least-privilege RBAC: the chart's ServiceAccount, ClusterRole and
binding are rendered with `helm template` and applied, and the operator gets a
kubeconfig holding that ServiceAccount's token, so a missing permission fails
here exactly as it would in a cluster.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

import yaml
from kubernetes import client, config

from devstack import controlplane, procs, stack
from devstack.stack import Stack

NAME = stack.OPERATOR
NAMESPACE = "freshet-system"
SERVICE_ACCOUNT = "freshet-operator"
_REPO = Path(__file__).resolve().parents[2]


def install(s: Stack) -> None:
    """CRDs from crds/, RBAC from the chart."""
    kubectl = s.kubectl()
    subprocess.run(
        [*kubectl, "apply", "--server-side", "-f", str(_REPO / "crds")],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *kubectl,
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/trainingpolicies.freshet.dev",
        ],
        check=True,
        capture_output=True,
    )
    rendered = subprocess.run(
        [
            controlplane.binary("helm"),
            "template",
            "freshet",
            str(_REPO / "charts" / "freshet"),
            "--namespace",
            NAMESPACE,
            "--show-only",
            "templates/rbac.yaml",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    # kubernetes.config is unannotated.
    api = config.new_client_from_config(s.kubeconfig)  # type: ignore[no-untyped-call]
    core = client.CoreV1Api(api)
    existing = {n.metadata.name for n in core.list_namespace().items if n.metadata is not None}
    if NAMESPACE not in existing:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
    subprocess.run(
        [*kubectl, "apply", "--server-side", "-f", "-"],
        input=rendered,
        text=True,
        check=True,
        capture_output=True,
    )


def kubeconfig(s: Stack) -> Path:
    """A kubeconfig that authenticates as the chart's ServiceAccount."""
    # kubernetes.config is unannotated.
    api = config.new_client_from_config(s.kubeconfig)  # type: ignore[no-untyped-call]
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=86400)
    )
    issued = client.CoreV1Api(api).create_namespaced_service_account_token(
        SERVICE_ACCOUNT, NAMESPACE, request
    )
    assert issued.status is not None, "the API server answers a TokenRequest with its status"
    token = issued.status.token
    admin = yaml.safe_load(Path(s.kubeconfig).read_text())
    admin["users"] = [{"name": SERVICE_ACCOUNT, "user": {"token": token}}]
    admin["contexts"][0]["context"]["user"] = SERVICE_ACCOUNT
    path = s.state / "operator.kubeconfig"
    path.write_text(yaml.safe_dump(admin))
    path.chmod(0o600)
    return path


def start(s: Stack, extra_env: dict[str, str] | None = None) -> int:
    """Start the operator; return its metrics port once its liveness endpoint answers."""
    metrics_port, health_port = procs.free_port(), procs.free_port()
    procs.start(
        NAME,
        [sys.executable, "-m", "freshet", f"--liveness=http://127.0.0.1:{health_port}/healthz"],
        s.state,
        env={
            "KUBECONFIG": str(kubeconfig(s)),
            "FRESHET_METRICS_PORT": str(metrics_port),
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        },
    )
    procs.wait_until(
        procs.http_ok(f"http://127.0.0.1:{health_port}/healthz"),
        "freshet operator",
        60,
        s.state / "logs" / f"{NAME}.log",
        (NAME, s.state),
    )
    return metrics_port


def stop(s: Stack, grace: float = 30.0) -> None:
    procs.stop(NAME, s.state, grace=grace)


def kill(s: Stack) -> None:
    """SIGKILL, no grace: what a crash looks like."""
    procs.stop(NAME, s.state, grace=0)


def metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return str(r.read().decode())
