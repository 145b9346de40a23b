"""The whole local stack as one unit: control plane, S3 store, node agent and,
on request, Prometheus.

`up` starts what is not running yet and `down` stops everything recorded in the
state directory, so both are safe to repeat and to call after a crash.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from devstack import controlplane, procs, s3store
from devstack import node as real_node
from devstack import prometheus as prom

AGENT = "node-agent"
OPERATOR = "freshet-operator"
NODE_NAME = "local"


@dataclass(frozen=True)
class Stack:
    state: Path
    plane: controlplane.ControlPlane
    s3: s3store.S3Info
    prometheus_url: str | None = None  # when started with prometheus=True

    @property
    def kubeconfig(self) -> str:
        return self.plane.kubeconfig

    def kubectl(self) -> list[str]:
        return [controlplane.binary("kubectl"), f"--kubeconfig={self.kubeconfig}"]


NodeKind = Literal["agent", "real"]


def up(
    state: Path, agent: bool = True, prometheus: bool = False, node: NodeKind = "agent"
) -> Stack:
    """Start what is not running yet; Prometheus (scraping annotated pods) only if asked.

    `node="agent"` (the default) runs pods as local processes with the node agent
    (when `agent`); `node="real"` brings up a real node instead (devstack.node:
    kubelet, containerd, kube-proxy, CoreDNS on a bridge of the stack's own), with
    the API server and S3 store listening on the bridge's gateway address so pods
    reach them. A stack is one kind or the other from its first `up`.
    """
    state = state.resolve()
    if node == "real":
        real_node.check_free(state)
    if procs.pid_of("kube-apiserver", state) is None:
        down(state)  # whatever half of a previous stack survived
        _clear(state)
        started = time.monotonic()
        address = "127.0.0.1"
        if node == "real":
            address = real_node.create_network(state).gateway
        plane = controlplane.start(state, address=address, kubelet_client=node == "real")
        s3 = s3store.start(state, address=address)
        print(f"control plane and S3 store up in {time.monotonic() - started:.1f}s", flush=True)
    else:
        plane, s3 = controlplane.load(state), s3store.load(state)
    net = real_node.load_network(state)
    if node == "real":
        if net is None:
            raise RuntimeError(f"the stack in {state} runs without a real node: `down` it first")
        if not real_node.running(state):
            real_node.stop(state)  # half of a previous one
            real_node.start(state, plane, real_node.create_network(state))
    elif agent and net is None and procs.pid_of(AGENT, state) is None:
        start_agent(state, plane)
    url: str | None = None
    if prometheus:
        if not prom.running(state):
            prom.stop(state)  # half of a previous one
            prom.start(state, plane.kubeconfig)
        url = prom.load(state)
    elif prom.running(state):
        url = prom.load(state)
    return Stack(state, plane, s3, url)


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
    url = prom.load(state) if prom.running(state) else None
    return Stack(state, controlplane.load(state), s3store.load(state), url)


def down(state: Path) -> None:
    state = state.resolve()
    procs.stop(OPERATOR, state, grace=30)
    procs.stop(AGENT, state, grace=30)
    prom.stop(state)
    real_node.stop(state)
    s3store.stop(state)
    controlplane.stop(state)
    real_node.delete_network(state)


def _clear(state: Path) -> None:
    """Forget a previous stack's data: every `up` after a `down` starts empty."""
    import shutil

    for child in ("etcd", "s3-data", "agent", "pki", "logs", "pids", "prometheus"):
        shutil.rmtree(state / child, ignore_errors=True)
    real_node.clear(state)


def running(state: Path) -> dict[str, int | None]:
    names = (
        *controlplane.COMPONENTS,
        s3store.NAME,
        AGENT,
        *real_node.COMPONENTS,
        OPERATOR,
        prom.NAME,
        prom.SD_NAME,
    )
    return {name: procs.pid_of(name, state.resolve()) for name in names}
