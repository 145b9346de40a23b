"""Parsing batch files: the three formats, typed the same whatever the chunking."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from freshet_contract.run import RunValidation
from freshet_trainer import reading
from freshet_trainer.reading import UnreadableBatch, read_batch_file
from freshet_trainer.validation import Accepted, build_reference, validate

from .synthetic import classification_frame, encode


def read(data: bytes, data_format: str = "csv") -> pd.DataFrame:
    return read_batch_file(io.BytesIO(data), data_format, max_columns=1000)  # type: ignore[arg-type]


@pytest.mark.parametrize("data_format", ["csv", "jsonl", "parquet"])
def test_each_format_reads_back_the_same_frame(data_format: str) -> None:
    frame = classification_frame(20, seed=1)

    pd.testing.assert_frame_equal(
        read(encode(frame, data_format), data_format), frame, check_dtype=False, check_exact=False
    )


@pytest.mark.parametrize("data_format", ["csv", "jsonl", "parquet"])
def test_chunks_are_concatenated_in_order(
    data_format: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reading, "CHUNK_ROWS", 7)
    frame = classification_frame(50, seed=2)
    buffer = io.BytesIO()
    if data_format == "parquet":
        frame.to_parquet(buffer, row_group_size=7)
    else:
        buffer.write(encode(frame, data_format))

    read_back = read(buffer.getvalue(), data_format)

    pd.testing.assert_frame_equal(read_back, frame, check_dtype=False, check_exact=False)


def test_csv_column_types_do_not_depend_on_chunk_boundaries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Numbers in the first chunk and text in the second: one text column, not a mix."""
    monkeypatch.setattr(reading, "CHUNK_ROWS", 2)
    frame = read(b"code,flag,n,y\n1,true,1,0\n2,False,,1\nA7,TRUE,3,0\n")

    assert frame["code"].tolist() == ["1", "2", "A7"]
    assert frame["flag"].tolist() == [True, False, True]
    assert frame["n"].dtype == np.float64 and frame["y"].dtype == np.int64


def test_a_utf8_byte_order_mark_is_not_part_of_the_first_name() -> None:
    assert list(read(b"\xef\xbb\xbfx1,y\n1,0\n").columns) == ["x1", "y"]


def test_a_last_line_without_newline_is_fine_when_complete() -> None:
    assert len(read(b"x1,x2,y\n1,2,0\n3,4,1")) == 2


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"x1,x2,y\n1,2,0\n3,", "truncated file"),
        (b"a,y\n1,2,3\n", "not a readable csv file"),
        (b"\x1f\x8b\x08\x00", "gzip-compressed"),
        (b"x1,y\n1,\x000\n", "NUL byte at offset 7"),
        ("x1,y\nrosé,0\n".encode("latin-1"), "not UTF-8 at byte 8"),
    ],
)
def test_unreadable_csv_says_why(data: bytes, fragment: str) -> None:
    with pytest.raises(UnreadableBatch, match=fragment) as refused:
        read(data)
    assert refused.value.reason == "Unparsable"


def test_jsonl_reports_the_bad_line() -> None:
    with pytest.raises(UnreadableBatch, match="line 2: not JSON"):
        read(b'{"x1": 1, "y": 0}\n{"x1": \n', "jsonl")


def test_whitespace_is_an_empty_batch() -> None:
    assert read(b"").empty and read(b"\n\n", "jsonl").empty


def test_parquet_dictionary_columns_are_text() -> None:
    frame = classification_frame(50, seed=4).astype({"color": "category"})
    reference = build_reference([("a", classification_frame(200, seed=5))], "y", True)

    verdict = validate(
        read(encode(frame, "parquet"), "parquet"),
        label="y",
        classification=True,
        settings=RunValidation(),
        reference=reference,
    )

    assert isinstance(verdict, Accepted), getattr(verdict, "message", "")


def test_jsonl_empty_key_is_an_invalid_column_name() -> None:
    with pytest.raises(UnreadableBatch, match="empty column name") as refused:
        read(b'{"": 1, "y": 0}\n', "jsonl")
    assert refused.value.reason == "InvalidColumnNames"
