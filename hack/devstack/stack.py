"""The whole local stack as one unit: control plane, S3 store, a real node (kubelet,
containerd, runc, kube-proxy, CoreDNS) with freshet's images, and, on request,
Prometheus.

The API server and the S3 store listen on the gateway address of the stack's own
bridge, so pods reach them as they would in a cluster. `up` starts what is not
running yet and `down` stops everything recorded in the state directory, so both
are safe to repeat and to call after a crash. One real node runs per machine
(kube-proxy owns the host's KUBE-* chains): a second stack is refused while one runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from devstack import controlplane, images, procs, s3store
from devstack import node as real_node
from devstack import prometheus as prom


@dataclass(frozen=True)
class Stack:
    state: Path
    plane: controlplane.ControlPlane
    s3: s3store.S3Info
    prometheus_url: str | None = None  # when started with prometheus=True

    @property
    def kubeconfig(self) -> str:
        return self.plane.kubeconfig

    @property
    def address(self) -> str:
        """Where the host's services listen for pods (the bridge's gateway)."""
        return plane_address(self.s3)

    def kubectl(self) -> list[str]:
        return [controlplane.binary("kubectl"), f"--kubeconfig={self.kubeconfig}"]


def up(state: Path, prometheus: bool = False) -> Stack:
    """Start what is not running yet; Prometheus (scraping annotated pods) only if asked.

    The node's containerd gets freshet's images (built by devstack.images, or
    taken from its cache) when the node starts, the way `kind load` would.
    """
    state = state.resolve()
    real_node.check_free(state)
    if procs.pid_of("kube-apiserver", state) is None:
        down(state)  # whatever half of a previous stack survived
        _clear(state)
        started = time.monotonic()
        address = real_node.create_network(state).gateway
        plane = controlplane.start(state, address)
        s3 = s3store.start(state, address=address)
        print(f"control plane and S3 store up in {time.monotonic() - started:.1f}s", flush=True)
    else:
        plane, s3 = controlplane.load(state), s3store.load(state)
    if not real_node.running(state):
        real_node.stop(state)  # half of a previous one
        real_node.start(state, plane, real_node.create_network(state))
        load_images(state)
    url: str | None = None
    if prometheus:
        if not prom.running(state):
            prom.stop(state)  # half of a previous one
            prom.start(state, plane.kubeconfig, address=plane_address(s3))
        url = prom.load(state)
    elif prom.running(state):
        url = prom.load(state)
    return Stack(state, plane, s3, url)


def plane_address(s3: s3store.S3Info) -> str:
    return s3.endpoint.rsplit(":", 1)[0]


def load_images(state: Path) -> None:
    """freshet's operator and trainer images into the node's containerd."""
    started = time.monotonic()
    archives = images.ensure()
    ensured = time.monotonic()
    for archive in archives.values():
        real_node.import_image(state, archive)
    print(
        f"images ensured in {ensured - started:.1f}s, "
        f"imported into the node in {time.monotonic() - ensured:.1f}s",
        flush=True,
    )


def load(state: Path) -> Stack:
    state = state.resolve()
    url = prom.load(state) if prom.running(state) else None
    return Stack(state, controlplane.load(state), s3store.load(state), url)


def down(state: Path) -> None:
    state = state.resolve()
    prom.stop(state)
    real_node.stop(state)
    s3store.stop(state)
    controlplane.stop(state)
    real_node.delete_network(state)


def _clear(state: Path) -> None:
    """Forget a previous stack's data: every `up` after a `down` starts empty."""
    import shutil

    for child in ("etcd", "s3-data", "pki", "logs", "pids", "prometheus", "helm"):
        shutil.rmtree(state / child, ignore_errors=True)
    real_node.clear(state)


def running(state: Path) -> dict[str, int | None]:
    names = (
        *controlplane.COMPONENTS,
        s3store.NAME,
        *real_node.COMPONENTS,
        prom.NAME,
        prom.SD_NAME,
    )
    return {name: procs.pid_of(name, state.resolve()) for name in names}
