"""Prequential monitoring: detection delay against false-rollback rate (offline).

The rollback decision is pure, so this runs without a cluster. Streams of
labelled batches follow the synthetic concept of hack/devstack/synthetic.py (a
logistic concept over x1, x2 and a categorical column, with noise), optionally
drifting. Models are the trainer's own pipeline (`build_pipeline`, impute +
scale + one-hot, LogisticRegression) scored by the trainer's `evaluate`; each
measurement is `freshet.monitoring.prequential` on a `LiveEvaluation` (the
serving and the previous good model on the new batch, test then train) folded
by `decisions.analysis.observe`; a rollback picks its target with
`decisions.rollback.rollback_target` and rejects the failing version, as the
ledger does; candidates pass `decisions.gate.judge` (accuracy, maxRegression
0.02, beating the dummy) on a 20% holdout of the window. The watched metric is
accuracy.

Two regimes, because the analysis restarts at every promotion:

- retrain: every batch is a run, as with `onArrival.minBatches: 1`: measure
  the serving model, fold, maybe roll back, then train on the window, gate,
  promote, unless the serving model just failed (the operator holds such a
  candidate back, ServingUnderSuspicion, so failures can add up to a rollback).
- hold: after a warm-up the serving version stays (no candidate promoted: the
  gate keeps rejecting, or training is paused) and is measured on every batch,
  so `failureLimit` failures in a row can build up.

No-regression streams (a rollback there is a false one): stationary, gradual
concept rotation (0 to 90 degrees over the stream), label noise rising to 30%,
and an abrupt concept flip halfway. Regression streams: stationary, and at
batch INJECT a bad model (trained on the concept rotated by 10, 20, 45 or 180
degrees) is promoted past the gate; detection delay is the number of batches
measured on it until its rollback, a miss is no rollback (it was replaced by a
promotion, or HOLD_AFTER batches went by).

Sweeps failureLimit in {0,1,2,3} x maxRegression in {0.02,0.05,0.1}; prints
markdown tables.

    .venv/bin/python bench/detection_tradeoff.py [--seeds 5] [--batches 61] [--rows 400]
        [--window 3] [--jobs 2]
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import platform
import statistics
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from freshet import monitoring
from freshet.decisions import analysis, gate, rollback
from freshet.spec import PolicySpec
from freshet_contract.result import LiveEvaluation
from freshet_trainer.artifact import ModelArtifact
from freshet_trainer.estimators import build_pipeline, dummy_estimator
from freshet_trainer.metrics import evaluate
from sklearn.linear_model import LogisticRegression

FAILURE_LIMITS = (0, 1, 2, 3)
MAX_REGRESSIONS = ("0.02", "0.05", "0.1")
CLEAN_KINDS = ("stationary", "rotation", "noise", "flip")
BAD_ANGLES = (10, 20, 45, 180)
INJECT = 20  # the bad model is promoted by the run on this batch
HOLD_AFTER = 15  # batches measured on a held bad model before calling it a miss
WARMUP = 10  # hold regime, no-regression streams: retrained batches before holding
NUMERIC, CATEGORICAL, LABEL = ("x1", "x2"), ("cat",), "label"
START = datetime(2026, 1, 1, tzinfo=UTC)


def batch(seed: int, rows: int, angle_deg: float = 0.0, noise: float = 0.0) -> pd.DataFrame:
    """hack/devstack/synthetic.py's concept, its (x1, x2) weights rotated by angle_deg,
    with a fraction `noise` of labels flipped at random."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=rows), rng.normal(size=rows)
    cat = rng.choice(["a", "b", "c"], size=rows)
    a = math.radians(angle_deg)
    w1, w2 = 2.0 * math.cos(a) + 1.5 * math.sin(a), 2.0 * math.sin(a) - 1.5 * math.cos(a)
    logit = w1 * x1 + w2 * x2 + np.where(cat == "a", 0.5, -0.25)
    y = (logit + rng.normal(scale=0.5, size=rows) > 0).astype(int)
    y = np.where(rng.random(rows) < noise, 1 - y, y)
    return pd.DataFrame({"x1": x1, "x2": x2, "cat": cat, LABEL: y})


def stream(kind: str, seed: int, n: int, rows: int) -> list[pd.DataFrame]:
    def drift(i: int) -> tuple[float, float]:
        frac = i / max(1, n - 1)
        if kind == "rotation":
            return 90.0 * frac, 0.0
        if kind == "noise":
            return 0.0, 0.3 * frac
        if kind == "flip":
            return (180.0 if i >= n // 2 else 0.0), 0.0
        return 0.0, 0.0

    base = 1_000_000 * (CLEAN_KINDS.index(kind) + 1) + 10_000 * seed
    return [batch(base + i, rows, *drift(i)) for i in range(n)]


def fit(frame: pd.DataFrame, seed: int) -> ModelArtifact:
    pipeline = build_pipeline(LogisticRegression(max_iter=200), NUMERIC, CATEGORICAL)
    pipeline.set_params(estimator__random_state=seed)
    pipeline.fit(frame[[*NUMERIC, *CATEGORICAL]], frame[LABEL])
    return ModelArtifact(pipeline, LABEL, NUMERIC, CATEGORICAL, classification=True)


def fit_dummy(frame: pd.DataFrame) -> ModelArtifact:
    pipeline = build_pipeline(dummy_estimator(True), NUMERIC, CATEGORICAL)
    pipeline.fit(frame[[*NUMERIC, *CATEGORICAL]], frame[LABEL])
    return ModelArtifact(pipeline, LABEL, NUMERIC, CATEGORICAL, classification=True)


@dataclass(frozen=True)
class Model:
    name: str
    """Stable across simulations: "c<k>" for run k's candidate, "bad<angle>" for a bad one."""
    artifact: ModelArtifact


@dataclass
class Runs:
    """Everything about one stream that does not depend on the monitoring settings:
    the candidate each run trains, its holdout, and (cached) scores."""

    batches: list[pd.DataFrame]
    window: int
    candidates: dict[int, Model] = field(default_factory=dict)
    holdouts: dict[int, pd.DataFrame] = field(default_factory=dict)
    gate_metrics: dict[int, tuple[dict[str, float], dict[str, float]]] = field(default_factory=dict)
    scores: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)

    def run(self, k: int) -> None:
        """Train run k's candidate on the window ending at batch k (80%), keep 20% as holdout."""
        if k in self.candidates:
            return
        frame = pd.concat(self.batches[max(0, k - self.window + 1) : k + 1], ignore_index=True)
        mask = np.random.default_rng(k).random(len(frame)) < 0.2
        train, holdout = frame[~mask], frame[mask]
        model = fit(train, k)
        self.candidates[k] = Model(f"c{k}", model)
        self.holdouts[k] = holdout
        self.gate_metrics[k] = (evaluate(model, holdout), evaluate(fit_dummy(train), holdout))

    def score(self, model: Model, on: str, frame: pd.DataFrame) -> dict[str, float]:
        """The model's metrics on a batch ("b<k>") or a run's holdout ("h<k>"), cached."""
        cached = self.scores.get((model.name, on))
        if cached is None:
            cached = evaluate(model.artifact, frame)
            self.scores[(model.name, on)] = cached
        return cached


@dataclass
class Outcome:
    measurements: int = 0
    rollbacks: int = 0
    detected_after: int | None = None
    """Regression streams: batches measured on the bad model until it was rolled back."""
    replaced: bool = False
    """Regression streams: a promotion replaced the bad model before any rollback."""


def policy_spec(failure_limit: int, max_regression: str) -> PolicySpec:
    return PolicySpec.model_validate(
        {
            "mode": "Dynamic",
            "data": {"storeRef": {"name": "store"}, "prefix": "in/", "label": LABEL},
            "training": {
                "image": "freshet-trainer:dev",
                "estimator": {"class": "sklearn.linear_model.LogisticRegression"},
            },
            "gate": {"metric": "accuracy", "maxRegression": "0.02"},
            "monitoring": {
                "source": "Prequential",
                "failureLimit": failure_limit,
                "maxRegression": max_regression,
                "minRows": 50,
                "intervalSeconds": 60,
            },
        }
    )


def simulate(
    runs: Runs,
    spec: PolicySpec,
    *,
    hold_from: int | None,
    bad: Model | None,
    end: int,
) -> Outcome:
    """The operator's loop over batches 0..end-1 (see the module docstring)."""
    assert spec.monitoring is not None
    settings = monitoring.settings(spec.monitoring)
    models: dict[str, Model] = {}
    serving: str | None = None
    previous: list[str] = []  # newest first, as Ledger.previous
    rejected: list[str] = []
    state: analysis.State | None = None
    out = Outcome()
    bad_version: str | None = None
    bad_since = 0
    # Hold regime, no-regression streams: count only the held version's measurements.
    counting_from = hold_from + 1 if hold_from is not None and bad is None else 0
    for k in range(end):
        now = START + timedelta(minutes=k)
        rolled_back = suspect = False
        if serving is not None:
            good = [v for v in previous if v not in rejected]
            fresh = runs.batches[k]
            live = LiveEvaluation(
                rows=len(fresh),
                serving=runs.score(models[serving], f"b{k}", fresh),
                previous=runs.score(models[good[0]], f"b{k}", fresh) if good else None,
            )
            m = monitoring.prequential(spec, live, now)
            suspect = m.verdict is analysis.Verdict.FAIL
            if state is None or state.version != serving:
                state = analysis.State(version=serving, since=now)
            result = analysis.observe(settings, state, m)
            state = result.state
            if k >= counting_from:
                out.measurements += 1
            if result.action is analysis.Action.ROLLBACK:
                target = rollback.rollback_target(serving, previous, set(rejected))
                if target.version is not None:
                    if k >= counting_from:
                        out.rollbacks += 1
                    if serving == bad_version and out.detected_after is None:
                        out.detected_after = k - bad_since + 1
                    rejected.append(serving)
                    previous = [v for v in previous if v != target.version]
                    serving = target.version
                    state = analysis.State(version=serving, since=now)
                    rolled_back = True
            if bad_version is not None and serving != bad_version:
                # Rolled back (detected), or replaced by the last run's promotion (a miss).
                out.replaced = out.detected_after is None
                break
        holding = hold_from is not None and k > hold_from
        if holding or rolled_back or suspect:
            # No promotion: a rolled-back run is rejected (BaselineRolledBack), and so
            # is a run whose serving model just failed (ServingUnderSuspicion).
            continue
        version = f"v{k + 1}"
        if bad is not None and k == INJECT:
            models[version] = bad  # promoted past the gate: the injected regression
            bad_version, bad_since = version, k + 1
        else:
            runs.run(k)
            candidate, dummy = runs.gate_metrics[k]
            baseline = (
                runs.score(models[serving], f"h{k}", runs.holdouts[k])
                if serving is not None
                else None
            )
            if not gate.judge(spec.gate, candidate, baseline, dummy).promote:
                continue
            models[version] = runs.candidates[k]
        if serving is not None:
            previous = [serving, *previous][:5]
        serving = version
        state = analysis.State(version=serving, since=now)
    return out


def settings_grid() -> Iterator[tuple[int, str]]:
    return itertools.product(FAILURE_LIMITS, MAX_REGRESSIONS)


def one_stream(task: tuple[str, int, int, int, int]) -> list[dict[str, Any]]:
    """All settings and regimes for one (kind, seed): rows of results."""
    # Same numbers, less per-call input checking (the frames here are always clean).
    sklearn.set_config(assume_finite=True, skip_parameter_validation=True)
    kind, seed, n, rows, window = task
    out: list[dict[str, Any]] = []
    runs = Runs(stream(kind, seed, n, rows), window)
    specs = {s: policy_spec(s[0], s[1]) for s in settings_grid()}
    for s, spec in specs.items():
        for regime, hold_from in (("retrain", None), ("hold", WARMUP)):
            o = simulate(runs, spec, hold_from=hold_from, bad=None, end=n)
            out.append({"kind": kind, "seed": seed, "regime": regime, "setting": s, **o.__dict__})
    if kind != "stationary":
        return out
    train = pd.concat(runs.batches[INJECT - window + 1 : INJECT + 1], ignore_index=True)
    for angle in BAD_ANGLES:
        rotated = batch(90_000_000 + 1000 * seed + angle, len(train), angle_deg=angle)
        bad = Model(f"bad{angle}", fit(rotated, seed))
        for s, spec in specs.items():
            for regime, hold_from in (("retrain", None), ("hold", INJECT)):
                o = simulate(runs, spec, hold_from=hold_from, bad=bad, end=INJECT + 1 + HOLD_AFTER)
                out.append(
                    {
                        "kind": f"bad {angle}",
                        "seed": seed,
                        "regime": regime,
                        "setting": s,
                        **o.__dict__,
                    }
                )
    return out


def regression_size(runs_rows: int, window: int, seeds: int) -> dict[int, float]:
    """The mean accuracy drop of each bad model against the good one on fresh batches."""
    drops: dict[int, list[float]] = {a: [] for a in BAD_ANGLES}
    for seed in range(seeds):
        good_train = batch(80_000_000 + seed, runs_rows * window)
        good = fit(good_train, seed)
        test = batch(81_000_000 + seed, 2000)
        base = evaluate(good, test)["accuracy"]
        for angle in BAD_ANGLES:
            bad = fit(batch(82_000_000 + seed, runs_rows * window, angle_deg=angle), seed)
            drops[angle].append(base - evaluate(bad, test)["accuracy"])
    return {a: statistics.mean(v) for a, v in drops.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=61, help="per no-regression stream")
    parser.add_argument("--rows", type=int, default=400, help="rows per batch")
    parser.add_argument("--window", type=int, default=3, help="data.window.maxBatches")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()
    if args.batches < max(WARMUP + 2, INJECT + 1 + HOLD_AFTER):
        parser.error(f"--batches must be at least {max(WARMUP + 2, INJECT + 1 + HOLD_AFTER)}")

    started = time.monotonic()
    tasks = [
        (k, s, args.batches, args.rows, args.window) for k in CLEAN_KINDS for s in range(args.seeds)
    ]
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = [r for chunk in pool.map(one_stream, tasks) for r in chunk]
    drops = regression_size(args.rows, args.window, args.seeds)

    print(
        f"streams: {args.seeds} seeds per kind, {args.batches} batches of {args.rows} rows, "
        f"window {args.window}; bad model promoted by the run on batch {INJECT}; "
        f"hold regime: {args.batches - WARMUP - 1} held measurements per no-regression stream, "
        f"up to {HOLD_AFTER} on a bad model; by each bad model, its mean accuracy drop "
        "against a good model on fresh batches"
    )
    for regime in ("retrain", "hold"):
        print(f"\n### {regime}: false rollbacks per 100 measurements (streams with any)\n")
        print("| failureLimit | maxRegression | " + " | ".join(CLEAN_KINDS) + " |")
        print("|---|---|" + "---|" * len(CLEAN_KINDS))
        for s in settings_grid():
            cells = []
            for kind in CLEAN_KINDS:
                sel = [
                    r
                    for r in rows
                    if r["regime"] == regime and r["kind"] == kind and r["setting"] == s
                ]
                meas, rb = sum(r["measurements"] for r in sel), sum(r["rollbacks"] for r in sel)
                hit = sum(1 for r in sel if r["rollbacks"])
                cells.append(f"{100 * rb / max(1, meas):.1f} ({hit}/{len(sel)})")
            print(f"| {s[0]} | {s[1]} | " + " | ".join(cells) + " |")
        print(
            f"\n### {regime}: detection delay in batches, p50/max (missed/streams,"
            " of which replaced by a promotion before any rollback)\n"
        )
        heads = [f"bad {a} deg (-{drops[a]:.3f})" for a in BAD_ANGLES]
        print("| failureLimit | maxRegression | " + " | ".join(heads) + " |")
        print("|---|---|" + "---|" * len(BAD_ANGLES))
        for s in settings_grid():
            cells = []
            for angle in BAD_ANGLES:
                sel = [
                    r
                    for r in rows
                    if r["regime"] == regime and r["kind"] == f"bad {angle}" and r["setting"] == s
                ]
                delays = [r["detected_after"] for r in sel if r["detected_after"] is not None]
                missed = len(sel) - len(delays)
                replaced = sum(1 for r in sel if r["replaced"])
                delay = f"{statistics.median_low(delays)}/{max(delays)}" if delays else "-"
                note = f", {replaced} replaced" if replaced else ""
                cells.append(f"{delay} ({missed}/{len(sel)}{note})")
            print(f"| {s[0]} | {s[1]} | " + " | ".join(cells) + " |")
    print(
        f"\nMachine: {platform.machine()}, {os.cpu_count() or 0} cores, "
        f"Python {platform.python_version()}, scikit-learn {sklearn.__version__}; "
        f"{time.monotonic() - started:.0f}s with {args.jobs} processes"
    )


if __name__ == "__main__":
    main()
