"""False-quarantine rate of the default validation, and its detection rate on real drift.

Draws every batch from one fixed population (numeric, skewed, integer, boolean
and categorical features; a 30%-positive label that depends on them), writes
it as CSV and judges it exactly as a training Job does
(`freshet_trainer.batches.load_batches`), with the policy's default
validation settings and a reference window of earlier clean batches. Object
storage is an in-memory stand-in: only the validation decisions are measured.

Prints, for TRIALS clean batches, how many were quarantined (target: at most
5%), how many were reported as a change of distribution, and which checks
fired; then, for each kind of real drift, how many drifted batches were
caught: quarantined as a fault, or reported as a change (which a Dynamic
policy, `drift.action: Retrain` by default, trains on).

    .venv/bin/python bench/false_quarantine.py [--trials 100] [--window 5]
        [--rows 300 1500]
"""

from __future__ import annotations

import argparse
import io
import logging
import platform
import time
from collections import Counter
from collections.abc import Callable
from typing import IO

import numpy as np
import pandas as pd
from freshet_contract.run import RunSpec
from freshet_trainer.batches import load_batches
from freshet_trainer.store import ObjectNotFound

Drift = Callable[[pd.DataFrame, np.random.Generator], pd.DataFrame]


def population(rows: int, rng: np.random.Generator) -> pd.DataFrame:
    """One draw from the fixed population."""
    x1 = rng.normal(size=rows)
    x2 = rng.normal(loc=5.0, scale=2.0, size=rows)
    amount = rng.lognormal(mean=3.0, sigma=1.0, size=rows)
    visits = rng.poisson(4, size=rows)
    plan = rng.choice(["free", "pro", "team", "enterprise"], p=[0.55, 0.25, 0.15, 0.05], size=rows)
    region = rng.choice([f"r{i:02d}" for i in range(12)], size=rows)
    mobile = rng.random(rows) < 0.4
    logit = 1.5 * x1 - 0.5 * (x2 - 5) + np.where(plan == "free", -0.8, 0.6) - 1.0
    label = (logit + rng.logistic(size=rows) > 0).astype(int)
    return pd.DataFrame(
        {
            "x1": x1.round(5),
            "x2": x2.round(5),
            "amount": amount.round(2),
            "visits": visits,
            "plan": plan,
            "region": region,
            "mobile": mobile,
            "label": label,
        }
    )


def mean_shift(frame: pd.DataFrame, _: np.random.Generator) -> pd.DataFrame:
    """x1 moves by one standard deviation (a sensor recalibrated, a bug in a join)."""
    return frame.assign(x1=frame["x1"] + 1.0)


def label_flip(frame: pd.DataFrame, _: np.random.Generator) -> pd.DataFrame:
    """The label's meaning is inverted (0 and 1 swapped upstream)."""
    return frame.assign(label=1 - frame["label"])


def unit_change(frame: pd.DataFrame, _: np.random.Generator) -> pd.DataFrame:
    """`amount` arrives in cents instead of currency units."""
    return frame.assign(amount=(frame["amount"] * 100).round(0))


def category_shift(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Half the rows lose their plan to the default value ("free")."""
    plan = frame["plan"].where(rng.random(len(frame)) < 0.5, "free")
    return frame.assign(plan=plan)


def null_burst(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """A fifth of x2 goes missing."""
    return frame.assign(x2=frame["x2"].mask(rng.random(len(frame)) < 0.2))


DRIFTS: dict[str, Drift] = {
    "mean shift +1 sd (x1)": mean_shift,
    "label flip (0<->1)": label_flip,
    "unit change x100 (amount)": unit_change,
    "category shift (plan)": category_shift,
    "20% nulls (x2)": null_burst,
}


class MemorySource:
    """The object store's `download`, from a dict."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def download(self, key: str, target: IO[bytes], expected_etag: str, max_bytes: int) -> int:
        if key not in self.objects:
            raise ObjectNotFound(key)
        target.write(self.objects[key])
        return len(self.objects[key])


def judge(
    rng: np.random.Generator, window: int, rows: tuple[int, int], drift: Drift | None
) -> tuple[bool, bool, list[str]]:
    """One trial: a clean reference window and one new batch;
    (quarantined?, reported as a change?, failed checks)."""
    source = MemorySource()
    batches = []
    for index in range(window + 1):
        frame = population(int(rng.integers(rows[0], rows[1] + 1)), rng)
        if index == window and drift is not None:
            frame = drift(frame, rng)
        buffer = io.BytesIO()
        frame.to_csv(buffer, index=False)
        key = f"in/{index:03d}.csv"
        source.objects[key] = buffer.getvalue()
        batches.append({"key": key, "etag": f"e{index}", "size": len(buffer.getvalue())})
    spec = RunSpec.model_validate(
        {
            "apiVersion": "freshet.dev/run/v1",
            "kind": "RunSpec",
            "runId": "bench-1",
            "policy": {"namespace": "bench", "name": "fq", "uid": "u", "generation": 1},
            "store": {"bucket": "bench", "root": "freshet/bench/fq/"},
            "data": {
                "format": "csv",
                "label": "label",
                "batches": batches,
                "newBatches": [batches[-1]["key"]],
            },
            "training": {
                "estimator": {"class": "sklearn.linear_model.LogisticRegression"},
                "seed": 0,
            },
            "evaluation": {"metric": "roc_auc", "holdoutFraction": 0.2},
            "validation": {"drift": {"action": "Retrain"}},  # a Dynamic policy's default
            "baseline": None,
            "output": {
                "version": "v1",
                "modelPrefix": "freshet/bench/fq/models/v1/",
                "resultKey": "freshet/bench/fq/runs/bench-1/result.json",
            },
        }
    )
    loaded = load_batches(source, spec, classification=True)
    verdict = loaded.report.batches[-1]
    failed = [check.code for check in verdict.checks if not check.passed]
    return verdict.status == "Quarantined", bool(loaded.drift), failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--window", type=int, default=5, help="reference batches per trial")
    parser.add_argument("--rows", type=int, nargs=2, default=(300, 1500), metavar=("MIN", "MAX"))
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    logging.getLogger("freshet.trainer").setLevel(logging.ERROR)  # one warning per refused batch
    rng = np.random.default_rng(args.seed)
    rows = (args.rows[0], args.rows[1])
    started = time.perf_counter()

    print(f"# false quarantine ({platform.machine()}, Python {platform.python_version()})")
    print(f"batches of {rows[0]}-{rows[1]} rows, reference window of {args.window} clean batches")
    quarantined, reported, fired = 0, 0, Counter[str]()
    for _ in range(args.trials):
        refused, changed, failed = judge(rng, args.window, rows, None)
        quarantined += refused
        reported += changed
        fired.update(failed)
    rate = quarantined / args.trials
    verdict = "OK" if rate <= 0.05 else "ABOVE TARGET"
    print(f"clean batches quarantined: {quarantined}/{args.trials} = {rate:.1%}", end=" ")
    print(f"(target <= 5%: {verdict}); reported as a change: {reported}/{args.trials}")
    for code, count in fired.most_common():
        print(f"  {code:<24} {count}")

    print("\n# detection of real drift")
    trials = max(20, args.trials // 5)
    for name, drift in DRIFTS.items():
        caught, held, codes = 0, 0, Counter[str]()
        for _ in range(trials):
            refused, changed, failed = judge(rng, args.window, rows, drift)
            caught += refused or changed
            held += refused
            codes.update(failed)
        top = ", ".join(f"{code} {count}" for code, count in codes.most_common(3))
        print(
            f"{name:<28} caught {caught}/{trials} = {caught / trials:.0%},"
            f" quarantined {held}  ({top})"
        )
    print(f"\n{time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
