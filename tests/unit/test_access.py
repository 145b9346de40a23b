"""Where the operator may act: its namespace scope, the training ServiceAccounts a
namespace allows, and what a refusal by RBAC tells the user to do."""

from __future__ import annotations

import json

import pytest
from freshet import names
from freshet.__main__ import scope
from freshet.config import OperatorConfig
from freshet.failures import from_api
from kubernetes.client.exceptions import ApiException


def test_scope_is_all_namespaces_unless_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    for unset in ("", " , "):
        monkeypatch.setenv("FRESHET_NAMESPACES", unset)
        assert scope(OperatorConfig.from_env().namespaces) == ["--all-namespaces"]
    monkeypatch.setenv("FRESHET_NAMESPACES", "team-a, team-b")
    assert OperatorConfig.from_env().namespaces == ("team-a", "team-b")
    assert scope(("team-a", "team-b")) == ["--namespace=team-a", "--namespace=team-b"]


def test_default_is_always_allowed_and_the_annotation_adds_more() -> None:
    assert names.allowed_training_accounts({}) == {"default"}
    listed = {names.TRAINING_ACCOUNTS_ANNOTATION: " trainer, ,gpu-trainer "}
    assert names.allowed_training_accounts(listed) == {"default", "trainer", "gpu-trainer"}


def _forbidden(message: str) -> ApiException:
    e = ApiException(status=403, reason="Forbidden")
    e.body = json.dumps({"message": message})
    return e


def test_an_rbac_refusal_says_how_to_let_freshet_in() -> None:
    rbac = _forbidden(
        'secrets "store" is forbidden: User "system:serviceaccount:freshet-system:'
        'freshet-operator" cannot get resource "secrets" in API group "" in the namespace "x"'
    )
    f = from_api(rbac, "read Secret store", rejected="X")
    assert (f.reason, f.permanent) == ("Forbidden", True)
    assert "ClusterRole freshet-operator-tenant" in f.message
    assert f.message.startswith('cannot read Secret store: secrets "store" is forbidden')


def test_an_admission_policy_refusal_is_not_blamed_on_rbac() -> None:
    policy = _forbidden(
        'jobs.batch "j" is forbidden: ValidatingAdmissionPolicy "freshet-operator-jobs" denied it'
    )
    f = from_api(policy, "create Job j", rejected="JobRejected")
    assert f.reason == "Forbidden"
    assert "freshet-operator-tenant" not in f.message
