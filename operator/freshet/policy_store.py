"""A policy's object store as a person's tools reach it: with the credentials of the
Secret the policy names (`spec.data.storeRef`), read through the API as whoever
asks, never from the environment (`kubectl freshet`, the dashboard)."""

from __future__ import annotations

import dataclasses
from typing import Any

from freshet_contract.layout import StateLayout
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from freshet.objectstore import ObjectStore
from freshet.store_config import parse_store_secret


class StoreUnavailable(Exception):
    """The policy's store Secret is missing or unusable; the message says which and why."""


def open_store(
    api: client.ApiClient, policy: dict[str, Any], endpoint: str | None = None
) -> tuple[ObjectStore, StateLayout]:
    """The policy's store and its state layout.

    `endpoint` replaces the Secret's, which names the store as pods see it; from a
    laptop it may be elsewhere. Raises StoreUnavailable, and the API's own errors
    (kubernetes.client.exceptions.ApiException) for the Secret read.
    """
    namespace, name = policy["metadata"]["namespace"], policy["metadata"]["name"]
    secret = policy["spec"]["data"]["storeRef"]["name"]
    try:
        found = client.CoreV1Api(api).read_namespaced_secret(secret, namespace)
    except ApiException as e:
        if e.status != 404:
            raise
        raise StoreUnavailable(
            f"Secret {namespace}/{secret} (spec.data.storeRef) not found"
        ) from None
    # The model types values as bytes | str; read from the API they are the base64
    # strings parse_store_secret expects.
    data = {k: v.decode() if isinstance(v, bytes) else v for k, v in (found.data or {}).items()}
    try:
        config = parse_store_secret(secret, data)
    except ValueError as e:
        raise StoreUnavailable(str(e)) from e
    if endpoint:
        config = dataclasses.replace(config, endpoint=endpoint)
    root = (policy.get("status") or {}).get("stateRoot")
    layout = StateLayout(root) if root else StateLayout.for_policy(namespace, name)
    return ObjectStore(config), layout
