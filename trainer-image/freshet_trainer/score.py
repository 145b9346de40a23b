"""`freshet-score`: one shard of a batch scoring run (freshet_contract.scoring).

Each input is checked like a training batch's file (present, pinned ETag, size,
readable, column limit), then for the columns scoring needs (the model's
features, the id and passthrough columns); a refused input is reported with its
check and left for the operator to quarantine. Accepted inputs are predicted in
chunks (memory stays bounded whatever the file's size) with the model server's
own function, and written in the input's format.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import tempfile
from collections.abc import Mapping

import pandas as pd
from freshet_contract import env as variables
from freshet_contract import logs
from freshet_contract.layout import StateLayout
from freshet_contract.result import Check, QuarantinedBatch
from freshet_contract.scoring import (
    PREDICTION_COLUMN,
    PROBABILITY_PREFIX,
    ScoredInput,
    ScoringSpec,
    ShardReport,
)
from freshet_contract.vocabulary import DataFormat
from pydantic import ValidationError

from freshet_trainer.artifact import ArtifactUnreadable, ChecksumMismatch, ModelArtifact
from freshet_trainer.batches import read_into
from freshet_trainer.predict import predict
from freshet_trainer.reasons import BatchReason
from freshet_trainer.store import ObjectNotFound, ObjectStore, StoreConfig, StoreConfigError
from freshet_trainer.train import write_termination_message
from freshet_trainer.validation.report import Rule

log = logging.getLogger("freshet.score")

CHUNK_ROWS = 50_000
COLUMNS = Rule("scoringColumns", BatchReason.MISSING_COLUMNS)


def scored_frame(model: ModelArtifact, frame: pd.DataFrame, spec: ScoringSpec) -> pd.DataFrame:
    """The ids and passthrough columns, the prediction, and each class's probability."""
    keep = [*spec.id_columns, *(c for c in spec.passthrough_columns if c not in spec.id_columns)]
    parts = []
    for start in range(0, len(frame), CHUNK_ROWS):
        chunk = frame.iloc[start : start + CHUNK_ROWS]
        made = predict(model, chunk)
        out = chunk[keep].reset_index(drop=True)
        out[PREDICTION_COLUMN] = made.labels
        if made.probabilities is not None and made.classes is not None:
            for i, label in enumerate(made.classes):
                out[f"{PROBABILITY_PREFIX}{label}"] = made.probabilities[:, i]
        parts.append(out)
    if not parts:
        return pd.DataFrame(columns=[*keep, PREDICTION_COLUMN])
    return pd.concat(parts, ignore_index=True)


def encode(frame: pd.DataFrame, data_format: DataFormat) -> bytes:
    buffer = io.BytesIO()
    if data_format == "csv":
        frame.to_csv(buffer, index=False)
    elif data_format == "jsonl":
        frame.to_json(buffer, orient="records", lines=True)
    else:
        frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def _columns(model: ModelArtifact, frame: pd.DataFrame, spec: ScoringSpec) -> Check | None:
    needed = [*model.numeric, *model.categorical, *spec.id_columns, *spec.passthrough_columns]
    missing = sorted({c for c in needed if c not in frame.columns})
    if missing:
        return COLUMNS.outcome(
            False,
            value=len(missing),
            message=f"missing {missing}: scoring needs the model's features"
            f" {sorted({*model.numeric, *model.categorical})} and the id and passthrough columns",
        )
    return None


def score_shard(store: ObjectStore, spec: ScoringSpec, index: int) -> ShardReport:
    data = store.get_bytes(spec.model.model_key)
    model = ModelArtifact.loads_verified(data, spec.model.sha256)
    scored, refused = [], []
    for position, item in enumerate(spec.inputs):
        if position % spec.shards != index:
            continue
        with tempfile.TemporaryFile() as handle:
            got = read_into(
                store,
                item,
                handle,
                data_format=spec.format,
                max_bytes=spec.max_batch_bytes,
                max_columns=spec.max_columns,
            )
        if not isinstance(got, Check):
            got = _columns(model, got, spec) or got
        if isinstance(got, Check):
            refused.append(
                QuarantinedBatch(
                    key=item.key, etag=item.etag, reason=got.code, message=got.message, checks=[got]
                )
            )
            log.warning("input refused", extra={"input": item.key, "reason": got.code})
            continue
        try:
            out = scored_frame(model, got, spec)
        except (ValueError, TypeError) as error:  # a value the pipeline cannot take
            check = Rule("predictable", BatchReason.TYPE_MISMATCH).outcome(
                False, message=f"the model cannot score these rows: {error}"
            )
            refused.append(
                QuarantinedBatch(
                    key=item.key,
                    etag=item.etag,
                    reason=check.code,
                    message=check.message,
                    checks=[check],
                )
            )
            continue
        etag = store.put_bytes(item.output_key, encode(out, spec.format))
        scored.append(
            ScoredInput(
                key=item.key,
                etag=item.etag,
                rows=len(out),
                output_key=item.output_key,
                output_etag=etag,
            )
        )
        log.info(
            "input scored", extra={"input": item.key, "rows": len(out), "output": item.output_key}
        )
    return ShardReport(run_id=spec.run_id, index=index, scored=scored, refused=refused)


def run(env: Mapping[str, str]) -> ShardReport:
    store = ObjectStore(StoreConfig.from_env(env))
    key = env.get(variables.SCORING_SPEC_KEY, "")
    if not key:
        raise StoreConfigError(f"missing environment: {variables.SCORING_SPEC_KEY}")
    spec = ScoringSpec.model_validate_json(store.get_bytes(key))
    index = int(env.get(variables.COMPLETION_INDEX, "0"))
    report = score_shard(store, spec, index)
    store.put_bytes(
        StateLayout(spec.store.root).shard_report_key(spec.run_id, index),
        report.to_json_bytes(),
        "application/json",
    )
    return report


def main() -> int:
    formatter = logs.configure("scorer")
    env = os.environ
    formatter.context.update(shard=env.get(variables.COMPLETION_INDEX, "0"))
    try:
        report = run(env)
    except (
        StoreConfigError,
        ObjectNotFound,
        ValidationError,
        ChecksumMismatch,
        ArtifactUnreadable,
    ) as error:
        log.error("cannot score", extra={"error": str(error)})
        write_termination_message(f"Error: {error}", env)
        return 1
    message = f"{len(report.scored)} input(s) scored, {len(report.refused)} refused"
    log.info(message)
    write_termination_message(message, env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
