"""Policy bodies shared by the unit tests, and the admission cases of the integration tier."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CRD_PATH = REPO / "crds" / "trainingpolicies.freshet.dev.yaml"
CONTRACT_DIR = REPO / "contract"


def _invalid_policies_module() -> ModuleType:
    # Loaded by path: the integration tier is not a package, and its cases are
    # also checked here against the operator's own model of the spec.
    path = REPO / "tests" / "integration" / "invalid_policies.py"
    spec = importlib.util.spec_from_file_location("freshet_invalid_policies", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


invalid_policies = _invalid_policies_module()
INVALID_POLICIES: list[tuple[str, dict[str, Any], str]] = invalid_policies.INVALID_POLICIES
VALID_VARIANTS: list[tuple[str, dict[str, Any]]] = invalid_policies.VALID_VARIANTS


def valid_policy() -> dict[str, Any]:
    body: dict[str, Any] = invalid_policies.valid_policy("spam-filter")
    return body


def minimal_spec(mode: str = "Static") -> dict[str, Any]:
    """Only the required fields: everything else comes from defaults."""
    return {
        "mode": mode,
        "data": {"storeRef": {"name": "ml-store"}, "prefix": "spam/incoming/", "label": "y"},
        "training": {
            "image": "freshet-trainer:dev",
            "estimator": {"class": "sklearn.linear_model.LogisticRegression"},
        },
    }


def a_snapshot(now: Any, spec: Any, **changes: Any) -> Any:
    """A step's snapshot of policy ml/spam (uid-1, created an hour before `now`), with
    an empty ledger, no batches and two free run slots, unless `changes` say otherwise."""
    from dataclasses import replace
    from datetime import timedelta

    from freshet.ledger import Ledger
    from freshet.snapshot import PolicyFacts, Slots, Snapshot

    base = Snapshot(
        now=now,
        policy=PolicyFacts(
            namespace="ml",
            name="spam",
            uid="uid-1",
            generation=1,
            created=now - timedelta(hours=1),
            retrain_request=None,
            rollback_request=None,
        ),
        spec=spec,
        ledger=Ledger(),
        bucket="ml",
        batches=(),
        slots=Slots(runs_elsewhere=0, backfills_elsewhere=0, max_runs=2, max_backfills=1),
    )
    return replace(base, **changes)
