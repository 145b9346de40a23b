"""What "retrain", "roll back", "pin" and "unpin" change on a TrainingPolicy.

`kubectl freshet` and the dashboard both make exactly these patches, as the user,
so GitOps tools, `kubectl annotate` and the operator see one truth: retrain and
rollback set an annotation to a new value (the operator acts once per value),
pin and unpin set `spec.serving.pinnedVersion` (under GitOps, change that in Git).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from freshet import names

_VERSION = re.compile(r"^v[1-9][0-9]*$")


class InvalidVersion(ValueError):
    """Not a model version (v1, v2, ...)."""


def request_value(now: datetime | None = None) -> str:
    """A new annotation value: the time of the request, to the second."""
    return (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def retrain(value: str) -> dict[str, Any]:
    return {"metadata": {"annotations": {names.RETRAIN_ANNOTATION: value}}}


def rollback(value: str) -> dict[str, Any]:
    return {"metadata": {"annotations": {names.ROLLBACK_ANNOTATION: value}}}


def pin(version: str) -> dict[str, Any]:
    if not _VERSION.match(version):
        raise InvalidVersion(f"version must look like v3, got {version!r}")
    return {"spec": {"serving": {"pinnedVersion": version}}}


def unpin() -> dict[str, Any]:
    return {"spec": {"serving": {"pinnedVersion": None}}}


def can_pin(policy: dict[str, Any]) -> bool:
    """Pinning needs a serving Deployment to pin."""
    return bool((policy.get("spec", {}).get("serving") or {}).get("deploymentRef"))
