"""The RunResult: what one training run did, written by the trainer as its last step.

The operator reads it from ``<root>runs/<runId>/result.json`` to gate, promote,
quarantine and report. An operator must keep reading results of a trainer one
release ahead (and behind): unknown fields are ignored, absent ones take the
defaults below, and fields added after the first release (``validation``,
``metrics.dummy``, ...) are optional for that reason.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from freshet_contract.document import Document
from freshet_contract.vocabulary import (
    BatchStatus,
    Count,
    DriftAction,
    Lax,
    NonEmpty,
    RunStatus,
    Sha256Hex,
    UtcTime,
    WindowSelection,
)


class ResultModel(Document):
    """The model the run published (when Succeeded)."""

    version: NonEmpty
    model_key: NonEmpty
    sha256: Sha256Hex
    manifest_key: NonEmpty


class RunMetrics(Document):
    """Holdout metrics of the candidate, the serving model and the dummy baseline.

    All three are scored on the same holdout rows. `dummy` (majority class or
    mean target, fitted on the run's training rows) is what the gate requires
    the candidate to beat; it is None only in results of trainers that predate it.
    """

    candidate: dict[str, float] = Field(default_factory=dict)
    baseline: dict[str, float] | None = None
    """The serving model on the same holdout; None when there was no baseline."""
    dummy: dict[str, float] | None = None


class HoldoutSummary(Document):
    """The rows all metrics were computed on."""

    rows: Annotated[int, Field(ge=0)]
    sha256: Sha256Hex


class RowCounts(Document):
    train: Annotated[int, Field(ge=0)]
    holdout: Annotated[int, Field(ge=0)]


class ColumnFigures(Document):
    """What one column-wise check measured on one column."""

    column: str
    passed: bool
    value: float | None = None
    limit: float | None = None
    reference: float | None = None
    p_value: float | None = None
    method: str | None = None


class Check(Document):
    """One validation check on a batch, with the figure it measured and its limit.

    `code` is the CamelCase reason the batch is quarantined with when this
    check fails. A check that could not run (no reference window yet, or an
    earlier check made it meaningless) is `skipped`, and counts as passed: it
    never quarantines. Column-wise checks name their worst column and list
    every column's figures in `columns`. Every field is read by the operator
    too: it re-serialises quarantined batches into their reason documents.
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


class QuarantinedBatch(Document):
    """A refused batch and its reason document (written next to it in quarantine/)."""

    key: NonEmpty
    etag: NonEmpty
    reason: NonEmpty
    message: str = ""
    checks: list[Check] = Field(default_factory=list)


class BatchValidation(Document):
    """Every check's figures for one batch of the run, accepted or quarantined."""

    key: NonEmpty
    etag: NonEmpty
    new: bool
    status: BatchStatus
    reason: str = ""
    rows: Annotated[int, Field(ge=0)] | None = None
    checks: list[Check] = Field(default_factory=list)


class ValidationReference(Document):
    """The window batches (not new in this run) that new batches were compared with."""

    batches: list[str] = Field(default_factory=list)
    rows: Annotated[int, Field(ge=0)] = 0


class ValidationReport(Document):
    reference: ValidationReference = ValidationReference()
    batches: list[BatchValidation] = Field(default_factory=list)


class LiveEvaluation(Document):
    """Prequential monitoring: the serving and the previous good model scored on the
    run's new batches (with late labels: on the rows matured since the previous
    cutoff), before the candidate is trained on them (test, then train)."""

    rows: int
    serving: dict[str, float] = Field(default_factory=dict)
    previous: dict[str, float] | None = None


class LabelRowCounts(Document):
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


class BatchLabels(Document):
    key: NonEmpty
    matured: Count = 0
    immature: Count = 0
    labeled: Count = 0
    event_time_min: UtcTime | None = None
    event_time_max: UtcTime | None = None


class LabelReport(Document):
    """What the run made of late labels: the watermark, the cutoff and row counts.

    `watermark` and `cutoff` are None when no row had an event time (and no floor).
    """

    watermark: UtcTime | None = None
    cutoff: UtcTime | None = None
    rows: LabelRowCounts = LabelRowCounts()
    batches: list[BatchLabels] = Field(default_factory=list)


class DriftedBatch(Document):
    """A new batch whose distribution differs from the reference's, and what it got."""

    key: NonEmpty
    etag: NonEmpty
    action: Lax[DriftAction]
    """Trained on (Retrain, Ignore) or quarantined (Hold)."""
    checks: list[str] = Field(default_factory=list)
    """The distribution checks it failed: featureDrift, outOfRange, labelRateShift."""
    columns: list[str] = Field(default_factory=list)
    message: str = ""


class WindowCandidate(Document):
    batches: Count
    """How many of the newest earlier batches this candidate was fitted on."""
    score: float | None = None
    """Its metric on the new batches' rows; None when it could not be scored."""


class WindowReport(Document):
    """Which batches the model was trained on, and how they were chosen."""

    selection: Lax[WindowSelection]
    batches: list[str] = Field(default_factory=list)
    """The keys the model was trained on, oldest first."""
    candidates: list[WindowCandidate] = Field(default_factory=list)
    """Adaptive: each window length tried, scored on `rows` rows of the new batches."""
    rows: Count = 0
    message: str = ""


class RunResult(Document):
    api_version: Literal["freshet.dev/run/v1"] = "freshet.dev/run/v1"
    kind: Literal["RunResult"] = "RunResult"
    run_id: NonEmpty
    status: RunStatus
    reason: str = ""
    message: str = ""
    model: ResultModel | None = None
    metrics: RunMetrics = RunMetrics()
    holdout: HoldoutSummary | None = None
    rows: RowCounts | None = None
    quarantined: list[QuarantinedBatch] = Field(default_factory=list)
    validation: ValidationReport | None = None
    """Every batch's checks; absent from trainers that predate it."""
    monitoring: LiveEvaluation | None = None
    """Present when the run had new labelled rows and a serving model to score."""
    labels: LabelReport | None = None
    """Late labels (present only when the spec had `data.labels`)."""
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
