"""The late-label join as pure functions: maturity, defaults, overrides, the bookkeeping checks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
from freshet_contract.result import LabelRowCounts
from freshet_trainer import late_labels
from freshet_trainer.late_labels import EventRows, LabelTable

T0 = pd.Timestamp("2026-01-01T00:00:00Z")
EPOCH_T0 = 1767225600  # T0 in epoch seconds


def rows(
    times: list[Any] | None = None, ids: list[Any] | None = None, **extra: Any
) -> pd.DataFrame:
    """Four events an hour apart: ids a..d, feature x = 1..4."""
    return pd.DataFrame(
        {
            "event_id": ids if ids is not None else ["a", "b", "c", "d"],
            "event_time": times
            if times is not None
            else [(T0 + pd.Timedelta(hours=h)).isoformat() for h in range(4)],
            "x": [1.0, 2.0, 3.0, 4.0],
            **extra,
        }
    )


def events(frame: pd.DataFrame) -> EventRows:
    checks, parsed = late_labels.event_rows(
        frame, id_column="event_id", event_time_column="event_time", label="y"
    )
    assert parsed is not None, [c for c in checks if not c.passed]
    return parsed


def table(labels: dict[str, Any]) -> LabelTable:
    frame = pd.DataFrame({"event_id": list(labels), "y": list(labels.values())})
    checks, parsed = late_labels.label_table(
        frame, id_column="event_id", label="y", label_values=None
    )
    assert parsed is not None, [c for c in checks if not c.passed]
    return parsed


# -- the join --------------------------------------------------------------------


@dataclass(frozen=True)
class JoinCase:
    delay_hours: float | None
    """None: no watermark at all (nothing matured)."""
    negative: Any
    fake_negative: bool
    trained: dict[float, Any]
    """Feature x of each trainable row -> its label."""
    matured: list[bool]
    """Of the trainable rows, in order."""
    counts: LabelRowCounts
    validation: list[Any]
    """The label validation sees, per row (NaN: none)."""


NAN = np.nan


def row_counts(*values: int) -> LabelRowCounts:
    """The contract's counts in field order: matured, immature, labeled, defaulted,
    fakeNegatives, unmatchedLabels."""
    return LabelRowCounts(**dict(zip(LabelRowCounts.model_fields, values, strict=True)))


JOIN_CASES = {
    "matured-labeled-and-defaulted": JoinCase(
        1.5,
        0,
        False,
        {1.0: 1, 2.0: 0},
        [True, True],
        row_counts(2, 2, 1, 1, 0, 1),
        [1, 0, NAN, NAN],
    ),
    "no-negative-value-drops-unlabeled-matured-rows": JoinCase(
        1.5, None, False, {1.0: 1}, [True], row_counts(2, 2, 1, 0, 0, 1), [1, NAN, NAN, NAN]
    ),
    "fake-negative-trains-immature-rows": JoinCase(
        1.5,
        0,
        True,
        {1.0: 1, 2.0: 0, 3.0: 1, 4.0: 0},
        [True, True, False, False],
        row_counts(2, 2, 1, 1, 1, 1),
        [1, 0, NAN, NAN],
    ),
    "delay-zero-matures-everything": JoinCase(
        0,
        0,
        False,
        {1.0: 1, 2.0: 0, 3.0: 1, 4.0: 0},
        [True] * 4,
        row_counts(4, 0, 2, 2, 0, 1),
        [1, 0, 1, 0],
    ),
    "cutoff-is-inclusive": JoinCase(
        2, 0, False, {1.0: 1, 2.0: 0}, [True, True], row_counts(2, 2, 1, 1, 0, 1), [1, 0, NAN, NAN]
    ),
    "no-watermark-nothing-matured": JoinCase(
        None, 0, False, {}, [], row_counts(0, 4, 0, 0, 0, 1), [NAN] * 4
    ),
}


@pytest.mark.parametrize("case", JOIN_CASES.values(), ids=JOIN_CASES.keys())
def test_join_by_maturity(case: JoinCase) -> None:
    parsed = events(rows())
    mark = late_labels.watermark(None, [parsed.times]) if case.delay_hours is not None else None
    assert case.delay_hours is None or mark == T0 + pd.Timedelta(hours=3)
    cut = late_labels.cutoff(mark, int((case.delay_hours or 0) * 3600))

    joined = late_labels.join(
        parsed,
        table({"a": 1, "c": 1, "z": 1}),
        label="y",
        cut=cut,
        negative=case.negative,
        fake_negative=case.fake_negative,
    )

    assert dict(zip(joined.rows["x"], joined.rows["y"], strict=True)) == case.trained
    assert list(joined.rows.columns) == ["x", "y"]  # no id, no event time
    assert joined.maturity.matured.tolist() == case.matured
    assert len(joined.maturity.event_times) == len(joined.rows)
    assert joined.counts == case.counts
    np.testing.assert_array_equal(joined.validation_frame["y"].to_numpy(float), case.validation)
    if len(joined.rows):
        assert joined.rows["y"].dtype == np.int64  # the label files' type, despite the gaps


def test_a_later_label_file_overrides_an_earlier_one() -> None:
    merged = late_labels.merge_tables(
        [table({"a": 0, "b": 1}), table({"a": 1}), LabelTable.empty()]
    )

    assert merged.labels.to_dict() == {"a": 1, "b": 1}
    assert len(late_labels.merge_tables([])) == 0


def test_unmatched_labels_are_counted_per_batch() -> None:
    joined = late_labels.join(
        events(rows()),
        table({"a": 1, "x": 1, "y": 0}),
        label="y",
        cut=T0 + pd.Timedelta(hours=5),
        negative=None,
        fake_negative=False,
    )

    assert joined.counts.unmatched_labels == 2
    assert joined.counts.labeled == 1


@pytest.mark.parametrize(
    ("floor", "expected"),
    [
        pytest.param(None, T0 + pd.Timedelta(hours=3), id="no-floor"),
        pytest.param(
            datetime(2026, 1, 2, tzinfo=UTC),
            pd.Timestamp("2026-01-02T00:00:00Z"),
            id="floor-raises",
        ),
        pytest.param(
            datetime(2025, 1, 1, tzinfo=UTC), T0 + pd.Timedelta(hours=3), id="floor-below"
        ),
    ],
)
def test_watermark_is_the_newest_event_or_the_floor(
    floor: datetime | None, expected: pd.Timestamp
) -> None:
    parsed = events(rows())

    assert late_labels.watermark(floor, [parsed.times]) == expected


def test_no_event_and_no_floor_gives_no_watermark_and_no_cutoff() -> None:
    assert late_labels.watermark(None, []) is None
    assert late_labels.cutoff(None, 60) is None
    assert late_labels.cutoff(T0, 60) == T0 - pd.Timedelta(minutes=1)


def test_the_floor_matures_rows_no_batch_of_the_run_would() -> None:
    parsed = events(rows())
    mark = late_labels.watermark(datetime(2026, 1, 1, 7, tzinfo=UTC), [parsed.times])

    joined = late_labels.join(
        parsed,
        LabelTable.empty(),
        label="y",
        cut=late_labels.cutoff(mark, 4 * 3600),
        negative=0,
        fake_negative=False,
    )

    assert joined.counts.matured == 4 and joined.counts.defaulted == 4


# -- event times -----------------------------------------------------------------

UTC_T0 = pd.Timestamp("2026-01-01T00:00:00Z")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param(["2026-01-01T00:00:00Z"], [UTC_T0], id="iso-utc"),
        pytest.param(["2026-01-01T00:00:00"], [UTC_T0], id="iso-naive-is-utc"),
        pytest.param(["2026-01-01 02:00:00+02:00"], [UTC_T0], id="iso-offset"),
        pytest.param(["2026-01-01"], [UTC_T0], id="iso-date"),
        pytest.param([EPOCH_T0], [UTC_T0], id="epoch-int"),
        pytest.param([EPOCH_T0 + 0.5], [UTC_T0 + pd.Timedelta(milliseconds=500)], id="epoch-float"),
        pytest.param(
            pd.Series(["2026-01-01T00:00:00Z", EPOCH_T0 + 60], dtype=object),
            [UTC_T0, UTC_T0 + pd.Timedelta(minutes=1)],
            id="text-and-numbers",
        ),
        pytest.param(pd.Series([UTC_T0.tz_localize(None)]), [UTC_T0], id="naive-timestamp-column"),
        pytest.param(
            pd.Series([UTC_T0.tz_convert("Europe/Paris")]), [UTC_T0], id="aware-timestamp-column"
        ),
        pytest.param(["yesterday", None, "2026-13-01"], [pd.NaT] * 3, id="unparseable-text"),
        pytest.param([np.inf, np.nan, 1e30], [pd.NaT] * 3, id="non-finite-or-huge-numbers"),
        pytest.param([True, False], [pd.NaT] * 2, id="booleans"),
        pytest.param(pd.Series([{"t": 1}, [1]], dtype=object), [pd.NaT] * 2, id="nested"),
    ],
)
def test_event_times_parse_to_utc(values: Any, expected: list[Any]) -> None:
    parsed = late_labels.parse_event_times(pd.Series(values))

    assert str(parsed.dtype).endswith("UTC]")
    assert parsed.tolist() == expected or (
        parsed.isna().all() and all(v is pd.NaT for v in expected)
    )


# -- negativeValue ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "observed", "expected"),
    [
        pytest.param("0", pd.Series([1, 1]), 0, id="integer-labels"),
        pytest.param("0", pd.Series([0.5, 1.5]), 0.0, id="number-labels"),
        pytest.param("false", pd.Series([True]), False, id="boolean-labels"),
        pytest.param("0", pd.Series(["1", "2"]), "0", id="text-labels"),
        pytest.param("0", pd.Series([], dtype=object), 0, id="no-labels-number"),
        pytest.param("no", pd.Series([], dtype=object), "no", id="no-labels-text"),
        pytest.param("FALSE", pd.Series([], dtype=object), False, id="no-labels-boolean"),
    ],
)
def test_negative_value_takes_the_labels_type(
    value: str, observed: pd.Series, expected: Any
) -> None:
    typed = late_labels.negative_label(value, observed)

    assert typed == expected and type(typed) is type(expected)


# -- feature batch checks --------------------------------------------------------

FEATURE_REFUSALS = {
    "no-id-column": (rows().drop(columns="event_id"), "idPresent", "IdColumnMissing"),
    "no-event-time-column": (
        rows().drop(columns="event_time"),
        "eventTimePresent",
        "EventTimeMissing",
    ),
    "null-id": (rows(ids=["a", None, "c", "d"]), "idsNotNull", "NullIds"),
    "duplicate-id": (rows(ids=["a", "b", "a", "d"]), "uniqueIds", "DuplicateIds"),
    "duplicate-id-as-7-and-7.0": (
        rows(ids=pd.Series([7, 7.0, 8, 9], dtype=object)),
        "uniqueIds",
        "DuplicateIds",
    ),
    "unparseable-event-time": (
        rows(times=["2026-01-01T00:00:00Z", "soon", "2026-01-01T02:00:00Z", None]),
        "eventTimes",
        "InvalidEventTimes",
    ),
}


@pytest.mark.parametrize(
    ("frame", "name", "code"), FEATURE_REFUSALS.values(), ids=FEATURE_REFUSALS.keys()
)
def test_feature_batch_bookkeeping_is_checked(frame: pd.DataFrame, name: str, code: str) -> None:
    checks, parsed = late_labels.event_rows(
        frame, id_column="event_id", event_time_column="event_time", label="y"
    )

    assert parsed is None
    assert [c.name for c in checks] == [r.name for r in late_labels.FEATURE_RULES]
    failed = [c for c in checks if not c.passed]
    assert (failed[0].name, failed[0].code) == (name, code)
    assert failed[0].message


def test_a_label_column_in_a_feature_batch_is_ignored() -> None:
    parsed = events(rows(y=[1, 1, 1, 1]))

    assert list(parsed.features.columns) == ["x"]
    assert parsed.ids.tolist() == ["a", "b", "c", "d"]


def test_numeric_ids_match_labels_whatever_their_number_type() -> None:
    parsed = events(rows(ids=[1, 2, 3, 4]))
    labels = pd.DataFrame({"event_id": [1.0, 3.0], "y": [1, 1]})
    _, parsed_labels = late_labels.label_table(
        labels, id_column="event_id", label="y", label_values=None
    )
    assert parsed_labels is not None

    joined = late_labels.join(
        parsed,
        parsed_labels,
        label="y",
        cut=T0 + pd.Timedelta(hours=9),
        negative=0,
        fake_negative=False,
    )

    assert joined.rows["y"].tolist() == [1, 0, 1, 0]
    assert joined.counts.unmatched_labels == 0


# -- label file checks -----------------------------------------------------------

LABEL_REFUSALS = {
    "no-id-column": (pd.DataFrame({"y": [1]}), None, "idPresent", "IdColumnMissing"),
    "no-label-column": (pd.DataFrame({"event_id": ["a"]}), None, "labelPresent", "LabelMissing"),
    "null-id": (
        pd.DataFrame({"event_id": ["a", None], "y": [1, 1]}),
        None,
        "idsNotNull",
        "NullIds",
    ),
    "null-label": (
        pd.DataFrame({"event_id": ["a", "b"], "y": [1, None]}),
        None,
        "labelsNotNull",
        "NullLabels",
    ),
    "unknown-label": (
        pd.DataFrame({"event_id": ["a", "b"], "y": [1, 2]}),
        ["0", "1"],
        "unknownLabels",
        "UnknownLabels",
    ),
    "one-id-two-labels": (
        pd.DataFrame({"event_id": ["a", "a", "b"], "y": [1, 0, 1]}),
        None,
        "idLabelsConsistent",
        "IdLabelConflict",
    ),
    "labels-of-mixed-types": (
        pd.DataFrame({"event_id": ["a", "b"], "y": pd.Series([1, "yes"], dtype=object)}),
        None,
        "labelTypes",
        "TypeMismatch",
    ),
    "infinite-label": (
        pd.DataFrame({"event_id": ["a", "b"], "y": [1.0, np.inf]}),
        None,
        "labelTypes",
        "TypeMismatch",
    ),
}


@pytest.mark.parametrize(
    ("frame", "allowed", "name", "code"), LABEL_REFUSALS.values(), ids=LABEL_REFUSALS.keys()
)
def test_label_file_is_checked(
    frame: pd.DataFrame, allowed: list[str] | None, name: str, code: str
) -> None:
    checks, parsed = late_labels.label_table(
        frame, id_column="event_id", label="y", label_values=allowed
    )

    assert parsed is None
    assert [c.name for c in checks] == [r.name for r in late_labels.LABEL_FILE_RULES]
    failed = [c for c in checks if not c.passed]
    assert (failed[0].name, failed[0].code) == (name, code)


def test_label_file_repeating_a_label_and_with_extra_columns_is_fine() -> None:
    frame = pd.DataFrame({"event_id": ["a", "a", "b"], "y": [1, 1, 0], "note": ["x", "y", "z"]})

    checks, parsed = late_labels.label_table(
        frame, id_column="event_id", label="y", label_values=["0", "1"]
    )

    assert parsed is not None and all(c.passed for c in checks)
    assert parsed.labels.to_dict() == {"a": 1, "b": 0}


def test_a_label_file_without_rows_is_no_labels() -> None:
    checks, parsed = late_labels.label_table(
        pd.DataFrame(), id_column="event_id", label="y", label_values=None
    )

    assert parsed is not None and len(parsed) == 0
    assert all(c.skipped for c in checks)


# -- monitoring ------------------------------------------------------------------


def test_newly_matured_rows_are_those_after_the_previous_cutoff() -> None:
    maturity = late_labels.Maturity(
        matured=np.array([True, True, True, False]),
        event_times=pd.Series([T0 + pd.Timedelta(hours=h) for h in range(4)]),
    )

    since = late_labels.newly_matured(maturity, datetime(2026, 1, 1, 0, 30, tzinfo=UTC))

    assert since.tolist() == [False, True, True, False]
    assert late_labels.newly_matured(maturity, None).tolist() == [True, True, True, False]
