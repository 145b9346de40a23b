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
