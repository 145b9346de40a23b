"""The trainer image's two halves of a preprocessing run (freshet_contract.preprocess):
`freshet-preprocess-inputs` before the user's step, `freshet-preprocess-publish`
after it. The user's step in between sees files only."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from freshet_contract import env as variables
from freshet_contract import logs
from freshet_contract.layout import StateLayout
from freshet_contract.preprocess import (
    INPUTS_FILE,
    PreparedBatch,
    PreparedData,
    PreprocessInputs,
    StepInput,
    input_hash,
)
from freshet_contract.result import Check, QuarantinedBatch
from freshet_contract.run import PreparedRef
from pydantic import TypeAdapter, ValidationError

from freshet_trainer.batches import read_for_run
from freshet_trainer.reading import UnreadableBatch, read_batch_file
from freshet_trainer.store import ObjectNotFound, StoreConfigError
from freshet_trainer.train import open_run, write_termination_message

log = logging.getLogger("freshet.preprocess")

REFUSED_FILE = "refused.json"
"""Next to inputs.json: the raw batches the step is not given, for the manifest."""
_REFUSED = TypeAdapter(list[QuarantinedBatch])


class StepFailed(Exception):
    """The user's step did not do what the contract asks; the message says what."""


def _dirs(env: Mapping[str, str]) -> tuple[Path, Path]:
    try:
        return Path(env[variables.INPUT_DIR]), Path(env[variables.OUTPUT_DIR])
    except KeyError as missing:
        raise StoreConfigError(f"missing environment: {missing}") from missing


def prepare_inputs(env: Mapping[str, str]) -> PreprocessInputs:
    """Download and check every batch of the run; write the accepted ones for the step."""
    store, spec, _ = open_run(env)
    input_dir, output_dir = _dirs(env)
    input_dir.mkdir(parents=True, exist_ok=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    accepted, refused = [], []
    for i, ref in enumerate(spec.data.batches):
        path = f"{i:05d}.{spec.data.format}"
        target = input_dir / path
        with open(target, "w+b") as handle:
            got = read_for_run(store, ref, handle, spec)
        if isinstance(got, Check):
            target.unlink()
            refused.append(
                QuarantinedBatch(
                    key=ref.key, etag=ref.etag, reason=got.code, message=got.message, checks=[got]
                )
            )
            log.warning(
                "batch refused before preprocessing", extra={"batch": ref.key, "reason": got.code}
            )
            continue
        columns = [str(c) for c in got.columns]
        accepted.append(
            StepInput(key=ref.key, etag=ref.etag, path=path, rows=len(got), columns=columns)
        )
    inputs = PreprocessInputs(
        run_id=spec.run_id, format=spec.data.format, label=spec.data.label, inputs=accepted
    )
    (input_dir / INPUTS_FILE).write_bytes(inputs.to_json_bytes())
    (input_dir / REFUSED_FILE).write_bytes(_REFUSED.dump_json(refused, by_alias=True))
    log.info("inputs ready", extra={"accepted": len(accepted), "refused": len(refused)})
    return inputs


def publish(env: Mapping[str, str]) -> PreparedData:
    """Check and upload the step's outputs, then the manifest, last."""
    store, spec, _ = open_run(env)
    input_dir, output_dir = _dirs(env)
    inputs = PreprocessInputs.model_validate_json((input_dir / INPUTS_FILE).read_bytes())
    refused = _REFUSED.validate_json((input_dir / REFUSED_FILE).read_bytes())
    if inputs.run_id != spec.run_id:
        raise StepFailed(f"inputs.json is for run {inputs.run_id}, not {spec.run_id}")
    layout = StateLayout(spec.store.root)
    prefix = layout.prepared_prefix(spec.run_id)
    batches = []
    for item in inputs.inputs:
        out = output_dir / item.path
        if not out.is_file():
            raise StepFailed(f"the step wrote no output for {item.key} (expected {out})")
        data = out.read_bytes()
        if len(data) > spec.validation.max_batch_bytes:
            raise StepFailed(
                f"the output for {item.key} is {len(data)} bytes, more than the"
                f" {spec.validation.max_batch_bytes} validation.maxBatchBytes allows"
            )
        try:
            with open(out, "rb") as handle:
                frame = read_batch_file(handle, spec.data.format, spec.validation.max_columns)
        except UnreadableBatch as error:
            raise StepFailed(
                f"the output for {item.key} is not {spec.data.format}: {error}"
            ) from error
        columns = [str(c) for c in frame.columns]
        if spec.data.labels is None and spec.data.label not in columns:
            raise StepFailed(
                f"the output for {item.key} has no label column {spec.data.label!r}"
                f" (columns: {', '.join(columns)})"
            )
        key = f"{prefix}{item.key}"
        etag = store.put_bytes(key, data)
        batches.append(
            PreparedBatch(
                key=item.key,
                etag=item.etag,
                rows=len(frame),
                columns=columns,
                prepared=PreparedRef(key=key, etag=etag, size=len(data)),
            )
        )
        log.info(
            "prepared batch published",
            extra={"batch": item.key, "rows": len(frame), "columns": len(columns)},
        )
    manifest = PreparedData(
        run_id=spec.run_id,
        input_hash=input_hash((i.key, i.etag) for i in inputs.inputs),
        batches=batches,
        refused=refused,
    )
    store.put_bytes(
        layout.prepared_manifest_key(spec.run_id), manifest.to_json_bytes(), "application/json"
    )
    return manifest


def _run(component: str, work: str) -> int:
    logs.configure(component)
    env = os.environ
    try:
        if work == "inputs":
            inputs = prepare_inputs(env)
            message = f"{len(inputs.inputs)} batch(es) ready for the step"
        else:
            manifest = publish(env)
            message = (
                f"{len(manifest.batches)} prepared batch(es) published,"
                f" {len(manifest.refused)} refused"
            )
    except StepFailed as error:
        log.error("the preprocessing step's output is unusable", extra={"error": str(error)})
        write_termination_message(f"PreprocessOutputInvalid: {error}", env)
        return 1
    except (StoreConfigError, ObjectNotFound, ValidationError, OSError, json.JSONDecodeError) as e:
        log.error("cannot preprocess", extra={"error": str(e)})
        write_termination_message(f"Error: {e}", env)
        return 1
    log.info(message)
    write_termination_message(message, env)
    return 0


def inputs_main() -> int:
    return _run("preprocess-inputs", "inputs")


def publish_main() -> int:
    return _run("preprocess-publish", "publish")


if __name__ == "__main__":
    sys.exit(publish_main() if sys.argv[1:] == ["publish"] else inputs_main())
