"""Late labels: joining label files to feature rows by id, and deciding which rows matured.

Some streams learn their labels long after the event: a conversion happens
days after the impression, a chargeback weeks after the payment. A policy
with `data.labels` keeps features and labels in separate files; each feature
row carries an id and the time of its event, and label files name ids and
their labels. Treating a row without a label as a negative as soon as it is
seen would teach the model that recent events never convert, so a row is
only judged once its label had time to arrive:

    watermark = max(watermarkFloor, newest event time of the run's accepted rows)
    cutoff    = watermark - delaySeconds
    matured   = event time <= cutoff

A matured row takes the label its files gave it, else `negativeValue` (no
conversion within the delay is the negative class), else it has no label and
is left out. An immature row has no label (delayedFeedback `None`), or, with
`FakeNegative`, is trained on with the label seen so far or `negativeValue`
(the fake-negative method of delayed feedback); it is never in a holdout and
never scored, so a fake negative cannot flatter or punish a model.

The id and event-time columns are bookkeeping, not features: they are dropped
before validation, hashing and fitting. A label column left in a feature file
is ignored: the label comes from the label files only.

Everything here is a pure function of frames; `batches.py` does the I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from freshet_contract.result import BatchLabels, Check, LabelReport, LabelRowCounts

from freshet_trainer.reasons import BatchReason
from freshet_trainer.validation.columns import kind_of, tokens
from freshet_trainer.validation.labels import UNKNOWN_LABELS
from freshet_trainer.validation.report import Rule
from freshet_trainer.validation.schema import LABEL_PRESENT

Label = str | int | float | bool

ID_PRESENT = Rule("idPresent", BatchReason.ID_COLUMN_MISSING)
EVENT_TIME_PRESENT = Rule("eventTimePresent", BatchReason.EVENT_TIME_MISSING)
IDS_NOT_NULL = Rule("idsNotNull", BatchReason.NULL_IDS)
UNIQUE_IDS = Rule("uniqueIds", BatchReason.DUPLICATE_IDS)
EVENT_TIMES = Rule("eventTimes", BatchReason.INVALID_EVENT_TIMES)
FEATURE_RULES: Final = (ID_PRESENT, EVENT_TIME_PRESENT, IDS_NOT_NULL, UNIQUE_IDS, EVENT_TIMES)
"""The checks a feature batch passes before the usual validation, in order."""

LABELS_NOT_NULL = Rule("labelsNotNull", BatchReason.NULL_LABELS)
LABEL_TYPES = Rule("labelTypes", BatchReason.TYPE_MISMATCH)
ID_LABELS_CONSISTENT = Rule("idLabelsConsistent", BatchReason.ID_LABEL_CONFLICT)
LABEL_FILE_RULES: Final = (
    ID_PRESENT,
    LABEL_PRESENT,
    IDS_NOT_NULL,
    LABELS_NOT_NULL,
    LABEL_TYPES,
    UNKNOWN_LABELS,
    ID_LABELS_CONSISTENT,
)
"""The checks of a label file, in order."""

_SHOWN: Final = 5
_BOOLEAN_TEXT: Final = {"true": True, "false": False}


# -- feature batches -------------------------------------------------------------


@dataclass(frozen=True)
class EventRows:
    """A feature batch split into its features and its two bookkeeping columns."""

    features: pd.DataFrame
    """Without the id, event-time and label columns; index 0..n-1."""
    ids: pd.Series
    """Id tokens (`tokens`: 7 and 7.0 are both "7"), unique, aligned with `features`."""
    times: pd.Series
    """Event times, datetime64 in UTC, aligned with `features`."""


def event_rows(
    frame: pd.DataFrame, *, id_column: str, event_time_column: str, label: str
) -> tuple[list[Check], EventRows | None]:
    """The feature batch's id and event-time checks, and its rows when they all pass."""
    frame = frame.reset_index(drop=True)
    checks = [
        _present(ID_PRESENT, id_column, frame),
        _present(EVENT_TIME_PRESENT, event_time_column, frame),
    ]
    if not all(check.passed for check in checks):
        why = "not evaluated: the id or event-time column is missing"
        return [*checks, *(rule.skipped(why) for rule in FEATURE_RULES[2:])], None
    ids = frame[id_column]
    nulls = int(ids.isna().sum())
    checks.append(_count_check(IDS_NOT_NULL, nulls, len(frame), id_column, "null id(s)"))
    id_tokens = tokens(ids)
    duplicated = id_tokens[id_tokens.duplicated(keep=False)]
    shown = sorted(set(duplicated))[:_SHOWN]
    checks.append(
        UNIQUE_IDS.outcome(
            duplicated.empty,
            value=len(duplicated),
            limit=0,
            column=id_column,
            message=f"{len(duplicated)} row(s) share an id, e.g. {shown}" if shown else "",
        )
    )
    times = parse_event_times(frame[event_time_column])
    bad = times.isna()
    examples = [repr(v) for v in frame[event_time_column][bad].head(_SHOWN).tolist()]
    checks.append(
        EVENT_TIMES.outcome(
            not bad.any(),
            value=int(bad.sum()),
            limit=0,
            column=event_time_column,
            message=(
                f"{int(bad.sum())} null or unparseable event time(s), e.g. {', '.join(examples)};"
                " expected ISO 8601 text or epoch seconds"
                if bad.any()
                else ""
            ),
        )
    )
    if not all(check.passed for check in checks):
        return checks, None
    dropped = [name for name in (id_column, event_time_column, label) if name in frame.columns]
    return checks, EventRows(
        features=frame.drop(columns=dropped),
        ids=id_tokens.reset_index(drop=True),
        times=times,
    )


def _present(rule: Rule, column: str, frame: pd.DataFrame) -> Check:
    if column in frame.columns:
        return rule.outcome(True, column=column)
    names = sorted(map(str, frame.columns))[:20]
    return rule.outcome(False, column=column, message=f"no column {column!r} in {names}")


def _count_check(rule: Rule, count: int, rows: int, column: str, what: str) -> Check:
    return rule.outcome(
        count == 0,
        value=count,
        limit=0,
        column=column,
        message=f"{count} of {rows} row(s): {what}" if count else "",
    )


def parse_event_times(column: pd.Series) -> pd.Series:
    """Event times in UTC, NaT where null or unparseable.

    ISO 8601 text (naive means UTC; offsets are converted), numbers as epoch
    seconds, and timestamp columns (Parquet) as they are. Booleans are not times.
    """
    index = column.index
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        return column.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(column.dtype):
        return column.dt.tz_localize("UTC")
    if pd.api.types.is_bool_dtype(column.dtype):
        return pd.Series(pd.NaT, index=index, dtype="datetime64[ns, UTC]")
    if pd.api.types.is_numeric_dtype(column.dtype):
        return _from_epoch(column)
    values = column.astype(object)
    is_text = values.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
    is_number = values.map(
        lambda v: (
            isinstance(v, int | float | np.integer | np.floating)
            and not isinstance(v, bool | np.bool_)
        )
    ).to_numpy(dtype=bool)
    result = pd.Series(pd.NaT, index=index, dtype="datetime64[ns, UTC]")
    if is_text.any():
        text = pd.to_datetime(values[is_text], utc=True, format="ISO8601", errors="coerce")
        result[is_text] = text.astype("datetime64[ns, UTC]")
    if is_number.any():
        result[is_number] = _from_epoch(values[is_number].astype("float64"))
    return result


def _from_epoch(seconds: pd.Series) -> pd.Series:
    numbers = pd.to_numeric(seconds, errors="coerce").astype("float64")
    numbers = numbers.where(np.isfinite(numbers))
    times = pd.to_datetime(numbers, unit="s", utc=True, errors="coerce")
    return times.astype("datetime64[ns, UTC]")


# -- label files -----------------------------------------------------------------


@dataclass(frozen=True)
class LabelTable:
    """Labels by id token: one label per id."""

    labels: pd.Series

    @classmethod
    def empty(cls) -> LabelTable:
        return cls(pd.Series([], dtype=object, index=pd.Index([], dtype=object)))

    def __len__(self) -> int:
        return len(self.labels)


def label_table(
    frame: pd.DataFrame, *, id_column: str, label: str, label_values: Sequence[str] | None
) -> tuple[list[Check], LabelTable | None]:
    """One label file's checks, and its labels when they all pass.

    A file without rows is an empty set of labels ("no conversion yet"),
    whatever its columns. Other columns than the id and the label are ignored.
    """
    if len(frame) == 0:
        return [rule.skipped("no rows: no labels") for rule in LABEL_FILE_RULES], LabelTable.empty()
    frame = frame.reset_index(drop=True)
    checks = [_present(ID_PRESENT, id_column, frame), _present(LABEL_PRESENT, label, frame)]
    if not all(check.passed for check in checks):
        why = "not evaluated: the id or label column is missing"
        return [*checks, *(rule.skipped(why) for rule in LABEL_FILE_RULES[2:])], None
    ids, labels = frame[id_column], frame[label]
    if isinstance(labels.dtype, pd.CategoricalDtype):  # Parquet dictionary columns
        labels = labels.astype(object).infer_objects()
    rows = len(frame)
    checks.append(_count_check(IDS_NOT_NULL, int(ids.isna().sum()), rows, id_column, "null id(s)"))
    checks.append(
        _count_check(LABELS_NOT_NULL, int(labels.isna().sum()), rows, label, "null label(s)")
    )
    checks.append(_label_types(labels, label))
    checks.append(_known_labels(labels, label, label_values))
    present = ids.notna() & labels.notna()
    id_tokens, label_tokens = tokens(ids[present]), tokens(labels[present])
    distinct = label_tokens.groupby(id_tokens.to_numpy()).nunique()
    conflicting = sorted(distinct[distinct > 1].index.astype(str))
    checks.append(
        ID_LABELS_CONSISTENT.outcome(
            not conflicting,
            value=len(conflicting),
            limit=0,
            column=id_column,
            message=(
                f"{len(conflicting)} id(s) with different labels, e.g. {conflicting[:_SHOWN]}"
                if conflicting
                else ""
            ),
        )
    )
    if not all(check.passed for check in checks):
        return checks, None
    table = labels.set_axis(pd.Index(id_tokens.to_numpy(), dtype=object))
    return checks, LabelTable(table[~table.index.duplicated(keep="last")])


def _label_types(labels: pd.Series, label: str) -> Check:
    kind, detail = kind_of(labels)
    if kind == "mixed":
        return LABEL_TYPES.outcome(False, column=label, message=f"labels of no one type: {detail}")
    if kind in ("integer", "number"):
        values = pd.to_numeric(labels, errors="coerce").dropna().to_numpy(dtype="float64")
        infinite = int(np.isinf(values).sum())
        if infinite:
            return LABEL_TYPES.outcome(
                False, value=infinite, limit=0, column=label, message=f"{infinite} infinite"
            )
    return LABEL_TYPES.outcome(True, column=label, message=kind or "")


def _known_labels(labels: pd.Series, label: str, allowed: Sequence[str] | None) -> Check:
    if allowed is None:
        return UNKNOWN_LABELS.skipped("labelValues not set")
    present = tokens(labels)
    unknown = present[~present.isin(set(allowed))]
    shown = sorted(set(unknown))[:_SHOWN]
    return UNKNOWN_LABELS.outcome(
        unknown.empty,
        value=len(unknown) / len(present) if len(present) else 0.0,
        limit=0.0,
        column=label,
        message=f"not in labelValues: {shown}" if shown else "all in labelValues",
    )


def merge_tables(tables: Sequence[LabelTable]) -> LabelTable:
    """One table from a batch's files in key order: a later file's label for an id wins."""
    present = [table.labels for table in tables if len(table)]
    if not present:
        return LabelTable.empty()
    merged = pd.concat(present) if len(present) > 1 else present[0]
    return LabelTable(merged[~merged.index.duplicated(keep="last")])


def negative_label(value: str, observed: pd.Series) -> Label:
    """`negativeValue` (text in the spec) as a value of the labels' own type.

    `observed` are the run's labels from label files; when there are none the
    value is typed the way a CSV cell is (a number, then true/false, else text).
    """
    kind, _ = kind_of(observed)
    if kind in ("integer", "number", None):
        try:
            number = float(value)
        except ValueError:
            number = None
        if number is not None and np.isfinite(number):
            return int(number) if number.is_integer() and kind != "number" else number
    if kind in ("boolean", None) and value.lower() in _BOOLEAN_TEXT:
        return _BOOLEAN_TEXT[value.lower()]
    return value


# -- the join --------------------------------------------------------------------


@dataclass(frozen=True)
class Maturity:
    """For each row a batch trains on: did it mature, and when did its event happen."""

    matured: npt.NDArray[np.bool_]
    event_times: pd.Series


@dataclass(frozen=True)
class Joined:
    validation_frame: pd.DataFrame
    """Every row: features and the label of matured rows (null for the others).
    What validation judges, so label checks never see a fake negative."""
    rows: pd.DataFrame
    """The rows that may be trained on (features and label), index 0..n-1."""
    maturity: Maturity
    """Aligned with `rows`."""
    counts: LabelRowCounts
    first: pd.Timestamp | None
    last: pd.Timestamp | None


def watermark(floor: datetime | None, times: Iterable[pd.Series]) -> pd.Timestamp | None:
    """The newest event time (or the floor, if later), to the microsecond; None when neither."""
    latest = [pd.Timestamp(t.max()) for t in times if len(t)]
    if floor is not None:
        latest.append(pd.Timestamp(floor))
    return max(latest).floor("us") if latest else None


def cutoff(mark: pd.Timestamp | None, delay_seconds: int) -> pd.Timestamp | None:
    """Rows at or before this time matured: their labels had `delay_seconds` to arrive."""
    return None if mark is None else mark - pd.Timedelta(seconds=delay_seconds)


def join(
    rows: EventRows,
    table: LabelTable,
    *,
    label: str,
    cut: pd.Timestamp | None,
    negative: Label | None,
    fake_negative: bool,
) -> Joined:
    """Label a batch's rows from its label table, by maturity (see the module docstring)."""
    times = rows.times
    matured = (times <= cut).to_numpy(dtype=bool) if cut is not None else np.zeros(len(times), bool)
    observed = table.labels.reindex(rows.ids.to_numpy())
    found = observed.notna().to_numpy(dtype=bool)
    values = pd.Series(observed.to_numpy(), index=rows.features.index)
    if negative is not None:
        values = values.where(found, negative)
    labeled = values.notna().to_numpy(dtype=bool)
    trainable = (matured & labeled) | (~matured & fake_negative & labeled)
    defaulted = ~found & labeled
    counts = LabelRowCounts(
        matured=int(matured.sum()),
        immature=int((~matured).sum()),
        labeled=int((matured & found).sum()),
        defaulted=int((matured & defaulted).sum()),
        fake_negatives=int((~matured & fake_negative & defaulted).sum()),
        unmatched_labels=int((~table.labels.index.isin(rows.ids)).sum()),
    )
    dtype = table.labels.dtype if len(table) else pd.Series([negative]).dtype
    validation_frame = rows.features.assign(**{label: values.where(matured)})
    trained = rows.features[trainable].assign(**{label: _typed(values[trainable], dtype)})
    return Joined(
        validation_frame=validation_frame,
        rows=trained.reset_index(drop=True),
        maturity=Maturity(matured[trainable], times[trainable].reset_index(drop=True)),
        counts=counts,
        first=times.min() if len(times) else None,
        last=times.max() if len(times) else None,
    )


def _typed(values: pd.Series, dtype: object) -> pd.Series:
    """Labels back in the label files' type (a join with gaps makes integers floats)."""
    if values.isna().any():
        return values
    try:
        return values.astype(dtype)
    except (TypeError, ValueError):
        return values


def newly_matured(maturity: Maturity, previous_cutoff: datetime | None) -> npt.NDArray[np.bool_]:
    """Rows that matured since the previous run's cutoff (all matured rows without one)."""
    if previous_cutoff is None:
        return maturity.matured
    after = (maturity.event_times > pd.Timestamp(previous_cutoff)).to_numpy(dtype=bool)
    return np.asarray(maturity.matured & after, dtype=np.bool_)


def summary(
    mark: pd.Timestamp | None,
    cut: pd.Timestamp | None,
    batches: Sequence[tuple[str, Joined]],
) -> LabelReport:
    """The result's `labels` block from the accepted batches' joins, in spec order."""
    names = LabelRowCounts.model_fields
    total = {name: sum(getattr(j.counts, name) for _, j in batches) for name in names}
    return LabelReport(
        watermark=_time(mark),
        cutoff=_time(cut),
        rows=LabelRowCounts(**total),
        batches=[
            BatchLabels(
                key=key,
                matured=joined.counts.matured,
                immature=joined.counts.immature,
                labeled=joined.counts.labeled,
                event_time_min=_time(joined.first),
                event_time_max=_time(joined.last),
            )
            for key, joined in batches
        ],
    )


def _time(value: pd.Timestamp | None) -> datetime | None:
    return None if value is None else value.floor("us").to_pydatetime()
