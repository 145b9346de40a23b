"""The whole local stack as one unit: control plane, S3 store and node agent.

`up` starts what is not running yet and `down` stops everything recorded in the
state directory, so both are safe to repeat and to call after a crash.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from devstack import controlplane, procs, s3store

AGENT = "node-agent"
OPERATOR = "freshet-operator"
NODE_NAME = "local"


@dataclass(frozen=True)
class Stack:
    state: Path
    plane: controlplane.ControlPlane
    s3: s3store.S3Info

    @property
    def kubeconfig(self) -> str:
        return self.plane.kubeconfig

    def kubectl(self) -> list[str]:
        return [controlplane.binary("kubectl"), f"--kubeconfig={self.kubeconfig}"]


def up(state: Path, agent: bool = True) -> Stack:
    state = state.resolve()
    if procs.pid_of("kube-apiserver", state) is None:
        down(state)  # whatever half of a previous stack survived
        _clear(state)
        started = time.monotonic()
        plane = controlplane.start(state)
        s3 = s3store.start(state)
        print(f"control plane and S3 store up in {time.monotonic() - started:.1f}s", flush=True)
    else:
        plane, s3 = controlplane.load(state), s3store.load(state)
    if agent and procs.pid_of(AGENT, state) is None:
        start_agent(state, plane)
    return Stack(state, plane, s3)


def start_agent(state: Path, plane: controlplane.ControlPlane) -> None:
    procs.start(
        AGENT,
        [
            sys.executable,
            "-m",
            "devstack.nodeagent",
            "run",
            f"--kubeconfig={plane.kubeconfig}",
            f"--node-name={NODE_NAME}",
            f"--state-dir={state / 'agent'}",
        ],
        state,
        env={"PYTHONUNBUFFERED": "1"},
    )
    procs.wait_until(
        lambda: _node_ready(plane),
        "node agent",
        60,
        state / "logs" / f"{AGENT}.log",
        (AGENT, state),
    )


def _node_ready(plane: controlplane.ControlPlane) -> bool:
    from kubernetes import client, config

    try:
        # kubernetes.config is unannotated.
        api_client = config.new_client_from_config(plane.kubeconfig)  # type: ignore[no-untyped-call]
        node = client.CoreV1Api(api_client).read_node(NODE_NAME)
    except Exception:  # not registered yet
        return False
    conditions = node.status.conditions if node.status is not None else None
    return any(c.type == "Ready" and c.status == "True" for c in conditions or [])


def load(state: Path) -> Stack:
    state = state.resolve()
    return Stack(state, controlplane.load(state), s3store.load(state))


def down(state: Path) -> None:
    state = state.resolve()
    procs.stop(OPERATOR, state, grace=30)
    procs.stop(AGENT, state, grace=30)
    s3store.stop(state)
    controlplane.stop(state)


def _clear(state: Path) -> None:
    """Forget a previous stack's data: every `up` after a `down` starts empty."""
    import shutil

    for child in ("etcd", "s3-data", "agent", "pki", "logs", "pids"):
        shutil.rmtree(state / child, ignore_errors=True)


def running(state: Path) -> dict[str, int | None]:
    names = (*controlplane.COMPONENTS, s3store.NAME, AGENT, OPERATOR)
    return {name: procs.pid_of(name, state.resolve()) for name in names}


def env_for(stack: Stack) -> dict[str, str]:
    """Environment that points clients (kubectl, tests, the operator) at this stack."""
    return {
        **os.environ,
        "KUBECONFIG": stack.kubeconfig,
        "FRESHET_DEV_S3_ENDPOINT": stack.s3.endpoint,
    }
