"""The operator ⇄ trainer run contract (`freshet.dev/run/v1`), trainer side.

The operator writes a RunSpec before it creates the Job; the trainer writes a
RunResult as its last step. Both are parsed strictly (unknown fields and wrong
types are errors, not guesses) so a field renamed on one side fails loudly on
the other instead of being silently ignored. `contract/README.md` at the
repository root is the human description of these models.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue
from pydantic.alias_generators import to_camel

API_VERSION: Final = "freshet.dev/run/v1"

DataFormat = Literal["csv", "parquet", "jsonl"]
MetricName = Literal["accuracy", "roc_auc", "f1", "log_loss", "rmse", "mae", "r2"]
RunStatus = Literal["Succeeded", "Failed"]
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
NonEmpty = Annotated[str, Field(min_length=1)]
Prefix = Annotated[str, Field(pattern=r"^.+/$")]


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


class DataSpec(_Document):
    format: DataFormat
    label: NonEmpty
    batches: list[BatchRef]
    new_batches: list[str]


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


class ValidationSpec(_Document):
    """Per-batch quarantine limits; optional in the spec, defaults apply when absent."""

    max_null_fraction: Annotated[float, Field(ge=0.0, le=1.0)] = 0.05


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
    output: OutputSpec


class ModelRef(_Document):
    version: NonEmpty
    model_key: NonEmpty
    sha256: Sha256Hex
    manifest_key: NonEmpty


class Metrics(_Document):
    candidate: dict[str, float] = Field(default_factory=dict)
    baseline: dict[str, float] | None = None


class HoldoutSummary(_Document):
    rows: Annotated[int, Field(ge=0)]
    sha256: Sha256Hex


class RowCounts(_Document):
    train: Annotated[int, Field(ge=0)]
    holdout: Annotated[int, Field(ge=0)]


class Check(_Document):
    """One validation check on a batch, with the figure it measured and its limit."""

    name: NonEmpty
    passed: bool
    value: float | None = None
    limit: float | None = None
    message: str = ""


class QuarantinedBatch(_Document):
    key: NonEmpty
    etag: NonEmpty
    reason: NonEmpty
    checks: list[Check] = Field(default_factory=list)


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
