"""End-to-end tier: every test here runs real pods on the stack's node and talks to
the operator the chart installed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from devstack.stack import Stack
from kubernetes import client

sys.path.insert(0, str(Path(__file__).parent))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def ns(
    kube_api: client.ApiClient,
    namespace: str,
    bucket: str,
    stack: Stack,
    freshet_operator: Stack,
) -> str:
    """A namespace ready for a policy: the store Secret (`store`) for `bucket` and a
    model-server Deployment (`model-server`), with the operator running."""
    import scenario as sc

    sc.store_secret(kube_api, namespace, stack, bucket)
    sc.model_server(kube_api, namespace)
    return namespace
