"""Typed view of a TrainingPolicy's spec (mirrors crds/trainingpolicies.freshet.dev.yaml).

The API server already enforces the CRD schema and its CEL rules, and applies the
defaults. This model repeats the rules anyway so that code handed a spec from
anywhere else (tests, a policy stored before a CRD upgrade) cannot act on a
spec admission would have refused, and so that defaults live in one typed place
for the code that reads them. Decimal thresholds stay strings on the wire, to
avoid float rounding in YAML, and are parsed strictly into ``Decimal`` here.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Final, Literal, Self

from croniter import CroniterBadDateError, croniter
from freshet_contract import layout as _layout
from freshet_contract import vocabulary as _vocabulary
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import InitErrorDetails, PydanticCustomError

from freshet import estimators

STATE_ROOT_PREFIX: Final = _layout.STATE_ROOT_PREFIX
"""Key prefix under which freshet keeps its own state; data prefixes must avoid it."""

# The run contract's vocabulary: one definition, in freshet_contract, so that a
# value the policy admits is the value the operator sends and the trainer acts on.
ColumnType = _vocabulary.ColumnType
ContradictionAction = _vocabulary.ContradictionAction
Correction = _vocabulary.Correction
DataFormat = _vocabulary.DataFormat
DelayedFeedback = _vocabulary.DelayedFeedback
DriftAction = _vocabulary.DriftAction
DriftMethod = _vocabulary.DriftMethod
Metric = _vocabulary.Metric
SchemaMode = _vocabulary.SchemaMode
WindowSelection = _vocabulary.WindowSelection


def _strict_decimal(pattern: str, example: str) -> Callable[[object], Decimal]:
    """A parser accepting only strings that match ``pattern`` (or a ``Decimal``).

    Floats are refused on purpose: ``0.1`` as a float is not 0.1, and a YAML
    author who wrote an unquoted number would otherwise get a silently rounded
    threshold instead of an error.
    """
    compiled = re.compile(pattern)

    def parse(value: object) -> Decimal:
        if isinstance(value, Decimal):
            return value
        if isinstance(value, str) and compiled.fullmatch(value):
            return Decimal(value)
        raise ValueError(f"must be a decimal string such as {example!r}, got {value!r}")

    return parse


Fraction = Annotated[Decimal, BeforeValidator(_strict_decimal(r"(0|1|0?\.[0-9]+|1\.0+)", "0.05"))]
"""A decimal string between 0 and 1 inclusive."""
SignedDecimal = Annotated[Decimal, BeforeValidator(_strict_decimal(r"-?[0-9]+(\.[0-9]+)?", "0.8"))]
NonNegativeDecimal = Annotated[
    Decimal, BeforeValidator(_strict_decimal(r"[0-9]+(\.[0-9]+)?", "0.01"))
]


def _field_error(
    title: str, loc: Sequence[str | int], message: str, value: object
) -> ValidationError:
    """A validation error located at ``loc`` (relative to the model raising it).

    A model validator's ValueError is located at the model; raised as this, the
    error names the field itself (e.g. spec.training.estimator.params.alhpa), which
    is what the InvalidSpec condition shows.
    """
    return ValidationError.from_exception_data(
        title,
        [
            InitErrorDetails(
                type=PydanticCustomError("value_error", "{message}", {"message": message}),
                loc=tuple(loc),
                input=value,
            )
        ],
    )


_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class _SpecModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are an error.

    The API server prunes fields the CRD does not declare, so an unknown field
    here means this model and the CRD disagree: fail loudly rather than ignore.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
        frozen=True,
    )


class Mode(StrEnum):
    STATIC = "Static"
    DYNAMIC = "Dynamic"


def metric_kind(metric: Metric) -> estimators.EstimatorKind:
    """The estimators the trainer computes `metric` for."""
    if metric.for_regression:
        return estimators.EstimatorKind.REGRESSOR
    return estimators.EstimatorKind.CLASSIFIER


class EstimatorClass(StrEnum):
    """The trainer's allow-list: only these classes are ever imported in a Job."""

    LOGISTIC_REGRESSION = "sklearn.linear_model.LogisticRegression"
    SGD_CLASSIFIER = "sklearn.linear_model.SGDClassifier"
    LINEAR_REGRESSION = "sklearn.linear_model.LinearRegression"
    RIDGE = "sklearn.linear_model.Ridge"
    SGD_REGRESSOR = "sklearn.linear_model.SGDRegressor"
    RANDOM_FOREST_CLASSIFIER = "sklearn.ensemble.RandomForestClassifier"
    GRADIENT_BOOSTING_CLASSIFIER = "sklearn.ensemble.GradientBoostingClassifier"
    HIST_GRADIENT_BOOSTING_CLASSIFIER = "sklearn.ensemble.HistGradientBoostingClassifier"
    RANDOM_FOREST_REGRESSOR = "sklearn.ensemble.RandomForestRegressor"
    HIST_GRADIENT_BOOSTING_REGRESSOR = "sklearn.ensemble.HistGradientBoostingRegressor"
    DUMMY_CLASSIFIER = "sklearn.dummy.DummyClassifier"
    DUMMY_REGRESSOR = "sklearn.dummy.DummyRegressor"

    @property
    def supports_warm_start(self) -> bool:
        return self not in _NO_WARM_START


_NO_WARM_START = frozenset(
    {
        EstimatorClass.LINEAR_REGRESSION,
        EstimatorClass.RIDGE,
        EstimatorClass.DUMMY_CLASSIFIER,
        EstimatorClass.DUMMY_REGRESSOR,
    }
)


class ObjectRef(_SpecModel):
    """A same-namespace reference by name."""

    name: str = Field(min_length=1, max_length=253, pattern=_DNS_SUBDOMAIN)


class Window(_SpecModel):
    max_batches: int | None = Field(default=None, ge=1, le=100_000)
    """None: every batch ever accepted."""
    selection: WindowSelection | None = None
    """None: Adaptive for Dynamic policies, Full for Static ones (`PolicySpec.window_selection`)."""


_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")


def _check_folder(field: str, prefix: str) -> None:
    """A data or label prefix: a folder, relative to the bucket, outside freshet's state.

    The S3 client refuses keys with a ``.`` or ``..`` segment, and the XML of a
    listing cannot carry control characters: such a prefix would never list a batch.
    """
    if not prefix.endswith("/"):
        raise ValueError(f"{field} must end with '/'")
    if prefix.startswith("/") or "//" in prefix:
        raise ValueError(f"{field} must not start with '/' or contain '//'")
    if any(segment in (".", "..") for segment in prefix.split("/")):
        raise ValueError(
            f"{field} must not contain a '.' or '..' path segment: object keys are not"
            " paths; write the prefix without them, e.g. spam/incoming/"
        )
    if _CONTROL_CHARACTER.search(prefix):
        raise ValueError(f"{field} must not contain control characters")
    if prefix.startswith(STATE_ROOT_PREFIX):
        raise ValueError(f"{field} must not be under {STATE_ROOT_PREFIX}")


class LabelsSpec(_SpecModel):
    """Labels that arrive after the features, in their own files, joined by an id.

    The label files of a batch ``<data.prefix><name>.<ext>`` live under
    ``<labels.prefix><name>/``, so the operator can tell from a listing alone
    which batches' labels changed (and backfill them) without reading data.
    """

    prefix: str = Field(min_length=1, max_length=512)
    id_column: str = Field(min_length=1, max_length=256)
    event_time_column: str = Field(min_length=1, max_length=256)
    delay_seconds: int = Field(ge=0, le=31_536_000)
    negative_value: str | None = Field(default=None, min_length=1, max_length=256)
    delayed_feedback: DelayedFeedback = DelayedFeedback.NONE

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _check_folder("data.labels.prefix", self.prefix)
        if self.id_column == self.event_time_column:
            raise ValueError("data.labels.idColumn and eventTimeColumn must differ")
        if self.delayed_feedback is DelayedFeedback.FAKE_NEGATIVE and self.negative_value is None:
            raise ValueError("data.labels.delayedFeedback FakeNegative needs negativeValue")
        return self


class DataSpec(_SpecModel):
    store_ref: ObjectRef
    prefix: str = Field(min_length=1, max_length=512)
    format: DataFormat = DataFormat.CSV
    label: str = Field(min_length=1, max_length=256)
    window: Window | None = None
    """None trains on all history."""
    labels: LabelsSpec | None = None
    """None: the label is a column of every batch."""
    exclude: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=list, max_length=1000
    )
    """Columns that are not features (ids, timestamps): dropped before validation,
    hashing and fitting."""

    @model_validator(mode="after")
    def _prefixes_are_folders_outside_the_state_root(self) -> Self:
        _check_folder("data.prefix", self.prefix)
        if self.labels is not None:
            theirs = self.labels.prefix
            if theirs.startswith(self.prefix) or self.prefix.startswith(theirs):
                raise ValueError("data.labels.prefix and data.prefix must not contain each other")
            if self.label in (self.labels.id_column, self.labels.event_time_column):
                raise ValueError(
                    "data.label must differ from data.labels.idColumn and eventTimeColumn"
                )
        if self.label in self.exclude:
            raise ValueError("data.exclude must not list data.label")
        if len(set(self.exclude)) != len(self.exclude):
            raise ValueError("data.exclude must not list a column twice")
        return self


class OnArrival(_SpecModel):
    min_batches: int = Field(default=1, ge=1, le=100_000)
    min_rows: int = Field(default=0, ge=0)
    quiet_seconds: int = Field(default=5, ge=0, le=3600)


class BackfillSpec(_SpecModel):
    """When late labels change past batches, how eagerly to retrain over them."""

    quiet_seconds: int = Field(default=60, ge=0, le=86_400)
    min_interval_seconds: int = Field(default=3600, ge=0, le=604_800)


class TriggerSpec(_SpecModel):
    poll_interval_seconds: int = Field(default=5, ge=1, le=3600)
    on_arrival: OnArrival = OnArrival()
    schedule: str | None = Field(default=None, max_length=128)
    backfill: BackfillSpec = BackfillSpec()

    @field_validator("schedule")
    @classmethod
    def _schedule_is_cron(cls, schedule: str | None) -> str | None:
        return _check_schedule("trigger.schedule", schedule)


def _check_schedule(field: str, schedule: str | None) -> str | None:
    # The CRD's pattern is deliberately loose (CEL cannot evaluate cron);
    # croniter is the real parser the operator evaluates the schedule with,
    # so it has the last word. It also accepts a sixth (seconds) field,
    # which the CRD does not.
    if schedule is None:
        return None
    fields = schedule.split()
    if not (len(fields) == 5 or schedule.startswith("@")) or not croniter.is_valid(schedule):
        raise ValueError(
            f"{field} {schedule!r} is not a five-field cron expression"
            " (minute hour day-of-month month day-of-week, e.g. '0 */6 * * *')"
        )
    if _next_fire_time(schedule) is None:
        raise ValueError(
            f"{field} {schedule!r} never fires (no time matches it in the next"
            f" {SCHEDULE_HORIZON_YEARS} years, e.g. a day the month does not have):"
            " fix the day of month or month, or remove the schedule"
        )
    return schedule


SCHEDULE_HORIZON_YEARS: Final = 5
"""A schedule with no fire time within this many years counts as never firing."""


def _next_fire_time(schedule: str, now: datetime | None = None) -> datetime | None:
    """The schedule's next fire time after ``now``, or None if it has none in the horizon."""
    start = now or datetime.now(UTC)
    try:
        fire: datetime = croniter(
            schedule, start, max_years_between_matches=SCHEDULE_HORIZON_YEARS
        ).get_next(datetime)
    except CroniterBadDateError:
        return None
    return fire if fire - start <= timedelta(days=366 * SCHEDULE_HORIZON_YEARS) else None


Quantity = int | str
"""A Kubernetes quantity: 2, "500m", "256Mi"."""


_QUANTITY = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?")
_SCALE = {
    **{s: Decimal(1024) ** (i + 1) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))},
    **{
        s: Decimal(10) ** e
        for s, e in zip("numkMGTPE", (-9, -6, -3, 3, 6, 9, 12, 15, 18), strict=True)
    },
}


def _quantity(value: Quantity) -> Decimal:
    """A Kubernetes quantity ("500m", "4Gi", "1e3", 2) as a number, by the API's
    grammar (resource.Quantity); ValueError if it is none."""
    found = _QUANTITY.fullmatch(str(value).strip())
    if found is None:
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. 500m, 4Gi, 2)")
    number, suffix = Decimal(found.group(1)), found.group(2) or ""
    if suffix[:1] in ("e", "E") and suffix[1:]:
        return number * Decimal(10) ** int(suffix[1:])
    return number * _SCALE.get(suffix, Decimal(1))


class ColumnSchema(_SpecModel):
    name: str = Field(min_length=1, max_length=256)
    type: ColumnType
    nullable: bool = True


class DriftSpec(_SpecModel):
    method: DriftMethod = DriftMethod.AUTO
    action: DriftAction | None = None
    """None: Retrain for Dynamic policies, Ignore for Static ones (`PolicySpec.drift_action`)."""
    threshold: NonNegativeDecimal | None = None
    """None: the method's own default (PSI 0.2, KS 0.1, JS 0.1)."""
    p_value: Fraction = Decimal("0.01")
    correction: Correction = Correction.BENJAMINI_HOCHBERG


class LabelContradictionSpec(_SpecModel):
    """Labels on which the serving model does far worse than chance (a label fault)."""

    action: ContradictionAction = ContradictionAction.HOLD
    margin: Fraction = Decimal("0.1")
    """How far below chance the serving model's accuracy must fall."""


class ValidationSpec(_SpecModel):
    """The quarantine rules; the trainer applies them (freshet_trainer.validation).

    The null, duplicate and conflicting-label limits are learned when unset:
    a batch may be as null, duplicated or conflicting as the reference (the
    earlier accepted batches, or on a policy's first run the first batches
    themselves) plus `referenceTolerance`. Set, they also allow at least that
    absolute fraction.
    """

    schema_mode: SchemaMode = Field(default=SchemaMode.INFERRED, alias="schema")
    columns: list[ColumnSchema] = Field(default_factory=list, max_length=10_000)
    max_null_fraction: Fraction | None = None
    reference_tolerance: Fraction = Decimal("0.05")
    allow_extra_columns: bool = False
    max_duplicate_fraction: Fraction | None = None
    max_conflicting_label_fraction: Fraction | None = None
    label_values: list[Annotated[str, Field(min_length=1, max_length=256)]] | None = Field(
        default=None, min_length=1, max_length=1000
    )
    max_label_rate_shift: Fraction = Decimal("0.1")
    max_out_of_range_fraction: Fraction = Decimal("0.01")
    drift: DriftSpec = DriftSpec()
    label_contradiction: LabelContradictionSpec = LabelContradictionSpec()
    max_batch_bytes: Quantity = "256Mi"
    max_columns: int = Field(default=1000, ge=1, le=100_000)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        strict = self.schema_mode is SchemaMode.STRICT
        if strict and not self.columns:
            raise ValueError(
                "validation.columns must declare at least one column when schema is Strict"
            )
        if not strict and self.columns:
            raise ValueError("validation.columns is only used with schema Strict")
        names = [column.name for column in self.columns]
        if len(set(names)) != len(names):
            raise ValueError("validation.columns must not declare a column twice")
        if self.label_values is not None and len(set(self.label_values)) != len(self.label_values):
            raise ValueError("validation.labelValues must not repeat a value")
        try:
            size = _quantity(self.max_batch_bytes)
        except ValueError as err:
            raise ValueError(f"validation.maxBatchBytes: {err}") from err
        if size < 1 or size != int(size):
            raise ValueError("validation.maxBatchBytes must be a positive whole number of bytes")
        return self

    @property
    def max_batch_size(self) -> int:
        """maxBatchBytes in bytes."""
        return int(_quantity(self.max_batch_bytes))


class Estimator(_SpecModel):
    class_: EstimatorClass = Field(alias="class")
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _params_are_known(self) -> Self:
        # The trainer would refuse these only inside a Job (and each retry is
        # another Job); the generated table lets the operator refuse them first.
        for name, value in self.params.items():
            problem = estimators.param_problem(self.class_, name, value)
            if problem is not None:
                raise _field_error("Estimator", ("params", name), problem, value)
        return self

    @property
    def kind(self) -> estimators.EstimatorKind:
        """Classifier or regressor (estimator_params.json)."""
        return estimators.table()[self.class_].kind

    @property
    def has_probabilities(self) -> bool:
        """Whether the estimator has predict_proba, without which log_loss is never computed."""
        if self.class_ is EstimatorClass.SGD_CLASSIFIER:
            return self.params.get("loss", "hinge") in estimators.PROBABILISTIC_SGD_LOSSES
        return self.kind is estimators.EstimatorKind.CLASSIFIER


STANDARD_RESOURCES: Final = frozenset({"cpu", "memory", "ephemeral-storage"})
"""Container resources Kubernetes knows without a domain (besides hugepages-<size>)."""
_EXTENDED_RESOURCE = re.compile(
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
    r"/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
)


def _resource_name_problem(name: str) -> str | None:
    """Why Kubernetes would refuse ``name`` as a container resource, or None."""
    if name in STANDARD_RESOURCES:
        return None
    if name.startswith("hugepages-"):
        try:
            _quantity(name.removeprefix("hugepages-"))
        except ValueError:
            return f"{name!r} is not a hugepages size, e.g. hugepages-2Mi"
        return None
    if "/" not in name or "kubernetes.io/" in name:
        return (
            f"{name!r} is not a container resource: use cpu, memory, ephemeral-storage,"
            " hugepages-<size> or an extended resource with its domain, e.g. nvidia.com/gpu"
        )
    if not _EXTENDED_RESOURCE.fullmatch(name) or len(name.split("/")[1]) > 63:
        return f"{name!r} is not a valid extended resource name (domain/name, e.g. nvidia.com/gpu)"
    return None


def _overcommit_allowed(name: str) -> bool:
    """Requests below limits are allowed only for the standard resources (not hugepages)."""
    return name in STANDARD_RESOURCES


class Resources(_SpecModel):
    """Kept as written for the Job; parsed here only to check them."""

    limits: dict[str, Quantity] = Field(default_factory=dict)
    requests: dict[str, Quantity] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _requests_within_limits(self) -> Self:
        # Kubernetes would refuse such a pod only when the Job is created, long
        # after the policy was accepted; refuse the policy instead.
        parsed: dict[str, dict[str, Decimal]] = {}
        for kind, given in (("limits", self.limits), ("requests", self.requests)):
            parsed[kind] = {}
            for name, value in given.items():
                where = f"training.resources.{kind}.{name}"
                problem = _resource_name_problem(name)
                if problem is not None:
                    raise _field_error("Resources", (kind, name), f"{where}: {problem}", value)
                try:
                    amount = _quantity(value)
                except ValueError as err:
                    raise _field_error("Resources", (kind, name), f"{where}: {err}", value) from err
                if amount < 0:
                    raise _field_error(
                        "Resources", (kind, name), f"{where} must not be negative", value
                    )
                if not _overcommit_allowed(name) and "/" in name and amount != int(amount):
                    raise _field_error(
                        "Resources",
                        (kind, name),
                        f"{where} must be a whole number: extended resources are counted",
                        value,
                    )
                parsed[kind][name] = amount
        limits, requests = parsed["limits"], parsed["requests"]
        for name, requested in requests.items():
            if not _overcommit_allowed(name) and limits.get(name) != requested:
                raise ValueError(
                    f"training.resources.requests.{name} must equal"
                    f" training.resources.limits.{name}: {name} cannot be overcommitted"
                )
            if name in limits and requested > limits[name]:
                raise ValueError(
                    f"training.resources.requests.{name} ({self.requests[name]}) exceeds"
                    f" the limit ({self.limits[name]})"
                )
        return self


class TrainingSpec(_SpecModel):
    image: str = Field(min_length=1, max_length=1024, pattern=r"^\S+$")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    estimator: Estimator
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    warm_start: bool = False
    max_ensemble_size: int | None = Field(default=None, ge=1, le=100_000)
    """With warm start: the most trees (forests) or stages (boosting) a model may have."""
    resources: Resources = Resources()
    active_deadline_seconds: int = Field(default=3600, ge=60, le=86_400)
    backoff_limit: int = Field(default=1, ge=0, le=10)
    service_account_name: str | None = Field(
        default=None, min_length=1, max_length=253, pattern=_DNS_SUBDOMAIN
    )
    holdout_fraction: Fraction = Decimal("0.2")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not Decimal(0) < self.holdout_fraction <= Decimal("0.5"):
            raise ValueError("training.holdoutFraction must be greater than 0 and at most 0.5")
        if self.warm_start and not self.estimator.class_.supports_warm_start:
            raise ValueError(f"training.warmStart is not supported by {self.estimator.class_}")
        if self.max_ensemble_size is not None and not self.warm_start:
            raise ValueError("training.maxEnsembleSize only applies with training.warmStart")
        return self


class PreprocessSpec(_SpecModel):
    """A step between the raw batches and training (freshet_contract.preprocess)."""

    image: str = Field(min_length=1, max_length=1024, pattern=r"^\S+$")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    command: list[Annotated[str, Field(min_length=1, max_length=4096)]] = Field(
        min_length=1, max_length=64
    )
    args: list[Annotated[str, Field(max_length=4096)]] = Field(default_factory=list, max_length=256)
    active_deadline_seconds: int = Field(default=3600, ge=60, le=86_400)
    resources: Resources = Resources()


class ScoringSpec(_SpecModel):
    """Batch predictions with the serving model (freshet_contract.scoring)."""

    prefix: str = Field(min_length=1, max_length=512)
    output_prefix: str = Field(min_length=1, max_length=512)
    id_columns: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=list, max_length=32
    )
    passthrough_columns: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=list, max_length=256
    )
    schedule: str | None = Field(default=None, max_length=128)
    """Score what has arrived at these times; None: as soon as it arrives."""
    rescore_on_promotion: bool = True
    shards: int = Field(default=1, ge=1, le=32)
    active_deadline_seconds: int = Field(default=3600, ge=60, le=86_400)
    resources: Resources = Resources()

    @field_validator("schedule")
    @classmethod
    def _schedule_is_cron(cls, schedule: str | None) -> str | None:
        return _check_schedule("scoring.schedule", schedule)

    @model_validator(mode="after")
    def _folders_apart(self) -> Self:
        _check_folder("scoring.prefix", self.prefix)
        _check_folder("scoring.outputPrefix", self.output_prefix)
        if self.output_prefix.startswith(self.prefix) or self.prefix.startswith(self.output_prefix):
            raise ValueError(
                "scoring.prefix and scoring.outputPrefix must not contain each other:"
                " predictions would be scored again as inputs"
            )
        return self


class BaselineFrom(_SpecModel):
    """Another policy in the namespace whose serving model stands in for this one's
    until this one has its own: the first candidate must beat it on this policy's
    holdout (gate.maxRegression applies), and with training.warmStart starts from it.
    Both policies must use the same bucket."""

    policy_ref: ObjectRef


class GateSpec(_SpecModel):
    metric: Metric = Metric.ACCURACY
    min_value: SignedDecimal | None = None
    """The worst acceptable value: a floor for higher-is-better metrics, a ceiling otherwise."""
    max_regression: NonNegativeDecimal = Decimal(0)

    @model_validator(mode="after")
    def _thresholds_reachable(self) -> Self:
        one = Decimal(1)
        if self.min_value is not None:
            if self.metric.bounded_by_one and not Decimal(0) <= self.min_value <= one:
                raise ValueError(f"gate.minValue must be between 0 and 1 for {self.metric}")
            if self.metric is Metric.R2 and self.min_value > one:
                raise ValueError("gate.minValue must be at most 1 for r2")
            if not self.metric.higher_is_better and self.min_value < 0:
                raise ValueError(f"gate.minValue must not be negative for {self.metric}")
        if self.metric.bounded_by_one and self.max_regression > one:
            raise ValueError(f"gate.maxRegression must be at most 1 for {self.metric}")
        return self


class ServingSpec(_SpecModel):
    deployment_ref: ObjectRef
    container: str | None = Field(default=None, min_length=1, max_length=63, pattern=_DNS_LABEL)
    """None means the Deployment's first container."""
    pinned_version: str | None = Field(default=None, pattern=r"^v[1-9][0-9]*$")
    """Serve exactly this version; training, promotions and automatic rollbacks pause."""


class MonitoringSource(StrEnum):
    PREQUENTIAL = "Prequential"
    PROMETHEUS = "Prometheus"
    MODEL_SERVER = "ModelServer"


class PrometheusCheck(_SpecModel):
    url: str = Field(min_length=1, max_length=2048, pattern=r"^https?://\S+$")
    query: str = Field(min_length=1, max_length=4096)
    min_value: SignedDecimal | None = None
    max_value: SignedDecimal | None = None

    @model_validator(mode="after")
    def _has_a_bound(self) -> Self:
        if self.min_value is None and self.max_value is None:
            raise ValueError("monitoring.prometheus needs minValue, maxValue or both")
        _check_range("monitoring.prometheus", self.min_value, self.max_value)
        return self


def _check_range(where: str, low: Decimal | None, high: Decimal | None) -> None:
    if low is not None and high is not None and low > high:
        raise _field_error(
            "Range",
            ("minValue",),
            f"{where}.minValue ({low}) must not exceed {where}.maxValue ({high}):"
            " no value could pass",
            str(low),
        )


_METRIC_NAME = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"
_LABEL_NAME = r"^[a-zA-Z_][a-zA-Z0-9_]*$"


class SeriesSelector(_SpecModel):
    """Samples of one metric, summed over the series whose labels match."""

    metric: str = Field(min_length=1, max_length=256, pattern=_METRIC_NAME)
    labels: dict[Annotated[str, Field(pattern=_LABEL_NAME)], str] = Field(default_factory=dict)
    """Exact label values; "$version" stands for the serving version."""


class ModelServerCheck(_SpecModel):
    """The serving pods' own /metrics, scraped by the operator every interval."""

    port: int | str | None = None
    """The container port (number or name); None: the container's first port."""
    path: str = Field(default="/metrics", min_length=1, max_length=1024, pattern=r"^/\S*$")
    numerator: SeriesSelector
    denominator: SeriesSelector | None = None
    min_count: int = Field(default=20, ge=1)
    min_value: SignedDecimal | None = None
    max_value: SignedDecimal | None = None

    @model_validator(mode="after")
    def _has_a_bound(self) -> Self:
        if self.min_value is None and self.max_value is None:
            raise ValueError("monitoring.modelServer needs minValue, maxValue or both")
        _check_range("monitoring.modelServer", self.min_value, self.max_value)
        if isinstance(self.port, int) and not 1 <= self.port <= 65535:
            raise ValueError("monitoring.modelServer.port must be between 1 and 65535")
        if isinstance(self.port, str) and not _is_port_name(self.port):
            raise ValueError(
                "monitoring.modelServer.port must be a port number or a container port name"
                " (at most 15 lowercase letters, digits and '-', with a letter)"
            )
        return self


def _is_port_name(name: str) -> bool:
    """An IANA service name, as a container port's name must be."""
    return (
        re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) is not None
        and len(name) <= 15
        and re.search("[a-z]", name) is not None
        and "--" not in name
    )


class MonitoringSpec(_SpecModel):
    source: MonitoringSource = MonitoringSource.PREQUENTIAL
    metric: Metric | None = None
    """Prequential: the metric watched; None means the gate's metric."""
    max_regression: NonNegativeDecimal = Decimal("0.05")
    min_value: SignedDecimal | None = None
    min_rows: int = Field(default=50, ge=1)
    interval_seconds: int = Field(default=60, ge=1, le=86_400)
    bake_seconds: int = Field(default=0, ge=0, le=604_800)
    failure_limit: int = Field(default=1, ge=0, le=100)
    consecutive_error_limit: int = Field(default=4, ge=0, le=100)
    max_model_age_seconds: int | None = Field(default=None, ge=10, le=31_536_000)
    prometheus: PrometheusCheck | None = None
    model_server: ModelServerCheck | None = None

    @model_validator(mode="after")
    def _check_iff_source(self) -> Self:
        if (self.source is MonitoringSource.PROMETHEUS) != (self.prometheus is not None):
            raise ValueError(
                "monitoring.prometheus is required when, and only allowed when,"
                " monitoring.source is Prometheus"
            )
        if (self.source is MonitoringSource.MODEL_SERVER) != (self.model_server is not None):
            raise ValueError(
                "monitoring.modelServer is required when, and only allowed when,"
                " monitoring.source is ModelServer"
            )
        return self

    @property
    def periodic(self) -> bool:
        """Measured every intervalSeconds (not once per run, as prequential is)."""
        return self.source is not MonitoringSource.PREQUENTIAL


class RollbackSpec(_SpecModel):
    automatic: bool = True


class PolicySpec(_SpecModel):
    mode: Mode
    data: DataSpec
    trigger: TriggerSpec | None = None
    validation: ValidationSpec = ValidationSpec()
    preprocess: PreprocessSpec | None = None
    training: TrainingSpec
    gate: GateSpec = GateSpec()
    serving: ServingSpec | None = None
    scoring: ScoringSpec | None = None
    baseline_from: BaselineFrom | None = None
    monitoring: MonitoringSpec | None = None
    rollback: RollbackSpec = RollbackSpec()

    @model_validator(mode="after")
    def _trigger_only_when_dynamic(self) -> Self:
        if self.trigger is not None and self.mode is not Mode.DYNAMIC:
            raise ValueError("spec.trigger is only allowed when spec.mode is Dynamic")
        if self.monitoring is not None and self.monitoring.model_server and self.serving is None:
            raise ValueError("monitoring.source ModelServer needs spec.serving")
        labels, allowed = self.data.labels, self.validation.label_values
        negative = labels.negative_value if labels is not None else None
        if negative is not None and allowed is not None and negative not in allowed:
            raise ValueError("data.labels.negativeValue must be one of validation.labelValues")
        self._metrics_suit_the_estimator()
        self._scoring_apart_from_the_data()
        return self

    def _scoring_apart_from_the_data(self) -> None:
        if self.scoring is None:
            return
        data = [self.data.prefix] + ([self.data.labels.prefix] if self.data.labels else [])
        for theirs in data:
            for mine in (self.scoring.prefix, self.scoring.output_prefix):
                if mine.startswith(theirs) or theirs.startswith(mine):
                    raise ValueError(
                        f"scoring prefixes and data prefixes must not contain each other:"
                        f" {mine!r} and {theirs!r} (inputs to score are not training data)"
                    )

    def _metrics_suit_the_estimator(self) -> None:
        """A metric the trainer never computes for this estimator can never gate or monitor.

        The CRD has the same rule for the classifier/regressor split; the
        probabilities log_loss needs depend on params, which only this model reads.
        """
        estimator = self.training.estimator
        named: list[tuple[tuple[str, ...], Metric]] = [(("gate", "metric"), self.gate.metric)]
        if self.monitoring is not None and self.monitoring.metric is not None:
            named.append((("monitoring", "metric"), self.monitoring.metric))
        short = estimator.class_.rsplit(".", 1)[-1]
        for loc, metric in named:
            where = ".".join(loc)
            if estimator.kind is not metric_kind(metric):
                suitable = ", ".join(m.value for m in Metric if metric_kind(m) is estimator.kind)
                raise _field_error(
                    "PolicySpec",
                    loc,
                    f"{where} {metric} is a {metric_kind(metric)} metric, but {short} is a"
                    f" {estimator.kind}: use one of {suitable}",
                    metric.value,
                )
            if metric is Metric.LOG_LOSS and not estimator.has_probabilities:
                raise _field_error(
                    "PolicySpec",
                    loc,
                    f"{where} log_loss needs predicted probabilities, which {short} with"
                    f" loss {estimator.params.get('loss', 'hinge')!r} does not give: set"
                    " training.estimator.params.loss to log_loss or modified_huber, or"
                    " choose another metric",
                    metric.value,
                )

    @property
    def effective_trigger(self) -> TriggerSpec | None:
        """The trigger a Dynamic policy runs with (defaults when omitted); None when Static."""
        if self.mode is Mode.STATIC:
            return None
        return self.trigger or TriggerSpec()

    @property
    def backfill(self) -> BackfillSpec | None:
        """How a Dynamic policy with late labels backfills; None when it does not."""
        trigger = self.effective_trigger
        if trigger is None or self.data.labels is None:
            return None
        return trigger.backfill

    @property
    def window_selection(self) -> WindowSelection:
        """How much of the window a run trains on: Dynamic policies follow change."""
        chosen = self.data.window.selection if self.data.window else None
        if chosen is not None:
            return chosen
        return WindowSelection.ADAPTIVE if self.mode is Mode.DYNAMIC else WindowSelection.FULL

    @property
    def drift_action(self) -> DriftAction:
        """What a drifted batch gets: Dynamic policies train on it, Static ones note it."""
        chosen = self.validation.drift.action
        if chosen is not None:
            return chosen
        return DriftAction.RETRAIN if self.mode is Mode.DYNAMIC else DriftAction.IGNORE

    @property
    def max_model_age(self) -> timedelta | None:
        """monitoring.maxModelAgeSeconds as a duration; None when age is not checked."""
        seconds = self.monitoring.max_model_age_seconds if self.monitoring else None
        return None if seconds is None else timedelta(seconds=seconds)

    def training_hash(self) -> str:
        """Fingerprint of everything that changes the model a run produces.

        A Static policy retrains when this changes. It covers the data
        selection, the validation rules, and the training code and parameters
        (image, estimator, seed, warm start, holdout) and the preprocessing step
        (image, command, args); it leaves out how the Job
        runs (resources, deadlines, service account), the gate (which only
        decides what to do with a candidate), the trigger and serving.
        """
        training = self.training.model_dump(
            mode="json", include={"image", "estimator", "seed", "warm_start", "holdout_fraction"}
        )
        if self.training.max_ensemble_size is not None:  # absent: the hash of earlier releases
            training["maxEnsembleSize"] = self.training.max_ensemble_size
        relevant = {
            "data": _without_unset(self.data.model_dump(mode="json"), _NEW_DATA_FIELDS),
            "validation": _without_unset(
                self.validation.model_dump(mode="json"), _NEW_VALIDATION_FIELDS
            ),
            "training": training,
        }
        if self.preprocess is not None:  # absent: the hash of earlier releases
            relevant["preprocess"] = self.preprocess.model_dump(
                mode="json", include={"image", "command", "args"}
            )
        canonical = json.dumps(relevant, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


_NEW_DATA_FIELDS: Final[dict[str, Any]] = {"exclude": [], "window.selection": None}
_NEW_VALIDATION_FIELDS: Final[dict[str, Any]] = {
    "drift.action": None,
    "labelContradiction": LabelContradictionSpec().model_dump(mode="json"),
}
"""Fields added after the first release, with their unset values: left out of the
training hash when unset, so that upgrading the operator retrains no Static policy."""


def _without_unset(dumped: dict[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    for path, unset in fields.items():
        *parents, leaf = path.split(".")
        node: Any = dumped
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and node.get(leaf, unset) == unset:
            node.pop(leaf, None)
    return dumped


def parse_policy_spec(body: Mapping[str, Any]) -> PolicySpec:
    """Parse a TrainingPolicy object (as kopf hands it) into a ``PolicySpec``.

    Raises ``pydantic.ValidationError`` naming every offending field, for the
    caller to report on the policy rather than act on a spec it cannot trust.
    """
    return PolicySpec.model_validate(body.get("spec") or {})
