"""TrainingPolicies the API server must reject at admission, one rule each.

Every case starts from the same valid policy and breaks exactly one rule of
crds/trainingpolicies.freshet.dev.yaml, so a failure points at that rule. The
expected substring is what kube-apiserver itself answers: the CEL rule's
``message``, or the built-in schema error (``Unsupported value``, ``should be
greater than or equal to``, ``should match``, ``Required value``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

Policy = dict[str, Any]


def valid_policy(name: str = "invalid-case") -> Policy:
    """A complete, valid Dynamic policy that every invalid case mutates."""
    return {
        "apiVersion": "freshet.dev/v1alpha1",
        "kind": "TrainingPolicy",
        "metadata": {"name": name},
        "spec": {
            "mode": "Dynamic",
            "data": {
                "storeRef": {"name": "ml-store"},
                "prefix": "spam/incoming/",
                "format": "csv",
                "label": "is_spam",
                "window": {"maxBatches": 20},
            },
            "trigger": {
                "pollIntervalSeconds": 5,
                "onArrival": {"minBatches": 1, "minRows": 0, "quietSeconds": 5},
                "schedule": "0 */6 * * *",
            },
            "validation": {"maxNullFraction": "0.05"},
            "training": {
                "image": "registry.example.com/freshet-trainer:0.1.0",
                "estimator": {
                    "class": "sklearn.linear_model.SGDClassifier",
                    "params": {"loss": "log_loss"},
                },
                "warmStart": True,
                "holdoutFraction": "0.2",
                "resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": "2"}},
            },
            "gate": {"metric": "roc_auc", "minValue": "0.80", "maxRegression": "0.01"},
            "serving": {"deploymentRef": {"name": "spam-server"}},
        },
    }


def _case(case_id: str, mutate: Callable[[Policy], None], expected: str) -> tuple[str, Policy, str]:
    policy = valid_policy(name=case_id)
    mutate(policy)
    return case_id, copy.deepcopy(policy), expected


def _spec(policy: Policy) -> dict[str, Any]:
    spec: dict[str, Any] = policy["spec"]
    return spec


def _static_with_trigger(p: Policy) -> None:
    _spec(p)["mode"] = "Static"


def _drop_prefix(p: Policy) -> None:
    del _spec(p)["data"]["prefix"]


def _drop_store_ref(p: Policy) -> None:
    del _spec(p)["data"]["storeRef"]


def _drop_label(p: Policy) -> None:
    del _spec(p)["data"]["label"]


def _drop_serving(p: Policy) -> None:
    del _spec(p)["serving"]


_SERIES = {"numerator": {"metric": "freshet_server_predictions_total"}}


def _long_name(p: Policy) -> None:
    p["metadata"]["name"] = "x" * 64


def _set(path: str, value: Any) -> Callable[[Policy], None]:
    """Set spec.<dotted path> to value."""

    def mutate(p: Policy) -> None:
        *parents, leaf = path.split(".")
        node = _spec(p)
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value

    return mutate


def _both(*mutations: Callable[[Policy], None]) -> Callable[[Policy], None]:
    def mutate(p: Policy) -> None:
        for mutation in mutations:
            mutation(p)

    return mutate


def _labels(**overrides: Any) -> dict[str, Any]:
    """A valid data.labels block, with some fields replaced."""
    return {
        "prefix": "spam/labels/",
        "idColumn": "message_id",
        "eventTimeColumn": "received_at",
        "delaySeconds": 3600,
    } | overrides


INVALID_POLICIES: list[tuple[str, Policy, str]] = [
    _case(
        "trigger-in-static-mode",
        _static_with_trigger,
        "spec.trigger is only allowed when spec.mode is Dynamic",
    ),
    _case("missing-prefix", _drop_prefix, "spec.data.prefix: Required value"),
    _case("missing-store-ref", _drop_store_ref, "spec.data.storeRef: Required value"),
    _case("missing-label", _drop_label, "spec.data.label: Required value"),
    _case("bad-format", _set("data.format", "xlsx"), 'Unsupported value: "xlsx"'),
    _case(
        "prefix-without-trailing-slash",
        _set("data.prefix", "spam/incoming"),
        "data.prefix must end with '/'",
    ),
    _case(
        "prefix-under-state-root",
        _set("data.prefix", "freshet/ml/spam-filter/"),
        "data.prefix must not be under freshet/",
    ),
    _case(
        "prefix-absolute",
        _set("data.prefix", "/spam/incoming/"),
        "data.prefix must not start with '/'",
    ),
    _case(
        "min-value-above-one",
        _set("gate.minValue", "1.5"),
        'gate.minValue must be between "0" and "1" for accuracy, roc_auc and f1',
    ),
    _case("max-regression-not-decimal", _set("gate.maxRegression", "abc"), "should match"),
    _case(
        "negative-min-value-for-rmse",
        _set("gate", {"metric": "rmse", "minValue": "-0.5"}),
        "gate.minValue must not be negative for log_loss, rmse and mae",
    ),
    _case("bad-gate-metric", _set("gate.metric", "precision"), 'Unsupported value: "precision"'),
    _case(
        "estimator-not-allowed",
        _set("training.estimator.class", "sklearn.svm.SVC"),
        'Unsupported value: "sklearn.svm.SVC"',
    ),
    _case(
        "warm-start-unsupported",
        _set("training.estimator", {"class": "sklearn.linear_model.Ridge"}),
        "training.warmStart is not supported by this estimator class",
    ),
    _case(
        "window-max-batches-zero",
        _set("data.window.maxBatches", 0),
        "should be greater than or equal to 1",
    ),
    _case(
        "max-ensemble-size-without-warm-start",
        _both(_set("training.warmStart", False), _set("training.maxEnsembleSize", 500)),
        "training.maxEnsembleSize bounds what warm starts add to an ensemble",
    ),
    _case(
        "max-ensemble-size-zero", _set("training.maxEnsembleSize", 0), "greater than or equal to 1"
    ),
    _case(
        "holdout-fraction-too-large",
        _set("training.holdoutFraction", "0.9"),
        "training.holdoutFraction must be greater than 0 and at most 0.5",
    ),
    _case(
        "holdout-fraction-zero",
        _set("training.holdoutFraction", "0"),
        "training.holdoutFraction must be greater than 0 and at most 0.5",
    ),
    _case(
        "max-null-fraction-not-fraction",
        _set("validation.maxNullFraction", "5%"),
        "should match",
    ),
    _case(
        "strict-schema-without-columns",
        _set("validation.schema", "Strict"),
        "validation.columns declares the columns of a Strict schema",
    ),
    _case(
        "columns-with-inferred-schema",
        _set("validation.columns", [{"name": "x", "type": "number"}]),
        "validation.columns declares the columns of a Strict schema",
    ),
    _case(
        "column-declared-twice",
        _set(
            "validation",
            {
                "schema": "Strict",
                "columns": [{"name": "x", "type": "number"}, {"name": "x", "type": "string"}],
            },
        ),
        "Duplicate value",
    ),
    _case(
        "bad-column-type",
        _set("validation", {"schema": "Strict", "columns": [{"name": "x", "type": "float"}]}),
        'Unsupported value: "float"',
    ),
    _case("label-values-repeated", _set("validation.labelValues", ["1", "1"]), "Duplicate value"),
    _case("bad-drift-method", _set("validation.drift.method", "Wasserstein"), "Unsupported value"),
    _case("drift-p-value-above-one", _set("validation.drift.pValue", "1.5"), "should match"),
    _case("max-batch-bytes-fractional", _set("validation.maxBatchBytes", "100m"), "should match"),
    _case(
        "poll-interval-zero",
        _set("trigger.pollIntervalSeconds", 0),
        "should be greater than or equal to 1",
    ),
    _case("bad-schedule", _set("trigger.schedule", "every 6 hours"), "should match"),
    _case(
        "requests-above-limits",
        _set("training.resources", {"requests": {"cpu": "4"}, "limits": {"cpu": "2"}}),
        "training.resources.requests must not exceed training.resources.limits",
    ),
    _case(
        "active-deadline-too-short",
        _set("training.activeDeadlineSeconds", 10),
        "should be greater than or equal to 60",
    ),
    _case("name-too-long", _long_name, "metadata.name must be at most 63 characters"),
    _case(
        "labels-without-id-column",
        _set("data.labels", {"prefix": "spam/labels/", "eventTimeColumn": "t", "delaySeconds": 60}),
        "spec.data.labels.idColumn: Required value",
    ),
    _case(
        "labels-prefix-inside-data-prefix",
        _set("data.labels", _labels(prefix="spam/incoming/labels/")),
        "data.labels.prefix and data.prefix must not contain each other",
    ),
    _case(
        "labels-prefix-without-slash",
        _set("data.labels", _labels(prefix="spam/labels")),
        "data.labels.prefix must end with '/'",
    ),
    _case(
        "labels-id-is-event-time",
        _set("data.labels", _labels(idColumn="t", eventTimeColumn="t")),
        "data.labels.idColumn and data.labels.eventTimeColumn must be different columns",
    ),
    _case(
        "labels-id-is-the-label",
        _set("data.labels", _labels(idColumn="is_spam")),
        "data.label must differ from data.labels.idColumn and data.labels.eventTimeColumn",
    ),
    _case(
        "fake-negative-without-negative-value",
        _set("data.labels", _labels(delayedFeedback="FakeNegative")),
        "set data.labels.negativeValue to the negative class",
    ),
    _case(
        "negative-value-not-a-label-value",
        _both(
            _set("data.labels", _labels(negativeValue="no")),
            _set("validation.labelValues", ["0", "1"]),
        ),
        "data.labels.negativeValue must be one of validation.labelValues",
    ),
    _case(
        "negative-label-delay",
        _set("data.labels", _labels(delaySeconds=-1)),
        "should be greater than or equal to 0",
    ),
    _case(
        "backfill-quiet-too-long",
        _set("trigger.backfill", {"quietSeconds": 100_000}),
        "should be less than or equal to 86400",
    ),
    _case(
        "model-server-source-without-check",
        _set("monitoring", {"source": "ModelServer"}),
        "monitoring.modelServer is required when monitoring.source is ModelServer",
    ),
    _case(
        "model-server-check-without-bounds",
        _set("monitoring", {"source": "ModelServer", "modelServer": _SERIES}),
        "monitoring.modelServer needs minValue, maxValue or both",
    ),
    _case(
        "model-server-check-bad-metric-name",
        _set(
            "monitoring",
            {
                "source": "ModelServer",
                "modelServer": {"numerator": {"metric": "rate(x[5m])"}, "minValue": "0.5"},
            },
        ),
        "should match",
    ),
    _case(
        "model-server-without-serving",
        _both(
            _set(
                "monitoring",
                {"source": "ModelServer", "modelServer": _SERIES | {"minValue": "0.5"}},
            ),
            _drop_serving,
        ),
        "monitoring.source ModelServer scrapes the serving pods; set spec.serving",
    ),
    _case(
        "serving-without-deployment",
        _set("serving", {"container": "server"}),
        "spec.serving.deploymentRef: Required value",
    ),
    _case(
        "negative-cpu-limit",
        _set("training.resources", {"limits": {"cpu": "-1"}}),
        "training.resources.limits must not have a negative quantity",
    ),
    _case(
        "negative-integer-memory-request",
        _set("training.resources", {"requests": {"memory": -1}}),
        "training.resources.requests must not have a negative quantity",
    ),
    _case(
        "resource-without-domain",
        _set("training.resources", {"limits": {"gpu": "1"}}),
        "training.resources.limits names a resource Kubernetes does not know",
    ),
    _case(
        "resource-in-kubernetes-domain",
        _set("training.resources", {"limits": {"kubernetes.io/gpu": "1"}}),
        "training.resources.limits names a resource Kubernetes does not know",
    ),
    _case(
        "extended-resource-fractional",
        _set("training.resources", {"limits": {"nvidia.com/gpu": "500m"}}),
        "of an extended resource (domain/name) must be a whole number",
    ),
    _case(
        "extended-resource-overcommitted",
        _set("training.resources", {"requests": {"nvidia.com/gpu": 1}}),
        "training.resources.requests of hugepages or an extended resource must equal its",
    ),
    _case(
        "max-batch-bytes-negative-integer",
        _set("validation.maxBatchBytes", -1),
        "validation.maxBatchBytes must be a positive whole number of bytes",
    ),
    _case(
        "max-batch-bytes-zero-integer",
        _set("validation.maxBatchBytes", 0),
        "validation.maxBatchBytes must be a positive whole number of bytes",
    ),
    _case(
        "prefix-dot-segment",
        _set("data.prefix", "spam/./incoming/"),
        "data.prefix must not contain a '.' or '..' path segment",
    ),
    _case(
        "prefix-dot-dot-segment",
        _set("data.prefix", "../spam/incoming/"),
        "data.prefix must not contain a '.' or '..' path segment",
    ),
    _case(
        "prefix-control-character",
        _set("data.prefix", "spam/\tincoming/"),
        "data.prefix must not contain control characters",
    ),
    _case(
        "labels-prefix-dot-dot-segment",
        _set("data.labels", _labels(prefix="spam/labels/../")),
        "data.labels.prefix must not contain a '.' or '..' path segment",
    ),
    _case(
        "labels-prefix-empty-segment",
        _set("data.labels", _labels(prefix="spam//labels/")),
        "data.labels.prefix must not start with '/' or contain '//'",
    ),
    _case(
        "prometheus-min-above-max",
        _set(
            "monitoring",
            {
                "source": "Prometheus",
                "prometheus": {
                    "url": "http://prometheus:9090",
                    "query": "up",
                    "minValue": "0.9",
                    "maxValue": "0.1",
                },
            },
        ),
        "monitoring.prometheus.minValue must not exceed monitoring.prometheus.maxValue",
    ),
    _case(
        "model-server-min-above-max",
        _set(
            "monitoring",
            {"source": "ModelServer", "modelServer": _SERIES | {"minValue": "2", "maxValue": "1"}},
        ),
        "monitoring.modelServer.minValue must not exceed monitoring.modelServer.maxValue",
    ),
    _case(
        "model-server-port-zero",
        _set(
            "monitoring",
            {"source": "ModelServer", "modelServer": _SERIES | {"minValue": "0.5", "port": 0}},
        ),
        "monitoring.modelServer.port must be a port number between 1 and 65535",
    ),
    _case(
        "model-server-bad-port-name",
        _set(
            "monitoring",
            {
                "source": "ModelServer",
                "modelServer": _SERIES | {"minValue": "0.5", "port": "Metrics_Port"},
            },
        ),
        "monitoring.modelServer.port must be a port number between 1 and 65535",
    ),
    _case(
        "regressor-gated-on-roc-auc",
        _set("training.estimator", {"class": "sklearn.linear_model.SGDRegressor"}),
        "gate.metric roc_auc does not suit sklearn.linear_model.SGDRegressor:"
        " a regressor is gated on rmse, mae or r2",
    ),
    _case(
        "classifier-gated-on-rmse",
        _set("gate", {"metric": "rmse", "maxRegression": "0.01"}),
        "gate.metric rmse does not suit sklearn.linear_model.SGDClassifier:"
        " a classifier is gated on accuracy, roc_auc, f1 or log_loss",
    ),
    _case(
        "regressor-monitored-on-accuracy",
        _both(
            _set("training.estimator", {"class": "sklearn.linear_model.SGDRegressor"}),
            _set("gate", {"metric": "rmse", "maxRegression": "0.01"}),
            _set("monitoring", {"source": "Prequential", "metric": "accuracy"}),
        ),
        "monitoring.metric accuracy does not suit sklearn.linear_model.SGDRegressor:"
        " a regressor is monitored on rmse, mae or r2",
    ),
]
"""``(case_id, policy, expected_message_substring)``, one broken rule per case."""


def _accepted(case_id: str, mutate: Callable[[Policy], None]) -> tuple[str, Policy]:
    policy = valid_policy(name=case_id)
    mutate(policy)
    return case_id, copy.deepcopy(policy)


_REGRESSOR = _both(
    _set("training.estimator", {"class": "sklearn.linear_model.SGDRegressor"}),
    _set("gate", {"metric": "rmse", "maxRegression": "0.01"}),
)

VALID_VARIANTS: list[tuple[str, Policy]] = [
    _accepted(
        "extended-and-integer-resources",
        _set(
            "training.resources",
            {
                "requests": {"cpu": 1, "memory": 1073741824, "nvidia.com/gpu": "1"},
                "limits": {"cpu": "2", "memory": "2Gi", "nvidia.com/gpu": 1},
            },
        ),
    ),
    _accepted(
        "hugepages-and-ephemeral-storage",
        _set(
            "training.resources",
            {
                "requests": {"memory": "1Gi", "hugepages-2Mi": "64Mi", "ephemeral-storage": "1Gi"},
                "limits": {"hugepages-2Mi": "64Mi"},
            },
        ),
    ),
    _accepted("integer-max-batch-bytes", _set("validation.maxBatchBytes", 4096)),
    _accepted("dots-inside-segments", _set("data.prefix", "spam.v2/in..coming/.hidden/")),
    _accepted("regressor-gated-on-rmse", _REGRESSOR),
    _accepted(
        "regressor-monitored-on-mae",
        _both(_REGRESSOR, _set("monitoring", {"source": "Prequential", "metric": "mae"})),
    ),
    _accepted(
        "model-server-equal-bounds-named-port",
        _set(
            "monitoring",
            {
                "source": "ModelServer",
                "modelServer": _SERIES | {"minValue": "1", "maxValue": "1", "port": "metrics"},
            },
        ),
    ),
    _accepted(
        "prometheus-range-numbered-port",
        _set(
            "monitoring",
            {
                "source": "Prometheus",
                "prometheus": {
                    "url": "http://prometheus:9090",
                    "query": "up",
                    "minValue": "-1",
                    "maxValue": "0.5",
                },
            },
        ),
    ),
    _accepted("leap-day-schedule", _set("trigger.schedule", "0 0 29 2 *")),
]
"""``(case_id, policy)``: near misses of the rules above, which must stay accepted."""
