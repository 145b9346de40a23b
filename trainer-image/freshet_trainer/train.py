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
import platform
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError
from sklearn.base import BaseEstimator

from freshet_trainer import logs
from freshet_trainer.artifact import (
    ArtifactUnreadable,
    ChecksumMismatch,
    ModelArtifact,
    feature_frame,
    sha256_hex,
)
from freshet_trainer.contract import (
    BaselineRef,
    BatchRef,
    Check,
    HoldoutSummary,
    Metrics,
    ModelRef,
    QuarantinedBatch,
    RowCounts,
    RunResult,
    RunSpec,
)
from freshet_trainer.data import Refused, UnparsableBatch, read_batch, validate_batch
from freshet_trainer.estimators import (
    build_estimator,
    build_pipeline,
    is_classification,
)
from freshet_trainer.holdout import RowHashes, holdout_digest, holdout_mask, row_hashes
from freshet_trainer.metrics import evaluate
from freshet_trainer.reasons import BatchReason, RunFailed, RunReason
from freshet_trainer.store import (
    ETagMismatch,
    ObjectNotFound,
    ObjectStore,
    StoreConfig,
    StoreConfigError,
)

log = logging.getLogger("freshet.trainer")

MANIFEST_API_VERSION = "freshet.dev/manifest/v1"
DEFAULT_TERMINATION_LOG = "/dev/termination-log"
_TERMINATION_MESSAGE_LIMIT = 1024  # Kubernetes keeps at most 4 KiB per container
_RECORDED_PACKAGES = (
    "freshet-trainer",
    "scikit-learn",
    "numpy",
    "scipy",
    "pandas",
    "pyarrow",
    "joblib",
)


@dataclass(frozen=True)
class Batch:
    """A batch that passed validation: its labeled rows and their content hashes."""

    ref: BatchRef
    rows: pd.DataFrame
    hashes: RowHashes


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    holdout: pd.DataFrame
    holdout_sha256: str


def load_batches(store: ObjectStore, spec: RunSpec) -> tuple[list[Batch], list[QuarantinedBatch]]:
    """Read and validate every batch of the spec; refused ones come back as quarantined."""
    accepted: list[Batch] = []
    quarantined: list[QuarantinedBatch] = []
    for ref in spec.data.batches:
        outcome = _load_batch(store, spec, ref)
        if isinstance(outcome, Batch):
            accepted.append(outcome)
        else:
            log.warning("batch refused", extra={"batch": ref.key, "reason": outcome.reason})
            quarantined.append(outcome)
    return accepted, quarantined


def _load_batch(store: ObjectStore, spec: RunSpec, ref: BatchRef) -> Batch | QuarantinedBatch:
    def refused(reason: BatchReason, *checks: Check) -> QuarantinedBatch:
        return QuarantinedBatch(key=ref.key, etag=ref.etag, reason=reason, checks=list(checks))

    try:
        frame = read_batch(store.get_bytes(ref.key, expected_etag=ref.etag), spec.data.format)
    except ObjectNotFound:
        return refused(BatchReason.NOT_FOUND, Check(name="exists", passed=False))
    except ETagMismatch as error:
        message = f"expected {error.expected}, found {error.actual}"
        return refused(BatchReason.ETAG_MISMATCH, Check(name="etag", passed=False, message=message))
    except UnparsableBatch as error:
        return refused(
            BatchReason.UNPARSABLE, Check(name="readable", passed=False, message=str(error))
        )
    verdict = validate_batch(frame, spec.data.label, spec.validation.max_null_fraction)
    if isinstance(verdict, Refused):
        return refused(verdict.reason, *verdict.checks)
    return Batch(ref, verdict.rows, row_hashes(verdict.rows, spec.data.label))


def split_batches(batches: list[Batch], fraction: float) -> Split:
    """Concatenate batches in spec order and split rows by their content hash."""
    rows = pd.concat([batch.rows for batch in batches], ignore_index=True)
    hashes = np.concatenate([batch.hashes for batch in batches])
    in_holdout = holdout_mask(hashes, fraction)
    return Split(
        train=rows[~in_holdout].reset_index(drop=True),
        holdout=rows[in_holdout].reset_index(drop=True),
        holdout_sha256=holdout_digest(hashes[in_holdout]),
    )


def fit_model(estimator: BaseEstimator, train: pd.DataFrame, label: str) -> ModelArtifact:
    """Fit the preprocessing pipeline and estimator on `train` (label column included).

    Numeric columns (booleans excepted) are scaled; every other column is
    treated as categorical. The split is recorded in the artifact so the server
    prepares request rows exactly as training did.
    """
    features = [name for name in train.columns if name != label]
    numeric = tuple(
        name
        for name in features
        if pd.api.types.is_numeric_dtype(train[name])
        and not pd.api.types.is_bool_dtype(train[name])
    )
    categorical = tuple(name for name in features if name not in numeric)
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
    )


def load_baseline(store: ObjectStore, baseline: BaselineRef) -> ModelArtifact:
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
    try:
        estimator = build_estimator(spec.training.estimator, spec.training.seed)
        baseline = load_baseline(store, spec.baseline) if spec.baseline else None
        batches, quarantined = load_batches(store, spec)
        return _train_and_publish(
            spec,
            store=store,
            estimator=estimator,
            baseline=baseline,
            batches=batches,
            quarantined=quarantined,
        )
    except RunFailed as failure:
        log.warning("run failed", extra={"reason": str(failure.reason), "detail": str(failure)})
        return RunResult(
            run_id=spec.run_id,
            status="Failed",
            reason=failure.reason,
            message=str(failure),
            quarantined=quarantined,
        )


def _train_and_publish(
    spec: RunSpec,
    *,
    store: ObjectStore,
    estimator: BaseEstimator,
    baseline: ModelArtifact | None,
    batches: list[Batch],
    quarantined: list[QuarantinedBatch],
) -> RunResult:
    if not batches:
        raise RunFailed(
            RunReason.NO_TRAINING_DATA,
            f"none of the {len(spec.data.batches)} batches passed validation",
        )
    split = split_batches(batches, spec.evaluation.holdout_fraction)
    counts = RowCounts(train=len(split.train), holdout=len(split.holdout))
    if counts.train == 0 or counts.holdout == 0:
        raise RunFailed(
            RunReason.NOT_ENOUGH_ROWS,
            f"{counts.train} training and {counts.holdout} holdout rows; both must be non-empty",
        )
    if spec.training.warm_start:
        log.warning("warmStart requested but not implemented yet: fitting from scratch")
    log.info("fitting", extra={"trainRows": counts.train, "holdoutRows": counts.holdout})
    try:
        candidate = fit_model(estimator, split.train, spec.data.label)
    except (ValueError, TypeError) as error:  # scikit-learn's way of rejecting data
        raise RunFailed(RunReason.TRAINING_FAILED, str(error)) from error
    metrics = Metrics(
        candidate=evaluate(candidate, split.holdout),
        baseline=_evaluate_baseline(baseline, split.holdout) if baseline else None,
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
        metrics=metrics,
        holdout=holdout,
    )
    return RunResult(
        run_id=spec.run_id,
        status="Succeeded",
        model=model,
        metrics=metrics,
        holdout=holdout,
        rows=counts,
        quarantined=quarantined,
    )


def _evaluate_baseline(baseline: ModelArtifact, holdout: pd.DataFrame) -> dict[str, float]:
    try:
        return evaluate(baseline, holdout)
    except (ValueError, TypeError) as error:
        raise RunFailed(
            RunReason.BASELINE_UNUSABLE, f"baseline cannot score the holdout: {error}"
        ) from error


def _publish(
    spec: RunSpec,
    *,
    store: ObjectStore,
    estimator: BaseEstimator,
    candidate: ModelArtifact,
    batches: list[Batch],
    quarantined: list[QuarantinedBatch],
    metrics: Metrics,
    holdout: HoldoutSummary,
) -> ModelRef:
    """Write model.joblib, model.sha256 and manifest.json, in that order."""
    prefix = spec.output.model_prefix
    data = candidate.dumps()
    model = ModelRef(
        version=spec.output.version,
        model_key=f"{prefix}model.joblib",
        sha256=sha256_hex(data),
        manifest_key=f"{prefix}manifest.json",
    )
    store.put_bytes(model.model_key, data)
    store.put_bytes(f"{prefix}model.sha256", f"{model.sha256}\n".encode(), "text/plain")
    manifest = {
        "apiVersion": MANIFEST_API_VERSION,
        "kind": "ModelManifest",
        "runId": spec.run_id,
        "policy": spec.policy.model_dump(by_alias=True),
        "version": spec.output.version,
        "model": {"key": model.model_key, "sha256": model.sha256},
        "data": {
            "format": spec.data.format,
            "label": spec.data.label,
            "batches": [
                {**batch.ref.model_dump(by_alias=True), "rows": len(batch.rows)}
                for batch in batches
            ],
            "quarantined": [q.model_dump(by_alias=True, mode="json") for q in quarantined],
        },
        "features": {
            "numeric": list(candidate.numeric),
            "categorical": list(candidate.categorical),
        },
        "classes": candidate.classes,
        "estimator": {
            "class": spec.training.estimator.class_name,
            "params": spec.training.estimator.params,
            "effectiveParams": _json_safe(estimator.get_params(deep=False)),
        },
        "seed": spec.training.seed,
        "warmStart": {"requested": spec.training.warm_start, "applied": False},
        "holdout": {
            "fraction": spec.evaluation.holdout_fraction,
            **holdout.model_dump(by_alias=True),
        },
        "baseline": spec.baseline.model_dump(by_alias=True) if spec.baseline else None,
        "metrics": metrics.model_dump(by_alias=True),
        "packages": {"python": platform.python_version(), **_package_versions()},
    }
    store.put_json(model.manifest_key, manifest)
    log.info("published model", extra={"modelKey": model.model_key, "sha256": model.sha256})
    return model


def _json_safe(params: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: value if value is None or isinstance(value, str | int | float | bool) else repr(value)
        for name, value in sorted(params.items())
    }


def _package_versions() -> dict[str, str]:
    versions = {}
    for name in _RECORDED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def termination_message(result: RunResult, version: str, gate_metric: str) -> str:
    """One line for `kubectl get pod -o yaml` and events: status, version and gate metric."""
    if result.status == "Succeeded":
        value = result.metrics.candidate.get(gate_metric)
        shown = "n/a" if value is None else f"{value:.4f}"
        line = f"Succeeded {version} {gate_metric}={shown}"
    else:
        line = f"Failed {result.reason}: {result.message}"
    return _one_line(line)


def _one_line(text: str) -> str:
    return " ".join(text.split())[:_TERMINATION_MESSAGE_LIMIT]


def write_termination_message(message: str, env: Mapping[str, str]) -> None:
    """Write to $FRESHET_TERMINATION_LOG, else to /dev/termination-log if it is writable."""
    path = env.get("FRESHET_TERMINATION_LOG") or (
        DEFAULT_TERMINATION_LOG if os.access(DEFAULT_TERMINATION_LOG, os.W_OK) else None
    )
    if path is None:
        return
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(message + "\n")
    except OSError as error:
        log.warning("cannot write termination message", extra={"path": path, "error": str(error)})


def main() -> int:
    """Console script: exit 0 when a result was written (even a Failed one), 1 otherwise."""
    formatter = logs.configure("trainer")
    env = os.environ
    try:
        store = ObjectStore(StoreConfig.from_env(env))
        spec_key = env.get("FRESHET_RUN_SPEC_KEY", "")
        if not spec_key:
            raise StoreConfigError("missing environment: FRESHET_RUN_SPEC_KEY")
        spec = RunSpec.model_validate_json(store.get_bytes(spec_key))
        if spec.store.bucket != store.bucket:
            raise StoreConfigError(
                f"spec is for bucket {spec.store.bucket!r}, the pod is set up for {store.bucket!r}"
            )
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
