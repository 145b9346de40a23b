"""Shared fixtures: one real local stack per test session, a namespace and a bucket per test.

The stack (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
SeaweedFS and a real node: kubelet, containerd, runc, kube-proxy, CoreDNS) is
started lazily, only when a test asks for it, so `pytest tests/unit` starts no
process at all. Only one real node can run per machine, so the whole session
shares this one. Teardown stops everything the session started, whatever the
tests left behind, and checks that nothing is left.
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
from devstack import node, release, s3store
from devstack import stack as devstack
from kubernetes import client, config


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devstack.Stack]:
    state = Path(os.environ.get("FRESHET_TEST_STATE", tmp_path_factory.mktemp("devstack")))
    started = time.monotonic()
    s = devstack.up(state)
    net_at_start = node.load_network(s.state)
    assert net_at_start is not None
    print(f"\nstack with a real node up in {time.monotonic() - started:.1f}s")
    try:
        yield s
    finally:
        devstack.down(s.state)
        leftover = {k: v for k, v in devstack.running(s.state).items() if v}
        assert not leftover, f"processes left running after teardown: {leftover}"
        net = node.load_network(s.state)
        assert net is None, f"network record left: {net}"
        links = subprocess.run(
            ["ip", "-o", "link"], check=False, capture_output=True, text=True
        ).stdout
        assert f" {net_at_start.bridge}:" not in links, "bridge left"
        mounts = Path("/proc/self/mountinfo").read_text()
        assert str(s.state) not in mounts, "mounts left under the state dir"


@pytest.fixture(scope="session")
def kube_api(stack: devstack.Stack) -> client.ApiClient:
    return config.new_client_from_config(stack.kubeconfig)


@pytest.fixture
def namespace(kube_api: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    core = client.CoreV1Api(kube_api)
    base = request.node.name.lower().replace("_", "-")
    name = "".join(ch for ch in base if ch.isalnum() or ch == "-")[:40].strip("-")
    name = f"{name}-{secrets.token_hex(3)}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    # Pods are admitted only once the namespace's default ServiceAccount exists.
    deadline = time.monotonic() + 30
    while not core.list_namespaced_service_account(
        name, field_selector="metadata.name=default"
    ).items:
        assert time.monotonic() < deadline, f"no default ServiceAccount in {name} after 30s"
        time.sleep(0.1)
    release.serve_namespace(kube_api, name)  # what its admin does to let freshet in
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
def freshet_release(stack: devstack.Stack) -> devstack.Stack:
    """charts/freshet installed with `helm upgrade --install` (CRDs, RBAC, the operator
    Deployment running the built image as the chart's ServiceAccount)."""
    started = time.monotonic()
    release.install(stack)
    print(f"\nhelm install -> operator pod Ready: {time.monotonic() - started:.1f}s")
    return stack


@pytest.fixture
def freshet_operator(freshet_release: devstack.Stack) -> devstack.Stack:
    """The stack, with the operator's pod Ready (observe it with devstack.release).

    A test that scales the operator down, or installs the chart with other
    values, puts it back (`release.install(stack)`) when it ends; if one failed
    half-way, this brings it back up."""
    if release.pod(freshet_release) is None:
        release.scale(freshet_release, 1)
    release.wait_ready(freshet_release)
    return freshet_release


@pytest.fixture(scope="session")
def prometheus(stack: devstack.Stack) -> str:
    """Base URL of a real Prometheus on the session stack (on the bridge, so pods
    reach it), scraping pods annotated `prometheus.io/scrape: "true"` every second.
    Stopped with the stack."""
    url = devstack.up(stack.state, prometheus=True).prometheus_url
    assert url is not None
    return url


@pytest.fixture(scope="session")
def minio_store(stack: devstack.Stack) -> Iterator[s3store.S3Info]:
    """A MinIO server next to the stack's SeaweedFS: the store with bucket notifications."""
    state = stack.state / "minio"
    info = s3store.start(state, flavour="minio", address=stack.address)
    try:
        yield info
    finally:
        s3store.stop(state)
