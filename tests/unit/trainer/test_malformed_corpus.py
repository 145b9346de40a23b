"""Every malformed file of the corpus is quarantined with a reason, and none crashes the trainer.

The corpus goes through `load_batches`, the trainer's own path for a batch
(download to a temporary file, parse, validate), with each file as the new
batch of a run whose reference window is one clean batch. Object storage is an
in-memory stand-in there; a sample also goes through `freshet-train` against
the real S3 server.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

import pytest
from freshet_contract.run import RunSpec
from freshet_trainer.batches import load_batches
from freshet_trainer.store import ObjectNotFound, ObjectStore, ObjectTooLarge

from .malformed import Malformed, corpus
from .synthetic import classification_frame, encode, run_spec
from .test_train_s3 import put_batch, train

CORPUS = corpus()
S3_SAMPLE = {
    "csv-gzip-no-extension",
    "csv-latin-1",
    "csv-truncated-mid-row",
    "csv-10k-columns",
    "csv-mixed-types",
    "csv-duplicate-column-names",
}


class MemorySource:
    """The store's `download`, from a dict (ETags are not checked here)."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects

    def download(self, key: str, target: IO[bytes], expected_etag: str, max_bytes: int) -> int:
        if key not in self.objects:
            raise ObjectNotFound(key)
        data = self.objects[key]
        if len(data) > max_bytes:
            raise ObjectTooLarge(key, len(data), max_bytes)
        target.write(data)
        return len(data)


def spec_with_reference(data_format: str, new: dict[str, Any], **validation: Any) -> RunSpec:
    reference = {"key": "in/reference", "etag": "r", "size": 1}
    document = run_spec([reference, new], data_format=data_format)
    document["data"]["newBatches"] = [new["key"]]
    document["validation"] = validation
    return RunSpec.model_validate(document)


def test_the_corpus_has_at_least_fifty_distinct_files() -> None:
    assert len(CORPUS) >= 50
    assert len({item.name for item in CORPUS}) == len(CORPUS)
    assert {item.format for item in CORPUS} == {"csv", "jsonl", "parquet"}


@pytest.mark.parametrize("item", CORPUS, ids=[item.name for item in CORPUS])
def test_malformed_file_is_quarantined_with_its_reason(item: Malformed) -> None:
    source = MemorySource(
        {
            "in/reference": encode(classification_frame(300, seed=1), item.format),
            "in/bad": item.data,
        }
    )
    spec = spec_with_reference(item.format, {"key": "in/bad", "etag": "b", "size": len(item.data)})

    loaded = load_batches(source, spec, classification=True)

    assert [b.status for b in loaded.report.batches] == ["Accepted", "Quarantined"]
    (refused,) = loaded.quarantined
    assert refused.reason in item.expected, refused.message
    assert refused.message
    failed = [check for check in refused.checks if not check.passed]
    assert failed and failed[0].code == refused.reason
    assert [b.ref.key for b in loaded.accepted] == ["in/reference"]


SMALL = encode(classification_frame(100, seed=1), "csv")
BIG = encode(classification_frame(1000, seed=2), "csv")


def test_a_batch_above_max_batch_bytes_is_refused_before_download() -> None:
    source = MemorySource({"in/reference": SMALL})
    limit = len(SMALL) + 1
    spec = spec_with_reference(
        "csv", {"key": "in/big", "etag": "b", "size": len(BIG)}, maxBatchBytes=limit
    )

    (refused,) = load_batches(source, spec, classification=True).quarantined

    assert refused.reason == "BatchTooLarge"
    assert (refused.checks[0].value, refused.checks[0].limit) == (len(BIG), limit)


def test_a_batch_larger_than_listed_is_cut_off_while_streaming() -> None:
    source = MemorySource({"in/reference": SMALL, "in/big": BIG})
    spec = spec_with_reference(
        "csv", {"key": "in/big", "etag": "b", "size": 10}, maxBatchBytes=len(SMALL) + 1
    )

    (refused,) = load_batches(source, spec, classification=True).quarantined

    assert refused.reason == "BatchTooLarge"


def test_malformed_files_through_the_trainer_on_real_s3(
    store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = put_batch(store, "in/ref.csv", encode(classification_frame(400, seed=1), "csv"))
    sample = [item for item in CORPUS if item.name in S3_SAMPLE]
    bad = [put_batch(store, f"in/{item.name}", item.data) for item in sample]
    spec = run_spec([reference, *bad])
    spec["data"]["newBatches"] = [batch["key"] for batch in bad]

    code, result, message = train(store, spec, tmp_path, monkeypatch)

    assert code == 0 and result is not None, message
    assert result.status == "Succeeded", result.message
    reasons = {q.key: q.reason for q in result.quarantined}
    assert reasons.keys() == {f"in/{item.name}" for item in sample}
    for item in sample:
        assert reasons[f"in/{item.name}"] in item.expected
    assert result.validation is not None
    assert result.validation.reference.batches == ["in/ref.csv"]
    assert result.rows is not None and result.rows.train + result.rows.holdout == 400
