"""The CRD documents every field, shows the right columns and agrees with the operator's model."""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum
from typing import Annotated, Any

import pytest
import yaml
from freshet import names
from freshet.decisions.runs import RunPhase
from freshet.spec import (
    ColumnType,
    Correction,
    DataFormat,
    DriftMethod,
    EstimatorClass,
    Metric,
    Mode,
    PolicySpec,
    SchemaMode,
)
from policies import CRD_PATH, minimal_spec
from pydantic import BaseModel, TypeAdapter
from pydantic.fields import FieldInfo

CRD: dict[str, Any] = yaml.safe_load(CRD_PATH.read_text())
(VERSION,) = CRD["spec"]["versions"]
ROOT: dict[str, Any] = VERSION["schema"]["openAPIV3Schema"]
SPEC = ROOT["properties"]["spec"]
STATUS = ROOT["properties"]["status"]


def walk(schema: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node under ``schema`` with its dotted path."""
    yield path, schema
    for name, child in schema.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}.*")
    if "items" in schema:
        yield from walk(schema["items"], f"{path}[]")


# The API server forbids anything but `type` on metadata, even a description.
NODES = [(path, node) for path, node in walk(ROOT, "") if path != ".metadata"]


SET_CRD: dict[str, Any] = yaml.safe_load(
    (CRD_PATH.parent / f"{names.SET_PLURAL}.{names.GROUP}.yaml").read_text()
)
(SET_VERSION,) = SET_CRD["spec"]["versions"]
SET_NODES = [
    (f"set{path}", node)
    for path, node in walk(SET_VERSION["schema"]["openAPIV3Schema"], "")
    if path != ".metadata"
]


@pytest.mark.parametrize(
    ("path", "node"), NODES + SET_NODES, ids=[path or "." for path, _ in NODES + SET_NODES]
)
def test_every_field_is_described(path: str, node: dict[str, Any]) -> None:
    # A string: YAML reads an unquoted "True, False or Unknown." in a flow mapping as a
    # boolean and more keys, and the API server refuses the whole CRD.
    description = node.get("description", "")
    assert isinstance(description, str) and description.strip(), (
        f"{path or 'root'}: {description!r}"
    )


def test_names() -> None:
    assert CRD["metadata"]["name"] == f"{names.PLURAL}.{names.GROUP}"
    assert CRD["spec"]["group"] == names.GROUP
    assert CRD["spec"]["names"] | {} == {
        "kind": names.KIND,
        "listKind": "TrainingPolicyList",
        "plural": names.PLURAL,
        "singular": "trainingpolicy",
        "shortNames": ["tp"],
        "categories": ["freshet"],
    }
    assert (VERSION["name"], VERSION["served"], VERSION["storage"]) == (names.VERSION, True, True)
    assert VERSION["subresources"] == {"status": {}}


def test_printer_columns() -> None:
    columns = {c["name"]: (c["type"], c["jsonPath"]) for c in VERSION["additionalPrinterColumns"]}
    assert columns["Mode"] == ("string", ".spec.mode")
    assert columns["Serving"] == ("string", ".status.serving.version")
    assert columns["Ready"] == ("string", '.status.conditions[?(@.type=="Ready")].status')
    assert columns["Last-Trained"] == ("date", ".status.lastTrainedTime")
    assert columns["Age"] == ("date", ".metadata.creationTimestamp")


def test_every_cel_rule_says_what_to_fix() -> None:
    rules = [
        rule for _, node in walk(ROOT, "") for rule in node.get("x-kubernetes-validations", [])
    ]
    assert len(rules) >= 10
    for rule in rules:
        assert rule.get("message"), rule["rule"]


def enum_at(path: str) -> list[str]:
    node = ROOT
    for part in path.split("."):
        node = node["properties"][part]
    values: list[str] = node["enum"]
    return values


@pytest.mark.parametrize(
    ("path", "python_enum"),
    [
        ("spec.mode", Mode),
        ("spec.data.format", DataFormat),
        ("spec.gate.metric", Metric),
        ("spec.training.estimator.class", EstimatorClass),
        ("status.lastRun.phase", RunPhase),
        ("spec.validation.schema", SchemaMode),
        ("spec.validation.drift.method", DriftMethod),
        ("spec.validation.drift.correction", Correction),
    ],
)
def test_enums_match_the_operator(path: str, python_enum: type[StrEnum]) -> None:
    assert enum_at(path) == [member.value for member in python_enum]


def defaults(
    schema: dict[str, Any], model: type[BaseModel], path: str
) -> Iterator[tuple[str, Any, FieldInfo]]:
    """(path, CRD default, model field) for every defaulted field, recursively."""
    fields = {field.alias or name: field for name, field in model.model_fields.items()}
    for prop, child in schema.get("properties", {}).items():
        field = fields[prop]
        if "default" in child:
            yield f"{path}.{prop}", child["default"], field
        nested = _model_of(field.annotation)
        if nested is not None:
            yield from defaults(child, nested, f"{path}.{prop}")


def _model_of(annotation: Any) -> type[BaseModel] | None:
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


DEFAULTS = list(defaults(SPEC, PolicySpec, "spec"))


@pytest.mark.parametrize(("path", "crd_default", "field"), DEFAULTS, ids=[d[0] for d in DEFAULTS])
def test_crd_defaults_equal_model_defaults(path: str, crd_default: Any, field: FieldInfo) -> None:
    model_default = field.get_default(call_default_factory=True)
    # Validated as the field would validate it, so "0.2" compares to Decimal("0.2").
    annotation: Any = (
        Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
    )
    adapter: TypeAdapter[Any] = TypeAdapter(annotation)
    assert adapter.validate_python(crd_default) == model_default


def test_defaulted_minimal_spec_equals_the_model_defaults() -> None:
    """What the API server stores for a minimal policy parses to the same spec."""
    spec = PolicySpec.model_validate(minimal_spec())
    crd_defaulted = minimal_spec()
    crd_defaulted["validation"] = SPEC["properties"]["validation"]["default"]
    crd_defaulted["gate"] = SPEC["properties"]["gate"]["default"]
    assert PolicySpec.model_validate(crd_defaulted) == spec


@pytest.mark.parametrize(
    "field",
    ["observedGeneration", "conditions", "serving", "candidate", "lastRun", "history", "data",
     "lastTrainedTime", "retrainRequest", "lastScheduleTime", "stateRoot"],
)  # fmt: skip
def test_status_declares(field: str) -> None:
    assert field in STATUS["properties"]


def test_status_shapes() -> None:
    props = STATUS["properties"]
    assert props["history"]["maxItems"] == 20
    condition = props["conditions"]["items"]
    assert set(condition["properties"]) == {
        "type", "status", "reason", "message", "observedGeneration", "lastTransitionTime"
    }  # fmt: skip
    assert props["conditions"]["x-kubernetes-list-map-keys"] == ["type"]
    assert set(props["lastRun"]["properties"]) >= {
        "runId", "jobName", "phase", "startedTime", "finishedTime", "version", "reason"
    }  # fmt: skip
    assert set(props["data"]["properties"]) == {
        "seen", "consumed", "pending", "untrained", "quarantined", "lastArrivalTime", "arrivals",
        "labels", "drift",
    }  # fmt: skip
    assert set(props["data"]["properties"]["labels"]["properties"]) == {
        "watermark", "cutoff", "awaitingBackfill", "lastBackfillTime"
    }  # fmt: skip
    assert "x-kubernetes-preserve-unknown-fields" not in STATUS


def test_column_types_match_the_operator() -> None:
    columns = SPEC["properties"]["validation"]["properties"]["columns"]
    assert columns["items"]["properties"]["type"]["enum"] == [t.value for t in ColumnType]
    assert columns["x-kubernetes-list-map-keys"] == ["name"]
