"""Promotion into the user's serving Deployment.

freshet never owns the Deployment. It server-side-applies, under its own field
manager, only the fields that name the model: three env vars in one container
and an annotation on the pod template. Kubernetes then records that freshet owns
exactly those fields, a GitOps tool can be told to ignore them (Argo CD's
`ignoreDifferences.managedFieldsManagers: [freshet]`), and every promotion is a
normal rollout that `kubectl rollout history` shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from freshet_contract import env

FIELD_MANAGER = "freshet"
VERSION_ANNOTATION = "freshet.dev/model-version"
ENV_VERSION = env.MODEL_VERSION
ENV_KEY = env.MODEL_KEY
ENV_SHA256 = env.MODEL_SHA256


class ServingError(Exception):
    """The Deployment cannot take the model (missing, or no such container)."""


@dataclass(frozen=True)
class ModelPointer:
    version: str
    model_key: str
    sha256: str


def container_name(deployment: dict[str, Any], wanted: str | None) -> str:
    """The container to point at the model: the named one, else the first."""
    containers = deployment["spec"]["template"]["spec"].get("containers") or []
    names = [c["name"] for c in containers]
    if wanted is None:
        if not names:
            raise ServingError("the Deployment has no containers")
        return str(names[0])
    if wanted not in names:
        raise ServingError(
            f"the Deployment has no container {wanted!r} (it has {', '.join(names)}); "
            "fix spec.serving.container"
        )
    return wanted


def apply_patch(name: str, container: str, model: ModelPointer) -> dict[str, Any]:
    """The server-side-apply configuration freshet owns on the Deployment."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "metadata": {"annotations": {VERSION_ANNOTATION: model.version}},
                "spec": {
                    "containers": [
                        {
                            "name": container,
                            "env": [
                                {"name": ENV_VERSION, "value": model.version},
                                {"name": ENV_KEY, "value": model.model_key},
                                {"name": ENV_SHA256, "value": model.sha256},
                            ],
                        }
                    ]
                },
            }
        },
    }


def served_version(deployment: dict[str, Any]) -> str | None:
    annotations = deployment["spec"]["template"].get("metadata", {}).get("annotations") or {}
    version = annotations.get(VERSION_ANNOTATION)
    return str(version) if version else None


def rollout_complete(deployment: dict[str, Any]) -> bool:
    """The same test `kubectl rollout status` uses."""
    meta, spec, status = deployment["metadata"], deployment["spec"], deployment.get("status") or {}
    if status.get("observedGeneration", 0) < meta.get("generation", 0):
        return False
    replicas = spec.get("replicas", 1)
    return bool(
        status.get("updatedReplicas", 0) >= replicas
        and status.get("replicas", 0) == status.get("updatedReplicas", 0)
        and status.get("availableReplicas", 0) >= status.get("updatedReplicas", 0)
    )


def rollout_failed(deployment: dict[str, Any]) -> str | None:
    """The Deployment controller's verdict when progress stalled past its deadline."""
    for cond in (deployment.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return str(cond.get("message") or "progress deadline exceeded")
    return None
