"""TrainingPolicySets, decided: segments from generators, one child policy per
segment rendered from the template, what to prune, and what the shared serving
Deployment must hold. Pure; `setcontroller` does the reading and applying.

A child is named ``<set>-<segment>``, labelled with both, owned by the set (so
deleting the set deletes its children), and carries the hash of what it was
rendered from: it is applied again only when that changes, so a set of 500
segments costs nothing while nothing changes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from freshet_contract.env import SEGMENT_MODELS as SEGMENT_MODELS_ENV
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from freshet import names
from freshet.spec import ObjectRef

PLACEHOLDER = "{{segment}}"
SET_LABEL = f"{names.GROUP}/policy-set"
SEGMENT_LABEL = f"{names.GROUP}/segment"
HASH_ANNOTATION = f"{names.GROUP}/template-hash"
FIELD_MANAGER = "freshet-policy-set"
"""Field manager of children and of the serving Deployment's segment models: not the
policies' own ("freshet"), so the two never take each other's fields away."""
SEGMENT = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SEGMENT_MAX = 40
NAME_MAX = 253


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Template(_Model):
    metadata: dict[str, dict[str, str]] = Field(default_factory=dict)
    spec: dict[str, Any]


class Folders(_Model):
    prefix: str = Field(min_length=1, max_length=512)


class Generator(_Model):
    list_: list[str] | None = Field(default=None, alias="list")
    folders: Folders | None = None


class GlobalRef(_Model):
    policy_ref: ObjectRef


class SetServing(_Model):
    deployment_ref: ObjectRef
    container: str | None = None


class SetSpec(_Model):
    template: Template
    generators: list[Generator] = Field(min_length=1)
    global_: GlobalRef | None = Field(default=None, alias="global")
    serving: SetServing | None = None
    prune: bool = True

    @property
    def store_ref(self) -> str | None:
        ref = ((self.template.spec.get("data") or {}).get("storeRef") or {}).get("name")
        return str(ref) if ref else None

    @property
    def folder_prefixes(self) -> tuple[str, ...]:
        return tuple(g.folders.prefix for g in self.generators if g.folders is not None)


def folders(keys: Iterable[str], prefix: str) -> tuple[set[str], set[str]]:
    """Segment names (folders directly under `prefix` that hold an object) and the
    folder names that cannot be segment names."""
    valid, skipped = set(), set()
    for key in keys:
        rest = key.removeprefix(prefix)
        if rest == key or "/" not in rest:
            continue  # not under the prefix, or a file at its top
        name = rest.split("/", 1)[0]
        if SEGMENT.match(name) and len(name) <= SEGMENT_MAX:
            valid.add(name)
        else:
            skipped.add(name)
    return valid, skipped


def segments(spec: SetSpec, listed: Mapping[str, Iterable[str]]) -> tuple[list[str], list[str]]:
    """Every generator's segments (sorted) and the skipped folder names; `listed` has
    the keys under each folder generator's prefix."""
    found, skipped = set(), set()
    for g in spec.generators:
        if g.list_ is not None:
            found.update(g.list_)
        if g.folders is not None:
            valid, bad = folders(listed.get(g.folders.prefix, ()), g.folders.prefix)
            found |= valid
            skipped |= bad
    return sorted(found), sorted(skipped)


def child_name(set_name: str, segment: str) -> str:
    name = f"{set_name}-{segment}"
    if len(name) <= NAME_MAX:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{set_name[: NAME_MAX - len(segment) - 10]}-{digest}-{segment}"


def _substitute(value: Any, segment: str) -> Any:
    if isinstance(value, str):
        return value.replace(PLACEHOLDER, segment)
    if isinstance(value, list):
        return [_substitute(v, segment) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, segment) for k, v in value.items()}
    return value


def render(owner: Mapping[str, Any], spec: SetSpec, segment: str) -> dict[str, Any]:
    """The child TrainingPolicy of `segment`, as it is server-side applied."""
    meta = owner["metadata"]
    child_spec = _substitute(spec.template.spec, segment)
    if spec.global_ is not None:
        child_spec["baselineFrom"] = {"policyRef": {"name": spec.global_.policy_ref.name}}
    labels = {
        **spec.template.metadata.get("labels", {}),
        SET_LABEL: meta["name"],
        SEGMENT_LABEL: segment,
        names.MANAGED_BY_LABEL: names.MANAGED_BY,
    }
    body: dict[str, Any] = {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "metadata": {
            "name": child_name(meta["name"], segment),
            "namespace": meta["namespace"],
            "labels": labels,
            "annotations": dict(spec.template.metadata.get("annotations", {})),
            "ownerReferences": [
                {
                    "apiVersion": names.API_VERSION,
                    "kind": names.SET_KIND,
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": child_spec,
    }
    body["metadata"]["annotations"][HASH_ANNOTATION] = rendered_hash(body)
    return body


def rendered_hash(child: Mapping[str, Any]) -> str:
    """What the child was rendered from, without the hash itself."""
    meta = {
        **child["metadata"],
        "annotations": {
            k: v
            for k, v in (child["metadata"].get("annotations") or {}).items()
            if k != HASH_ANNOTATION
        },
    }
    canonical = json.dumps({"metadata": meta, "spec": child["spec"]}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def needs_apply(desired: Mapping[str, Any], existing: Mapping[str, Any] | None) -> bool:
    if existing is None:
        return True
    have = (existing.get("metadata", {}).get("annotations") or {}).get(HASH_ANNOTATION)
    return bool(have != desired["metadata"]["annotations"][HASH_ANNOTATION])


def to_prune(existing: Mapping[str, str], wanted: Iterable[str], prune: bool) -> list[str]:
    """Children (name → segment) whose segment is gone, to delete when pruning."""
    if not prune:
        return []
    keep = set(wanted)
    return sorted(name for name, segment in existing.items() if segment not in keep)


def segment_models(children: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """Each promoted child's serving model, by segment (FRESHET_SEGMENT_MODELS)."""
    models = {}
    for child in children:
        segment = (child["metadata"].get("labels") or {}).get(SEGMENT_LABEL)
        serving = (child.get("status") or {}).get("serving") or {}
        if segment and serving.get("version") and serving.get("modelKey") and serving.get("sha256"):
            models[segment] = {
                "version": serving["version"],
                "key": serving["modelKey"],
                "sha256": serving["sha256"],
            }
    return dict(sorted(models.items()))


def serving_patch(name: str, container: str, models: Mapping[str, Any]) -> dict[str, Any]:
    """The server-side-apply configuration the set owns on the shared Deployment."""
    value = json.dumps(models, sort_keys=True, separators=(",", ":"))
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": container, "env": [{"name": SEGMENT_MODELS_ENV, "value": value}]}
                    ]
                }
            }
        },
    }


def served_models(deployment: Mapping[str, Any], container: str) -> str | None:
    """The FRESHET_SEGMENT_MODELS value the Deployment's container has now."""
    for c in deployment["spec"]["template"]["spec"].get("containers") or []:
        if c["name"] == container:
            for e in c.get("env") or []:
                if e.get("name") == SEGMENT_MODELS_ENV:
                    return str(e.get("value", ""))
    return None
