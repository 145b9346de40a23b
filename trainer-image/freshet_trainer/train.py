"""`freshet-train`: the entrypoint of a training Job.

Reads the run spec the operator wrote, validates the batches it names, fits
the candidate, evaluates it and the serving model on the same holdout, and
publishes the artifact, its checksum and a manifest under the version's
prefix. The result document is written last: its presence means everything it
points to is already in the store. Problems with the data or the spec are
diagnosed into a `Failed` result (exit 0, the run is over); anything that
prevents writing a result exits non-zero so the Job's retry policy applies.

Nothing is written to the local filesystem except the termination message, so
the container runs with a read-only root.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np
import numpy.typing as npt
import pandas as pd
from freshet_contract import env as variables
from freshet_contract import layout, logs
from freshet_contract.result import (
    DriftedBatch,
    HoldoutSummary,
    LabelReport,
    LiveEvaluation,
    QuarantinedBatch,
    ResultModel,
    RowCounts,
    RunMetrics,
    RunResult,
    ValidationReport,
)
from freshet_contract.run import LabelFile, ModelRef, RunSpec
from pydantic import ValidationError
from sklearn.base import BaseEstimator, clone

from freshet_trainer import late_labels, window
from freshet_trainer.artifact import (
    ArtifactUnreadable,
    ChecksumMismatch,
    ModelArtifact,
    feature_frame,
    feature_kinds,
    sha256_hex,
    value_buckets,
)
from freshet_trainer.batches import Batch, load_batches
from freshet_trainer.contradiction import hold_contradicted
from freshet_trainer.estimators import (
    build_estimator,
    build_pipeline,
    dummy_estimator,
    is_classification,
)
from freshet_trainer.holdout import holdout_digest, units
from freshet_trainer.manifest import build_manifest
from freshet_trainer.metrics import evaluate
from freshet_trainer.reasons import RunFailed, RunReason
from freshet_trainer.store import (
    ObjectNotFound,
    ObjectStore,
    StoreConfig,
    StoreConfigError,
)
from freshet_trainer.warmstart import Continued, WarmStart, continue_fit, method_for

log = logging.getLogger("freshet.trainer")

DEFAULT_TERMINATION_LOG = "/dev/termination-log"
_TERMINATION_MESSAGE_LIMIT = 1024  # Kubernetes keeps at most 4 KiB per container


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    """Rows with holdout unit >= the run's fraction."""
    new_train: pd.DataFrame
    """The training rows no earlier run had (what partial_fit continues with): those of
    the new batches, and with late labels those that matured since the previous run."""
    holdout: pd.DataFrame
    """Rows below the evaluation bound: fitted by neither candidate nor serving model."""
    holdout_sha256: str


def split_batches(
    batches: list[Batch],
    fraction: float,
    *,
    evaluate_below: float | None = None,
    new_keys: Collection[str] = (),
    previous_cutoff: datetime | None = None,
) -> Split:
    """Concatenate batches in spec order and split rows by their content hash (holdout.py).

    Rows with unit >= `fraction` are trained on; rows below `evaluate_below`
    (default: the fraction; never above it) are the holdout. With late labels
    only matured rows can be held out: an immature row trained on as a fake
    negative is above the fraction, and one below it waits, unused, until it
    matures into the holdout.
    """
    rows = _concat([batch.rows for batch in batches])
    hashes = np.concatenate([batch.hashes for batch in batches])
    matured = np.concatenate(
        [
            b.maturity.matured if b.maturity is not None else np.ones(len(b.rows), dtype=bool)
            for b in batches
        ]
    )
    unit = units(hashes)
    trained = unit >= fraction
    held = (unit < min(fraction, fraction if evaluate_below is None else evaluate_below)) & matured
    new = np.concatenate([_unseen(b, new_keys, previous_cutoff) for b in batches])
    return Split(
        train=rows[trained].reset_index(drop=True),
        new_train=rows[trained & new].reset_index(drop=True),
        holdout=rows[held].reset_index(drop=True),
        holdout_sha256=holdout_digest(hashes[held]),
    )


def _unseen(
    batch: Batch, new_keys: Collection[str], previous_cutoff: datetime | None
) -> npt.NDArray[np.bool_]:
    """Rows no earlier run trained on with their label: a new batch's, and, with late
    labels, an old batch's rows that matured since the previous cutoff."""
    fresh = np.full(len(batch.rows), batch.ref.key in new_keys)
    if batch.maturity is None or previous_cutoff is None:
        return fresh
    matured = late_labels.newly_matured(batch.maturity, previous_cutoff)
    return np.asarray(matured | (fresh & ~batch.maturity.matured), dtype=np.bool_)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Rows of several batches in order; batches without rows (late labels) add nothing."""
    present = [frame for frame in frames if len(frame)] or frames[:1]
    return pd.concat(present, ignore_index=True)


def fit_model(
    estimator: BaseEstimator,
    train: pd.DataFrame,
    label: str,
    *,
    holdout_bound: float | None = None,
) -> ModelArtifact:
    """Fit the preprocessing pipeline and estimator on `train` (label column included).

    Numeric columns (booleans excepted) are scaled; every other column is
    treated as categorical. The split is recorded in the artifact so the server
    prepares request rows exactly as training did.
    """
    numeric, categorical = feature_kinds(train, label)
    pipeline = build_pipeline(estimator, numeric, categorical)
    classification = is_classification(estimator)
    target = train[label] if classification else pd.to_numeric(train[label], errors="raise")
    pipeline.fit(feature_frame(train, numeric, categorical), target)
    return ModelArtifact(
        pipeline=pipeline,
        label=label,
        numeric=numeric,
        categorical=categorical,
        classification=classification,
        holdout_bound=holdout_bound,
        value_buckets=() if classification else value_buckets(target),
    )


def fit_candidate(
    spec: RunSpec, estimator: BaseEstimator, baseline: ModelArtifact | None, split: Split
) -> tuple[ModelArtifact, WarmStart]:
    """Warm-start from the baseline when asked and possible (warmstart.py), else fit cold."""
    label, fraction = spec.data.label, spec.evaluation.holdout_fraction
    record = WarmStart(requested=spec.training.warm_start)
    try:
        if record.requested and baseline is not None and spec.baseline is not None:
            outcome = continue_fit(
                baseline,
                spec.baseline.version,
                estimator,
                train=split.train,
                new_train=split.new_train,
                label=label,
                max_size=spec.training.max_ensemble_size,
            )
            if isinstance(outcome, Continued):
                bound = min(fraction, _bound(baseline, fraction))
                return replace(outcome.model, holdout_bound=bound), outcome.record
            record = outcome
        elif record.requested:
            record = replace(record, reason="no serving model to continue")
        if record.requested:
            log.warning(
                "warm start not applied: fitting from scratch", extra={"why": record.reason}
            )
        return fit_model(estimator, split.train, label, holdout_bound=fraction), record
    except (ValueError, TypeError) as error:  # scikit-learn's way of rejecting data
        raise RunFailed(RunReason.TRAINING_FAILED, str(error)) from error


def _bound(model: ModelArtifact, fraction: float) -> float:
    """The model's holdout bound; an artifact that predates it was trained at this fraction."""
    return fraction if model.holdout_bound is None else model.holdout_bound


def load_baseline(store: ObjectStore, baseline: ModelRef) -> ModelArtifact:
    """Download the serving model and verify its checksum before it is unpickled."""
    try:
        data = store.get_bytes(baseline.model_key)
    except ObjectNotFound as error:
        raise RunFailed(RunReason.BASELINE_NOT_FOUND, str(error)) from error
    try:
        return ModelArtifact.loads_verified(data, baseline.sha256)
    except ChecksumMismatch as error:
        raise RunFailed(
            RunReason.CHECKSUM_MISMATCH, f"baseline {baseline.version}: {error}"
        ) from error
    except ArtifactUnreadable as error:
        raise RunFailed(
            RunReason.BASELINE_UNUSABLE, f"baseline {baseline.version}: {error}"
        ) from error


def run(spec: RunSpec, store: ObjectStore) -> RunResult:
    """Carry out the run and publish its model; return the result to write (not yet written)."""
    quarantined: list[QuarantinedBatch] = []
    validation: ValidationReport | None = None
    live: LiveEvaluation | None = None
    labels: LabelReport | None = None
    drift: list[DriftedBatch] = []
    try:
        estimator = build_estimator(spec.training.estimator, spec.training.seed)
        if spec.training.warm_start:
            method_for(estimator)  # refuses an estimator that cannot continue, before any download
        baseline = load_baseline(store, spec.baseline) if spec.baseline else None
        loaded = load_batches(store, spec, classification=is_classification(estimator))
        previous = load_previous(store, spec)
        loaded = hold_contradicted(loaded, spec, baseline, previous)
        quarantined, validation, labels = loaded.quarantined, loaded.report, loaded.labels
        drift = loaded.drift
        live = score_live(spec, baseline, previous, [*loaded.accepted, *loaded.changed])
        new_keys = set(spec.data.new_batches)
        if spec.data.new_data_required and not any(b.ref.key in new_keys for b in loaded.accepted):
            log.info("every new batch was refused: no model", extra={"new": len(new_keys)})
            return RunResult(
                run_id=spec.run_id,
                status="Skipped",
                reason=RunReason.NO_NEW_DATA,
                message=f"all {len(new_keys)} new batch(es) were refused; nothing new to train on",
                quarantined=quarantined,
                validation=validation,
                monitoring=live,
                labels=labels,
                drift=drift,
            )
        result = _train_and_publish(
            spec,
            store=store,
            estimator=estimator,
            baseline=baseline,
            batches=loaded.accepted,
            quarantined=quarantined,
            validation=validation,
            labels=labels,
            label_files=loaded.label_files,
        )
        return result.model_copy(update={"monitoring": live, "labels": labels, "drift": drift})
    except RunFailed as failure:
        log.warning("run failed", extra={"reason": str(failure.reason), "detail": str(failure)})
        return RunResult(
            run_id=spec.run_id,
            status="Failed",
            reason=failure.reason,
            message=str(failure),
            quarantined=quarantined,
            validation=validation,
            monitoring=live,
            labels=labels,
            drift=drift,
        )


def load_previous(store: ObjectStore, spec: RunSpec) -> ModelArtifact | None:
    """The previous good model (verified like the baseline), None when there is none
    or it cannot be used: it only informs monitoring and the label-contradiction check."""
    if spec.previous is None:
        return None
    try:
        return load_baseline(store, spec.previous)
    except RunFailed as error:
        log.warning("previous model unusable", extra={"error": str(error)})
        return None


def score_live(
    spec: RunSpec,
    serving: ModelArtifact | None,
    previous_model: ModelArtifact | None,
    batches: list[Batch],
) -> LiveEvaluation | None:
    """Test, then train: score the serving and the previous good model on the new rows.

    This is the prequential measurement the operator's monitoring judges the
    live model by. It runs before the candidate sees the rows, on every new
    row (not only the holdout), and never fails the run: a model that cannot
    score the batch is reported without metrics and the operator counts it as
    inconclusive. With late labels the new rows are the ones whose labels
    became final since the previous run (`monitored_rows`).
    """
    rows = monitored_rows(spec, batches)
    if serving is None or rows is None:
        return None
    previous = None
    if previous_model is not None:
        try:
            previous = evaluate(previous_model, rows)
        except (ValueError, KeyError, TypeError) as error:
            log.warning("previous model cannot score the new rows", extra={"error": str(error)})
    try:
        scored = evaluate(serving, rows)
    except (ValueError, KeyError, TypeError) as error:
        log.warning("serving model cannot score the new rows", extra={"error": str(error)})
        scored = {}
    live = LiveEvaluation(rows=len(rows), serving=scored, previous=previous)
    log.info("scored the live models on the new rows", extra={"live": live.model_dump()})
    return live


def monitored_rows(spec: RunSpec, batches: list[Batch]) -> pd.DataFrame | None:
    """The labeled rows monitoring scores, None when there are none.

    Without late labels: every row of the new batches. With them: the rows
    that matured since the previous run (previousCutoff < event time <=
    cutoff) in any of the run's batches, old ones included, since an old
    batch's rows mature later; without a previous cutoff, the matured rows of
    the new batches. Immature rows (fake negatives included) are never scored.
    """
    new_keys = set(spec.data.new_batches)
    labels = spec.data.labels
    if labels is None:
        frames = [b.rows for b in batches if b.ref.key in new_keys]
    else:
        previous = labels.previous_cutoff
        frames = [
            b.rows[late_labels.newly_matured(b.maturity, previous)]
            for b in batches
            if b.maturity is not None and (previous is not None or b.ref.key in new_keys)
        ]
    frames = [frame for frame in frames if len(frame)]
    return pd.concat(frames, ignore_index=True) if frames else None


def _train_and_publish(
    spec: RunSpec,
    *,
    store: ObjectStore,
    estimator: BaseEstimator,
    baseline: ModelArtifact | None,
    batches: list[Batch],
    quarantined: list[QuarantinedBatch],
    validation: ValidationReport,
    labels: LabelReport | None,
    label_files: list[LabelFile],
) -> RunResult:
    if not batches:
        raise RunFailed(
            RunReason.NO_TRAINING_DATA,
            f"none of the {len(spec.data.batches)} batches passed validation",
        )
    chosen = choose_window(spec, estimator, baseline, window.newest(batches, spec.data.max_batches))
    batches = chosen.batches
    fraction = spec.evaluation.holdout_fraction
    split = split_batches(
        batches,
        fraction,
        evaluate_below=_bound(baseline, fraction) if baseline else None,
        new_keys=set(spec.data.new_batches),
        previous_cutoff=spec.data.labels.previous_cutoff if spec.data.labels else None,
    )
    counts = RowCounts(train=len(split.train), holdout=len(split.holdout))
    if counts.train == 0 or counts.holdout == 0:
        raise RunFailed(
            RunReason.NOT_ENOUGH_ROWS,
            f"{counts.train} training and {counts.holdout} holdout rows; both must be non-empty",
        )
    log.info("fitting", extra={"trainRows": counts.train, "holdoutRows": counts.holdout})
    candidate, warm_start = fit_candidate(spec, estimator, baseline, split)
    metrics = RunMetrics(
        candidate=evaluate(candidate, split.holdout),
        baseline=_evaluate_baseline(baseline, split.holdout) if baseline else None,
        dummy=_evaluate_dummy(candidate.classification, split, spec.data.label),
    )
    log.info("evaluated", extra={"metrics": metrics.model_dump(mode="json")})

    holdout = HoldoutSummary(rows=counts.holdout, sha256=split.holdout_sha256)
    model = _publish(
        spec,
        store=store,
        estimator=estimator,
        candidate=candidate,
        batches=batches,
        quarantined=quarantined,
        validation=validation,
        metrics=metrics,
        holdout=holdout,
        warm_start=warm_start,
        labels=labels,
        label_files=label_files,
    )
    return RunResult(
        run_id=spec.run_id,
        status="Succeeded",
        model=model,
        metrics=metrics,
        holdout=holdout,
        rows=counts,
        quarantined=quarantined,
        validation=validation,
        window=chosen.report,
    )


def choose_window(
    spec: RunSpec, estimator: BaseEstimator, baseline: ModelArtifact | None, batches: list[Batch]
) -> window.Choice:
    """The batches to train on (window.py): adaptive unless the policy says Full, a
    warm start continues the serving model (whose history is already in it), or
    labels arrive late."""
    if spec.data.selection == "Full":
        return window.full(batches)
    if spec.training.warm_start and baseline is not None:
        return window.full(batches, "warm start continues the serving model: whole window")
    if spec.data.labels is not None:
        # The newest rows are the least matured: they cannot say which history predicts.
        return window.full(batches, "late labels: the newest rows have not matured; whole window")
    label, metric = spec.data.label, spec.evaluation.metric
    choice = window.choose(
        batches,
        set(spec.data.new_batches),
        metric,
        fit=lambda rows: fit_model(clone(estimator), rows, label),
        measure=lambda model, rows: evaluate(model, rows).get(metric),
    )
    log.info("window chosen", extra={"window": choice.report.model_dump(mode="json")})
    return choice


def _evaluate_baseline(baseline: ModelArtifact, holdout: pd.DataFrame) -> dict[str, float]:
    try:
        return evaluate(baseline, holdout)
    except (ValueError, TypeError) as error:
        raise RunFailed(
            RunReason.BASELINE_UNUSABLE, f"baseline cannot score the holdout: {error}"
        ) from error


def _evaluate_dummy(classification: bool, split: Split, label: str) -> dict[str, float]:
    """The dummy baseline, fitted on the run's training rows, scored on the same holdout."""
    try:
        dummy = fit_model(dummy_estimator(classification), split.train, label)
        return evaluate(dummy, split.holdout)
    except (ValueError, TypeError) as error:
        raise RunFailed(RunReason.TRAINING_FAILED, f"dummy baseline: {error}") from error


def _publish(
    spec: RunSpec,
    *,
    store: ObjectStore,
    estimator: BaseEstimator,
    candidate: ModelArtifact,
    batches: list[Batch],
    quarantined: list[QuarantinedBatch],
    validation: ValidationReport,
    metrics: RunMetrics,
    holdout: HoldoutSummary,
    warm_start: WarmStart,
    labels: LabelReport | None,
    label_files: list[LabelFile],
) -> ResultModel:
    """Write model.joblib, model.sha256 and manifest.json, in that order."""
    prefix = spec.output.model_prefix
    data = candidate.dumps()
    model = ResultModel(
        version=spec.output.version,
        model_key=layout.model_key(prefix),
        sha256=sha256_hex(data),
        manifest_key=layout.manifest_key(prefix),
    )
    store.put_bytes(model.model_key, data)
    store.put_bytes(layout.model_checksum_key(prefix), f"{model.sha256}\n".encode(), "text/plain")
    manifest = build_manifest(
        spec,
        model=model,
        candidate=candidate,
        estimator=estimator,
        batches=[(batch.ref, len(batch.rows)) for batch in batches],
        quarantined=quarantined,
        validation=validation,
        metrics=metrics,
        holdout=holdout,
        warm_start=warm_start,
        labels=labels,
        label_files=label_files,
    )
    store.put_json(model.manifest_key, manifest)
    log.info("published model", extra={"modelKey": model.model_key, "sha256": model.sha256})
    return model


def termination_message(result: RunResult, version: str, gate_metric: str) -> str:
    """One line for `kubectl get pod -o yaml` and events: status, version and gate metric."""
    if result.status == "Succeeded":
        value = result.metrics.candidate.get(gate_metric)
        shown = "n/a" if value is None else f"{value:.4f}"
        line = f"Succeeded {version} {gate_metric}={shown}"
    else:
        line = f"{result.status} {result.reason}: {result.message}"
    return _one_line(line)


def _one_line(text: str) -> str:
    return " ".join(text.split())[:_TERMINATION_MESSAGE_LIMIT]


def write_termination_message(message: str, env: Mapping[str, str]) -> None:
    """Write to $FRESHET_TERMINATION_LOG, else to /dev/termination-log if it is writable."""
    path = env.get(variables.TERMINATION_LOG) or (
        DEFAULT_TERMINATION_LOG if os.access(DEFAULT_TERMINATION_LOG, os.W_OK) else None
    )
    if path is None:
        return
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(message + "\n")
    except OSError as error:
        log.warning("cannot write termination message", extra={"path": path, "error": str(error)})


def open_run(env: Mapping[str, str]) -> tuple[ObjectStore, RunSpec, str]:
    """The store the pod is set up for, and the run spec it names; raises
    StoreConfigError, ObjectNotFound or ValidationError when it cannot."""
    store = ObjectStore(StoreConfig.from_env(env))
    spec_key = env.get(variables.RUN_SPEC_KEY, "")
    if not spec_key:
        raise StoreConfigError(f"missing environment: {variables.RUN_SPEC_KEY}")
    spec = RunSpec.model_validate_json(store.get_bytes(spec_key))
    if spec.store.bucket != store.bucket:
        raise StoreConfigError(
            f"spec is for bucket {spec.store.bucket!r}, the pod is set up for {store.bucket!r}"
        )
    return store, spec, spec_key


def main() -> int:
    """Console script: exit 0 when a result was written (even a Failed one), 1 otherwise."""
    formatter = logs.configure("trainer")
    env = os.environ
    try:
        store, spec, spec_key = open_run(env)
        formatter.context.update(runId=spec.run_id, version=spec.output.version)
        log.info("run started", extra={"specKey": spec_key, "batches": len(spec.data.batches)})
        result = run(spec, store)
        store.put_bytes(spec.output.result_key, result.to_json_bytes(), "application/json")
    except (StoreConfigError, ObjectNotFound, ValidationError) as error:
        log.error("cannot run", extra={"error": str(error)})
        write_termination_message(_one_line(f"Error: {error}"), env)
        return 1
    except Exception as error:  # the process boundary: log it, tell Kubernetes, exit non-zero
        log.exception("run crashed")
        write_termination_message(_one_line(f"Error: {error!r}"), env)
        return 1
    message = termination_message(result, spec.output.version, spec.evaluation.metric)
    log.info("run finished", extra={"status": result.status, "summary": message})
    write_termination_message(message, env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
