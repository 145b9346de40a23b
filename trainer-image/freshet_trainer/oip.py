"""The Open Inference Protocol (KServe v2, as MLServer and Triton speak it) on the
model server, next to `/predict`, so v2 clients and tools can call it.

One model per server, named by FRESHET_MODEL_NAME (default `model`); its version
is the promoted one. A request carries one input tensor per feature column (the
"pandas" layout MLServer's scikit-learn runtime uses): numeric features as
FP64/FP32/INT64/INT32/BOOL, categorical ones as BYTES (strings), each of shape
[rows] or [rows, 1]. The answer has `predict` (the class or value per row) and,
for a classifier with probabilities, `predict_proba` of shape [rows, classes] in
the order of `parameters.classes`. Predictions are the same as `/predict`'s for
the same rows: both go through the same checks and `_predict_columns` in serve.py.
This module is the protocol's codec; serve.py has the handlers.
"""

from __future__ import annotations

from typing import Any

NUMERIC = {"FP64", "FP32", "FP16", "INT64", "INT32", "INT16", "INT8", "UINT64", "UINT32",
           "UINT16", "UINT8", "BOOL"}  # fmt: skip
OUTPUTS = ("predict", "predict_proba")


class InferError(ValueError):
    """The request is not a valid inference request for this model."""


def _datatype(values: list[Any]) -> str:
    if all(isinstance(v, bool) for v in values):
        return "BOOL"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "INT64"
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "FP64"
    return "BYTES"


def _flat(data: Any, rows: int, name: str) -> list[Any]:
    """The tensor's values, one per row ([rows] or [rows, 1], flat or nested)."""
    if not isinstance(data, list):
        raise InferError(f"input {name!r}: data must be a list")
    values = [v[0] if isinstance(v, list) and len(v) == 1 else v for v in data]
    if len(values) != rows or any(isinstance(v, list | dict) for v in values):
        raise InferError(f"input {name!r}: shape [{rows}] or [{rows}, 1] expected")
    return values


def rows_of(body: Any, numeric: set[str], max_rows: int) -> tuple[list[dict[str, Any]], set[str]]:
    """The request's rows (column -> value) and the outputs it asks for."""
    columns, rows, wanted = columns_of(body, numeric, max_rows)
    return [{c: values[i] for c, values in columns.items()} for i in range(rows)], wanted


def columns_of(
    body: Any, numeric: set[str], max_rows: int
) -> tuple[dict[str, list[Any]], int, set[str]]:
    """The request's columns (name -> one value per row), its row count and the
    outputs it asks for."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
        raise InferError('body must be {"inputs": [{"name", "shape", "datatype", "data"}, ...]}')
    columns: dict[str, list[Any]] = {}
    rows = -1
    for tensor in body["inputs"]:
        if not isinstance(tensor, dict):
            raise InferError("every input must be an object")
        name, shape, datatype = tensor.get("name"), tensor.get("shape"), tensor.get("datatype")
        if not isinstance(name, str) or not isinstance(shape, list) or not shape:
            raise InferError("every input needs a name and a shape")
        if rows == -1:
            rows = shape[0]
        if not isinstance(shape[0], int) or shape[0] != rows or shape[1:] not in ([], [1]):
            raise InferError(f"input {name!r}: every input must have shape [{rows}] or [{rows}, 1]")
        if datatype not in NUMERIC | {"BYTES"}:
            raise InferError(f"input {name!r}: datatype {datatype!r} is not supported")
        if name in numeric and datatype == "BYTES":
            raise InferError(f"input {name!r} is a numeric feature: send a numeric datatype")
        columns[name] = _flat(tensor.get("data"), rows, name)
    if not 0 < rows <= max_rows:
        raise InferError(f"{rows} rows: between 1 and {max_rows} per request")
    wanted = {str(o.get("name")) for o in body.get("outputs") or [] if isinstance(o, dict)}
    if unknown := wanted - set(OUTPUTS):
        raise InferError(f"unknown outputs {sorted(unknown)}; this model has {list(OUTPUTS)}")
    return columns, rows, wanted


def response(
    name: str, version: str, request_id: Any, answer: dict[str, Any], wanted: set[str]
) -> dict[str, Any]:
    """The inference response for `/predict`'s answer."""
    predictions = answer["predictions"]
    outputs = [
        {"name": "predict", "shape": [len(predictions)], "datatype": _datatype(predictions),
         "data": predictions},
    ]  # fmt: skip
    if "probabilities" in answer:
        probabilities = answer["probabilities"]
        outputs.append(
            {
                "name": "predict_proba",
                "shape": [len(probabilities), len(answer["classes"])],
                "datatype": "FP64",
                "data": [p for row in probabilities for p in row],
                "parameters": {"classes": [str(c) for c in answer["classes"]]},
            }
        )
    if wanted:
        outputs = [o for o in outputs if o["name"] in wanted]
    out: dict[str, Any] = {"model_name": name, "model_version": version, "outputs": outputs}
    if request_id is not None:
        out["id"] = request_id
    return out


def metadata(
    name: str, version: str, numeric: tuple[str, ...], categorical: tuple[str, ...], proba: bool
) -> dict[str, Any]:
    """The model's metadata: its feature columns as inputs, and its outputs."""
    outputs = [{"name": "predict", "datatype": "BYTES", "shape": [-1]}]
    if proba:
        outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, -1]})
    return {
        "name": name,
        "versions": [version],
        "platform": "sklearn",
        "inputs": [
            *({"name": n, "datatype": "FP64", "shape": [-1]} for n in numeric),
            *({"name": n, "datatype": "BYTES", "shape": [-1]} for n in categorical),
        ],
        "outputs": outputs,
    }
