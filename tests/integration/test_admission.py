"""Bad policies are refused by the real API server, each with a message that says what to fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from freshet import policysets
from freshet.spec import PolicySpec
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.integration.invalid_policies import (
    INVALID_POLICIES,
    VALID_VARIANTS,
    Policy,
    valid_policy,
)

pytestmark = pytest.mark.integration

GROUP, VERSION, PLURAL = "freshet.dev", "v1alpha1", "trainingpolicies"


def _create(api: client.ApiClient, namespace: str, policy: Policy) -> object:
    return client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, policy
    )


def test_there_are_at_least_ten_distinct_cases() -> None:
    assert len({case_id for case_id, _, _ in INVALID_POLICIES}) >= 10


def test_the_valid_policy_is_accepted(
    kube_api: client.ApiClient, namespace: str, freshet_release: object
) -> None:
    created = _create(kube_api, namespace, valid_policy("accepted"))
    assert created["spec"]["training"]["seed"] == 0  # type: ignore[index]  # a CRD default


@pytest.mark.parametrize(("case_id", "policy"), VALID_VARIANTS, ids=[c[0] for c in VALID_VARIANTS])
def test_near_misses_of_the_rules_are_accepted(
    kube_api: client.ApiClient,
    namespace: str,
    freshet_release: object,
    case_id: str,
    policy: Policy,
) -> None:
    """What the rules must not refuse: the API server admits it and the typed spec reads it."""
    created = _create(kube_api, namespace, policy)
    PolicySpec.model_validate(created["spec"])  # type: ignore[index]


EXAMPLES = sorted((Path(__file__).parents[2] / "docs" / "examples").glob("policy-*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_the_documented_examples_are_accepted(
    kube_api: client.ApiClient, namespace: str, freshet_release: object, path: Path
) -> None:
    """The API server admits each example, and the operator's typed spec reads it back."""
    policy = yaml.safe_load(path.read_text())
    created = _create(kube_api, namespace, policy)
    spec = PolicySpec.model_validate(created["spec"])  # type: ignore[index]
    assert spec.data.prefix == policy["spec"]["data"]["prefix"]


SET_EXAMPLES = sorted((Path(__file__).parents[2] / "docs" / "examples").glob("policyset-*.yaml"))


@pytest.mark.parametrize("path", SET_EXAMPLES, ids=[p.name for p in SET_EXAMPLES])
def test_the_documented_policy_sets_are_accepted(
    kube_api: client.ApiClient, namespace: str, freshet_release: object, path: Path
) -> None:
    """The API server admits each TrainingPolicySet example; the operator reads it, and
    its template renders a child the API server and the typed spec accept too."""
    doc = yaml.safe_load(path.read_text())
    created: Any = client.CustomObjectsApi(kube_api).create_namespaced_custom_object(
        "freshet.dev", "v1alpha1", namespace, "trainingpolicysets", doc
    )
    spec = policysets.SetSpec.model_validate(created["spec"])
    child = policysets.render(created, spec, "alice")
    child["metadata"].pop("ownerReferences")  # a dry run of the child alone
    PolicySpec.model_validate(_create(kube_api, namespace, child)["spec"])  # type: ignore[index]


@pytest.mark.parametrize(
    ("case_id", "policy", "expected"), INVALID_POLICIES, ids=[c[0] for c in INVALID_POLICIES]
)
def test_invalid_policy_is_rejected_with_its_message(
    kube_api: client.ApiClient,
    namespace: str,
    freshet_release: object,
    case_id: str,
    policy: Policy,
    expected: str,
) -> None:
    with pytest.raises(ApiException) as info:
        _create(kube_api, namespace, policy)
    assert info.value.status == 422, info.value.body
    message = json.loads(info.value.body)["message"]
    assert expected in message
