"""The operator's side of the run contract (contract/README.md, ``freshet.dev/run/v1``).

``RunSpec`` is what the operator writes before a Job exists (the run intent);
``RunResult`` is what the trainer writes as its last step. Both are tested
against the example documents in contract/, as the trainer's models are, so a
field renamed on one side fails the other side's tests.

Unknown fields are ignored rather than refused: adding a field is not a
breaking change of the contract, and an operator must keep reading results
from a trainer one minor release ahead.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from freshet.batches import Batch
from freshet.spec import DataFormat, EstimatorClass, Metric, PolicySpec
from freshet.store_layout import StateLayout

RUN_API_VERSION: Final = "freshet.dev/run/v1"


class _ContractModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="ignore",
        frozen=True,
    )


class PolicyRef(_ContractModel):
    namespace: str
    name: str
    uid: str
    generation: int


class StoreLocation(_ContractModel):
    bucket: str
    root: str
    """The policy's state root, with the trailing slash."""


class BatchRef(_ContractModel):
    key: str
    etag: str
    size: int


class RunData(_ContractModel):
    format: DataFormat
    label: str
    batches: list[BatchRef]
    """Everything the model trains on, oldest first."""
    new_batches: list[str]
    """Keys of the batches no earlier run used."""


class RunEstimator(_ContractModel):
    class_: EstimatorClass = Field(alias="class")
    params: dict[str, Any] = Field(default_factory=dict)


class RunTraining(_ContractModel):
    estimator: RunEstimator
    seed: int
    warm_start: bool


class Evaluation(_ContractModel):
    metric: Metric
    holdout_fraction: float


class RunValidation(_ContractModel):
    """The quarantine rules the trainer applies to each batch before training."""

    max_null_fraction: float = 0.05


class ModelRef(_ContractModel):
    """A published model: the serving one a run compares against."""

    version: str
    model_key: str
    sha256: str


class RunOutput(_ContractModel):
    version: str
    model_prefix: str
    result_key: str


class RunSpec(_ContractModel):
    api_version: Literal["freshet.dev/run/v1"] = "freshet.dev/run/v1"
    kind: Literal["RunSpec"] = "RunSpec"
    run_id: str
    policy: PolicyRef
    store: StoreLocation
    data: RunData
    training: RunTraining
    evaluation: Evaluation
    validation: RunValidation = RunValidation()
    baseline: ModelRef | None
    """None for a policy's first model."""
    output: RunOutput


class ResultModel(_ContractModel):
    version: str
    model_key: str
    sha256: str
    manifest_key: str


class RunMetrics(_ContractModel):
    candidate: dict[str, float] = Field(default_factory=dict)
    baseline: dict[str, float] | None = None
    """The serving model on the same holdout; None when there was no baseline."""


class Holdout(_ContractModel):
    rows: int
    sha256: str


class RowCounts(_ContractModel):
    train: int
    holdout: int


class Check(_ContractModel):
    """One validation check on a batch: what it measured against which limit."""

    name: str
    passed: bool
    value: float | None = None
    limit: float | None = None
    message: str = ""


class QuarantinedBatch(_ContractModel):
    key: str
    etag: str
    reason: str
    checks: list[Check] = Field(default_factory=list)


class RunResult(_ContractModel):
    api_version: Literal["freshet.dev/run/v1"] = "freshet.dev/run/v1"
    kind: Literal["RunResult"] = "RunResult"
    run_id: str
    status: Literal["Succeeded", "Failed"]
    reason: str = ""
    message: str = ""
    model: ResultModel | None = None
    metrics: RunMetrics = RunMetrics()
    holdout: Holdout | None = None
    rows: RowCounts | None = None
    quarantined: list[QuarantinedBatch] = Field(default_factory=list)

    @model_validator(mode="after")
    def _outcome_is_complete(self) -> Self:
        # The gate and the status need a model to point at on success, and a
        # reason to show on failure; a result without them is a trainer bug.
        if self.status == "Succeeded" and self.model is None:
            raise ValueError("a Succeeded result must name its model")
        if self.status == "Failed" and not self.reason:
            raise ValueError("a Failed result must give a reason")
        return self


def build_run_spec(
    *,
    policy: PolicyRef,
    spec: PolicySpec,
    bucket: str,
    run_id: str,
    version: str,
    window: Sequence[Batch],
    new_batches: Collection[Batch],
    baseline: ModelRef | None,
) -> RunSpec:
    """The run intent for training ``window`` (from ``decisions.runs.select_window``).

    ``new_batches`` are the batches the trigger decided on; only those still in
    the window are listed as new (a window smaller than a burst drops the
    oldest new batches, which is what a sliding window asks for).
    """
    layout = StateLayout.for_policy(policy.namespace, policy.name)
    new_keys = {batch.key for batch in new_batches}
    training = spec.training
    return RunSpec(
        run_id=run_id,
        policy=policy,
        store=StoreLocation(bucket=bucket, root=layout.root),
        data=RunData(
            format=spec.data.format,
            label=spec.data.label,
            batches=[BatchRef(key=b.key, etag=b.etag, size=b.size) for b in window],
            new_batches=[b.key for b in window if b.key in new_keys],
        ),
        training=RunTraining(
            # By alias: `class` is a keyword in Python, so the field is `class_`.
            estimator=RunEstimator.model_validate(
                {"class": training.estimator.class_, "params": training.estimator.params}
            ),
            seed=training.seed,
            warm_start=training.warm_start,
        ),
        evaluation=Evaluation(
            metric=spec.gate.metric, holdout_fraction=float(training.holdout_fraction)
        ),
        validation=RunValidation(max_null_fraction=float(spec.validation.max_null_fraction)),
        baseline=baseline,
        output=RunOutput(
            version=version,
            model_prefix=layout.model_prefix(version),
            result_key=layout.run_result_key(run_id),
        ),
    )
