"""Late labels through `load_batches`, the holdout split and monitoring (in-memory store)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from freshet_contract.result import BatchValidation, Check
from freshet_contract.run import RunSpec
from freshet_trainer.batches import LoadedBatches, load_batches
from freshet_trainer.holdout import units
from freshet_trainer.train import monitored_rows, split_batches

from .malformed import Malformed
from .synthetic import (
    EPOCH,
    classification_frame,
    encode,
    event_frames,
    late_labels_block,
    run_spec,
)
from .test_malformed_corpus import CORPUS, MemorySource

DAY = pd.Timedelta(days=1)


class Run:
    """Feature batches and label files of one run, and the spec the operator would write."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.batches: list[dict[str, Any]] = []
        self.files: list[dict[str, Any]] = []
        self.truth: dict[str, pd.DataFrame] = {}
        self.format = "csv"

    def batch(
        self, key: str, frame: pd.DataFrame, labels: pd.DataFrame | bytes | None = None
    ) -> str:
        self._put(key, encode(frame, self.format), self.batches)
        if labels is not None:
            self.label_file(key, f"labels/{key}/part-1.csv", labels)
        return key

    def events(
        self, key: str, rows: int, seed: int, start: pd.Timestamp, *, labels: bool = True
    ) -> str:
        features, positives = event_frames(rows, seed, start=start, prefix=key)
        self.truth[key] = features
        return self.batch(key, features, positives if labels else None)

    def label_file(self, batch: str, key: str, labels: pd.DataFrame | bytes) -> None:
        data = labels if isinstance(labels, bytes) else encode(labels, self.format)
        self._put(key, data, self.files, batch=batch)

    def _put(self, key: str, data: bytes, into: list[dict[str, Any]], **extra: Any) -> None:
        self.objects[key] = data
        into.append({**extra, "key": key, "etag": f"etag-{key}", "size": len(data)})

    def spec(
        self, new: list[str] | None = None, validation: dict[str, Any] | None = None, **labels: Any
    ) -> RunSpec:
        document = run_spec(self.batches, data_format=self.format)
        if new is not None:
            document["data"]["newBatches"] = new
        document["data"]["labels"] = late_labels_block(self.files, **labels)
        document["validation"] = validation or {}
        return RunSpec.model_validate(document)

    def load(self, new: list[str] | None = None, **labels: Any) -> tuple[RunSpec, LoadedBatches]:
        spec = self.spec(new, **labels)
        return spec, load_batches(MemorySource(self.objects), spec, classification=True)


def status(loaded: LoadedBatches) -> dict[str, str]:
    return {b.key: b.status for b in loaded.report.batches}


def check(batch: BatchValidation, name: str) -> Check:
    (found,) = [c for c in batch.checks if c.name == name]
    return found


# -- feature batches -------------------------------------------------------------


def _features(rows: int = 120) -> pd.DataFrame:
    features, _ = event_frames(rows, seed=5, start=EPOCH)
    return features


FEATURE_REFUSALS = {
    "no-id-column": (_features().drop(columns="event_id"), "IdColumnMissing"),
    "no-event-time-column": (_features().drop(columns="event_time"), "EventTimeMissing"),
    "bad-event-times": (
        _features().assign(event_time=["someday", *_features()["event_time"][1:]]),
        "InvalidEventTimes",
    ),
    "null-event-time": (
        _features().assign(event_time=[None, *_features()["event_time"][1:]]),
        "InvalidEventTimes",
    ),
    "duplicate-ids": (_features().assign(event_id="same"), "DuplicateIds"),
}


@pytest.mark.parametrize(
    ("frame", "reason"), FEATURE_REFUSALS.values(), ids=FEATURE_REFUSALS.keys()
)
def test_a_feature_batch_with_bad_bookkeeping_is_quarantined(
    frame: pd.DataFrame, reason: str
) -> None:
    run = Run()
    good = run.events("in/good.csv", 300, seed=1, start=EPOCH)
    bad = run.batch("in/bad.csv", frame, labels=pd.DataFrame({"event_id": ["x"], "y": [1]}))

    _, loaded = run.load()

    assert status(loaded) == {good: "Accepted", bad: "Quarantined"}
    (refused,) = loaded.quarantined  # its label file is neither read nor refused
    assert (refused.key, refused.reason) == (bad, reason)
    assert refused.message
    names = [c.name for c in refused.checks]
    assert names[:3] == ["size", "readable", "columnCount"] and "featureDrift" in names
    assert [b.ref.key for b in loaded.accepted] == [good]
    assert loaded.labels is not None and [b.key for b in loaded.labels.batches] == [good]
    assert [f.key for f in loaded.label_files] == [f"labels/{good}/part-1.csv"]


def test_an_empty_feature_batch_is_still_an_empty_batch() -> None:
    run = Run()
    run.events("in/good.csv", 300, seed=1, start=EPOCH)
    run.batch("in/empty.csv", _features().head(0))

    _, loaded = run.load()

    assert [q.reason for q in loaded.quarantined] == ["EmptyBatch"]


# -- label files -----------------------------------------------------------------

LABEL_REFUSALS: dict[str, tuple[pd.DataFrame | bytes, str, dict[str, Any]]] = {
    "unreadable": (b"\x1f\x8b\x08\x00 not a csv", "Unparsable", {}),
    "no-id-column": (pd.DataFrame({"y": [1, 0]}), "IdColumnMissing", {}),
    "no-label-column": (pd.DataFrame({"event_id": ["in/b.csv-1"]}), "LabelMissing", {}),
    "null-labels": (
        pd.DataFrame({"event_id": ["in/b.csv-1", "in/b.csv-2"], "y": [1, None]}),
        "NullLabels",
        {},
    ),
    "unknown-labels": (
        pd.DataFrame({"event_id": ["in/b.csv-1"], "y": [7]}),
        "UnknownLabels",
        {"labelValues": ["0", "1"]},
    ),
    "one-id-two-labels": (
        pd.DataFrame({"event_id": ["in/b.csv-1", "in/b.csv-1"], "y": [1, 0]}),
        "IdLabelConflict",
        {},
    ),
    "too-large": (pd.DataFrame({"event_id": ["x"] * 20_000, "y": 1}), "BatchTooLarge", {}),
}


@pytest.mark.parametrize(
    ("labels", "reason", "validation"), LABEL_REFUSALS.values(), ids=LABEL_REFUSALS.keys()
)
def test_a_bad_label_file_is_quarantined_and_the_batch_trains_without_it(
    labels: pd.DataFrame | bytes, reason: str, validation: dict[str, Any]
) -> None:
    run = Run()
    batch = run.events("in/b.csv", 300, seed=1, start=EPOCH)
    run.label_file(batch, "labels/in/b.csv/part-2.csv", labels)
    if reason == "BatchTooLarge":
        validation["maxBatchBytes"] = len(run.objects["labels/in/b.csv/part-2.csv"]) - 1
    spec = run.spec(validation=validation)

    loaded = load_batches(MemorySource(run.objects), spec, classification=True)

    assert status(loaded) == {batch: "Accepted"}
    (refused,) = loaded.quarantined
    assert (refused.key, refused.etag, refused.reason) == (
        "labels/in/b.csv/part-2.csv",
        "etag-labels/in/b.csv/part-2.csv",
        reason,
    )
    assert refused.message and next(c for c in refused.checks if not c.passed).code == reason
    assert [f.key for f in loaded.label_files] == ["labels/in/b.csv/part-1.csv"]
    assert loaded.labels is not None and loaded.labels.rows.labeled > 0  # part-1 still counts


def test_a_missing_label_file_is_quarantined_like_a_missing_batch() -> None:
    run = Run()
    batch = run.events("in/b.csv", 300, seed=1, start=EPOCH)
    run.files.append({"batch": batch, "key": "labels/gone.csv", "etag": "e", "size": 3})

    _, loaded = run.load()

    assert [(q.key, q.reason) for q in loaded.quarantined] == [("labels/gone.csv", "BatchNotFound")]
    assert status(loaded) == {batch: "Accepted"}


def test_later_label_files_override_earlier_ones_and_unmatched_ids_are_counted() -> None:
    run = Run()
    features, _ = event_frames(100, seed=1, start=EPOCH, prefix="b")
    run.batch("in/b.csv", features)
    ids = list(features["event_id"])
    run.label_file("in/b.csv", "labels/b/1.csv", pd.DataFrame({"event_id": ids[:10], "y": 1}))
    run.label_file("in/b.csv", "labels/b/2.csv", pd.DataFrame({"event_id": ids[:5], "y": 0}))
    run.label_file("in/b.csv", "labels/b/3.csv", pd.DataFrame({"event_id": ["nope"], "y": 1}))

    _, loaded = run.load(delaySeconds=0)

    (batch,) = loaded.accepted
    assert batch.rows["y"].sum() == 5
    assert loaded.labels is not None
    assert (loaded.labels.rows.labeled, loaded.labels.rows.unmatched_labels) == (10, 1)
    assert loaded.labels.rows.defaulted == 90


def test_a_label_column_left_in_a_feature_batch_is_ignored() -> None:
    run = Run()
    features, positives = event_frames(200, seed=1, start=EPOCH)
    run.batch("in/b.csv", features.assign(y=1), positives)

    _, loaded = run.load(delaySeconds=0)

    (batch,) = loaded.accepted
    assert batch.rows["y"].sum() == len(positives) < 200
    assert set(batch.rows.columns) == {"x1", "x2", "color", "y"}


# -- maturity, validation and the holdout ----------------------------------------


def test_a_batch_whose_rows_are_all_immature_is_accepted_and_waits() -> None:
    run = Run()
    old = run.events("in/old.csv", 300, seed=1, start=EPOCH)
    fresh = run.events("in/fresh.csv", 300, seed=2, start=EPOCH + DAY)

    spec, loaded = run.load(new=[fresh], delaySeconds=6 * 3600)  # fresh spans 5 hours

    assert status(loaded) == {old: "Accepted", fresh: "Accepted"}
    (report,) = [b for b in loaded.report.batches if b.key == fresh]
    labeled = check(report, "labelNotAllNull")
    assert labeled.skipped and "no matured label yet" in labeled.message
    assert loaded.labels is not None
    assert [(b.matured, b.immature) for b in loaded.labels.batches] == [(300, 0), (0, 300)]
    fresh_batch = loaded.accepted[1]
    assert len(fresh_batch.rows) == 0
    split = split_batches(loaded.accepted, spec.evaluation.holdout_fraction)
    assert len(split.train) + len(split.holdout) == 300
    assert not set(split.holdout["x1"]) & set(run.truth[fresh]["x1"])
    assert monitored_rows(spec, loaded.accepted) is None  # nothing new has matured


def test_fake_negatives_are_trained_on_but_never_held_out() -> None:
    run = Run()
    old = run.events("in/old.csv", 400, seed=1, start=EPOCH)
    fresh = run.events("in/fresh.csv", 400, seed=2, start=EPOCH + DAY)

    spec, loaded = run.load(new=[fresh], delaySeconds=8 * 3600, delayedFeedback="FakeNegative")

    assert loaded.labels is not None
    counts = loaded.labels.rows
    assert (counts.matured, counts.immature) == (400, 400)
    early_positives = int(loaded.accepted[1].rows["y"].sum())  # labels seen before maturity
    assert 0 < early_positives < 400
    assert counts.fake_negatives == 400 - early_positives
    fraction = spec.evaluation.holdout_fraction
    split = split_batches(loaded.accepted, fraction, new_keys={fresh})
    immature = run.truth[fresh]
    assert not set(split.holdout["x1"]) & set(immature["x1"])
    fresh_units = units(loaded.accepted[1].hashes)
    assert len(split.train) == int((units(loaded.accepted[0].hashes) >= fraction).sum()) + int(
        (fresh_units >= fraction).sum()
    )
    assert len(split.new_train) == int((fresh_units >= fraction).sum())
    assert len(split.holdout) == int((units(loaded.accepted[0].hashes) < fraction).sum())
    assert old in status(loaded)


def test_split_never_holds_out_an_immature_row_directly() -> None:
    run = Run()
    fresh = run.events("in/fresh.csv", 500, seed=3, start=EPOCH)

    _, loaded = run.load(delaySeconds=250 * 60, delayedFeedback="FakeNegative")

    (batch,) = loaded.accepted
    assert batch.maturity is not None
    matured = batch.maturity.matured
    assert 0 < matured.sum() < len(matured)
    split = split_batches(loaded.accepted, 0.5)
    held = units(batch.hashes) < 0.5
    assert len(split.holdout) == int((held & matured).sum())
    immature_x = set(batch.rows["x1"][~matured])
    assert not set(split.holdout["x1"]) & immature_x
    assert fresh in status(loaded)


def test_fake_negatives_never_trip_the_label_checks() -> None:
    run = Run()
    run.events("in/old.csv", 400, seed=1, start=EPOCH)
    fresh = run.events("in/fresh.csv", 400, seed=2, start=EPOCH + DAY)

    _, loaded = run.load(new=[fresh], delaySeconds=6 * 3600, delayedFeedback="FakeNegative")

    # 40 matured rows, 360 fake negatives: counted, they would shift the class mix by ~40%
    (report,) = [b for b in loaded.report.batches if b.key == fresh]
    assert report.status == "Accepted", report.reason
    assert loaded.labels is not None and loaded.labels.batches[1].matured == 40
    shift = check(report, "labelRateShift")
    assert shift.passed and not shift.skipped


def test_a_refused_batch_does_not_move_the_watermark() -> None:
    run = Run()
    good = run.events("in/good.csv", 300, seed=1, start=EPOCH)
    features, positives = event_frames(300, seed=2, start=EPOCH + 10 * DAY, prefix="late")
    bad = run.batch("in/late.csv", features.assign(x2=np.nan), positives)

    _, loaded = run.load(new=[bad], delaySeconds=3600)

    assert status(loaded) == {good: "Accepted", bad: "Quarantined"}
    assert loaded.quarantined[0].reason == "NullFractionExceeded"
    assert loaded.labels is not None
    newest = pd.Timestamp(run.truth[good]["event_time"].iloc[-1])
    assert loaded.labels.watermark == newest.to_pydatetime()
    assert loaded.labels.rows.immature == 60  # the last hour of the good batch, one a minute


def test_the_watermark_floor_matures_rows() -> None:
    run = Run()
    run.events("in/b.csv", 120, seed=1, start=EPOCH)

    _, loaded = run.load(delaySeconds=3600, watermarkFloor="2026-11-25T00:00:00Z")

    assert loaded.labels is not None
    assert loaded.labels.watermark is not None
    assert loaded.labels.watermark.isoformat() == "2026-11-25T00:00:00+00:00"
    assert (loaded.labels.rows.matured, loaded.labels.rows.immature) == (120, 0)


# -- monitoring ------------------------------------------------------------------


def test_monitoring_scores_exactly_the_newly_matured_rows() -> None:
    run = Run()
    first = run.events("in/1.csv", 300, seed=1, start=EPOCH)
    second = run.events("in/2.csv", 300, seed=2, start=EPOCH + pd.Timedelta(hours=5))
    third = run.events("in/3.csv", 300, seed=3, start=EPOCH + pd.Timedelta(hours=10))
    previous = EPOCH + pd.Timedelta(hours=6)  # the last run's cutoff

    spec, loaded = run.load(new=[third], delaySeconds=3 * 3600, previousCutoff=previous.isoformat())

    assert loaded.labels is not None and loaded.labels.cutoff is not None
    cut = pd.Timestamp(loaded.labels.cutoff)
    expected: set[float] = set()
    for key in (first, second, third):
        truth = run.truth[key]
        times = pd.to_datetime(truth["event_time"], utc=True)
        expected |= set(truth["x1"][(times > previous) & (times <= cut)])
    rows = monitored_rows(spec, loaded.accepted)
    assert rows is not None and len(expected) > 0
    assert set(rows["x1"]) == expected and len(rows) == len(expected)
    assert rows["y"].notna().all()


def test_without_a_previous_cutoff_monitoring_scores_the_new_batches_matured_rows() -> None:
    run = Run()
    old = run.events("in/old.csv", 300, seed=1, start=EPOCH)
    fresh = run.events("in/new.csv", 300, seed=2, start=EPOCH + pd.Timedelta(hours=5))

    spec, loaded = run.load(new=[fresh], delaySeconds=3 * 3600, delayedFeedback="FakeNegative")

    rows = monitored_rows(spec, loaded.accepted)
    assert rows is not None and loaded.labels is not None
    (_, fresh_counts) = loaded.labels.batches
    assert len(rows) == fresh_counts.matured == 120  # 5h of rows minus the 3h delay
    assert set(rows["x1"]) <= set(run.truth[fresh]["x1"])
    assert old in status(loaded)


@pytest.mark.parametrize("data_format", ["csv", "jsonl", "parquet"])
def test_every_format_with_epoch_times_numeric_ids_and_boolean_labels(data_format: str) -> None:
    run = Run()
    run.format = data_format
    features, positives = event_frames(200, seed=1, start=EPOCH)
    times = pd.to_datetime(features["event_time"])
    features = features.assign(
        event_id=range(200), event_time=(times - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    )
    positive_ids = positives["event_id"].str.removeprefix("e-").astype(int)
    run.batch("in/b", features, pd.DataFrame({"event_id": positive_ids, "y": True}))

    _, loaded = run.load(delaySeconds=3600, negativeValue="false")

    (batch,) = loaded.accepted
    assert loaded.labels is not None and loaded.labels.rows.matured == 140  # the last hour waits
    assert batch.rows["y"].dtype == bool
    assert int(batch.rows["y"].sum()) == int((positive_ids < 140).sum())


@pytest.mark.parametrize("item", CORPUS, ids=[item.name for item in CORPUS])
def test_no_malformed_file_crashes_the_join(item: Malformed) -> None:
    """Every file of the malformed corpus, as a label file and as a feature batch."""
    run = Run()
    run.format = item.format
    batch = run.events("in/b", 300, seed=1, start=EPOCH)
    run.label_file(batch, "labels/in/b/bad", item.data)
    run.batch("in/bad", classification_frame(10, seed=2), labels=item.data)

    _, loaded = run.load()

    assert status(loaded) == {batch: "Accepted", "in/bad": "Quarantined"}
    refused = {q.key: q.reason for q in loaded.quarantined}
    assert refused.keys() <= {"in/bad", "labels/in/b/bad"} and refused["in/bad"]
    assert all(refused.values())


def test_warm_start_continues_with_the_rows_that_matured_since_the_previous_run() -> None:
    """partial_fit sees each row once with its final label: an old batch's rows that
    matured since the previous cutoff, never rows an earlier run already had."""
    run = Run()
    first = run.events("in/1.csv", 300, seed=1, start=EPOCH)
    second = run.events("in/2.csv", 300, seed=2, start=EPOCH + pd.Timedelta(hours=5))
    third = run.events("in/3.csv", 300, seed=3, start=EPOCH + pd.Timedelta(hours=10))
    previous = EPOCH + pd.Timedelta(hours=6)

    spec, loaded = run.load(new=[third], delaySeconds=3 * 3600, previousCutoff=previous.isoformat())

    assert loaded.labels is not None and loaded.labels.cutoff is not None
    cut = pd.Timestamp(loaded.labels.cutoff)
    fraction = spec.evaluation.holdout_fraction
    split = split_batches(
        loaded.accepted, fraction, new_keys={third}, previous_cutoff=previous.to_pydatetime()
    )
    expected: set[float] = set()
    for key in (first, second, third):
        truth = run.truth[key]
        times = pd.to_datetime(truth["event_time"], utc=True)
        expected |= set(truth["x1"][(times > previous) & (times <= cut)])
    assert len(split.new_train) > 0
    assert set(split.new_train["x1"]) == expected & set(split.train["x1"])
    assert set(split.new_train["x1"]) < set(split.train["x1"])
    # A backfill (no new cutoff, no new batch) continues with nothing: it fits from scratch.
    again = split_batches(loaded.accepted, fraction, previous_cutoff=cut.to_pydatetime())
    assert again.new_train.empty
