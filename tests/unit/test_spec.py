"""The operator's typed spec: defaults, strict decimals, the CRD's rules, the training hash."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest
from freshet.spec import (
    ContradictionAction,
    DataFormat,
    DriftAction,
    DriftMethod,
    EstimatorClass,
    Metric,
    Mode,
    PolicySpec,
    SchemaMode,
    TriggerSpec,
    Window,
    WindowSelection,
    parse_policy_spec,
)
from policies import INVALID_POLICIES, minimal_spec, valid_policy
from pydantic import ValidationError


def test_parses_a_full_policy() -> None:
    spec = parse_policy_spec(valid_policy())
    assert spec.mode is Mode.DYNAMIC
    assert spec.data.store_ref.name == "ml-store"
    assert spec.data.window is not None and spec.data.window.max_batches == 20
    assert spec.training.estimator.class_ is EstimatorClass.SGD_CLASSIFIER
    assert spec.training.estimator.params == {"loss": "log_loss"}
    assert spec.gate.metric is Metric.ROC_AUC
    assert spec.gate.min_value == Decimal("0.80")
    assert spec.gate.max_regression == Decimal("0.01")
    assert spec.serving is not None and spec.serving.deployment_ref.name == "spam-server"


def test_defaults_match_the_crd_defaults() -> None:
    spec = PolicySpec.model_validate(minimal_spec())
    assert spec.data.format is DataFormat.CSV
    assert spec.data.window is None
    assert spec.trigger is None
    rules = spec.validation
    assert (rules.schema_mode, rules.columns, rules.allow_extra_columns) == (
        SchemaMode.INFERRED,
        [],
        False,
    )
    # Unset fault limits are learned from the reference (validation/quality.py).
    assert (rules.max_null_fraction, rules.reference_tolerance) == (None, Decimal("0.05"))
    assert (rules.max_duplicate_fraction, rules.max_conflicting_label_fraction) == (None, None)
    assert (rules.drift.action, spec.drift_action) == (None, DriftAction.IGNORE)  # Static
    assert spec.window_selection is WindowSelection.FULL
    assert (rules.label_contradiction.action, rules.label_contradiction.margin) == (
        ContradictionAction.HOLD,
        Decimal("0.1"),
    )
    assert (rules.label_values, rules.max_label_rate_shift) == (None, Decimal("0.1"))
    assert rules.max_out_of_range_fraction == Decimal("0.01")
    assert (rules.drift.method, rules.drift.threshold, rules.drift.p_value) == (
        DriftMethod.AUTO,
        None,
        Decimal("0.01"),
    )
    assert (rules.max_batch_size, rules.max_columns) == (256 * 1024 * 1024, 1000)
    training = spec.training
    assert (training.seed, training.warm_start, training.holdout_fraction) == (
        0,
        False,
        Decimal("0.2"),
    )
    assert (training.active_deadline_seconds, training.backoff_limit) == (3600, 1)
    assert (spec.gate.metric, spec.gate.min_value, spec.gate.max_regression) == (
        Metric.ACCURACY,
        None,
        Decimal(0),
    )
    assert spec.serving is None


@pytest.mark.parametrize(
    ("mode", "trigger", "expected"),
    [
        ("Static", None, None),
        ("Dynamic", None, TriggerSpec()),
        ("Dynamic", {"pollIntervalSeconds": 30}, TriggerSpec(poll_interval_seconds=30)),
    ],
)
def test_effective_trigger(
    mode: str, trigger: dict[str, Any] | None, expected: TriggerSpec | None
) -> None:
    body = minimal_spec(mode)
    if trigger is not None:
        body["trigger"] = trigger
    assert PolicySpec.model_validate(body).effective_trigger == expected


@pytest.mark.parametrize(
    ("value", "parsed"),
    [("0", Decimal(0)), ("1", Decimal(1)), ("0.05", Decimal("0.05")), (".5", Decimal("0.5")),
     ("1.000", Decimal(1))],
)  # fmt: skip
def test_fraction_accepts(value: str, parsed: Decimal) -> None:
    body = minimal_spec()
    body["validation"] = {"maxNullFraction": value}
    assert PolicySpec.model_validate(body).validation.max_null_fraction == parsed


@pytest.mark.parametrize("value", [0.05, "5%", "1.5", "-0.1", "5e-2", " 0.1", "0.1 ", "NaN", ""])
def test_fraction_is_parsed_strictly(value: object) -> None:
    body = minimal_spec()
    body["validation"] = {"maxNullFraction": value}
    with pytest.raises(ValidationError, match="decimal string"):
        PolicySpec.model_validate(body)


@pytest.mark.parametrize(
    ("case_id", "policy", "message"),
    [case for case in INVALID_POLICIES if case[0] != "name-too-long"],  # metadata: not spec
    ids=[case[0] for case in INVALID_POLICIES if case[0] != "name-too-long"],
)
def test_refuses_what_admission_refuses(case_id: str, policy: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError):
        parse_policy_spec(policy)


@pytest.mark.parametrize("schedule", ["0 */6 * * *", "@hourly", "*/5 * * * *"])
def test_schedule_accepts_cron(schedule: str) -> None:
    assert TriggerSpec(schedule=schedule).schedule == schedule


@pytest.mark.parametrize("schedule", ["0 */6 * *", "0 */6 * * * *", "61 * * * *", "@sometimes"])
def test_schedule_refuses_what_croniter_cannot_run(schedule: str) -> None:
    with pytest.raises(ValidationError, match="cron"):
        TriggerSpec(schedule=schedule)


def _with(path: str, value: Any) -> dict[str, Any]:
    body: dict[str, Any] = copy.deepcopy(valid_policy()["spec"])
    *parents, leaf = path.split(".")
    node = body
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return body


BASE_HASH = PolicySpec.model_validate(valid_policy()["spec"]).training_hash()


@pytest.mark.parametrize(
    ("path", "value", "changes"),
    [
        ("training.estimator.params", {"loss": "hinge"}, True),
        # A class whose parameters include the valid policy's (loss: log_loss).
        ("training.estimator.class", "sklearn.ensemble.GradientBoostingClassifier", True),
        ("training.image", "registry.example.com/freshet-trainer:0.2.0", True),
        ("training.seed", 7, True),
        ("training.holdoutFraction", "0.25", True),
        ("training.maxEnsembleSize", 500, True),
        ("monitoring", {"source": "Prequential"}, False),
        ("data.prefix", "spam/v2/", True),
        ("data.window.maxBatches", 10, True),
        ("data.window.selection", "Full", True),
        ("data.exclude", ["user_id"], True),
        ("validation.drift", {"action": "Hold"}, True),
        ("validation.labelContradiction", {"action": "Allow"}, True),
        ("validation.maxNullFraction", "0.1", True),
        ("validation.drift", {"method": "PSI"}, True),
        ("validation.labelValues", ["0", "1"], True),
        ("validation.maxBatchBytes", "1Gi", True),
        ("training.resources", {"limits": {"cpu": "8"}}, False),
        ("training.activeDeadlineSeconds", 7200, False),
        ("training.backoffLimit", 3, False),
        ("gate.maxRegression", "0.05", False),
        ("trigger.pollIntervalSeconds", 60, False),
        ("serving.container", "server", False),
    ],
)
def test_training_hash_covers_what_changes_the_model(path: str, value: Any, changes: bool) -> None:
    changed = PolicySpec.model_validate(_with(path, value)).training_hash()
    assert (changed != BASE_HASH) is changes


def test_the_training_hash_of_a_stored_policy_is_unchanged_by_an_upgrade() -> None:
    """Upgrading the operator must not retrain every Static policy: the hash of the
    valid policy, as an earlier release stored it, is pinned, so a new optional field
    left unset must not move it. That release's CRD wrote its defaults into every
    object, the fault limits among them ("0.05" before they were learned)."""
    body = copy.deepcopy(valid_policy()["spec"])
    body["validation"].update(maxDuplicateFraction="0.05", maxConflictingLabelFraction="0.05")
    assert PolicySpec.model_validate(body).training_hash() == "0a3aca5ceef3c865"


def test_the_dynamic_defaults_follow_change() -> None:
    spec = PolicySpec.model_validate(minimal_spec("Dynamic"))
    assert (spec.drift_action, spec.window_selection) == (
        DriftAction.RETRAIN,
        WindowSelection.ADAPTIVE,
    )
    body = minimal_spec("Dynamic")
    body["data"]["window"] = {"selection": "Full"}
    body["validation"] = {"drift": {"action": "Hold"}}
    spec = PolicySpec.model_validate(body)
    assert (spec.drift_action, spec.window_selection, spec.data.window) == (
        DriftAction.HOLD,
        WindowSelection.FULL,
        Window(selection=WindowSelection.FULL),
    )


def test_exclude_must_not_list_the_label() -> None:
    body = minimal_spec("Dynamic")
    body["data"]["exclude"] = ["id", "y"]
    with pytest.raises(ValidationError, match=r"data\.exclude"):
        PolicySpec.model_validate(body)


@pytest.mark.parametrize(("value", "size"), [("256Mi", 268_435_456), ("1G", 10**9), (4096, 4096)])
def test_max_batch_bytes_takes_quantities(value: object, size: int) -> None:
    body = minimal_spec()
    body["validation"] = {"maxBatchBytes": value}
    assert PolicySpec.model_validate(body).validation.max_batch_size == size


@pytest.mark.parametrize("value", ["100m", "0", 0, "-1Ki", "lots"])
def test_max_batch_bytes_must_be_whole_positive_bytes(value: object) -> None:
    body = minimal_spec()
    body["validation"] = {"maxBatchBytes": value}
    with pytest.raises(ValidationError, match="maxBatchBytes"):
        PolicySpec.model_validate(body)


def test_strict_schema_declares_columns() -> None:
    body = minimal_spec()
    body["validation"] = {
        "schema": "Strict",
        "columns": [
            {"name": "x1", "type": "number", "nullable": False},
            {"name": "y", "type": "integer"},
        ],
    }
    rules = PolicySpec.model_validate(body).validation
    assert rules.schema_mode is SchemaMode.STRICT
    assert [(c.name, c.type.value, c.nullable) for c in rules.columns] == [
        ("x1", "number", False),
        ("y", "integer", True),
    ]
