"""The late-label planner (decisions.backfill): which batches changed, and when to retrain."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from freshet.batches import Batch
from freshet.decisions.backfill import (
    Backfill,
    BackfillFacts,
    LabelFile,
    Wait,
    WaitReason,
    assign,
    fingerprint,
    fingerprint_of,
    partition,
    plan,
)
from freshet.spec import BackfillSpec

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
DATA, LABELS = "conv/events/", "conv/labels/"
SETTINGS = BackfillSpec(quiet_seconds=60, min_interval_seconds=600)


def obj(key: str, etag: str = "e1", age_s: float = 3600) -> Batch:
    return Batch(key, etag, 10, NOW - timedelta(seconds=age_s))


WINDOW = (obj(f"{DATA}day-01.csv"), obj(f"{DATA}day-02.csv"), obj(f"{DATA}day-03.csv"))
KEYS = [b.key for b in WINDOW]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (f"{DATA}day-01.csv", "day-01"),
        (f"{DATA}day-01.csv.gz", "day-01.csv"),
        (f"{DATA}2026/11/20/part-0.parquet", "2026/11/20/part-0"),
        (f"{DATA}no-extension", "no-extension"),
        (f"{DATA}.hidden", ".hidden"),
        (f"{DATA}v1.2/day.jsonl", "v1.2/day"),
    ],
)
def test_a_batch_is_named_by_its_key_without_the_extension(key: str, expected: str) -> None:
    assert partition(DATA, key) == expected


def test_label_files_are_assigned_to_the_batch_their_folder_names() -> None:
    listed = [
        obj(f"{LABELS}day-02/b.csv", "e2"),
        obj(f"{LABELS}day-02/a.csv", "e1"),
        obj(f"{LABELS}day-03/x.csv"),
        obj(f"{LABELS}day-09/early.csv"),  # a batch that has not arrived: labels nothing yet
        obj(f"{LABELS}loose.csv"),  # not in a batch's folder
        obj(f"{LABELS}day-03/bad.csv", "bad"),  # quarantined content
        obj(f"{LABELS}day-03/nested/deeper.csv"),  # folder "day-03/nested" is no batch
    ]
    files = assign(DATA, LABELS, KEYS, listed, {f"{LABELS}day-03/bad.csv": "bad"})
    assert [f.key for f in files[f"{DATA}day-02.csv"]] == [
        f"{LABELS}day-02/a.csv",
        f"{LABELS}day-02/b.csv",
    ]
    assert [f.key for f in files[f"{DATA}day-03.csv"]] == [f"{LABELS}day-03/x.csv"]
    assert files[f"{DATA}day-01.csv"] == ()


def test_a_released_label_file_counts_again_under_its_etag() -> None:
    listed = [obj(f"{LABELS}day-01/a.csv", "bad")]
    assert assign(DATA, LABELS, KEYS, listed, {})[f"{DATA}day-01.csv"] != ()


def test_fingerprints_depend_on_content_not_on_order() -> None:
    assert fingerprint([]) == ""
    assert fingerprint([("a", "1"), ("b", "2")]) == fingerprint([("b", "2"), ("a", "1")])
    assert fingerprint([("a", "1")]) != fingerprint([("a", "2")])
    assert fingerprint([("a", "1")]) != fingerprint([("a", "1"), ("b", "2")])


def label(batch: str, name: str, etag: str = "e1", age_s: float = 3600) -> LabelFile:
    return LabelFile(
        f"{DATA}{batch}.csv", f"{LABELS}{batch}/{name}", etag, 10, NOW - timedelta(seconds=age_s)
    )


TRAINED_FILES = {
    f"{DATA}day-01.csv": (label("day-01", "a.csv"),),
    f"{DATA}day-02.csv": (),
    f"{DATA}day-03.csv": (label("day-03", "a.csv"), label("day-03", "b.csv")),
}


def facts(**changes: object) -> BackfillFacts:
    base = BackfillFacts(
        now=NOW,
        window=WINDOW,
        files=TRAINED_FILES,
        trained={key: fingerprint_of(files) for key, files in TRAINED_FILES.items()},
        first_event={
            KEYS[0]: NOW - timedelta(days=5),
            KEYS[1]: NOW - timedelta(days=4),
            KEYS[2]: NOW - timedelta(days=3),
        },
        cutoff=NOW - timedelta(days=2),
        immature_rows_train=False,
        last_backfill=None,
        in_flight=0,
        limit=2,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def with_files(**by_batch: tuple[LabelFile, ...]) -> dict[str, tuple[LabelFile, ...]]:
    return TRAINED_FILES | {
        f"{DATA}{name.replace('_', '-')}.csv": f for name, f in by_batch.items()
    }


DAY1_NEW = with_files(day_01=(label("day-01", "a.csv"), label("day-01", "b.csv", age_s=120)))

CASES: list[tuple[str, BackfillFacts, type | None, tuple[str, ...], WaitReason | None]] = [
    ("nothing changed since training", facts(), None, (), None),
    ("a new label file for a trained batch", facts(files=DAY1_NEW), Backfill, (KEYS[0],), None),
    (
        "a label file rewritten with new content",
        facts(files=with_files(day_01=(label("day-01", "a.csv", etag="e2"),))),
        Backfill,
        (KEYS[0],),
        None,
    ),
    (
        "a label file deleted",
        facts(files=with_files(day_03=(label("day-03", "a.csv"),))),
        Backfill,
        (KEYS[2],),
        None,
    ),
    (
        "changes to several batches become one backfill",
        facts(
            files=with_files(
                day_01=(label("day-01", "a.csv"), label("day-01", "b.csv")),
                day_02=(label("day-02", "a.csv"),),
            )
        ),
        Backfill,
        (KEYS[0], KEYS[1]),
        None,
    ),
    (
        "a batch trained before labels were configured has an empty record",
        facts(trained={KEYS[0]: None, KEYS[1]: None, KEYS[2]: None}, files={}),
        None,
        (),
        None,
    ),
    (
        "a batch that left the window is not backfilled",
        facts(window=WINDOW[1:], files=DAY1_NEW),
        None,
        (),
        None,
    ),
    (
        "labels of a batch that had not begun to mature wait for the run that matures it",
        facts(files=DAY1_NEW, cutoff=NOW - timedelta(days=6)),
        None,
        (),
        None,
    ),
    (
        "unless immature rows are trained as fake negatives",
        facts(files=DAY1_NEW, cutoff=NOW - timedelta(days=6), immature_rows_train=True),
        Backfill,
        (KEYS[0],),
        None,
    ),
    (
        "a batch whose first rows matured is backfilled",
        facts(files=DAY1_NEW, cutoff=NOW - timedelta(days=5)),
        Backfill,
        (KEYS[0],),
        None,
    ),
    (
        "a batch of unknown event times is backfilled",
        facts(files=DAY1_NEW, first_event={}, cutoff=None),
        Backfill,
        (KEYS[0],),
        None,
    ),
    (
        "a fresh label file settles first",
        facts(files=with_files(day_02=(label("day-02", "a.csv", age_s=10),))),
        Wait,
        (KEYS[1],),
        WaitReason.SETTLING,
    ),
    (
        "two backfills are minIntervalSeconds apart",
        facts(files=DAY1_NEW, last_backfill=NOW - timedelta(seconds=300)),
        Wait,
        (KEYS[0],),
        WaitReason.TOO_SOON,
    ),
    (
        "the interval has passed",
        facts(files=DAY1_NEW, last_backfill=NOW - timedelta(seconds=601)),
        Backfill,
        (KEYS[0],),
        None,
    ),
    (
        "operator-wide limit reached",
        facts(files=DAY1_NEW, in_flight=2),
        Wait,
        (KEYS[0],),
        WaitReason.CONCURRENCY,
    ),
]


@pytest.mark.parametrize(
    ("case", "given", "kind", "changed", "reason"), CASES, ids=[c[0] for c in CASES]
)
def test_plan(
    case: str,
    given: BackfillFacts,
    kind: type | None,
    changed: tuple[str, ...],
    reason: WaitReason | None,
) -> None:
    decided = plan(SETTINGS, given)
    if kind is None:
        assert decided is None, case
        return
    assert isinstance(decided, kind), decided
    assert decided.changed == changed
    if isinstance(decided, Wait):
        assert decided.reason is reason
        assert decided.retry_after > timedelta(0)


def test_the_quiet_period_ends_when_the_newest_file_is_quiet_long_enough() -> None:
    given = facts(files=with_files(day_02=(label("day-02", "a.csv", age_s=10),)))
    waited = plan(SETTINGS, given)
    assert isinstance(waited, Wait)
    assert waited.retry_after == timedelta(seconds=50)
    assert isinstance(plan(SETTINGS, replace(given, now=NOW + waited.retry_after)), Backfill)


def test_a_label_file_dated_in_the_future_delays_by_one_quiet_period_at_most() -> None:
    given = facts(files=with_files(day_02=(label("day-02", "a.csv", age_s=-86_400),)))
    waited = plan(SETTINGS, given)
    assert isinstance(waited, Wait)
    assert waited.retry_after == timedelta(seconds=60)


def test_once_recorded_a_change_is_never_planned_again() -> None:
    """Idempotent: the run that trains a change records it; the same listing then plans nothing."""
    given = facts(files=DAY1_NEW)
    decided = plan(SETTINGS, given)
    assert isinstance(decided, Backfill)
    recorded = dict(given.trained) | {
        key: fingerprint_of(given.files[key]) for key in decided.changed
    }
    assert plan(SETTINGS, replace(given, trained=recorded)) is None


def test_catching_up_after_downtime_plans_every_change_at_once() -> None:
    """Label files that arrived while nobody watched differ from the ledger all the same."""
    everything = {
        key: (label(key.removeprefix(DATA).removesuffix(".csv"), "late.csv", age_s=7200),)
        for key in KEYS
    }
    decided = plan(SETTINGS, facts(files=everything, last_backfill=NOW - timedelta(days=3)))
    assert isinstance(decided, Backfill)
    assert decided.changed == tuple(KEYS)
    assert "3 batch(es)" in decided.message
