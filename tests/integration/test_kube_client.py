"""freshet.kube, the operator's own API client, against the real API server: each
call the operator makes, with the stack's kubeconfig (client certificates), the
errors it classifies (404, 409, 422, 403), and server-side apply and status."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path
from typing import Any

import pytest
import yaml
from devstack.stack import Stack
from freshet import names
from freshet.failures import from_api
from freshet.kube import ApiError, Credentials, Kube
from kubernetes import client

pytestmark = pytest.mark.integration


@pytest.fixture
def kube(stack: Stack) -> Kube:
    return Kube(Credentials.from_kubeconfig(Path(stack.kubeconfig)))


def job(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"app": "t"}},
        "spec": {
            "suspend": True,  # never runs: only the API objects are under test
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "freshet-trainer:dev"}],
                }
            },
        },
    }


def test_secrets_jobs_and_namespaces_as_the_api_sends_them(
    kube: Kube, kube_api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(metadata=client.V1ObjectMeta(name="s"), string_data={"bucket": "b1"}),
    )
    assert kube.secret_data(namespace, "s") == {"bucket": base64.b64encode(b"b1").decode()}
    assert kube.secret_data(namespace, "missing") is None
    assert kube.create_job(namespace, job("j1")) is True
    assert kube.create_job(namespace, job("j1")) is False  # 409: a replayed intent
    got = kube.job(namespace, "j1")
    assert got is not None and got["metadata"]["creationTimestamp"].endswith("Z")
    assert [j["metadata"]["name"] for j in kube.jobs(namespace, "app=t")] == ["j1"]
    assert kube.job(namespace, "nope") is None
    kube.delete_job(namespace, "j1")
    kube.delete_job(namespace, "j1")  # already gone: not an error
    assert kube.service_account_exists(namespace, "default") in (True, False)
    assert not kube.service_account_exists(namespace, "no-such-account")
    assert isinstance(kube.namespace_annotations(namespace), dict)
    assert kube.pods(namespace, {"app": "none"}) == []
    assert kube.pods_not_created(namespace, "j1") is None


def test_an_invalid_object_is_a_422_the_operator_calls_rejected(kube: Kube, namespace: str) -> None:
    bad = job("Not_A_Name")
    with pytest.raises(ApiError) as refused:
        kube.create_job(namespace, bad)
    assert refused.value.status == 422
    failure = from_api(refused.value, "create Job", rejected="JobRejected")
    assert failure.reason == "JobRejected" and failure.permanent
    assert "Not_A_Name" in failure.message  # the API server's own words


def test_policies_are_applied_listed_given_a_status_and_deleted(
    kube: Kube, namespace: str, freshet_release: Stack
) -> None:
    body = {
        "apiVersion": f"{names.GROUP}/{names.VERSION}",
        "kind": names.KIND,
        "metadata": {"name": "p", "labels": {"set": "x"}},
        "spec": {
            "mode": "Static",
            "data": {"storeRef": {"name": "store"}, "prefix": "in/", "label": "y"},
            "training": {
                "image": "freshet-trainer:dev",
                "estimator": {"class": "sklearn.linear_model.LogisticRegression"},
            },
        },
    }
    kube.apply_policy(namespace, body, field_manager="freshet-test")
    kube.apply_policy(namespace, body, field_manager="freshet-test")  # idempotent
    [listed] = kube.list_policies(namespace, "set=x")
    assert listed["metadata"]["managedFields"][0]["manager"] == "freshet-test"
    kube.patch_status(namespace, "p", {"observedGeneration": 1, "stateRoot": "x/"})
    got = kube.policy(namespace, "p")
    assert got is not None and got["status"]["stateRoot"] == "x/"
    kube.patch_status(namespace, "p", {"stateRoot": None})  # merge patch: null removes
    got = kube.policy(namespace, "p")
    assert got is not None and "stateRoot" not in got["status"]
    kube.delete_policy(namespace, "p")
    kube.delete_policy(namespace, "p")
    assert kube.policy(namespace, "p") is None


def test_a_deployment_is_applied_with_the_operators_field_manager(
    kube: Kube, kube_api: client.ApiClient, namespace: str
) -> None:
    client.AppsV1Api(kube_api).create_namespaced_deployment(
        namespace,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "d"},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "d"}},
                "template": {
                    "metadata": {"labels": {"app": "d"}},
                    "spec": {"containers": [{"name": "c", "image": "freshet-trainer:dev"}]},
                },
            },
        },
    )
    patch = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "annotations": {"freshet.dev/model": "v1"}},
    }
    kube.apply_deployment(namespace, patch, field_manager="freshet-test")
    got = kube.deployment(namespace, "d")
    assert got is not None and got["metadata"]["annotations"]["freshet.dev/model"] == "v1"
    assert kube.deployment(namespace, "missing") is None


def test_a_forbidden_call_is_a_403_with_the_rbac_hint(
    stack: Stack, kube_api: client.ApiClient, namespace: str
) -> None:
    """With a ServiceAccount token that may do nothing (bearer-token credentials)."""
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="nobody"))
    )
    token = core.create_namespaced_service_account_token(
        "nobody", namespace, client.AuthenticationV1TokenRequest(spec={"audiences": []})
    ).status.token
    own = Credentials.from_kubeconfig(Path(stack.kubeconfig))
    doc = yaml.safe_load(Path(stack.kubeconfig).read_text())
    ca = base64.b64decode(doc["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
    # The CA only: a client certificate would authenticate as the stack's admin.
    nobody = Kube(Credentials(own.server, ssl.create_default_context(cadata=ca), token=token))
    with pytest.raises(ApiError) as forbidden:
        nobody.secret_data(namespace, "s")
    failure = from_api(forbidden.value, "read Secret s", rejected="StoreSecretInvalid")
    assert forbidden.value.status == 403 and failure.reason == "Forbidden"
    assert "freshet-operator-tenant" in failure.message
