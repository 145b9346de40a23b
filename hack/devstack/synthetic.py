"""Synthetic labelled batches for the demo, tests and benchmarks (no downloads).

The label follows a logistic concept over two numeric features and one
categorical one, with noise; `flip` inverts the concept, a crude drift.
`conversion_day` is a stream whose labels arrive late: impressions with event
times, and conversions that happen up to days later.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np


def batch_csv(rows: int, seed: int, flip: bool = False) -> bytes:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=rows)
    x2 = rng.normal(size=rows)
    cat = rng.choice(["a", "b", "c"], size=rows)
    logit = 2.0 * x1 - 1.5 * x2 + np.where(cat == "a", 0.5, -0.25)
    y = (logit + rng.normal(scale=0.5, size=rows) > 0).astype(int)
    if flip:
        y = 1 - y
    out = io.StringIO()
    out.write("x1,x2,cat,label\n")
    for a, b, c, label in zip(x1, x2, cat, y, strict=True):
        out.write(f"{a:.5f},{b:.5f},{c},{label}\n")
    return out.getvalue().encode()


@dataclass(frozen=True)
class ConversionDay:
    """One day of a conversion-like stream: impressions now, conversions later.

    ``features`` is the batch file (event_id, event_time, x1, x2, cat, no label);
    ``conversions`` maps the id of every impression that converts to when the
    conversion happens, up to ``max_delay`` after the impression.
    """

    day: int
    features: bytes
    event_times: dict[str, datetime]
    conversions: dict[str, datetime]

    def observed(self, after: datetime | None, until: datetime) -> bytes:
        """A label file: the conversions that happened in (after, until], as "1"s."""
        out = io.StringIO()
        out.write("event_id,converted\n")
        for event_id, at in sorted(self.conversions.items()):
            if (after is None or at > after) and at <= until:
                out.write(f"{event_id},1\n")
        return out.getvalue().encode()


def conversion_day(
    day: int, rows: int, seed: int, *, start: datetime, max_delay: timedelta
) -> ConversionDay:
    """Impressions spread over day ``day`` after ``start``; about a third convert."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=rows)
    x2 = rng.normal(size=rows)
    cat = rng.choice(["a", "b", "c"], size=rows)
    logit = 2.0 * x1 - 1.5 * x2 + np.where(cat == "a", 0.5, -0.25) - 1.0
    converts = logit + rng.normal(scale=0.5, size=rows) > 0
    offsets = np.sort(rng.uniform(0, 86_400, size=rows))
    delays = rng.uniform(0, max_delay.total_seconds(), size=rows)
    out = io.StringIO()
    out.write("event_id,event_time,x1,x2,cat\n")
    times: dict[str, datetime] = {}
    conversions: dict[str, datetime] = {}
    for i in range(rows):
        event_id = f"d{day:02d}-{i:05d}"
        at = start + timedelta(days=day, seconds=float(offsets[i]))
        times[event_id] = at
        if converts[i]:
            conversions[event_id] = at + timedelta(seconds=float(delays[i]))
        out.write(f"{event_id},{at.isoformat()},{x1[i]:.5f},{x2[i]:.5f},{cat[i]}\n")
    return ConversionDay(day, out.getvalue().encode(), times, conversions)


def shifted_csv(rows: int, seed: int, shifted: bool) -> bytes:
    """A lasting covariate shift: x1 moves from around -1.5 to around +1.5.

    The concept is fixed and non-linear (sin(1.5 x1) + 0.5 x2), so a linear
    model only fits it locally: one trained before the shift is wrong for most
    rows after it, and only a model retrained on post-shift data follows.
    """
    rng = np.random.default_rng(seed)
    x1 = rng.normal(1.5 if shifted else -1.5, 1.0, rows)
    x2 = rng.normal(size=rows)
    y = (np.sin(1.5 * x1) + 0.5 * x2 + rng.normal(scale=0.3, size=rows) > 0).astype(int)
    out = io.StringIO()
    out.write("x1,x2,label\n")
    for a, b, label in zip(x1, x2, y, strict=True):
        out.write(f"{a:.5f},{b:.5f},{label}\n")
    return out.getvalue().encode()


def census_csv(rows: int, seed: int, null_share: float = 0.10) -> bytes:
    """Census-like rows as real extracts come: `null_share` of `occupation` missing,
    about a quarter of the rows (at 1,200 rows) repeating another one exactly,
    since the fields are coarse bands and codes, and about 14% of the labelled
    rows sharing their features with a differently labelled one."""
    rng = np.random.default_rng(seed)
    age = rng.integers(2, 9, rows) * 10  # age band
    hours = rng.choice([10, 20, 30], rows)
    education = rng.integers(1, 17, rows)
    occupation = rng.choice(["sales", "craft", "admin", "exec"], rows).astype(object)
    occupation[rng.random(rows) < null_share] = None
    logit = (
        0.06 * (age - 45)
        + 0.05 * (hours - 40)
        + 0.2 * (education - 8)
        + np.where(occupation == "exec", 1.0, -0.3)
    )
    y = (logit + rng.normal(scale=1.0, size=rows) > 0).astype(int)
    out = io.StringIO()
    out.write("age,hours,education,occupation,label\n")
    for a, h, e, o, label in zip(age, hours, education, occupation, y, strict=True):
        out.write(f"{a},{h},{e},{o if o is not None else ''},{label}\n")
    return out.getvalue().encode()
