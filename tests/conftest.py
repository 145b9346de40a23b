"""Shared fixtures: one real local stack per test session, a namespace and a bucket per test.

The stack (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
SeaweedFS and the node agent) is started lazily, only when a test asks for it,
so `pytest tests/unit` starts no process at all. Teardown stops everything the
session started, whatever the tests left behind.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from devstack import s3store
from devstack import stack as devstack
from kubernetes import client, config


def _down_and_check(state: Path) -> None:
    devstack.down(state)
    leftover = {k: v for k, v in devstack.running(state).items() if v}
    assert not leftover, f"processes left running after teardown: {leftover}"


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devstack.Stack]:
    state = Path(os.environ.get("FRESHET_TEST_STATE", tmp_path_factory.mktemp("devstack")))
    s = devstack.up(state, agent=False)
    try:
        yield s
    finally:
        _down_and_check(state)


@pytest.fixture(scope="session")
def real_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devstack.Stack]:
    """A stack with a real node (kubelet + containerd + runc). Only one real node
    can run per machine, so every test that needs one shares this one."""
    from devstack import node

    state = Path(os.environ.get("FRESHET_REAL_NODE_STATE", tmp_path_factory.mktemp("realnode")))
    started = time.monotonic()
    s = devstack.up(state, node="real")
    net_at_start = node.load_network(state)
    assert net_at_start is not None
    print(f"\nstack with a real node up in {time.monotonic() - started:.1f}s")
    try:
        yield s
    finally:
        _down_and_check(state)
        net = node.load_network(state)
        assert net is None, f"network record left: {net}"
        links = subprocess.run(
            ["ip", "-o", "link"], check=False, capture_output=True, text=True
        ).stdout
        assert f" {net_at_start.bridge}:" not in links, "bridge left"
        mounts = Path("/proc/self/mountinfo").read_text()
        assert str(state.resolve()) not in mounts, "mounts left under the state dir"


@pytest.fixture(scope="session")
def kube_api(stack: devstack.Stack) -> client.ApiClient:
    return config.new_client_from_config(stack.kubeconfig)


@pytest.fixture(scope="session")
def node_agent(stack: devstack.Stack) -> devstack.Stack:
    """The stack, with its node agent registered and Ready (pods will run)."""
    return devstack.up(stack.state, agent=True)


@pytest.fixture
def namespace(kube_api: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    core = client.CoreV1Api(kube_api)
    base = request.node.name.lower().replace("_", "-")
    name = "".join(ch for ch in base if ch.isalnum() or ch == "-")[:40].strip("-")
    name = f"{name}-{secrets.token_hex(3)}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture(scope="session")
def s3(stack: devstack.Stack) -> Any:
    """A `minio.Minio` client for the stack's S3 store."""
    return s3store.client(stack.s3)


@pytest.fixture
def bucket(s3: Any) -> Iterator[str]:
    with s3store.temporary_bucket(s3) as name:
        yield name


@pytest.fixture(scope="session")
def operator_installed(node_agent: devstack.Stack) -> devstack.Stack:
    """CRDs from crds/ and the chart's RBAC applied to the stack."""
    from devstack import operatorproc

    operatorproc.install(node_agent)
    return node_agent


@pytest.fixture
def freshet_operator(operator_installed: devstack.Stack) -> Iterator[int]:
    """The real operator process, running as the chart's ServiceAccount; yields its metrics port.

    Started once and shared; a test that kills it (crash tests) leaves it to
    the next test's use of this fixture to start it again.
    """
    from devstack import operatorproc, procs

    port_file = operator_installed.state / "operator-metrics-port"
    if procs.pid_of(operatorproc.NAME, operator_installed.state) is None:
        port_file.write_text(str(operatorproc.start(operator_installed)))
    yield int(port_file.read_text())


@pytest.fixture(scope="session")
def prometheus(stack: devstack.Stack) -> str:
    """Base URL of a real Prometheus on the session stack, scraping pods annotated
    `prometheus.io/scrape: "true"` every second. Stopped with the stack."""
    url = devstack.up(stack.state, agent=False, prometheus=True).prometheus_url
    assert url is not None
    return url


@pytest.fixture(scope="session")
def minio_store(stack: devstack.Stack) -> Iterator[s3store.S3Info]:
    """A MinIO server next to the stack's SeaweedFS: the store with bucket notifications."""
    state = stack.state / "minio"
    info = s3store.start(state, flavour="minio")
    try:
        yield info
    finally:
        s3store.stop(state)
