"""The operator's typed spec: defaults, strict decimals, the CRD's rules, the training hash."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from freshet import estimators
from freshet.spec import (
    ContradictionAction,
    DataFormat,
    DriftAction,
    DriftMethod,
    Estimator,
    EstimatorClass,
    Metric,
    Mode,
    PolicySpec,
    SchemaMode,
    TriggerSpec,
    Window,
    WindowSelection,
    _next_fire_time,
    parse_policy_spec,
)
from policies import INVALID_POLICIES, VALID_VARIANTS, minimal_spec, valid_policy
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


def _spec_error(body: dict[str, Any]) -> tuple[str, str]:
    """(location, message) of the first error, as the InvalidSpec condition shows them."""
    with pytest.raises(ValidationError) as info:
        PolicySpec.model_validate(body)
    error = info.value.errors()[0]
    return "spec." + ".".join(str(part) for part in error["loc"]), error["msg"]


@pytest.mark.parametrize(
    ("case_id", "policy"), VALID_VARIANTS, ids=[case[0] for case in VALID_VARIANTS]
)
def test_accepts_what_admission_accepts(case_id: str, policy: dict[str, Any]) -> None:
    parse_policy_spec(policy)


@pytest.mark.parametrize("schedule", ["0 0 30 2 *", "0 0 31 4 *", "0 0 31 6,9,11 *"])
def test_schedule_that_never_fires_is_refused(schedule: str) -> None:
    where, message = _spec_error(_with("trigger.schedule", schedule))
    assert where == "spec.trigger.schedule"
    assert "never fires" in message and schedule in message


@pytest.mark.parametrize("schedule", ["0 0 29 2 *", "0 0 30 2 1", "0 0 31 * *", "@yearly"])
def test_schedule_that_fires_rarely_is_accepted(schedule: str) -> None:
    assert TriggerSpec(schedule=schedule).schedule == schedule


def test_invalid_schedule_names_the_field() -> None:
    where, message = _spec_error(_with("trigger.schedule", "61 * * * *"))
    assert where == "spec.trigger.schedule"
    assert "five-field cron expression" in message


def test_next_fire_time_looks_five_years_ahead() -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    assert _next_fire_time("0 0 29 2 *", now) == datetime(2028, 2, 29, tzinfo=UTC)
    assert _next_fire_time("0 0 30 2 *", now) is None


def test_unknown_estimator_param_is_refused_with_close_matches() -> None:
    body = _with("training.estimator.params", {"loss": "log_loss", "alhpa": 0.001})
    where, message = _spec_error(body)
    assert where == "spec.training.estimator.params.alhpa"
    assert message == "SGDClassifier has no parameter 'alhpa': did you mean alpha?"


def test_unknown_estimator_param_without_a_close_match_lists_the_parameters() -> None:
    body = _with("training.estimator", {"class": "sklearn.dummy.DummyClassifier"})
    body["training"]["warmStart"] = False
    body["training"]["estimator"]["params"] = {"zzz": 1}
    where, message = _spec_error(body)
    assert where == "spec.training.estimator.params.zzz"
    assert message.endswith("its parameters are constant, strategy")  # random_state: the seed


def test_random_state_is_the_seed() -> None:
    where, message = _spec_error(_with("training.estimator.params", {"random_state": 3}))
    assert where == "spec.training.estimator.params.random_state"
    assert "training.seed" in message


def test_estimator_params_are_scalars() -> None:
    where, message = _spec_error(_with("training.estimator.params", {"class_weight": {"1": 2}}))
    assert where == "spec.training.estimator.params.class_weight"
    assert "must be a scalar" in message


def test_every_allowed_estimator_accepts_its_own_parameters() -> None:
    for name, info in estimators.table().items():
        estimator = Estimator.model_validate(
            {"class": name, "params": dict.fromkeys(info.params - {"random_state"})}
        )
        assert estimator.kind is info.kind


@pytest.mark.parametrize(
    ("estimator", "metric", "where", "expected"),
    [
        ("sklearn.linear_model.SGDRegressor", "roc_auc", "gate",
         "gate.metric roc_auc is a classifier metric, but SGDRegressor is a regressor:"
         " use one of rmse, mae, r2"),
        ("sklearn.linear_model.SGDClassifier", "rmse", "gate",
         "gate.metric rmse is a regressor metric, but SGDClassifier is a classifier:"
         " use one of accuracy, roc_auc, f1, log_loss"),
        ("sklearn.linear_model.SGDRegressor", "accuracy", "monitoring",
         "monitoring.metric accuracy is a classifier metric, but SGDRegressor is a regressor:"
         " use one of rmse, mae, r2"),
    ],
)  # fmt: skip
def test_metric_must_suit_the_estimator(
    estimator: str, metric: str, where: str, expected: str
) -> None:
    body = _with("training.estimator", {"class": estimator})
    if where == "monitoring":
        body["gate"] = {"metric": "rmse"}
        body["monitoring"] = {"source": "Prequential", "metric": metric}
    else:
        body["gate"] = {"metric": metric}
    location, message = _spec_error(body)
    assert location == f"spec.{where}.metric"
    assert message == expected


def test_a_regressor_needs_a_regression_gate_metric() -> None:
    """The gate's default metric is accuracy: a regressor must name its metric."""
    body = minimal_spec()
    body["training"]["estimator"] = {"class": "sklearn.linear_model.Ridge"}
    assert _spec_error(body)[0] == "spec.gate.metric"
    body["gate"] = {"metric": "r2"}
    assert PolicySpec.model_validate(body).training.estimator.kind.value == "regressor"


@pytest.mark.parametrize(("loss", "ok"), [(None, False), ("hinge", False), ("log_loss", True),
                                          ("modified_huber", True)])  # fmt: skip
def test_log_loss_needs_probabilities(loss: str | None, ok: bool) -> None:
    body = _with("gate", {"metric": "log_loss"})
    body["training"]["estimator"]["params"] = {} if loss is None else {"loss": loss}
    if ok:
        PolicySpec.model_validate(body)
    else:
        where, message = _spec_error(body)
        assert where == "spec.gate.metric"
        assert "log_loss needs predicted probabilities" in message


@pytest.mark.parametrize(
    ("resources", "where", "expected"),
    [
        ({"limits": {"cpu": "-1"}}, "limits.cpu", "must not be negative"),
        ({"requests": {"memory": -1}}, "requests.memory", "must not be negative"),
        ({"limits": {"gpu": "1"}}, "limits.gpu", "e.g. nvidia.com/gpu"),
        ({"limits": {"hugepages-big": "1"}}, "limits.hugepages-big", "hugepages size"),
        ({"limits": {"nvidia.com/gpu": "0.5"}}, "limits.nvidia.com/gpu", "whole number"),
    ],
)
def test_resources_are_what_kubernetes_accepts(
    resources: dict[str, Any], where: str, expected: str
) -> None:
    location, message = _spec_error(_with("training.resources", resources))
    assert location == f"spec.training.resources.{where}"
    assert expected in message


def test_extended_resources_are_not_overcommitted() -> None:
    body = _with("training.resources", {"requests": {"nvidia.com/gpu": 1}})
    assert "cannot be overcommitted" in _spec_error(body)[1]


@pytest.mark.parametrize("prefix", ["spam/./in/", "spam/../in/", "./spam/", "spam/in\x00/"])
def test_prefix_segments_the_store_cannot_hold(prefix: str) -> None:
    for path in ("data.prefix", "data.labels"):
        value: Any = prefix
        if path == "data.labels":
            value = {"prefix": prefix, "idColumn": "id", "eventTimeColumn": "t", "delaySeconds": 0}
        with pytest.raises(ValidationError, match=path.replace(".", r"\.")):
            PolicySpec.model_validate(_with(path, value))


@pytest.mark.parametrize("source", ["prometheus", "modelServer"])
def test_monitoring_range_must_not_be_empty(source: str) -> None:
    check: dict[str, Any] = (
        {"url": "http://p:9090", "query": "up"}
        if source == "prometheus"
        else {"numerator": {"metric": "x_total"}}
    )
    check |= {"minValue": "0.9", "maxValue": "0.1"}
    body = _with("monitoring", {"source": source[0].upper() + source[1:], source: check})
    where, message = _spec_error(body)
    assert where == f"spec.monitoring.{source}.minValue"
    assert message == (
        f"monitoring.{source}.minValue (0.9) must not exceed monitoring.{source}.maxValue (0.1):"
        " no value could pass"
    )
