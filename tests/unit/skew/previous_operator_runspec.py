# Frozen copy of the previous release's operator-side run contract (models and
# build_run_spec), for the version-skew tests (tests/unit/test_contract_skew.py).
#
# Source: `git show 3d6886a:operator/freshet/runspec.py`, with its imports made
# standalone: the enums it took from freshet/spec.py and the StateLayout of
# freshet/store_layout.py (both at 3d6886a) are copied in below, and the policy
# types it reads in build_run_spec are only annotations. DO NOT EDIT to follow
# the current code: this file is what an operator of that release runs.
# ruff: noqa
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
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from freshet.batches import Batch
    from freshet.spec import LabelsSpec, PolicySpec, ValidationSpec


# From 3d6886a:operator/freshet/spec.py
class DataFormat(StrEnum):
    CSV = "csv"
    PARQUET = "parquet"
    JSONL = "jsonl"


class Metric(StrEnum):
    ACCURACY = "accuracy"
    ROC_AUC = "roc_auc"
    F1 = "f1"
    LOG_LOSS = "log_loss"
    RMSE = "rmse"
    MAE = "mae"
    R2 = "r2"


class WindowSelection(StrEnum):
    ADAPTIVE = "Adaptive"
    FULL = "Full"


class DelayedFeedback(StrEnum):
    NONE = "None"
    FAKE_NEGATIVE = "FakeNegative"


class SchemaMode(StrEnum):
    INFERRED = "Inferred"
    STRICT = "Strict"


class ColumnType(StrEnum):
    NUMBER = "number"
    INTEGER = "integer"
    STRING = "string"
    BOOLEAN = "boolean"


class DriftMethod(StrEnum):
    AUTO = "Auto"
    PSI = "PSI"
    KS = "KS"
    JS = "JS"
    DISABLED = "Disabled"


class Correction(StrEnum):
    BENJAMINI_HOCHBERG = "BenjaminiHochberg"
    BONFERRONI = "Bonferroni"


class DriftAction(StrEnum):
    """What a batch whose distribution changed (feature drift, label-rate shift) gets."""

    RETRAIN = "Retrain"
    """Accepted and trained on; reported; what counts as normal moves to it."""
    HOLD = "Hold"
    """Quarantined until released, as a data fault would be."""
    IGNORE = "Ignore"
    """Accepted and trained on; only recorded in the run's result."""


class ContradictionAction(StrEnum):
    HOLD = "Hold"
    ALLOW = "Allow"


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


# From 3d6886a:operator/freshet/store_layout.py
@dataclass(frozen=True, slots=True)
class StateLayout:
    """Object keys of one policy's runs, models, ledger and quarantine."""

    root: str
    """``freshet/<namespace>/<name>/``, with the trailing slash."""

    @classmethod
    def for_policy(cls, namespace: str, name: str) -> StateLayout:
        return cls(root=f"freshet/{namespace}/{name}/")

    def run_prefix(self, run_id: str) -> str:
        return f"{self.root}runs/{run_id}/"

    def run_spec_key(self, run_id: str) -> str:
        """The run intent, written before the run's Job is created."""
        return f"{self.run_prefix(run_id)}spec.json"

    def run_result_key(self, run_id: str) -> str:
        """Written by the trainer as its last step."""
        return f"{self.run_prefix(run_id)}result.json"

    def model_prefix(self, version: str) -> str:
        return f"{self.root}models/{version}/"

    @property
    def ledger_key(self) -> str:
        """The operator's durable record of consumed batches, models and runs."""
        return f"{self.root}ledger.json"

    def quarantine_key(self, batch_key: str) -> str:
        """Where a refused batch is moved, keeping its original key for release."""
        return f"{self.root}quarantine/{batch_key}"

    def quarantine_reason_key(self, batch_key: str) -> str:
        return f"{self.quarantine_key(batch_key)}.reason.json"


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


class LabelFile(_ContractModel):
    batch: str
    """The key of the batch whose rows this file labels."""
    key: str
    etag: str
    size: int


class RunLabels(_ContractModel):
    """Late labels: label files joined to the batches by id, matured by event time."""

    id_column: str
    event_time_column: str
    delay_seconds: int
    negative_value: str | None = None
    delayed_feedback: DelayedFeedback = DelayedFeedback.NONE
    watermark_floor: datetime | None = None
    """The newest event time an earlier run saw: the watermark never goes back."""
    previous_cutoff: datetime | None = None
    """Rows matured by this cutoff were already scored by an earlier run's monitoring."""
    files: list[LabelFile] = Field(default_factory=list)

    @classmethod
    def from_policy(
        cls,
        labels: LabelsSpec,
        files: list[LabelFile],
        *,
        watermark_floor: datetime | None,
        previous_cutoff: datetime | None,
    ) -> RunLabels:
        """``spec.data.labels`` with the run's label files and the ledger's event-time marks."""
        return cls(
            id_column=labels.id_column,
            event_time_column=labels.event_time_column,
            delay_seconds=labels.delay_seconds,
            negative_value=labels.negative_value,
            delayed_feedback=labels.delayed_feedback,
            watermark_floor=watermark_floor,
            previous_cutoff=previous_cutoff,
            files=files,
        )


class RunData(_ContractModel):
    format: DataFormat
    label: str
    batches: list[BatchRef]
    """Everything the model trains on, oldest first."""
    new_batches: list[str]
    """Keys of the batches no earlier run used."""
    labels: RunLabels | None = None
    """None: the label is a column of every batch."""
    exclude: list[str] = Field(default_factory=list)
    """Columns that are not features: dropped before validation, hashing and fitting."""
    max_batches: int | None = None
    """The most batches the model trains on. `batches` may hold more (the newest
    consumed ones beyond it), so that a refused new batch leaves no gap: the
    trainer keeps the newest `maxBatches` that pass validation."""
    selection: WindowSelection = WindowSelection.FULL
    """Adaptive: train on the suffix of the window that best predicts the new batches."""
    reference_from: str | None = None
    """The oldest batch of the current regime (after an accepted change): the
    reference for the distribution checks starts there."""
    released: list[str] = Field(default_factory=list)
    """Batches the user released from quarantine: a distribution change or a label
    contradiction no longer holds them (faults still do)."""
    new_data_required: bool = False
    """The run exists for its new batches: when every one is refused, the trainer
    stops with status Skipped instead of training on unchanged data."""


class RunEstimator(_ContractModel):
    class_: EstimatorClass = Field(alias="class")
    params: dict[str, Any] = Field(default_factory=dict)


class RunTraining(_ContractModel):
    estimator: RunEstimator
    seed: int
    warm_start: bool
    max_ensemble_size: int | None = None


class Evaluation(_ContractModel):
    metric: Metric
    holdout_fraction: float


class RunColumn(_ContractModel):
    name: str
    type: ColumnType
    nullable: bool = True


class RunDrift(_ContractModel):
    method: DriftMethod = DriftMethod.AUTO
    action: DriftAction = DriftAction.HOLD
    """What a drifted batch gets; the operator always sends the policy's effective action."""
    threshold: float | None = None
    """None: the method's own default, chosen by the trainer."""
    p_value: float = 0.01
    correction: Correction = Correction.BENJAMINI_HOCHBERG


class RunLabelContradiction(_ContractModel):
    """Hold a batch on which the serving model does far worse than chance while its
    features look as usual: its labels contradict everything known (a label fault)."""

    action: ContradictionAction = ContradictionAction.HOLD
    margin: float = 0.1


class RunValidation(_ContractModel):
    """The quarantine rules the trainer applies to each batch before training.

    Thresholds travel as JSON numbers: the policy's decimal strings are exact,
    and the trainer compares measured floats against them.
    """

    schema_mode: SchemaMode = Field(default=SchemaMode.INFERRED, alias="schema")
    columns: list[RunColumn] = Field(default_factory=list)
    max_null_fraction: float | None = None
    """None: learned from the reference (its own fraction plus referenceTolerance)."""
    reference_tolerance: float = 0.05
    allow_extra_columns: bool = False
    max_duplicate_fraction: float | None = None
    max_conflicting_label_fraction: float | None = None
    label_values: list[str] | None = None
    max_label_rate_shift: float = 0.1
    max_out_of_range_fraction: float = 0.01
    drift: RunDrift = RunDrift()
    label_contradiction: RunLabelContradiction = RunLabelContradiction()
    max_batch_bytes: int = 256 * 1024 * 1024
    max_columns: int = 1000

    @classmethod
    def from_policy(cls, rules: ValidationSpec, drift_action: DriftAction) -> RunValidation:
        """Every knob of ``spec.validation``, as the trainer reads it, with the
        policy's effective drift action (which depends on its mode)."""
        drift = rules.drift

        def fraction(value: Decimal | None) -> float | None:
            return None if value is None else float(value)

        return cls(
            schema_mode=rules.schema_mode,
            columns=[
                RunColumn(name=c.name, type=c.type, nullable=c.nullable) for c in rules.columns
            ],
            max_null_fraction=fraction(rules.max_null_fraction),
            reference_tolerance=float(rules.reference_tolerance),
            allow_extra_columns=rules.allow_extra_columns,
            max_duplicate_fraction=fraction(rules.max_duplicate_fraction),
            max_conflicting_label_fraction=fraction(rules.max_conflicting_label_fraction),
            label_values=rules.label_values,
            max_label_rate_shift=float(rules.max_label_rate_shift),
            max_out_of_range_fraction=float(rules.max_out_of_range_fraction),
            drift=RunDrift(
                method=drift.method,
                action=drift_action,
                threshold=None if drift.threshold is None else float(drift.threshold),
                p_value=float(drift.p_value),
                correction=drift.correction,
            ),
            label_contradiction=RunLabelContradiction(
                action=rules.label_contradiction.action,
                margin=float(rules.label_contradiction.margin),
            ),
            max_batch_bytes=rules.max_batch_size,
            max_columns=rules.max_columns,
        )


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
    previous: ModelRef | None = None
    """The previous good model, scored with the serving one on the new batches."""
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
    dummy: dict[str, float] | None = None
    """The dummy baseline (majority class / mean target) on the same holdout, which the
    gate requires the candidate to beat; None from a trainer that predates it."""


class Holdout(_ContractModel):
    rows: int
    sha256: str


class RowCounts(_ContractModel):
    train: int
    holdout: int


class ColumnFigures(_ContractModel):
    column: str
    passed: bool
    value: float | None = None
    limit: float | None = None
    reference: float | None = None
    p_value: float | None = None
    method: str | None = None


class Check(_ContractModel):
    """One validation check on a batch: what it measured against which limit.

    ``code`` is the CamelCase reason a failure quarantines with; a ``skipped``
    check (no reference yet) never fails. Every field is mirrored here because
    the operator re-serialises quarantined batches into their reason documents.
    """

    name: str
    code: str = ""
    passed: bool
    skipped: bool = False
    value: float | None = None
    limit: float | None = None
    column: str | None = None
    message: str = ""
    columns: list[ColumnFigures] = Field(default_factory=list)


class QuarantinedBatch(_ContractModel):
    key: str
    etag: str
    reason: str
    message: str = ""
    checks: list[Check] = Field(default_factory=list)


class BatchValidation(_ContractModel):
    """Every check's figures for one batch of the run, accepted or quarantined."""

    key: str
    etag: str
    new: bool
    status: Literal["Accepted", "Quarantined"]
    reason: str = ""
    rows: int | None = None
    checks: list[Check] = Field(default_factory=list)


class ValidationReference(_ContractModel):
    batches: list[str] = Field(default_factory=list)
    """The window's earlier batches that new batches were compared with."""
    rows: int = 0


class ValidationReport(_ContractModel):
    reference: ValidationReference = ValidationReference()
    batches: list[BatchValidation] = Field(default_factory=list)


class LiveEvaluation(_ContractModel):
    """Prequential monitoring: the serving and the previous good model scored on the
    run's new batches before training on them (test, then train)."""

    rows: int
    serving: dict[str, float] = Field(default_factory=dict)
    previous: dict[str, float] | None = None


class LabelRows(_ContractModel):
    matured: int = 0
    immature: int = 0
    labeled: int = 0
    """Matured rows labeled by a label file."""
    defaulted: int = 0
    """Matured rows no label file named, given negativeValue."""
    fake_negatives: int = 0
    unmatched_labels: int = 0


class BatchLabels(_ContractModel):
    key: str
    matured: int = 0
    immature: int = 0
    labeled: int = 0
    event_time_min: datetime | None = None
    event_time_max: datetime | None = None


class LabelReport(_ContractModel):
    """What the run made of late labels: its watermark, cutoff and row counts."""

    watermark: datetime | None = None
    cutoff: datetime | None = None
    rows: LabelRows = LabelRows()
    batches: list[BatchLabels] = Field(default_factory=list)


class DriftedBatch(_ContractModel):
    """A new batch whose distribution differs from the reference's."""

    key: str
    etag: str
    action: DriftAction
    """What it got: trained on (Retrain, Ignore) or quarantined (Hold)."""
    checks: list[str] = Field(default_factory=list)
    """The distribution checks it failed: featureDrift, outOfRange, labelRateShift."""
    columns: list[str] = Field(default_factory=list)
    message: str = ""


class WindowCandidate(_ContractModel):
    batches: int
    """How many of the newest earlier batches this candidate was fitted on."""
    score: float | None = None
    """Its metric on the new batches' rows (None: it could not be scored)."""


class WindowReport(_ContractModel):
    selection: WindowSelection
    batches: list[str] = Field(default_factory=list)
    """The keys the model was trained on, oldest first."""
    candidates: list[WindowCandidate] = Field(default_factory=list)
    """Adaptive: each window length tried, scored on `rows` rows of the new batches."""
    rows: int = 0
    message: str = ""


class RunResult(_ContractModel):
    api_version: Literal["freshet.dev/run/v1"] = "freshet.dev/run/v1"
    kind: Literal["RunResult"] = "RunResult"
    run_id: str
    status: Literal["Succeeded", "Failed", "Skipped"]
    """Skipped: `newDataRequired` and every new batch was refused; no model."""
    reason: str = ""
    message: str = ""
    model: ResultModel | None = None
    metrics: RunMetrics = RunMetrics()
    holdout: Holdout | None = None
    rows: RowCounts | None = None
    quarantined: list[QuarantinedBatch] = Field(default_factory=list)
    validation: ValidationReport | None = None
    """Every batch's checks; absent from trainers that predate it."""
    monitoring: LiveEvaluation | None = None
    """Present when the run had new labelled rows and a serving model to score."""
    labels: LabelReport | None = None
    """Present when the run spec had late labels."""
    drift: list[DriftedBatch] = Field(default_factory=list)
    """New batches whose distribution changed, and what they got."""
    window: WindowReport | None = None
    """The batches the model was trained on, and how they were chosen."""

    @model_validator(mode="after")
    def _outcome_is_complete(self) -> Self:
        # The gate and the status need a model to point at on success, and a
        # reason to show on failure; a result without them is a trainer bug.
        if self.status == "Succeeded" and self.model is None:
            raise ValueError("a Succeeded result must name its model")
        if self.status in ("Failed", "Skipped") and not self.reason:
            raise ValueError(f"a {self.status} result must give a reason")
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
    previous: ModelRef | None = None,
    labels: RunLabels | None = None,
    reference_from: str | None = None,
    released: Collection[str] = (),
    new_data_required: bool = False,
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
            labels=labels,
            exclude=list(spec.data.exclude),
            max_batches=spec.data.window.max_batches if spec.data.window else None,
            selection=spec.window_selection,
            reference_from=reference_from,
            released=sorted(key for key in released if any(b.key == key for b in window)),
            new_data_required=new_data_required,
        ),
        training=RunTraining(
            # By alias: `class` is a keyword in Python, so the field is `class_`.
            estimator=RunEstimator.model_validate(
                {"class": training.estimator.class_, "params": training.estimator.params}
            ),
            seed=training.seed,
            warm_start=training.warm_start,
            max_ensemble_size=training.max_ensemble_size,
        ),
        evaluation=Evaluation(
            metric=spec.gate.metric, holdout_fraction=float(training.holdout_fraction)
        ),
        validation=RunValidation.from_policy(spec.validation, spec.drift_action),
        baseline=baseline,
        previous=previous,
        output=RunOutput(
            version=version,
            model_prefix=layout.model_prefix(version),
            result_key=layout.run_result_key(run_id),
        ),
    )
