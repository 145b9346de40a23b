"""The durable record of a policy: what it consumed, what it is running, what serves.

It lives in the object store next to the models (`<root>ledger.json`), not in
the resource's status, because status is small and can be lost with the object,
while the ledger is what makes a restart neither retrain everything nor lose a
batch. Ordering gives exactly-once without transactions:

1. pick the input set, write it as the ledger's `intent` (and the run spec);
2. only then create the Job, named after the input set;
3. when the Job is done, record the outcome and move the batches to `consumed`
   in one write, and only then clear the intent.

A crash between any two steps is replayed from the intent: a missing Job is
created with the same name, an existing one is tracked, a finished one is
recorded. Only one operator replica writes a policy's ledger at a time (kopf
peering), so a plain overwrite is safe.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from freshet.batches import Batch
from freshet.decisions.outcome import Outcome
from freshet.objectstore import ObjectStore

SCHEMA_VERSION = 1
MAX_RUNS = 100
"""Run records kept: the dashboard charts this many versions."""
MAX_PREVIOUS = 5


class _Model(BaseModel):
    # Tolerant on read: a ledger written by a newer operator (a rollback of the
    # operator) or with fields since retired still loads.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class BatchRef(_Model):
    key: str
    etag: str
    size: int = 0
    last_modified: datetime = Field(alias="lastModified")
    labels: str | None = None
    """Fingerprint of the late-label files the batch was last trained with."""
    first_event: datetime | None = Field(default=None, alias="firstEvent")
    """The batch's earliest event time, as the trainer reported it."""

    @classmethod
    def of(cls, batch: Batch) -> BatchRef:
        return cls(
            key=batch.key, etag=batch.etag, size=batch.size, last_modified=batch.last_modified
        )

    def batch(self) -> Batch:
        return Batch(self.key, self.etag, self.size, self.last_modified)


class ModelRef(_Model):
    version: str
    run_id: str = Field(alias="runId")
    model_key: str = Field(alias="modelKey")
    sha256: str
    metrics: dict[str, float] = {}
    promoted_time: datetime | None = Field(default=None, alias="promotedTime")


class LabelFileRef(_Model):
    batch: str
    key: str
    etag: str


class RunIntent(_Model):
    run_id: str = Field(alias="runId")
    version: str
    reason: str
    batches: list[BatchRef]
    new_batches: list[str] = Field(alias="newBatches")
    spec_key: str = Field(alias="specKey")
    result_key: str = Field(alias="resultKey")
    spec_hash: str = Field(alias="specHash")
    trigger: str
    message: str = ""
    retrain_request: str | None = Field(default=None, alias="retrainRequest")
    schedule_time: datetime | None = Field(default=None, alias="scheduleTime")
    created_time: datetime = Field(alias="createdTime")
    measured: bool = False
    """The run's prequential measurement of the serving model has been counted."""
    label_files: list[LabelFileRef] = Field(default_factory=list, alias="labelFiles")
    """The late-label files the run joins, each with the batch it labels."""
    relabelled: list[str] = []
    """Backfill: the batches whose label files changed since they were trained."""
    promotion_started: datetime | None = Field(default=None, alias="promotionStarted")
    """When the pointer was first applied for this run's model; the rollout is timed from it."""
    phase: Literal["Preprocessing", "Training"] = "Training"
    """Preprocessing: the run's prep Job (spec.preprocess) comes first; it moves to
    Training, in one ledger write, once the prepared data is recorded in the run spec.
    A prep Job is only ever created while the intent says Preprocessing."""


class RefusedSpec(_Model):
    """The API server refused the Job this spec makes: no run until the spec changes."""

    fingerprint: str
    """decisions.step.spec_fingerprint of the refused spec."""
    reason: str
    message: str


class RunRecord(_Model):
    run_id: str = Field(alias="runId")
    version: str
    outcome: Outcome
    reason: str
    message: str
    trigger: str = ""
    started_time: datetime | None = Field(default=None, alias="startedTime")
    finished_time: datetime = Field(alias="finishedTime")
    metrics: dict[str, float] = {}
    baseline_metrics: dict[str, float] | None = Field(default=None, alias="baselineMetrics")
    dummy_metrics: dict[str, float] | None = Field(default=None, alias="dummyMetrics")
    """The dummy baseline on the same holdout: what the gate requires the candidate to beat."""
    live_metrics: dict[str, float] | None = Field(default=None, alias="liveMetrics")
    """Prequential: the serving model on the run's new labelled rows, before training."""
    train_rows: int | None = Field(default=None, alias="trainRows")
    holdout_rows: int | None = Field(default=None, alias="holdoutRows")
    batches: int = 0
    relabelled: list[str] = []


class MeasurementRecord(_Model):
    time: datetime
    verdict: str
    message: str
    value: float | None = None
    reference: float | None = None


class AnalysisRecord(_Model):
    """The monitoring analysis of the serving version (see decisions.analysis.State)."""

    version: str
    since: datetime
    consecutive_failures: int = Field(default=0, alias="consecutiveFailures")
    consecutive_errors: int = Field(default=0, alias="consecutiveErrors")
    measurements: int = 0
    phase: str = "Baking"
    last: MeasurementRecord | None = None


class DriftRecord(_Model):
    """The newest change of distribution a run found (status.data.drift)."""

    time: datetime
    version: str
    """The version of the run that found it."""
    batch: str
    action: str
    """What the batch got: Retrain, Hold or Ignore."""
    checks: list[str] = []
    columns: list[str] = []
    message: str = ""


class RollbackRecord(_Model):
    from_version: str = Field(alias="fromVersion")
    to_version: str = Field(alias="toVersion")
    time: datetime
    reason: str
    message: str


class ScoringIntent(_Model):
    """A batch scoring run in flight (freshet_contract.scoring): its spec is written
    before its Job exists, like a training run's."""

    run_id: str = Field(alias="runId")
    version: str
    inputs: list[BatchRef]
    spec_key: str = Field(alias="specKey")
    created_time: datetime = Field(alias="createdTime")


class ScoringRecord(_Model):
    """The last batch scoring run, as status.scoring shows it."""

    run_id: str = Field(alias="runId")
    version: str
    outcome: Literal["Succeeded", "Failed"]
    message: str = ""
    scored: int = 0
    refused: int = 0
    rows: int = 0
    manifest_key: str | None = Field(default=None, alias="manifestKey")
    finished_time: datetime = Field(alias="finishedTime")


class Ledger(_Model):
    schema_version: int = Field(default=SCHEMA_VERSION, alias="schemaVersion")
    next_version: int = Field(default=1, alias="nextVersion")
    consumed: list[BatchRef] = []
    quarantined: dict[str, str] = {}
    intent: RunIntent | None = None
    serving: ModelRef | None = None
    previous: list[ModelRef] = []
    runs: list[RunRecord] = []
    failures: int = 0
    """Consecutive failed runs: the backoff before the next attempt grows with it."""
    retry_not_before: datetime | None = Field(default=None, alias="retryNotBefore")
    refused: RefusedSpec | None = None
    failed_inputs: str | None = Field(default=None, alias="failedInputs")
    """Fingerprint of the last failed run's inputs (decisions.retry): the backoff holds
    back only a run over the same inputs. None before a failure, and in older ledgers."""
    last_schedule_time: datetime | None = Field(default=None, alias="lastScheduleTime")
    models: dict[str, ModelRef] = {}
    """Every model that passed the gate, by version: what a pin or a rollback can point at."""
    rejected: list[str] = []
    """Versions rolled back by monitoring: never promoted again."""
    analysis: AnalysisRecord | None = None
    previous_analysis: AnalysisRecord | None = Field(default=None, alias="previousAnalysis")
    """The analysis of the version the serving one replaced, as it stood then: a
    promotion right after a run's prequential measurement must not erase it."""
    measurement_totals: dict[str, int] = Field(default_factory=dict, alias="measurementTotals")
    """Every measurement taken, by verdict, whatever version it measured (what
    freshet_monitoring_measurements_total counts, but surviving restarts)."""
    last_rollback: RollbackRecord | None = Field(default=None, alias="lastRollback")
    rollback_request: str | None = Field(default=None, alias="rollbackRequest")
    last_stale_retrain: datetime | None = Field(default=None, alias="lastStaleRetrain")
    trained_spec_hash: str | None = Field(default=None, alias="trainedSpecHash")
    retrain_request: str | None = Field(default=None, alias="retrainRequest")
    label_watermark: datetime | None = Field(default=None, alias="labelWatermark")
    """The newest event time a run has seen: late labels mature against it."""
    label_cutoff: datetime | None = Field(default=None, alias="labelCutoff")
    """Rows with event times up to this had matured at the last run."""
    last_backfill: datetime | None = Field(default=None, alias="lastBackfill")
    last_arrival: datetime | None = Field(default=None, alias="lastArrival")
    """The newest Last-Modified of a batch a run was given, quarantined ones included:
    a batch moved out of the prefix must not take status.data.lastArrivalTime back."""
    reference_from: str | None = Field(default=None, alias="referenceFrom")
    """Where the current regime starts (decisions.drift): the run spec's referenceFrom."""
    last_drift: DriftRecord | None = Field(default=None, alias="lastDrift")
    drifts_detected: int = Field(default=0, alias="driftsDetected")
    """Drifted new batches found by all runs."""
    scoring: ScoringIntent | None = None
    scored: dict[str, dict[str, str]] = {}
    """Batch scoring: by model version, the inputs (key: ETag) scored with it."""
    last_scoring: ScoringRecord | None = Field(default=None, alias="lastScoring")
    last_scoring_schedule: datetime | None = Field(default=None, alias="lastScoringSchedule")
    scoring_failures: int = Field(default=0, alias="scoringFailures")
    scoring_retry_not_before: datetime | None = Field(default=None, alias="scoringRetryNotBefore")

    def consumed_etags(self) -> dict[str, str]:
        return {b.key: b.etag for b in self.consumed}

    def consume(self, batches: list[BatchRef]) -> list[BatchRef]:
        """Add what is new (or overwritten with new content); return what was added."""
        known = self.consumed_etags()
        added = [b for b in batches if known.get(b.key) != b.etag]
        replaced = {b.key for b in added}
        self.consumed = [b for b in self.consumed if b.key not in replaced] + added
        return added

    def mark_labels(
        self, fingerprints: dict[str, str], first_events: dict[str, datetime | None]
    ) -> None:
        """Record the label files each consumed batch has now been trained with."""
        for ref in self.consumed:
            if ref.key in fingerprints:
                ref.labels = fingerprints[ref.key]
            if first_events.get(ref.key) is not None:
                ref.first_event = first_events[ref.key]

    def forget_released(self, used: dict[str, str], requarantined: set[str]) -> None:
        """A released batch or label file a recorded run used is quarantined no more.

        Runs only use quarantined content that was released, so what a run used
        with its quarantined ETag leaves the quarantine record, unless the run
        refused it again.
        """
        for key, etag in used.items():
            if key not in requarantined and self.quarantined.get(key) == etag:
                del self.quarantined[key]

    def record(self, run: RunRecord) -> None:
        self.runs = [run, *self.runs][:MAX_RUNS]

    def promote(self, model: ModelRef) -> None:
        if self.serving is not None:
            self.previous = [self.serving, *self.previous][:MAX_PREVIOUS]
        self.serving = model
        self.models[model.version] = model

    def give_back(self, version: str) -> None:
        """A failed run produced no model: its version goes to the next attempt.

        Only the newest version can go back (runs are serial, so a failed run's
        is always the newest), so an allocated version is never handed out twice
        while anything uses it.
        """
        if version == f"v{self.next_version - 1}" and self.next_version > 1:
            self.next_version -= 1

    def note_drift(self, newest: DriftRecord, count: int) -> None:
        """A finished run found `count` drifted new batches, `newest` the last of them."""
        self.last_drift = newest
        self.drifts_detected += count

    def note_arrivals(self, batches: list[BatchRef]) -> None:
        """Remember the newest Last-Modified among batches a run was given."""
        times = [b.last_modified for b in batches]
        if self.last_arrival is not None:
            times.append(self.last_arrival)
        self.last_arrival = max(times, default=None)

    def begin_analysis(self, version: str, since: datetime) -> None:
        """Start the analysis of a newly serving version from zero.

        The analysis it replaces is kept as `previous_analysis`, so the
        measurements of a version that was promoted over or rolled back stay
        visible instead of vanishing with the version.
        """
        current = self.analysis
        if current is not None and current.version != version:
            self.previous_analysis = current
        self.analysis = AnalysisRecord(version=version, since=since)

    def count_measurement(self, verdict: str) -> None:
        self.measurement_totals[verdict] = self.measurement_totals.get(verdict, 0) + 1

    def roll_back(self, to: ModelRef) -> None:
        """Serve `to` again and reject the failing version for good."""
        if self.serving is not None and self.serving.version not in self.rejected:
            self.rejected.append(self.serving.version)
        self.previous = [m for m in self.previous if m.version != to.version]
        self.serving = to


def load(store: ObjectStore, key: str) -> Ledger:
    """The ledger at `key` (StateLayout.ledger_key), or an empty one for a new policy."""
    doc = store.get_json(key)
    return Ledger() if doc is None else Ledger.model_validate(doc)


def save(store: ObjectStore, key: str, ledger: Ledger) -> None:
    store.put_json(key, ledger.model_dump(by_alias=True, mode="json"))
