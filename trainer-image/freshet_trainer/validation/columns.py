"""What kind of values a column holds, in the four types a schema can declare.

Kinds are read from the values, not only the dtype: a JSON Lines column of
`true`/`null` arrives as `object`, a CSV integer column with a gap arrives as
`float64`. Anything that is not one of the four scalar kinds (a mix of types,
nested objects, timestamps) is `mixed`, which no schema accepts: the training
pipeline could only one-hot encode it into noise.
"""

from __future__ import annotations

from typing import Final, Literal

import numpy as np
import pandas as pd
from freshet_contract.vocabulary import ColumnType

Kind = Literal["boolean", "integer", "number", "string", "mixed"]
NUMERIC: Final = frozenset({"integer", "number"})

CATEGORICAL_MAX_DISTINCT: Final = 100
"""A text column with more distinct values than this in the reference is free text or
an identifier: it has no domain to be out of and no category distribution to drift."""


def kind_of(column: pd.Series) -> tuple[Kind | None, str]:
    """The column's kind (None when every value is null) and, for `mixed`, what it holds."""
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):  # Parquet dictionary columns arrive as these
        return _kind_of_objects(column.dropna().astype(object))
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean", ""
    if pd.api.types.is_integer_dtype(dtype):
        return "integer", ""
    if pd.api.types.is_float_dtype(dtype):
        return ("number", "") if column.notna().any() else (None, "")
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        return _kind_of_objects(column.dropna())
    return "mixed", f"unsupported type {dtype}"


def _kind_of_objects(values: pd.Series) -> tuple[Kind | None, str]:
    if values.empty:
        return None, ""
    types = {type(value) for value in values}
    if types <= {str}:
        return "string", ""
    if types <= {bool, np.bool_}:
        return "boolean", ""
    if types <= {int, np.int64}:
        return "integer", ""
    if types <= {int, float, np.int64, np.float64}:
        return "number", ""
    names = sorted(t.__name__ for t in types)
    return "mixed", "values of types " + ", ".join(names[:5])


def conforms(column: pd.Series, actual: Kind | None, expected: ColumnType) -> bool:
    """Whether values of kind `actual` can stand for the declared or reference type.

    Integers are numbers; a float column is an integer column when every value
    is whole (CSV and pandas turn an integer column with a gap into floats).
    """
    if actual is None:
        return True
    if expected == "number":
        return actual in NUMERIC
    if expected == "integer":
        if actual == "integer":
            return True
        if actual != "number":
            return False
        finite = pd.to_numeric(column, errors="coerce").dropna()
        finite = finite[np.isfinite(finite)]
        return bool((finite == np.floor(finite)).all())
    return actual == expected


def as_column_type(kind: Kind | None) -> ColumnType | None:
    """The schema type a reference column's kind implies (None: no expectation)."""
    if kind is None or kind == "mixed":
        return None
    return ColumnType(kind)


def tokens(values: pd.Series) -> pd.Series:
    """Non-null values as the strings `labelValues` lists: `true`/`false`, `1` for 1 and 1.0.

    Labels and categories are compared as these tokens, so a CSV batch whose
    label column has a gap (and so reads as 1.0) still matches a reference of 1.
    """
    present = values.dropna()
    if pd.api.types.is_bool_dtype(present.dtype):
        return present.map({True: "true", False: "false"})
    if pd.api.types.is_numeric_dtype(present.dtype):
        numbers = present.astype("float64")
        whole = np.isfinite(numbers) & (numbers == np.floor(numbers))
        if bool(whole.all()):
            return numbers.astype("int64").astype(str)
        return numbers.astype(str)

    def token(value: object) -> str:
        if isinstance(value, bool | np.bool_):
            return "true" if value else "false"
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)

    return present.map(token).astype(str)
