"""Batch parsing and the per-batch checks that decide quarantine."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from freshet_trainer.data import Accepted, Refused, UnparsableBatch, read_batch, validate_batch
from freshet_trainer.reasons import BatchReason

from .synthetic import classification_frame, encode


@pytest.mark.parametrize("data_format", ["csv", "jsonl", "parquet"])
def test_each_format_reads_back_the_same_frame(data_format: str) -> None:
    frame = classification_frame(20, seed=1)

    read = read_batch(encode(frame, data_format), data_format)  # type: ignore[arg-type]

    pd.testing.assert_frame_equal(read, frame, check_dtype=False, check_exact=False)


@pytest.mark.parametrize(
    ("data_format", "raw"),
    [
        ("csv", b"a,y\n1,2,3\n"),  # a row longer than the header
        ("csv", b"\xff\xfe\x00garbage"),
        ("jsonl", b'{"a": 1, "y": 0}\n{"a": \n'),
        ("parquet", b"a,y\n1,0\n"),
    ],
)
def test_broken_files_are_unparsable(data_format: str, raw: bytes) -> None:
    with pytest.raises(UnparsableBatch):
        read_batch(raw, data_format)  # type: ignore[arg-type]


def test_a_zero_byte_file_is_an_empty_batch() -> None:
    frame = read_batch(b"", "csv")

    verdict = validate_batch(frame, "y", 0.05)

    assert isinstance(verdict, Refused) and verdict.reason is BatchReason.EMPTY


def refusal(frame: pd.DataFrame, limit: float = 0.05) -> Refused:
    verdict = validate_batch(frame, "y", limit)
    assert isinstance(verdict, Refused)
    return verdict


def test_header_only_csv_is_empty() -> None:
    verdict = refusal(read_batch(b"x1,y\n", "csv"))

    assert verdict.reason is BatchReason.EMPTY
    assert verdict.checks[0].value == 0


def test_missing_label_column_is_named() -> None:
    verdict = refusal(pd.DataFrame({"x1": [1.0], "label": [1]}))

    assert verdict.reason is BatchReason.LABEL_MISSING
    assert "'y'" in verdict.checks[-1].message


def test_label_only_batch_has_no_features() -> None:
    assert refusal(pd.DataFrame({"y": [1, 0]})).reason is BatchReason.NO_FEATURES


def test_all_null_label_is_refused() -> None:
    verdict = refusal(pd.DataFrame({"x1": [1.0, 2.0], "y": [None, None]}))

    assert verdict.reason is BatchReason.LABEL_ALL_NULL


def test_null_fraction_above_the_limit_reports_the_worst_column() -> None:
    frame = classification_frame(100, seed=2)
    frame.loc[:9, "x2"] = np.nan  # 10% null
    frame.loc[:2, "x1"] = np.nan  # 3% null

    verdict = refusal(frame, limit=0.05)

    assert verdict.reason is BatchReason.TOO_MANY_NULLS
    check = verdict.checks[-1]
    assert (check.name, check.passed, check.value, check.limit) == (
        "maxNullFraction",
        False,
        0.1,
        0.05,
    )
    assert "'x2'" in check.message


def test_unlabeled_rows_are_dropped_not_refused() -> None:
    frame = classification_frame(10, seed=3).astype({"y": "float"})
    frame.loc[0, "y"] = np.nan

    verdict = validate_batch(frame, "y", 0.05)

    assert isinstance(verdict, Accepted)
    assert len(verdict.rows) == 9
    assert all(check.passed for check in verdict.checks)
