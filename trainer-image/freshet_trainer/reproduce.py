"""`freshet-reproduce`: retrain a published model from its manifest and compare.

    freshet-reproduce --manifest-key KEY [--output-prefix PREFIX] [--sample ROWS]

An audit asks "could this model be made again from what we recorded?". This
rebuilds the original run from the manifest (its embedded run spec, on exactly
the batches that were trained on, pinned by ETag, with the same seed, the same
holdout fraction and, for a warm start, the same baseline verified by its
checksum), runs it like a training Job, publishes the result under
PREFIX (default `<root>reproductions/<version>/`), then predicts with both
models on up to ROWS rows of those batches and prints a JSON report.
Exit 0 when every prediction (and probability) is identical, 1 when not or
when the run could not be reproduced, 2 when the environment or the manifest
is unusable.

The original model and a warm-start baseline are unpickled only after their
bytes match the checksums in the manifest. The manifest sits in the bucket, so
this trusts it as far as the trainer trusts a run spec: run it with
credentials, and on a bucket, you trust.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from freshet_contract import logs
from freshet_contract.run import RunSpec
from pydantic import ValidationError

from freshet_trainer.artifact import ArtifactUnreadable, ChecksumMismatch, ModelArtifact
from freshet_trainer.manifest import Manifest
from freshet_trainer.reading import UnreadableBatch, read_batch_file
from freshet_trainer.store import (
    ETagMismatch,
    ObjectNotFound,
    ObjectStore,
    StoreConfig,
    StoreConfigError,
)
from freshet_trainer.train import run

log = logging.getLogger("freshet.reproduce")

DEFAULT_SAMPLE_ROWS = 10_000


@dataclass(frozen=True)
class Report:
    """What the reproduction found; printed as JSON."""

    version: str
    original_sha256: str
    reproduced_sha256: str | None
    bit_identical: bool
    rows_compared: int
    predictions_equal: bool
    result_key: str
    message: str = ""

    @property
    def reproduced(self) -> bool:
        return self.predictions_equal and self.rows_compared > 0

    def to_json(self) -> dict[str, object]:
        return {
            "version": self.version,
            "reproduced": self.reproduced,
            "originalSha256": self.original_sha256,
            "reproducedSha256": self.reproduced_sha256,
            "bitIdentical": self.bit_identical,
            "rowsCompared": self.rows_compared,
            "predictionsEqual": self.predictions_equal,
            "resultKey": self.result_key,
            "message": self.message,
        }


class Unreproducible(RuntimeError):
    """The manifest names something that no longer exists or does not verify."""


def reproduce(
    store: ObjectStore,
    manifest_key: str,
    output_prefix: str | None = None,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
) -> Report:
    """Retrain from the manifest at `manifest_key` and compare with the original model."""
    manifest = Manifest.model_validate_json(store.get_bytes(manifest_key))
    prefix = output_prefix or f"{manifest.run_spec.store.root}reproductions/{manifest.version}/"
    if not prefix.endswith("/"):
        prefix += "/"
    spec = manifest.recipe(prefix)
    original = _load(store, manifest.model.key, manifest.model.sha256)

    result = run(spec, store)
    store.put_bytes(spec.output.result_key, result.to_json_bytes(), "application/json")
    report = Report(
        version=manifest.version,
        original_sha256=manifest.model.sha256,
        reproduced_sha256=None,
        bit_identical=False,
        rows_compared=0,
        predictions_equal=False,
        result_key=spec.output.result_key,
    )
    if result.model is None:
        return replace(report, message=f"run {result.status}: {result.reason}: {result.message}")
    if result.quarantined:
        refused = ", ".join(f"{q.key} ({q.reason})" for q in result.quarantined)
        return replace(report, message=f"batches the model was trained on were refused: {refused}")
    reproduced = _load(store, result.model.model_key, result.model.sha256)
    sample = _sample(store, manifest, spec, sample_rows)
    return replace(
        report,
        reproduced_sha256=result.model.sha256,
        bit_identical=result.model.sha256 == manifest.model.sha256,
        rows_compared=len(sample),
        predictions_equal=_same_predictions(original, reproduced, sample),
    )


def _load(store: ObjectStore, key: str, sha256: str) -> ModelArtifact:
    try:
        return ModelArtifact.loads_verified(store.get_bytes(key), sha256)
    except (ObjectNotFound, ChecksumMismatch, ArtifactUnreadable) as error:
        raise Unreproducible(f"{key}: {error}") from error


def _sample(store: ObjectStore, manifest: Manifest, spec: RunSpec, limit: int) -> pd.DataFrame:
    """The first `limit` rows of the trained batches, read at their recorded ETags."""
    frames: list[pd.DataFrame] = []
    remaining = limit
    for batch in manifest.data.batches:
        if remaining <= 0:
            break
        try:
            raw = store.get_bytes(batch.key, expected_etag=batch.etag)
            frame = read_batch_file(io.BytesIO(raw), spec.data.format, spec.validation.max_columns)
        except (ObjectNotFound, ETagMismatch, UnreadableBatch) as error:
            raise Unreproducible(f"batch {batch.key}: {error}") from error
        frames.append(frame.head(remaining))
        remaining -= len(frames[-1])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _same_predictions(
    original: ModelArtifact, reproduced: ModelArtifact, rows: pd.DataFrame
) -> bool:
    """Exactly equal predictions, and probabilities where the model gives them."""
    if rows.empty:
        return False
    left, right = original.features(rows), reproduced.features(rows)
    if not np.array_equal(original.pipeline.predict(left), reproduced.pipeline.predict(right)):
        return False
    if original.classification and hasattr(original.pipeline, "predict_proba"):
        return bool(
            np.array_equal(
                original.pipeline.predict_proba(left), reproduced.pipeline.predict_proba(right)
            )
        )
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Console script; prints the report as JSON on stdout."""
    parser = argparse.ArgumentParser(prog="freshet-reproduce", description=__doc__.splitlines()[0])
    parser.add_argument("--manifest-key", required=True, help="object key of manifest.json")
    parser.add_argument("--output-prefix", help="where to publish the retrained model")
    parser.add_argument("--sample", type=int, default=DEFAULT_SAMPLE_ROWS, help="rows to compare")
    args = parser.parse_args(argv)
    logs.configure("reproduce")
    try:
        store = ObjectStore(StoreConfig.from_env(os.environ))
        report = reproduce(store, args.manifest_key, args.output_prefix, args.sample)
    except (StoreConfigError, ObjectNotFound, ValidationError) as error:
        log.error("cannot reproduce", extra={"error": str(error)})
        return 2
    except Unreproducible as error:
        log.error("not reproducible", extra={"error": str(error)})
        json.dump({"reproduced": False, "message": str(error)}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 1
    json.dump(report.to_json(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0 if report.reproduced else 1


if __name__ == "__main__":
    sys.exit(main())
