# Frozen copy of the trainer-side run contract as it was just before
# training.maxEnsembleSize (commit acc876e) was added: a trainer image built then
# refuses any unknown field, `"maxEnsembleSize": null` included. For the
# version-skew tests (tests/unit/test_contract_skew.py).
#
# Source: `git show acc876e^:trainer-image/freshet_trainer/contract.py`, unchanged.
# DO NOT EDIT to follow the current code.
# ruff: noqa
"""The operator ⇄ trainer run contract (`freshet.dev/run/v1`), trainer side.

The operator writes a RunSpec before it creates the Job; the trainer writes a
RunResult as its last step. Both are parsed strictly (unknown fields and wrong
types are errors, not guesses) so a field renamed on one side fails loudly on
the other instead of being silently ignored. `contract/README.md` at the
repository root is the human description of these models.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, JsonValue
from pydantic.alias_generators import to_camel

API_VERSION: Final = "freshet.dev/run/v1"

DataFormat = Literal["csv", "parquet", "jsonl"]
MetricName = Literal["accuracy", "roc_auc", "f1", "log_loss", "rmse", "mae", "r2"]
RunStatus = Literal["Succeeded", "Failed"]
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
NonEmpty = Annotated[str, Field(min_length=1)]
Prefix = Annotated[str, Field(pattern=r"^.+/$")]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
SchemaMode = Literal["Inferred", "Strict"]
ColumnType = Literal["number", "integer", "string", "boolean"]
DriftMethod = Literal["Auto", "PSI", "KS", "JS", "Disabled"]
Correction = Literal["BenjaminiHochberg", "Bonferroni"]
DelayedFeedback = Literal["None", "FakeNegative"]
Count = Annotated[int, Field(ge=0)]


def _parse_time(value: object) -> object:
    """ISO 8601 text becomes a datetime; anything else is left for the strict check."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError as error:
            raise ValueError(f"not an ISO 8601 time: {value!r}") from error
    return value


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcTime = Annotated[datetime, BeforeValidator(_parse_time), AfterValidator(_as_utc)]
"""An ISO 8601 time on the wire (`2026-11-27T06:00:00Z`); naive means UTC. Numbers
are refused: the contract is strict, and epoch seconds are not a time here."""


class _Document(BaseModel):
    """Strict, immutable, camelCase on the wire and snake_case in Python."""

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
    )

    def to_json_bytes(self) -> bytes:
        """The document as it goes on the wire (camelCase keys, indented for humans)."""
        return self.model_dump_json(by_alias=True, indent=2).encode()


class PolicyRef(_Document):
    namespace: NonEmpty
    name: NonEmpty
    uid: NonEmpty
    generation: int


class StoreRef(_Document):
    bucket: NonEmpty
    root: Prefix


class BatchRef(_Document):
    """One input file, pinned by ETag so the run trains on exactly what was chosen."""

    key: NonEmpty
    etag: NonEmpty
    size: Annotated[int, Field(ge=0)]


class LabelFileRef(_Document):
    """One label file of a batch, pinned like the batch itself."""

    batch: NonEmpty
    """The key of the feature batch whose rows this file labels."""
    key: NonEmpty
    etag: NonEmpty
    size: Annotated[int, Field(ge=0)]


class LabelsSpec(_Document):
    """Late labels: label files joined to the batches' rows by id, matured by event time.

    See `freshet_trainer/late_labels.py` for what the trainer makes of them.
    """

    id_column: NonEmpty
    event_time_column: NonEmpty
    delay_seconds: Annotated[int, Field(ge=0)]
    negative_value: str | None = None
    delayed_feedback: DelayedFeedback = "None"
    watermark_floor: UtcTime | None = None
    """The watermark never goes below this (the newest event time an earlier run saw)."""
    previous_cutoff: UtcTime | None = None
    """Rows matured by this cutoff were scored by an earlier run's monitoring."""
    files: list[LabelFileRef] = Field(default_factory=list)


class DataSpec(_Document):
    format: DataFormat
    label: NonEmpty
    batches: list[BatchRef]
    new_batches: list[str]
    labels: LabelsSpec | None = None
    """None: the label is a column of every batch."""


class EstimatorSpec(_Document):
    class_name: NonEmpty = Field(alias="class")
    params: dict[str, JsonValue] = Field(default_factory=dict)


class TrainingSpec(_Document):
    estimator: EstimatorSpec
    seed: int
    warm_start: bool = False


class EvaluationSpec(_Document):
    metric: MetricName
    holdout_fraction: Annotated[float, Field(gt=0.0, lt=1.0)]


class ColumnSchema(_Document):
    """One declared column of a Strict schema."""

    name: NonEmpty
    type: ColumnType
    nullable: bool = True


class DriftSpec(_Document):
    """How each column's distribution is compared with the reference window.

    A column drifts when its distance from the reference exceeds `threshold`
    (the change is material) AND the test of the same data is significant at
    `p_value` after correcting for the number of columns tested (the change is
    not sampling noise). `threshold` None means the method's own default.
    """

    method: DriftMethod = "Auto"
    threshold: Annotated[float, Field(ge=0.0)] | None = None
    p_value: Fraction = 0.01
    correction: Correction = "BenjaminiHochberg"


class ValidationSpec(_Document):
    """Per-batch quarantine rules; optional in the spec, every field has a default.

    The defaults are the operator's (`operator/freshet/spec.py`); they are
    repeated here so a spec written by an older operator, which sends only
    `maxNullFraction`, still validates batches the same way.
    """

    schema_mode: SchemaMode = Field(default="Inferred", alias="schema")
    columns: list[ColumnSchema] = Field(default_factory=list)
    max_null_fraction: Fraction = 0.05
    reference_tolerance: Fraction = 0.05
    allow_extra_columns: bool = False
    max_duplicate_fraction: Fraction = 0.05
    max_conflicting_label_fraction: Fraction = 0.05
    label_values: list[str] | None = None
    max_label_rate_shift: Fraction = 0.1
    max_out_of_range_fraction: Fraction = 0.01
    drift: DriftSpec = DriftSpec()
    max_batch_bytes: Annotated[int, Field(gt=0)] = 256 * 1024 * 1024
    max_columns: Annotated[int, Field(ge=1)] = 1000


class BaselineRef(_Document):
    """The serving model; its checksum comes from Kubernetes, not from the bucket."""

    version: NonEmpty
    model_key: NonEmpty
    sha256: Sha256Hex


class OutputSpec(_Document):
    version: NonEmpty
    model_prefix: Prefix
    result_key: NonEmpty


class RunSpec(_Document):
    api_version: Literal["freshet.dev/run/v1"]
    kind: Literal["RunSpec"]
    run_id: NonEmpty
    policy: PolicyRef
    store: StoreRef
    data: DataSpec
    training: TrainingSpec
    evaluation: EvaluationSpec
    validation: ValidationSpec = ValidationSpec()
    baseline: BaselineRef | None
    previous: BaselineRef | None = None
    """The previous good model: scored with the serving one on the new batches."""
    output: OutputSpec


class ModelRef(_Document):
    version: NonEmpty
    model_key: NonEmpty
    sha256: Sha256Hex
    manifest_key: NonEmpty


class Metrics(_Document):
    """Holdout metrics of the candidate, the serving model and the dummy baseline.

    All three are scored on the same holdout rows. `dummy` (majority class or
    mean target, fitted on the run's training rows) is what the candidate must
    beat; it is None only in results of trainers that predate it.
    """

    candidate: dict[str, float] = Field(default_factory=dict)
    baseline: dict[str, float] | None = None
    dummy: dict[str, float] | None = None


class HoldoutSummary(_Document):
    rows: Annotated[int, Field(ge=0)]
    sha256: Sha256Hex


class RowCounts(_Document):
    train: Annotated[int, Field(ge=0)]
    holdout: Annotated[int, Field(ge=0)]


class ColumnFigures(_Document):
    """What one column-wise check measured on one column."""

    column: str
    passed: bool
    value: float | None = None
    limit: float | None = None
    reference: float | None = None
    p_value: float | None = None
    method: str | None = None


class Check(_Document):
    """One validation check on a batch, with the figure it measured and its limit.

    `code` is the CamelCase reason the batch is quarantined with when this
    check fails. A check that could not run (no reference window yet, or an
    earlier check made it meaningless) is `skipped`, and counts as passed: it
    never quarantines. Column-wise checks name their worst column and list
    every column's figures in `columns`.
    """

    name: NonEmpty
    code: str = ""
    passed: bool
    skipped: bool = False
    value: float | None = None
    limit: float | None = None
    column: str | None = None
    message: str = ""
    columns: list[ColumnFigures] = Field(default_factory=list)


class QuarantinedBatch(_Document):
    """A refused batch and its reason document (written next to it in quarantine/)."""

    key: NonEmpty
    etag: NonEmpty
    reason: NonEmpty
    message: str = ""
    checks: list[Check] = Field(default_factory=list)


class BatchValidation(_Document):
    """Every check's figures for one batch of the run, accepted or not."""

    key: NonEmpty
    etag: NonEmpty
    new: bool
    status: Literal["Accepted", "Quarantined"]
    reason: str = ""
    rows: Annotated[int, Field(ge=0)] | None = None
    checks: list[Check] = Field(default_factory=list)


class ValidationReference(_Document):
    """The window batches (not new in this run) that new batches were compared with."""

    batches: list[str] = Field(default_factory=list)
    rows: Annotated[int, Field(ge=0)] = 0


class ValidationReport(_Document):
    reference: ValidationReference = ValidationReference()
    batches: list[BatchValidation] = Field(default_factory=list)


class LiveEvaluation(_Document):
    """Prequential monitoring: the serving and the previous good model scored on the
    run's new batches (with late labels: on the rows matured since the previous
    cutoff), before the candidate is trained on them (test, then train)."""

    rows: int
    serving: dict[str, float] = Field(default_factory=dict)
    previous: dict[str, float] | None = None


class LabelRowCounts(_Document):
    """The run's rows by maturity and where their label came from (accepted batches)."""

    matured: Count = 0
    immature: Count = 0
    labeled: Count = 0
    """Matured rows labeled by a label file."""
    defaulted: Count = 0
    """Matured rows no label file named, given `negativeValue`."""
    fake_negatives: Count = 0
    """Immature rows given `negativeValue` (delayedFeedback FakeNegative)."""
    unmatched_labels: Count = 0
    """Label rows whose id matches no row of their batch."""


class BatchLabels(_Document):
    key: NonEmpty
    matured: Count = 0
    immature: Count = 0
    labeled: Count = 0
    event_time_min: UtcTime | None = None
    event_time_max: UtcTime | None = None


class LabelsSummary(_Document):
    """What the run made of late labels: the watermark, the cutoff and row counts.

    `watermark` and `cutoff` are None when no row had an event time (and no floor).
    """

    watermark: UtcTime | None = None
    cutoff: UtcTime | None = None
    rows: LabelRowCounts = LabelRowCounts()
    batches: list[BatchLabels] = Field(default_factory=list)


class RunResult(_Document):
    api_version: Literal["freshet.dev/run/v1"] = "freshet.dev/run/v1"
    kind: Literal["RunResult"] = "RunResult"
    run_id: NonEmpty
    status: RunStatus
    reason: str = ""
    message: str = ""
    model: ModelRef | None = None
    metrics: Metrics = Metrics()
    holdout: HoldoutSummary | None = None
    rows: RowCounts | None = None
    quarantined: list[QuarantinedBatch] = Field(default_factory=list)
    validation: ValidationReport | None = None
    monitoring: LiveEvaluation | None = None
    labels: LabelsSummary | None = None
    """Late labels (present only when the spec had `data.labels`)."""
