"""The GitOps pieces in docs/gitops: Argo CD's health check for TrainingPolicy,
run by Lua 5.1 over statuses of each kind (live ones are checked in tests/e2e),
and the argocd-cm snippet carrying the same script."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.gitops import HEALTH, argocd_health

pytestmark = pytest.mark.integration


def policy(generation: int = 2, observed: int | None = 2, **conditions: str) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {"name": "p", "generation": generation}}
    if observed is not None:
        obj["status"] = {
            "observedGeneration": observed,
            "conditions": [
                {"type": t, "status": s.split(":")[0], "reason": s.split(":")[1], "message": "m"}
                for t, s in conditions.items()
            ],
        }
    return obj


CALM = {"Stalled": "False:Progressing", "Degraded": "False:AsExpected"}
UNSEEN = ("Progressing", "waiting for the operator to observe generation 2")
CASES = {
    "no-status": (policy(observed=None), UNSEEN),
    "old-generation": (policy(observed=1, Ready="True:Serving"), UNSEEN),
    "serving": (
        policy(**CALM, Ready="True:Serving", Reconciling="False:Reconciled"),
        ("Healthy", "Serving: m"),
    ),
    "awaiting-data": (
        policy(**CALM, Ready="False:AwaitingFirstRun", Reconciling="False:Reconciled"),
        ("Healthy", "AwaitingFirstRun: m"),
    ),
    "first-model": (
        policy(**CALM, Ready="False:FirstModelTraining", Reconciling="True:FirstModelTraining"),
        ("Progressing", "FirstModelTraining: m"),
    ),
    "stalled": (
        policy(Stalled="True:Forbidden", Degraded="False:AsExpected", Ready="False:Forbidden"),
        ("Degraded", "Forbidden: m"),
    ),
    "rolled-back": (
        policy(Stalled="False:Progressing", Degraded="True:RolledBack", Ready="True:Serving"),
        ("Degraded", "RolledBack: m"),
    ),
}


@pytest.mark.parametrize(("obj", "expected"), list(CASES.values()), ids=list(CASES))
def test_health(obj: dict[str, Any], expected: tuple[str, str]) -> None:
    assert argocd_health(obj) == expected


def test_the_argocd_cm_snippet_carries_the_same_script() -> None:
    cm = yaml.safe_load((HEALTH.parent / "argocd-cm.yaml").read_text())
    script = cm["data"]["resource.customizations.health.freshet.dev_TrainingPolicy"]
    assert script == HEALTH.read_text()


def test_the_examples_parse() -> None:
    for name in ("application.yaml", "flux.yaml"):
        docs = list(yaml.safe_load_all((HEALTH.parent / name).read_text()))
        assert all(d.get("apiVersion") and d.get("kind") for d in docs), name
    app = yaml.safe_load((Path(HEALTH.parent) / "application.yaml").read_text())
    assert app["spec"]["ignoreDifferences"] == [
        {"group": "apps", "kind": "Deployment", "managedFieldsManagers": ["freshet"]}
    ]
