"""A corpus of malformed batch files: the bugs that reach a bucket, one file each.

Every file is generated (deterministically) from a clean batch of
`synthetic.classification_frame`, so a policy whose reference window holds
clean batches of the same shape must refuse each one, with a reason.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zipfile
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .synthetic import classification_frame, encode


@dataclass(frozen=True)
class Malformed:
    name: str
    format: str
    data: bytes
    expected: frozenset[str]
    """Acceptable quarantine reasons (some files are wrong in more than one way)."""


def _clean(data_format: str, rows: int = 200) -> bytes:
    return encode(classification_frame(rows, seed=11), data_format)


def _csv(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue()


def _cut_after_comma(data: bytes, share: float) -> bytes:
    """Truncate inside a row, just after a field separator."""
    return data[: data.index(b",", int(len(data) * share)) + 1]


def _open_quote(data: bytes, share: float) -> bytes:
    """A quote opening a field that never closes."""
    at = data.index(b",", int(len(data) * share)) + 1
    return data[:at] + b'"' + data[at:]


def _parquet(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def _zip(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("batch.csv", data)
    return buffer.getvalue()


def _nested(depth: int) -> bytes:
    return b'{"x1": ' + b"[" * depth + b"]" * depth + b', "y": 1}\n'


def corpus() -> list[Malformed]:
    """At least fifty malformed files across the three formats."""
    rng = np.random.default_rng(5)
    csv, jsonl, parquet = _clean("csv"), _clean("jsonl"), _clean("parquet")
    frame = classification_frame(200, seed=11)
    text = csv.decode()
    wide_header = ",".join(f"c{i}" for i in range(10_000))

    def case(name: str, data_format: str, data: bytes, *reasons: str) -> Malformed:
        return Malformed(name, data_format, data, frozenset(reasons))

    unparsable, empty, types = "Unparsable", "EmptyBatch", "TypeMismatch"
    label_missing, names = "LabelMissing", "InvalidColumnNames"
    return [
        # -- CSV -------------------------------------------------------------------
        case("csv-zero-bytes", "csv", b"", empty),
        case("csv-blank-lines", "csv", b"\n\n\r\n", empty),
        case("csv-header-only", "csv", b"x1,x2,color,y\n", empty),
        case("csv-truncated-mid-row", "csv", _cut_after_comma(csv, 0.6), unparsable),
        case("csv-truncated-early", "csv", _cut_after_comma(csv, 0.05), unparsable),
        case(
            "csv-truncated-mid-character",
            "csv",
            text.replace("red", "rød").encode()[:-2] + "ø".encode()[:1],
            unparsable,
        ),
        case("csv-binary-garbage", "csv", rng.bytes(4096), unparsable),
        case(
            "csv-binary-no-nul",
            "csv",
            bytes(rng.integers(128, 256, 4096, dtype=np.uint8)),
            unparsable,
        ),
        case("csv-latin-1", "csv", text.replace("red", "rosé").encode("latin-1"), unparsable),
        case("csv-utf-16", "csv", text.encode("utf-16"), unparsable),
        case("csv-utf-16-be-bom", "csv", b"\xfe\xff" + text.encode("utf-16-be"), unparsable),
        case("csv-utf-16-no-bom", "csv", text.encode("utf-16-le"), unparsable),
        case(
            "csv-mixed-types",
            "csv",
            _csv(
                frame.astype({"x1": object}).assign(
                    x1=lambda f: f["x1"].where(f.index % 7 > 0, "abc")
                )
            ),
            types,
        ),
        case(
            "csv-decimal-comma",
            "csv",
            _csv(frame.assign(x2=frame["x2"].map(lambda v: f"{v:.3f}".replace(".", ",")))),
            types,
        ),
        case("csv-huge-single-line", "csv", b"1," * 1_000_000 + b"1", "TooManyColumns"),
        case(
            "csv-huge-field",
            "csv",
            b"x1,y\n" + b"9" * 300_000 + b",1",
            types,
            "OutOfRangeValues",
            "MissingColumns",
        ),
        case("csv-huge-header-field", "csv", b"x" * 300_000 + b",y\n1,1\n", unparsable),
        case("csv-semicolon-delimiter", "csv", text.replace(",", ";").encode(), label_missing),
        case("csv-tab-delimiter", "csv", text.replace(",", "\t").encode(), label_missing),
        case("csv-gzip-no-extension", "csv", gzip.compress(csv, mtime=0), unparsable),
        case("csv-zip", "csv", _zip(csv), unparsable),
        case("csv-bzip2", "csv", bz2.compress(csv), unparsable),
        case("csv-xz", "csv", lzma.compress(csv), unparsable),
        case("csv-actually-parquet", "csv", parquet, unparsable),
        case("csv-nul-bytes", "csv", csv[:500] + b"\x00\x00" + csv[500:], unparsable),
        case("csv-unbalanced-quote", "csv", _open_quote(csv, 0.3), unparsable),
        case("csv-stray-quote-in-number", "csv", csv[:300] + b'"' + csv[300:], types),
        case("csv-row-longer-than-header", "csv", csv + b"1,2,red,1,extra\n", unparsable),
        case("csv-duplicate-column-names", "csv", csv.replace(b"x1,x2", b"x1,x1", 1), names),
        case("csv-empty-column-name", "csv", csv.replace(b"x1,", b",", 1), names),
        case(
            "csv-10k-columns", "csv", f"{wide_header}\n{wide_header}\n".encode(), "TooManyColumns"
        ),
        case("csv-label-renamed", "csv", csv.replace(b",y\n", b",label\n", 1), label_missing),
        case("csv-labels-all-empty", "csv", _csv(frame.assign(y="")), "LabelAllNull"),
        case(
            "csv-labels-as-words",
            "csv",
            _csv(frame.assign(y=frame["y"].map({0: "no", 1: "yes"}))),
            types,
        ),
        case(
            "csv-infinities",
            "csv",
            _csv(frame.assign(x1=frame["x1"].where(frame.index % 9 > 0, np.inf))),
            "NonFiniteValues",
        ),
        case("csv-label-only", "csv", _csv(frame[["y"]]), "NoFeatures"),
        case(
            "csv-html-error-page",
            "csv",
            b"<html><body><h1>502 Bad Gateway</h1></body></html>\n",
            empty,
        ),
        case("csv-json-document", "csv", b'[{"x1": 1, "y": 0}, {"x1": 2, "y": 1}]\n', empty),
        case(
            "csv-columns-shifted",
            "csv",
            _csv(frame.rename(columns={"x1": "x2", "x2": "x1"}).drop(columns="color")),
            "MissingColumns",
        ),
        # -- JSON Lines -------------------------------------------------------------
        case("jsonl-zero-bytes", "jsonl", b"", empty),
        case("jsonl-bad-line", "jsonl", jsonl.replace(b"\n", b"\n{oops\n", 3), unparsable),
        case("jsonl-truncated", "jsonl", jsonl[: int(len(jsonl) * 0.7)], unparsable),
        case("jsonl-array-lines", "jsonl", b"[1, 2, 3]\n[4, 5, 6]\n", unparsable),
        case(
            "jsonl-one-json-array", "jsonl", b'[{"x1": 1, "y": 0}, {"x1": 2, "y": 1}]', unparsable
        ),
        case("jsonl-scalar-lines", "jsonl", b"1\n2\n3\n", unparsable),
        case("jsonl-deeply-nested", "jsonl", _nested(100_000), unparsable),
        case(
            "jsonl-nested-values",
            "jsonl",
            jsonl.replace(b'"color":"red"', b'"color":{"r":{"g":[1]}}'),
            types,
        ),
        case(
            "jsonl-duplicate-keys",
            "jsonl",
            b'{"x1": 1, "x1": 2, "x2": 0, "color": "red", "y": 1}\n',
            names,
        ),
        case("jsonl-mixed-types", "jsonl", jsonl.replace(b'"y":1', b'"y":"1"', 5), types),
        case("jsonl-nul-bytes", "jsonl", jsonl[:200] + b"\x00" + jsonl[200:], unparsable),
        case(
            "jsonl-latin-1",
            "jsonl",
            jsonl.replace(b'"red"', '"rosé"'.encode("latin-1")),
            unparsable,
        ),
        case("jsonl-gzip", "jsonl", gzip.compress(jsonl, mtime=0), unparsable),
        case("jsonl-empty-objects", "jsonl", b"{}\n{}\n{}\n", empty),
        case("jsonl-csv-content", "jsonl", csv, unparsable),
        # -- Parquet ----------------------------------------------------------------
        case("parquet-zero-bytes", "parquet", b"", empty),
        case("parquet-truncated-footer", "parquet", parquet[:-10], unparsable),
        case(
            "parquet-corrupt-footer", "parquet", parquet[:-12] + b"\xff" * 8 + b"PAR1", unparsable
        ),
        case("parquet-wrong-magic", "parquet", parquet[:-4] + b"PAR0", unparsable),
        case("parquet-csv-content", "parquet", csv, unparsable),
        case("parquet-random-bytes", "parquet", rng.bytes(8192), unparsable),
        case("parquet-no-rows", "parquet", _parquet(pa.Table.from_pandas(frame.head(0))), empty),
        case(
            "parquet-duplicate-column-names",
            "parquet",
            _parquet(
                pa.table([pa.array([1.0]), pa.array([2.0]), pa.array([1])], names=["x1", "x1", "y"])
            ),
            names,
        ),
        case(
            "parquet-timestamps",
            "parquet",
            _parquet(pa.Table.from_pandas(frame.assign(x1=pd.Timestamp("2026-01-01")))),
            types,
        ),
        case(
            "parquet-struct-column",
            "parquet",
            _parquet(pa.Table.from_pandas(frame.assign(color=[{"r": 1}] * len(frame)))),
            types,
        ),
        case(
            "parquet-2000-columns",
            "parquet",
            _parquet(pa.table({f"c{i}": [1.0] for i in range(2000)})),
            "TooManyColumns",
        ),
    ]
