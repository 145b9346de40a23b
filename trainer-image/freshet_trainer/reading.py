"""Parsing one downloaded batch file into a frame, in bounded chunks.

Batch files are untrusted input: a producer's bug can put anything in the
bucket (a compressed export, a spreadsheet, UTF-16 text, half a file). Every
way a file can be unreadable ends here as `UnreadableBatch` with a reason and
a sentence a human can act on, never as a crash of the trainer.

Files are read from a local temporary file in chunks (CSV and JSON Lines by
rows, Parquet by row group), so the parser never holds the raw bytes and the
frame at once. CSV cells are read as text and typed once over the whole
column, so a column's type never depends on where a chunk boundary fell.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import warnings
from collections import Counter
from collections.abc import Iterator
from typing import IO, Any, Final

import pandas as pd
import pyarrow.parquet as pq
from freshet_contract.vocabulary import DataFormat

from freshet_trainer.reasons import BatchReason

CHUNK_ROWS: Final = 50_000
_BLOCK_BYTES: Final = 1024 * 1024
_TAIL_BYTES: Final = 64 * 1024

# Magic numbers of containers that are never a valid text batch, with what to tell the producer.
_FOREIGN_CONTAINERS: Final = (
    (b"\x1f\x8b", "gzip-compressed"),
    (b"PK\x03\x04", "a zip archive (or an xlsx/docx file)"),
    (b"BZh", "bzip2-compressed"),
    (b"\xfd7zXZ\x00", "xz-compressed"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed"),
    (b"PAR1", "a Parquet file"),
    (b"\xff\xfe", "UTF-16 text (little-endian BOM)"),
    (b"\xfe\xff", "UTF-16 text (big-endian BOM)"),
)
_BOOLEAN_TEXT: Final = {"true": True, "false": False}


class UnreadableBatch(Exception):
    """The file cannot become a frame; `reason` is the quarantine code."""

    def __init__(
        self,
        reason: BatchReason,
        message: str,
        *,
        value: float | None = None,
        limit: float | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.value = value
        self.limit = limit


def read_batch_file(handle: IO[bytes], data_format: DataFormat, max_columns: int) -> pd.DataFrame:
    """Parse the whole file (positioned anywhere) into a frame with a fresh index.

    A file with no bytes but whitespace is an empty frame, not an error, so
    that the validation reports it as an empty batch.
    """
    handle.seek(0)
    head = handle.read(8)
    handle.seek(0)
    if not head:
        return pd.DataFrame()
    try:
        if data_format == "parquet":
            frame = _read_parquet(handle, max_columns)
        else:
            _refuse_foreign_container(head, data_format)
            _require_utf8_text(handle)
            frame = (
                _read_csv(handle, max_columns)
                if data_format == "csv"
                else _read_jsonl(handle, max_columns)
            )
    except UnreadableBatch:
        raise
    except Exception as error:  # a third-party parser fed untrusted bytes: any failure is ours
        raise UnreadableBatch(
            BatchReason.UNPARSABLE,
            f"not a readable {data_format} file: {type(error).__name__}: {error}",
        ) from error
    return frame.reset_index(drop=True)


def _refuse_foreign_container(head: bytes, data_format: DataFormat) -> None:
    for magic, what in _FOREIGN_CONTAINERS:
        if head.startswith(magic):
            raise UnreadableBatch(
                BatchReason.UNPARSABLE,
                f"the file is {what}, not {data_format} text; batches must be uncompressed UTF-8",
            )


def _require_utf8_text(handle: IO[bytes]) -> None:
    """One streaming pass: the text formats must be UTF-8 without NUL bytes."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset = 0
    while block := handle.read(_BLOCK_BYTES):
        nul = block.find(b"\x00")
        if nul >= 0:
            raise UnreadableBatch(
                BatchReason.UNPARSABLE,
                f"NUL byte at offset {offset + nul}: binary data or UTF-16 text, not UTF-8",
            )
        try:
            decoder.decode(block)
        except UnicodeDecodeError as error:
            raise UnreadableBatch(
                BatchReason.UNPARSABLE,
                f"not UTF-8 at byte {offset + error.start} (latin-1 or another encoding?)",
            ) from error
        offset += len(block)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as error:
        raise UnreadableBatch(
            BatchReason.UNPARSABLE, "the file ends inside a UTF-8 character: truncated?"
        ) from error
    handle.seek(0)


def _check_column_names(names: list[str], max_columns: int) -> None:
    if len(names) > max_columns:
        raise UnreadableBatch(
            BatchReason.TOO_MANY_COLUMNS,
            f"{len(names)} columns, more than validation.maxColumns",
            value=float(len(names)),
            limit=float(max_columns),
        )
    blank = [index for index, name in enumerate(names) if not name.strip()]
    if blank:
        raise UnreadableBatch(
            BatchReason.INVALID_COLUMN_NAMES, f"empty column name at position(s) {blank[:10]}"
        )
    duplicated = sorted(name for name, count in Counter(names).items() if count > 1)
    if duplicated:
        raise UnreadableBatch(
            BatchReason.INVALID_COLUMN_NAMES, f"duplicate column names {duplicated[:10]}"
        )


# -- CSV -------------------------------------------------------------------------


def _read_csv(handle: IO[bytes], max_columns: int) -> pd.DataFrame:
    header = _csv_header(handle)
    if header is None:
        return pd.DataFrame()
    _check_column_names(header, max_columns)
    _refuse_truncated_last_row(handle, len(header))
    handle.seek(0)
    with warnings.catch_warnings():
        # A row longer than the header would otherwise be truncated silently.
        warnings.simplefilter("error", pd.errors.ParserWarning)
        chunks = list(
            pd.read_csv(
                handle,
                dtype=str,
                index_col=False,
                on_bad_lines="error",
                encoding="utf-8-sig",
                chunksize=CHUNK_ROWS,
            )
        )
    frame = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame(columns=header)
    return frame.apply(_typed_column) if len(frame) else frame


def _csv_header(handle: IO[bytes]) -> list[str] | None:
    """The first record, read by the csv module so duplicate names are seen as written
    (pandas would rename the second `a` to `a.1`)."""
    handle.seek(0)
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
    try:
        for record in csv.reader(text):
            if record:
                return record
        return None
    except csv.Error as error:
        raise UnreadableBatch(BatchReason.UNPARSABLE, f"unreadable CSV header: {error}") from error
    finally:
        text.detach()


def _refuse_truncated_last_row(handle: IO[bytes], columns: int) -> None:
    """A file cut short mid-row ends without a newline and with a short last row;
    pandas would pad that row with nulls and say nothing."""
    size = handle.seek(0, io.SEEK_END)
    handle.seek(max(0, size - _TAIL_BYTES))
    tail = handle.read()
    if tail.endswith((b"\n", b"\r")):
        return
    last_line = tail.rsplit(b"\n", 1)[-1].decode("utf-8", errors="replace")
    fields = next(csv.reader([last_line]), [])
    if 0 < len(fields) < columns:
        raise UnreadableBatch(
            BatchReason.UNPARSABLE,
            f"the last row has {len(fields)} of {columns} fields and no line end: truncated file",
        )


def _typed_column(column: pd.Series) -> pd.Series:
    """Numbers, then booleans, else text: the type the whole column supports."""
    present = column.dropna()
    if present.empty:
        return column.astype("float64")
    try:
        return pd.to_numeric(column)
    except (ValueError, TypeError):
        pass
    lowered = column.str.lower()
    if lowered.dropna().isin(_BOOLEAN_TEXT).all():
        flags = lowered.map(_BOOLEAN_TEXT)
        return flags.astype(bool) if flags.notna().all() else flags.astype(object)
    return column


# -- JSON Lines ------------------------------------------------------------------


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    record = dict(pairs)
    if len(record) != len(pairs):
        counts = Counter(name for name, _ in pairs)
        raise _DuplicateKey(sorted(name for name, count in counts.items() if count > 1))
    return record


def _read_jsonl(handle: IO[bytes], max_columns: int) -> pd.DataFrame:
    chunks: list[pd.DataFrame] = []
    columns: dict[str, None] = {}  # insertion-ordered set
    for records in _jsonl_chunks(handle):
        for record in records:
            columns.update(dict.fromkeys(record))
        if len(columns) > max_columns:  # refuse a wide file before parsing all of it
            _check_column_names(list(columns), max_columns)
        chunks.append(pd.DataFrame.from_records(records))
    if not chunks:
        return pd.DataFrame()
    _check_column_names(list(columns), max_columns)
    return pd.concat(chunks, ignore_index=True).reindex(columns=list(columns))


def _jsonl_chunks(handle: IO[bytes]) -> Iterator[list[dict[str, Any]]]:
    records: list[dict[str, Any]] = []
    for number, raw in enumerate(handle, start=1):
        line = raw.decode("utf-8")
        if number == 1:
            line = line.removeprefix("\ufeff")
        if not line.strip():
            continue
        try:
            record = json.loads(line, object_pairs_hook=_unique_keys)
        except _DuplicateKey as error:
            raise UnreadableBatch(
                BatchReason.INVALID_COLUMN_NAMES, f"line {number}: duplicate keys {error}"
            ) from error
        except RecursionError as error:
            raise UnreadableBatch(
                BatchReason.UNPARSABLE, f"line {number}: JSON nested too deeply"
            ) from error
        except ValueError as error:
            raise UnreadableBatch(
                BatchReason.UNPARSABLE, f"line {number}: not JSON: {error}"
            ) from error
        if not isinstance(record, dict):
            raise UnreadableBatch(
                BatchReason.UNPARSABLE,
                f"line {number}: a JSON {type(record).__name__}, expected one object per line",
            )
        records.append(record)
        if len(records) == CHUNK_ROWS:
            yield records
            records = []
    if records:
        yield records


# -- Parquet ---------------------------------------------------------------------


def _read_parquet(handle: IO[bytes], max_columns: int) -> pd.DataFrame:
    parquet = pq.ParquetFile(handle)
    names = parquet.schema_arrow.names
    _check_column_names(names, max_columns)
    groups = [parquet.read_row_group(index).to_pandas() for index in range(parquet.num_row_groups)]
    if not groups:
        return parquet.schema_arrow.empty_table().to_pandas()
    return pd.concat(groups, ignore_index=True)
