"""What counting immature rows as negatives costs, on a conversion-like stream.

A stream of DAYS days of impressions (ROWS a day, about a third convert, each
conversion up to MAX_DELAY days after its impression, see
`devstack.synthetic.conversion_day`). On the last day the policy trains on
everything it has, with the label files observed so far, exactly as a
training Job does (`freshet_trainer.batches.load_batches` joins and matures
them; object storage is an in-memory stand-in), and the model is judged on
the day after, with every conversion known. Three ways to treat rows whose
conversion may still come:

- Matured (freshet's default): only rows older than labelDelay are labelled,
  a missing conversion counts as "0" only then; immature rows wait.
- Naive (labelDelay 0): every row is labelled now, so a conversion that has
  not happened yet counts as "0".
- FakeNegative: immature rows are trained on as "0" too, but the gate's
  holdout holds matured rows only.

"+ backfill" is Matured once the late conversions of the matured days have
arrived (what the backfill run trains on): same events, more labels.

Printed per treatment: the conversion rate the model is trained on, the rate
it predicts on the next day against the true one (calibration), the next
day's ROC AUC and log loss, and the conversion rate of the gate's holdout
against the true rate of those rows (what the gate measures with).

    .venv/bin/python bench/late_labels.py [--days 8] [--rows 1500] [--delay-days 2]
"""

from __future__ import annotations

import argparse
import io
import platform
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from devstack.synthetic import ConversionDay, conversion_day
from false_quarantine import MemorySource  # bench/ is the script's directory
from freshet_contract.run import RunSpec
from freshet_trainer.batches import load_batches
from freshet_trainer.train import fit_model, split_batches
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score

START = datetime(2026, 11, 1, tzinfo=UTC)
MAX_DELAY = timedelta(days=4)
FRACTION = 0.25


def run_spec(
    store: MemorySource,
    days: list[ConversionDay],
    delay: timedelta,
    fake_negative: bool,
    labels_later: timedelta,
) -> RunSpec:
    """The run the operator would write on the last day, with the label files seen
    `labels_later` after it (a backfill's view: more conversions, the same events)."""
    now = max(t for d in days for t in d.event_times.values()) + labels_later
    batches, files = [], []
    for d in days:
        key, labels = f"events/day-{d.day:02d}.csv", f"labels/day-{d.day:02d}/by-now.csv"
        store.objects[key] = d.features
        store.objects[labels] = d.observed(None, now)
        batches.append({"key": key, "etag": key, "size": len(d.features)})
        files.append({"batch": key, "key": labels, "etag": labels, "size": 1})
    return RunSpec.model_validate(
        {
            "apiVersion": "freshet.dev/run/v1",
            "kind": "RunSpec",
            "runId": "bench",
            "policy": {"namespace": "bench", "name": "ads", "uid": "u", "generation": 1},
            "store": {"bucket": "bench", "root": "freshet/bench/ads/"},
            "data": {
                "format": "csv",
                "label": "converted",
                "batches": batches,
                "newBatches": [b["key"] for b in batches],
                "labels": {
                    "idColumn": "event_id",
                    "eventTimeColumn": "event_time",
                    "delaySeconds": int(delay.total_seconds()),
                    "negativeValue": "0",
                    "delayedFeedback": "FakeNegative" if fake_negative else "None",
                    "files": files,
                },
            },
            "training": {
                "estimator": {"class": "sklearn.linear_model.LogisticRegression"},
                "seed": 0,
                "warmStart": False,
            },
            "evaluation": {"metric": "roc_auc", "holdoutFraction": FRACTION},
            "validation": {"labelValues": ["0", "1"], "maxLabelRateShift": 1},
            "baseline": None,
            "output": {"version": "v1", "modelPrefix": "m/", "resultKey": "r.json"},
        }
    )


def truth(day: ConversionDay) -> pd.DataFrame:
    frame = pd.read_csv(io.BytesIO(day.features))
    frame["converted"] = frame["event_id"].isin(day.conversions.keys()).astype(int)
    return frame


def measure(
    days: list[ConversionDay],
    after: ConversionDay,
    delay: timedelta,
    fake: bool,
    labels_later: timedelta = timedelta(0),
) -> dict[str, Any]:
    store = MemorySource()
    spec = run_spec(store, days, delay, fake, labels_later)
    loaded = load_batches(store, spec, classification=True)
    assert not loaded.quarantined, loaded.quarantined
    split = split_batches(loaded.accepted, FRACTION)
    model = fit_model(LogisticRegression(), split.train, "converted")
    # Ids are not features, so the holdout's rows are found by their feature values.
    known = pd.concat([truth(d) for d in days], ignore_index=True)
    held = split.holdout[["x1", "x2"]].merge(known, on=["x1", "x2"], how="left")
    test = truth(after)
    features = test.drop(columns=["event_id", "event_time", "converted"])
    proba = model.pipeline.predict_proba(model.features(features))[:, 1]
    return {
        "trainRows": len(split.train),
        "trainRate": float(pd.to_numeric(split.train["converted"]).mean()),
        "predicted": float(proba.mean()),
        "actual": float(test["converted"].mean()),
        "auc": float(roc_auc_score(test["converted"], proba)),
        "logLoss": float(log_loss(test["converted"], proba)),
        "holdoutRate": float(pd.to_numeric(split.holdout["converted"]).mean()),
        "holdoutTrueRate": float(held["converted"].mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=8)
    parser.add_argument("--rows", type=int, default=1500)
    parser.add_argument("--delay-days", type=float, default=2.0)
    args = parser.parse_args()
    stream = [
        conversion_day(d, args.rows, seed=d, start=START, max_delay=MAX_DELAY)
        for d in range(args.days + 1)
    ]
    days, after = stream[:-1], stream[-1]
    delay = timedelta(days=args.delay_days)
    print(
        f"{platform.node()}: {args.days} days x {args.rows} impressions, conversions up to"
        f" {MAX_DELAY.days} days late, labelDelay {args.delay_days:g} days;"
        " judged on the next day with every conversion known"
    )
    header = (
        f"{'treatment':<13} {'train rows':>10} {'train rate':>10} {'predicted':>9}"
        f" {'actual':>7} {'AUC':>6} {'log loss':>8} {'gate rate':>9} {'true rate':>9}"
    )
    print(header)
    for name, used_delay, fake, later in (
        ("Matured", delay, False, timedelta(0)),
        ("+ backfill", delay, False, MAX_DELAY),
        ("Naive", timedelta(0), False, timedelta(0)),
        ("FakeNegative", delay, True, timedelta(0)),
    ):
        m = measure(days, after, used_delay, fake, later)
        print(
            f"{name:<13} {m['trainRows']:>10} {m['trainRate']:>10.3f} {m['predicted']:>9.3f}"
            f" {m['actual']:>7.3f} {m['auc']:>6.3f} {m['logLoss']:>8.4f}"
            f" {m['holdoutRate']:>9.3f} {m['holdoutTrueRate']:>9.3f}"
        )


if __name__ == "__main__":
    main()
