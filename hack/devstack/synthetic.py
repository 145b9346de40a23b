"""Synthetic labelled batches for the demo, tests and benchmarks (no downloads).

The label follows a logistic concept over two numeric features and one
categorical one, with noise; `flip` inverts the concept, a crude drift.
"""

from __future__ import annotations

import io

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
