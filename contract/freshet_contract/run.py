"""The RunSpec: what the operator asks of one training run (``contract/README.md``).

The operator writes it to ``<root>runs/<runId>/spec.json`` before the Job
exists (the run intent), and the trainer reads it first. The defaults here are
the trainer's for a field the operator did not send: an operator of an earlier
release sends fewer fields, and this one leaves out every field that is
``None``. They agree with the policy defaults of the CRD (what users see and
what the operator sends); see "Where defaults live" in ``contract/README.md``.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, JsonValue

from freshet_contract.document import Document
from freshet_contract.result import Check
from freshet_contract.vocabulary import (
    ColumnType,
    ContradictionAction,
    Correction,
    DataFormat,
    DelayedFeedback,
    DriftAction,
    DriftMethod,
    Fraction,
    Lax,
    Metric,
    NonEmpty,
    Prefix,
    SchemaMode,
    Sha256Hex,
    UtcTime,
    WindowSelection,
)


class PolicyRef(Document):
    """The TrainingPolicy the run is for, at the generation it was planned from."""

    namespace: NonEmpty
    name: NonEmpty
    uid: NonEmpty
    generation: int


class StoreLocation(Document):
    bucket: NonEmpty
    root: Prefix
    """The policy's state root, with the trailing slash."""


class PreparedRef(Document):
    """Where the preprocessing step put a batch's prepared rows (``spec.preprocess``),
    pinned like the batch itself: the trainer reads these instead of the raw file."""

    key: NonEmpty
    etag: NonEmpty
    size: Annotated[int, Field(ge=0)]


class Refusal(Document):
    """A raw batch the preprocessing run refused before the step saw it: the trainer
    reports it quarantined with these checks and does not read it."""

    reason: NonEmpty
    message: str = ""
    checks: list[Check] = Field(default_factory=list)


class BatchRef(Document):
    """One input file, pinned by ETag so the run trains on exactly what was chosen.

    `key` and `etag` are the batch's identity (what is consumed, quarantined,
    windowed); with preprocessing, `prepared` or `refused` says what became of it.
    """

    key: NonEmpty
    etag: NonEmpty
    size: Annotated[int, Field(ge=0)]
    prepared: PreparedRef | None = None
    refused: Refusal | None = None


class LabelFile(Document):
    """One label file of a batch, pinned like the batch itself."""

    batch: NonEmpty
    """The key of the feature batch whose rows this file labels."""
    key: NonEmpty
    etag: NonEmpty
    size: Annotated[int, Field(ge=0)]


class RunLabels(Document):
    """Late labels: label files joined to the batches' rows by id, matured by event time.

    See `freshet_trainer/late_labels.py` for what the trainer makes of them.
    """

    id_column: NonEmpty
    event_time_column: NonEmpty
    delay_seconds: Annotated[int, Field(ge=0)]
    negative_value: str | None = None
    delayed_feedback: Lax[DelayedFeedback] = DelayedFeedback.NONE
    watermark_floor: UtcTime | None = None
    """The watermark never goes below this (the newest event time an earlier run saw)."""
    previous_cutoff: UtcTime | None = None
    """Rows matured by this cutoff were already scored by an earlier run's monitoring."""
    files: list[LabelFile] = Field(default_factory=list)


class RunData(Document):
    format: Lax[DataFormat]
    label: NonEmpty
    batches: list[BatchRef]
    """Everything the model may train on, oldest first."""
    new_batches: list[str]
    """Keys of the batches no earlier run used."""
    labels: RunLabels | None = None
    """None: the label is a column of every batch."""
    exclude: list[str] = Field(default_factory=list)
    """Columns that are not features: dropped before validation, hashing and fitting."""
    max_batches: Annotated[int, Field(ge=1)] | None = None
    """The most batches to train on: the newest that pass validation. `batches` may
    list more (the newest consumed ones beyond it), so that a refused new batch
    leaves no gap in the window."""
    selection: Lax[WindowSelection] = WindowSelection.FULL
    """Adaptive: train on the suffix of the window that best predicts the new batches."""
    reference_from: str | None = None
    """The oldest batch of the current regime (after an accepted change): the
    reference for the distribution checks starts there."""
    released: list[str] = Field(default_factory=list)
    """Released from quarantine by the user: a distribution change or a label
    contradiction no longer holds these batches; faults still do."""
    new_data_required: bool = False
    """The run exists for its new batches: when every one is refused, the trainer
    stops with status Skipped instead of training on unchanged data."""


class RunEstimator(Document):
    class_name: NonEmpty = Field(alias="class")
    """On the trainer's allow-list (`freshet_trainer/estimators.py`), or the run fails."""
    params: dict[str, JsonValue] = Field(default_factory=dict)
    """Passed to the estimator as they are: a null here is a parameter's value."""


class RunTraining(Document):
    estimator: RunEstimator
    seed: int
    warm_start: bool = False
    max_ensemble_size: Annotated[int, Field(ge=1)] | None = None
    """With warm start: the most trees (forests) or stages (boosting) a model may have."""


class Evaluation(Document):
    metric: Lax[Metric]
    holdout_fraction: Annotated[float, Field(gt=0.0, lt=1.0)]


class RunColumn(Document):
    """One declared column of a Strict schema."""

    name: NonEmpty
    type: Lax[ColumnType]
    nullable: bool = True


class RunDrift(Document):
    """How each column's distribution is compared with the reference window.

    A column drifts when its distance from the reference exceeds `threshold`
    (the change is material) AND the test of the same data is significant at
    `p_value` after correcting for the number of columns tested (the change is
    not sampling noise). `threshold` None means the method's own default,
    chosen by the trainer.
    """

    method: Lax[DriftMethod] = DriftMethod.AUTO
    action: Lax[DriftAction] = DriftAction.HOLD
    """Retrain and Ignore accept a drifted batch; Hold quarantines it. The operator
    always sends the policy's effective action; absent only from operators that
    predate it, which quarantined drift: Hold."""
    threshold: Annotated[float, Field(ge=0.0)] | None = None
    p_value: Fraction = 0.01
    correction: Lax[Correction] = Correction.BENJAMINI_HOCHBERG


class RunLabelContradiction(Document):
    """Hold a batch on which the serving model's accuracy is more than `margin` below
    chance (significantly) while its features look as usual: its labels
    contradict everything known, a label fault (contradiction.py)."""

    action: Lax[ContradictionAction] = ContradictionAction.HOLD
    margin: Fraction = 0.1


class RunValidation(Document):
    """The quarantine rules the trainer applies to each batch before training.

    Optional in the spec: every field has a default, the trainer's for a rule
    the operator did not send (an older operator sends only `maxNullFraction`).
    An unset null, duplicate or conflicting-label limit is learned from the
    reference. Thresholds travel as JSON numbers: the policy's decimal strings
    are exact, and the trainer compares measured floats against them.
    """

    schema_mode: Lax[SchemaMode] = Field(default=SchemaMode.INFERRED, alias="schema")
    columns: list[RunColumn] = Field(default_factory=list)
    max_null_fraction: Fraction | None = None
    """None: learned from the reference (its own fraction plus referenceTolerance)."""
    reference_tolerance: Fraction = 0.05
    allow_extra_columns: bool = False
    max_duplicate_fraction: Fraction | None = None
    max_conflicting_label_fraction: Fraction | None = None
    label_values: list[str] | None = None
    max_label_rate_shift: Fraction = 0.1
    max_out_of_range_fraction: Fraction = 0.01
    drift: RunDrift = RunDrift()
    label_contradiction: RunLabelContradiction = RunLabelContradiction()
    max_batch_bytes: Annotated[int, Field(gt=0)] = 256 * 1024 * 1024
    max_columns: Annotated[int, Field(ge=1)] = 1000


class ModelRef(Document):
    """A published model a run compares against (the serving one, the previous good one).

    Its checksum comes from Kubernetes (the serving Deployment), not from the bucket.
    """

    version: NonEmpty
    model_key: NonEmpty
    sha256: Sha256Hex


class RunOutput(Document):
    version: NonEmpty
    model_prefix: Prefix
    result_key: NonEmpty


class RunSpec(Document):
    always_written: ClassVar[frozenset[str]] = frozenset({"baseline"})
    """`baseline` is required even when null: the operator must have decided."""

    api_version: Literal["freshet.dev/run/v1"] = "freshet.dev/run/v1"
    kind: Literal["RunSpec"] = "RunSpec"
    run_id: NonEmpty
    policy: PolicyRef
    store: StoreLocation
    data: RunData
    training: RunTraining
    evaluation: Evaluation
    validation: RunValidation = RunValidation()
    baseline: ModelRef | None
    """The serving model to compare against; None for a policy's first model."""
    previous: ModelRef | None = None
    """The previous good model, scored with the serving one on the new batches."""
    output: RunOutput
