"""Adaptation: how well a Dynamic policy with default settings follows drifting data.

The design's target (DESIGN.md, "Performance targets"): with default settings,
on every drifting stream Dynamic does at least as well as a naive sliding-window
retrain and recovers at least 90% of the gain of an oracle that knows the
current distribution, gain recovery = (dynamic - static) / (oracle - static);
on a stationary stream it quarantines nothing and rolls back nothing.

Protocol, per stream (bench/adaptation_streams.py):

- A stream is E evaluation batches of B rows (default E=10, B=2000; seasonal
  E=12, rainfall E=9). Each evaluation batch arrives as F files of B/F rows
  (default F=5): files are smaller than the evaluation batch, so a policy
  sees each change a file at a time. Evaluation batch 0 is warm-up only.
- Dynamic, on the real stack (control plane, SeaweedFS, a real node, the real
  operator process, as tests/e2e run it): one Dynamic TrainingPolicy with
  default settings except what it cannot do without: `data.label`,
  `training.image` and `training.estimator` (LogisticRegression, max_iter
  500), `serving.deploymentRef`, and `monitoring: {source: Prequential}` with
  its defaults, so that rollbacks can happen and are counted. Nothing else is
  set: trigger (poll every 5 s, quietSeconds 5, minBatches 1), window
  (all history, Adaptive selection), validation (drift action Retrain) and
  gate (accuracy, maxRegression 0) are the CRD's defaults. quietSeconds is
  left at 5 although it costs about 5 s per file: the point is the default.
  The F files of batch 0 are uploaded at once and a model must serve. Then,
  for every later file: first the serving model predicts the file's rows over
  HTTP (the model-server pod's IP, as the e2e tests call it; the
  answer must name the version status says is serving), then the file is
  uploaded with its labels, then the bench waits until status.lastRun is a
  finished run with a new runId (or the batch is counted quarantined), and
  until the Deployment has rolled out the serving version, so the next
  prediction comes from the newest promoted (or rolled-back-to) model.
- Static, on the same stack: a Static policy trained on batch 0's files (its
  own prefix and model-server Deployment); it predicts every later file over
  HTTP.
- Naive sliding retrain (offline, in-process): before each file, the
  trainer's own pipeline (`freshet_trainer.train.fit_model` with a clone of
  LogisticRegression(max_iter=500)) is fitted on the 2F most recent files (two
  evaluation batches' worth) and predicts the file.
- Oracle (offline): within each evaluation batch, 5-fold cross-fitted
  predictions (each row predicted by a model fitted on the other folds of the
  same batch): it knows the current distribution.

The accuracy of an evaluation batch is over its F files' predictions; means
and gain recovery are over batches 1..E-1. Counted from the policy's status
history, its Events, its ledger and its runs' result documents: runs,
promotions, rejections and failures (with reasons), quarantined batches (with
reasons), rollbacks, drift the trainer recorded, DriftDetected Events (if the
operator emits them), prequential measurements by verdict. As a cross-check,
each run's prequential score of the serving model on its new file is compared
with the accuracy the bench measured over HTTP on the same rows.

All streams' policies run in one stack, one namespace and bucket per stream,
`--parallel` streams at a time (threads; 3 by default: one stream's cycle keeps
about half a core busy, trainer and model-server processes starting, and the
machine has 2 cores; the results do not depend on it, since every stream waits
for each of its files to be trained on before it sends the next). Prints one
JSON line per stream, then markdown tables and the wall time; writes a PNG
(one panel per stream, accuracy per evaluation batch, four lines). The PNG is
drawn by devstack.pngchart (zlib + a 5x7 bitmap font), so the
benchmark needs no plotting library in requirements.txt.

    .venv/bin/python bench/adaptation.py [--streams covariate rotation seasonal
        stationary rainfall] [--batches E] [--rows B] [--files F] [--seed 0]
        [--parallel 3] [--out docs/images/adaptation.png] [--json out.json]

Tiny check: `--streams covariate --batches 3 --files 2 --rows 600`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import itertools
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import adaptation_streams as streams
import numpy as np
import pandas as pd
import sklearn
from devstack import release, s3store, stack
from devstack.pngchart import Canvas
from freshet.serving import VERSION_ANNOTATION, rollout_complete
from freshet_trainer.train import fit_model
from kubernetes import client, config
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold

REPO = Path(__file__).resolve().parents[1]
# The e2e scenario's building blocks: store Secret, model-server Deployment, waits.
sys.path.insert(0, str(REPO / "tests" / "e2e"))
sc: Any = importlib.import_module("scenario")

LABEL = streams.LABEL
ESTIMATOR_SPEC = {"class": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 500}}
ESTIMATOR = LogisticRegression(max_iter=500)
DYNAMIC, STATIC = "dynamic", "static"
DYNAMIC_SERVER, STATIC_SERVER = "model-server", "static-server"
MAX_ROWS_PER_REQUEST = 1000  # the model server's default FRESHET_MAX_ROWS
RUN_TIMEOUT = 300.0
ROLLOUT_TIMEOUT = 180.0
LINES = ("static", "dynamic", "naive", "oracle")


def log(message: str) -> None:
    """Progress goes to stderr: stdout carries only the results."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the data


def split_files(batch: pd.DataFrame, files: int) -> list[pd.DataFrame]:
    """Consecutive slices of B/F rows: rainfall stays in time order within a batch."""
    bounds = np.linspace(0, len(batch), files + 1).round().astype(int)
    return [batch.iloc[a:b].reset_index(drop=True) for a, b in itertools.pairwise(bounds)]


def features_of(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c != LABEL]


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return str(frame.to_csv(index=False)).encode()


# ---------------------------------------------------------------- offline lines


def _fit_predict(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    """The trainer's pipeline (scaling, imputation) around a fresh LogisticRegression."""
    model = fit_model(clone(ESTIMATOR), train, LABEL)
    return np.asarray(model.pipeline.predict(model.features(test)))


def naive_sliding(files: list[list[pd.DataFrame]], window: int) -> list[list[np.ndarray]]:
    """Per later file, correctness of a model fitted on the `window` files before it."""
    flat = [f for batch in files for f in batch]
    per_batch = len(files[0])
    out: list[list[np.ndarray]] = []
    for b in range(1, len(files)):
        row = []
        for j, test in enumerate(files[b]):
            k = b * per_batch + j
            train = pd.concat(flat[max(0, k - window) : k], ignore_index=True)
            row.append(_fit_predict(train, test) == test[LABEL].to_numpy())
        out.append(row)
    return out


def oracle(batches: list[pd.DataFrame], seed: int, folds: int = 5) -> list[float]:
    """Per later evaluation batch, accuracy of 5-fold cross-fitted predictions within it."""
    out = []
    for batch in batches[1:]:
        predicted = np.empty(len(batch), dtype=batch[LABEL].dtype)
        for train_idx, test_idx in KFold(folds, shuffle=True, random_state=seed).split(batch):
            predicted[test_idx] = _fit_predict(batch.iloc[train_idx], batch.iloc[test_idx])
        out.append(float(np.mean(predicted == batch[LABEL].to_numpy())))
    return out


def batch_accuracy(correct: list[list[np.ndarray]]) -> list[float]:
    """Accuracy of each evaluation batch over its files' rows."""
    return [float(np.mean(np.concatenate(files))) for files in correct]


# ---------------------------------------------------------------- the live stack


def policy_body(name: str, mode: str, prefix: str, deployment: str) -> dict[str, Any]:
    """A policy with the CRD's defaults but for what it cannot do without (see above)."""
    spec: dict[str, Any] = {
        "mode": mode,
        "data": {"storeRef": {"name": "store"}, "prefix": prefix, "label": LABEL},
        "training": {"image": "freshet-trainer:dev", "estimator": ESTIMATOR_SPEC},
        "serving": {"deploymentRef": {"name": deployment}},
    }
    if mode == "Dynamic":
        spec["monitoring"] = {"source": "Prequential"}
    return {
        "apiVersion": f"{sc.GROUP}/{sc.VERSION}",
        "kind": "TrainingPolicy",
        "metadata": {"name": name},
        "spec": spec,
    }


@dataclass
class Cycle:
    """One later file: predicted by the serving model, uploaded, trained on, rolled out."""

    batch: int
    file: int
    key: str
    served: str
    """The version that predicted the file (the HTTP answer's `version`)."""
    accuracy: float
    predict_s: float
    run_s: float
    """End of the upload to status showing the run finished. The operator records a
    promotion once the Deployment has rolled it out, so this includes that rollout."""
    rollout_s: float
    """Run recorded to the Deployment seen rolled out on the serving version (a
    rollback's rollout comes after the run is recorded)."""
    run_id: str | None
    phase: str | None
    reason: str | None
    quarantined: bool
    after: str
    """The serving version once rolled out (the next file's predictor)."""


def _post(url: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{url}/predict",
        data=json.dumps({"rows": rows}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


def predict(
    api: client.ApiClient, ns: str, app: str, frame: pd.DataFrame, expect: str | None
) -> tuple[np.ndarray, str]:
    """The Ready model-server pod's predictions for `frame`, from version `expect`.

    A pod of the version just replaced may still answer for a moment; its answers
    are not taken (a wrong version is retried, and reported if it persists).
    """
    rows = frame[features_of(frame)].to_dict(orient="records")
    deadline = time.monotonic() + 60
    seen: set[str] = set()
    while True:
        with contextlib.suppress(Exception):
            for url in sc.server_urls(api, ns, app):
                predictions: list[Any] = []
                versions = set()
                for start in range(0, len(rows), MAX_ROWS_PER_REQUEST):
                    answer = _post(url, rows[start : start + MAX_ROWS_PER_REQUEST])
                    predictions.extend(answer["predictions"])
                    versions.add(str(answer["version"]))
                seen |= versions
                if len(versions) == 1 and (expect is None or versions == {expect}):
                    return np.asarray(predictions), versions.pop()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{ns}/{app}: no Ready pod answered as {expect} (saw {seen})")
        time.sleep(0.5)


class LiveStream:
    """One stream's Static and Dynamic policies on the shared stack."""

    def __init__(
        self, s: stack.Stack, api: client.ApiClient, name: str, files: list[list[pd.DataFrame]]
    ) -> None:
        self.s, self.api, self.name, self.files = s, api, name, files
        self.ns, self.bucket = f"adapt-{name}", f"bench-adapt-{name}"
        self.s3 = s3store.client(s.s3)
        self.custom = client.CustomObjectsApi(api)
        self.apps = client.AppsV1Api(api)
        self.runs: dict[str, dict[str, Any]] = {}
        """Every run seen in status.history (the ledger keeps only the newest 50)."""
        self.cycles: list[Cycle] = []
        self.static_correct: list[list[np.ndarray]] = []
        self.dynamic_correct: list[list[np.ndarray]] = []
        self.warmup_s = 0.0
        self.warmup_runs: set[str] = set()
        self.run_details: dict[str, dict[str, Any]] = {}
        """Per run, from its result document: the window it trained on, the gate's figures."""
        self.mismatched_answers = 0

    # -- reads

    def policy(self, name: str) -> dict[str, Any]:
        obj: Any = self.custom.get_namespaced_custom_object(
            sc.GROUP, sc.VERSION, self.ns, sc.PLURAL, name
        )
        return dict(obj)

    def deployment(self, name: str) -> dict[str, Any]:
        dep = self.apps.read_namespaced_deployment(name, self.ns)
        api: Any = self.api  # the kubernetes client is untyped
        return dict(api.sanitize_for_serialization(dep))

    def _note_history(self, p: dict[str, Any]) -> None:
        for h in (p.get("status") or {}).get("history") or []:
            self.runs[h["runId"]] = h

    def rolled_out(self, policy: str, deployment: str, timeout: float) -> str:
        """Wait until a version serves and the Deployment has rolled it out; return it."""

        def check() -> str | None:
            version = sc.serving_version(self.policy(policy))
            dep = self.deployment(deployment)
            annotations = (dep["spec"]["template"].get("metadata") or {}).get("annotations") or {}
            if version and annotations.get(VERSION_ANNOTATION) == version and rollout_complete(dep):
                return str(version)
            return None

        return str(sc.wait_for(f"{self.ns}/{deployment} to roll out", check, timeout=timeout))

    def idle(self, timeout: float) -> dict[str, Any]:
        """Wait until no run is active and nothing is pending."""

        def check() -> dict[str, Any] | None:
            p = self.policy(DYNAMIC)
            st = p.get("status") or {}
            running = (st.get("lastRun") or {}).get("phase") == "Running"
            pending = (st.get("data") or {}).get("pending", 0)
            return None if running or pending else p

        p: dict[str, Any] = sc.wait_for(f"{self.ns} to be idle", check, timeout=timeout)
        return p

    # -- the protocol

    def setup(self) -> None:
        core = client.CoreV1Api(self.api)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=self.ns)))
        release.serve_namespace(self.api, self.ns)
        self.s3.make_bucket(self.bucket)
        sc.store_secret(self.api, self.ns, self.s, self.bucket)
        sc.model_server(self.api, self.ns, name=DYNAMIC_SERVER)
        sc.model_server(self.api, self.ns, name=STATIC_SERVER)

    def warm_up(self) -> None:
        started = time.monotonic()
        for j, f in enumerate(self.files[0]):
            sc.put(self.s3, self.bucket, f"static/b00-f{j:02d}.csv", csv_bytes(f))
        sc.create_policy(self.api, self.ns, policy_body(STATIC, "Static", "static/", STATIC_SERVER))
        for j, f in enumerate(self.files[0]):
            sc.put(self.s3, self.bucket, f"incoming/b00-f{j:02d}.csv", csv_bytes(f))
        sc.create_policy(
            self.api, self.ns, policy_body(DYNAMIC, "Dynamic", "incoming/", DYNAMIC_SERVER)
        )
        # Static: its model never changes, so it predicts every later file now.
        version = self.rolled_out(STATIC, STATIC_SERVER, timeout=RUN_TIMEOUT)
        for batch in self.files[1:]:
            row = []
            for f in batch:
                predicted, _ = predict(self.api, self.ns, STATIC_SERVER, f, version)
                row.append(predicted == f[LABEL].to_numpy())
            self.static_correct.append(row)
        # Its pod has done its part: give the node its CPU back.
        self.apps.patch_namespaced_deployment_scale(
            STATIC_SERVER, self.ns, {"spec": {"replicas": 0}}
        )
        self.rolled_out(DYNAMIC, DYNAMIC_SERVER, timeout=RUN_TIMEOUT)
        self._note_history(self.idle(timeout=RUN_TIMEOUT))
        self.rolled_out(DYNAMIC, DYNAMIC_SERVER, timeout=ROLLOUT_TIMEOUT)
        self.warmup_s = time.monotonic() - started
        self.warmup_runs = set(self.runs)
        log(f"{self.name}: warm-up done in {self.warmup_s:.0f}s")

    def cycle(self, b: int, j: int, f: pd.DataFrame) -> tuple[Cycle, np.ndarray]:
        before = self.policy(DYNAMIC)
        st = before.get("status") or {}
        prev_run = (st.get("lastRun") or {}).get("runId")
        prev_quarantined = (st.get("data") or {}).get("quarantined", 0)
        expect = sc.serving_version(before)

        t0 = time.monotonic()
        predicted, served = predict(self.api, self.ns, DYNAMIC_SERVER, f, expect)
        correct = predicted == f[LABEL].to_numpy()
        t1 = time.monotonic()

        key = f"incoming/b{b:02d}-f{j:02d}.csv"
        sc.put(self.s3, self.bucket, key, csv_bytes(f))
        t2 = time.monotonic()

        def finished() -> dict[str, Any] | None:
            p = self.policy(DYNAMIC)
            s = p.get("status") or {}
            last = s.get("lastRun") or {}
            if last.get("phase") == "Running":
                return None
            quarantined = (s.get("data") or {}).get("quarantined", 0) > prev_quarantined
            return p if last.get("runId") != prev_run or quarantined else None

        p = sc.wait_for(f"{self.ns}: the run for {key}", finished, timeout=RUN_TIMEOUT)
        t3 = time.monotonic()
        self._note_history(p)
        after = self.rolled_out(DYNAMIC, DYNAMIC_SERVER, timeout=ROLLOUT_TIMEOUT)
        t4 = time.monotonic()
        s = p.get("status") or {}
        last = s.get("lastRun") or {}
        new_run = last.get("runId") != prev_run
        cycle = Cycle(
            batch=b,
            file=j,
            key=key,
            served=served,
            accuracy=float(np.mean(correct)),
            predict_s=round(t1 - t0, 3),
            run_s=round(t3 - t2, 3),
            rollout_s=round(t4 - t3, 3),
            run_id=last.get("runId") if new_run else None,
            phase=last.get("phase") if new_run else None,
            reason=last.get("reason") if new_run else None,
            quarantined=(s.get("data") or {}).get("quarantined", 0) > prev_quarantined,
            after=after,
        )
        return cycle, correct

    def run(self) -> None:
        self.setup()
        self.warm_up()
        for b in range(1, len(self.files)):
            row = []
            for j, f in enumerate(self.files[b]):
                cycle, correct = self.cycle(b, j, f)
                self.cycles.append(cycle)
                row.append(correct)
                log(
                    f"{self.name}: b{b} f{j} acc {cycle.accuracy:.3f} by {cycle.served}"
                    f" -> {cycle.phase or '-'} {cycle.reason or ''}"
                    f"{' QUARANTINED' if cycle.quarantined else ''}, serving {cycle.after};"
                    f" run {cycle.run_s:.1f}s rollout {cycle.rollout_s:.1f}s"
                )
            self.dynamic_correct.append(row)

    # -- what the policy did

    def _json(self, key: str) -> Any:
        try:
            response = self.s3.get_object(self.bucket, key)
        except Exception:  # absent: a run that failed before writing its result
            return None
        try:
            return json.loads(response.read())
        finally:
            response.close()
            response.release_conn()

    def counts(self) -> dict[str, Any]:
        p = self.policy(DYNAMIC)
        self._note_history(p)
        st = p.get("status") or {}
        root = st["stateRoot"]
        book = self._json(f"{root}ledger.json") or {}
        events: Counter[str] = Counter()
        for e in client.CoreV1Api(self.api).list_namespaced_event(self.ns).items:
            if e.involved_object.name == DYNAMIC and e.involved_object.kind == "TrainingPolicy":
                events[e.reason or ""] += e.count or 1
        runs = [r for rid, r in self.runs.items() if rid not in self.warmup_runs]
        outcomes = Counter(f"{r['phase']}/{r.get('reason') or ''}" for r in runs)

        quarantined: dict[str, str] = {}
        drift_checks: Counter[str] = Counter()
        drifted = 0
        windows: list[int] = []
        live_gap: list[float] = []
        by_run = {c.run_id: c for c in self.cycles if c.run_id}
        for rid in sorted(self.runs):
            result = self._json(f"{root}runs/{rid}/result.json")
            if not result:
                continue
            for q in result.get("quarantined") or []:
                quarantined[q["key"]] = q.get("reason", "")
            for d in result.get("drift") or []:
                drifted += 1
                drift_checks.update(d.get("checks") or [])
            window = result.get("window") or {}
            if rid in by_run and window.get("batches"):
                windows.append(len(window["batches"]))
            metrics = result.get("metrics") or {}
            self.run_details[rid] = {
                "window_batches": len(window.get("batches") or []),
                "gate_candidate": (metrics.get("candidate") or {}).get("accuracy"),
                "gate_baseline": (metrics.get("baseline") or {}).get("accuracy"),
                "holdout_rows": (result.get("rows") or {}).get("holdout"),
                "drift": [c for d in result.get("drift") or [] for c in d.get("checks") or []],
            }
            serving = ((result.get("monitoring") or {}).get("serving") or {}).get("accuracy")
            if rid in by_run and serving is not None and not by_run[rid].quarantined:
                live_gap.append(abs(float(serving) - by_run[rid].accuracy))
        for key in book.get("quarantined") or {}:
            reason = self._json(f"{root}quarantine/{key}.reason.json") or {}
            quarantined.setdefault(key, str(reason.get("reason", "")))
        rollback = st.get("lastRollback")
        return {
            "runs": len(runs),
            "promoted": sum(r["phase"] == "Promoted" for r in runs),
            "rejected": sum(r["phase"] == "Rejected" for r in runs),
            "failed": sum(r["phase"] == "Failed" for r in runs),
            "outcomes": dict(sorted(outcomes.items())),
            "files_without_a_new_run": sum(c.run_id is None for c in self.cycles),
            "quarantined": len(quarantined),
            "quarantine_reasons": dict(Counter(quarantined.values())),
            "quarantined_keys": sorted(quarantined),
            "rollbacks": len(book.get("rejected") or []),
            "rolled_back_versions": list(book.get("rejected") or []),
            "last_rollback": rollback,
            "drift_detected_events": events.get("DriftDetected", 0),
            "drifted_batches_recorded": drifted,
            "drift_checks": dict(drift_checks),
            "events": dict(sorted(events.items())),
            "measurements": book.get("measurementTotals") or {},
            "final_version": sc.serving_version(p),
            "window_batches": {
                "mean": round(statistics.mean(windows), 1) if windows else None,
                "min": min(windows, default=None),
                "max": max(windows, default=None),
            },
            "prequential_vs_http_max_abs_diff": round(max(live_gap), 4) if live_gap else None,
        }


# ---------------------------------------------------------------- results


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values))


def gain(line: Sequence[float], static: Sequence[float], best: Sequence[float]) -> float | None:
    """(mean line - mean static) / (mean oracle - mean static); None without a gap."""
    gap = _mean(best) - _mean(static)
    return None if abs(gap) < 1e-9 else round((_mean(line) - _mean(static)) / gap, 3)


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def stream_result(
    name: str,
    *,
    args: argparse.Namespace,
    batches: list[pd.DataFrame],
    files: list[list[pd.DataFrame]],
    offline: dict[str, list[float]],
    live: LiveStream,
    wall_s: float,
    error: str | None,
) -> dict[str, Any]:
    stream = streams.STREAMS[name]
    acc: dict[str, list[float] | None] = {
        "static": batch_accuracy(live.static_correct) if live.static_correct else None,
        "dynamic": (
            batch_accuracy(live.dynamic_correct)
            if len(live.dynamic_correct) == len(files) - 1
            else None
        ),
        "naive": offline["naive"],
        "oracle": offline["oracle"],
    }
    means = {k: round(_mean(v), 4) if v else None for k, v in acc.items()}
    static, oracle_acc = acc["static"], acc["oracle"]
    out: dict[str, Any] = {
        "stream": name,
        "description": stream.description,
        "batches": len(batches),
        "rows": len(batches[0]),
        "files_per_batch": len(files[0]),
        "rows_per_file": len(files[0][0]),
        "seed": args.seed,
        "positive_rate": round(float(np.mean([b[LABEL].mean() for b in batches])), 3),
        "accuracy": {k: None if v is None else [round(x, 4) for x in v] for k, v in acc.items()},
        "mean": means,
        "gain_recovery": {"dynamic": None, "naive": None},
        "error": error,
    }
    if static and oracle_acc:
        for line in ("dynamic", "naive"):
            values = acc[line]
            if values:
                out["gain_recovery"][line] = gain(values, static, oracle_acc)
    try:
        out["counts"] = live.counts()
    except Exception as e:  # the stack may be the thing that broke
        out["counts"] = {"error": f"{type(e).__name__}: {e}"}
    counts = out["counts"]
    if stream.drifting:
        g, dyn, naive = out["gain_recovery"]["dynamic"], means["dynamic"], means["naive"]
        out["target"] = {
            "gain_recovery_ge_0.9": g is not None and g >= 0.9,
            "dynamic_ge_naive": dyn is not None and naive is not None and dyn >= naive,
        }
    else:
        out["target"] = {
            "no_false_quarantine": counts.get("quarantined") == 0,
            "no_rollback": counts.get("rollbacks") == 0,
        }
    cycles = live.cycles
    if cycles:
        total = [c.predict_s + c.run_s + c.rollout_s for c in cycles]
        out["cycle_s"] = {
            "files": len(cycles),
            "p50": round(statistics.median(total), 2),
            "p90": round(_pct(total, 0.9), 2),
            "max": round(max(total), 2),
            "predict_p50": round(statistics.median(c.predict_s for c in cycles), 2),
            "run_p50": round(statistics.median(c.run_s for c in cycles), 2),
            "rollout_p50": round(statistics.median(c.rollout_s for c in cycles), 2),
        }
    out["warmup_s"] = round(live.warmup_s, 1)
    out["wall_s"] = round(wall_s, 1)
    out["files"] = [asdict(c) | live.run_details.get(c.run_id or "", {}) for c in cycles]
    return out


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def summary_tables(results: list[dict[str, Any]]) -> str:
    lines = [
        "| stream | E x B (F files) | static | dynamic | naive | oracle | gain dynamic "
        "| gain naive | runs | promoted | rejected | failed | quarantined | rollbacks "
        "| DriftDetected | target |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        m, g, c = r["mean"], r["gain_recovery"], r.get("counts") or {}
        stationary = not streams.STREAMS[r["stream"]].drifting
        target = "met" if all(r["target"].values()) else "MISSED"
        quarantined = f"{c.get('quarantined', '?')}"
        if c.get("quarantine_reasons"):
            reasons = ", ".join(f"{k} {v}" for k, v in c["quarantine_reasons"].items())
            quarantined += f" ({reasons})"
        lines.append(
            f"| {r['stream']} | {r['batches']} x {r['rows']:,} ({r['files_per_batch']}) "
            f"| {_fmt(m['static'])} | {_fmt(m['dynamic'])} | {_fmt(m['naive'])} "
            f"| {_fmt(m['oracle'])} "
            f"| {'n/a' if stationary else _fmt(g['dynamic'], 2)} "
            f"| {'n/a' if stationary else _fmt(g['naive'], 2)} "
            f"| {c.get('runs', '?')} | {c.get('promoted', '?')} | {c.get('rejected', '?')} "
            f"| {c.get('failed', '?')} | {quarantined} | {c.get('rollbacks', '?')} "
            f"| {c.get('drift_detected_events', '?')} | {target} |"
        )
    lines += [
        "",
        "| stream | later files | warm-up | cycle p50 | p90 | max "
        "| upload -> run recorded p50 (incl. a promotion's rollout) "
        "| recorded -> rolled out p50 | wall |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        t = r.get("cycle_s") or {}
        lines.append(
            f"| {r['stream']} | {t.get('files', 0)} | {r['warmup_s']:.0f} s "
            f"| {_fmt(t.get('p50'), 1)} s | {_fmt(t.get('p90'), 1)} s | {_fmt(t.get('max'), 1)} s "
            f"| {_fmt(t.get('run_p50'), 1)} s | {_fmt(t.get('rollout_p50'), 1)} s "
            f"| {r['wall_s'] / 60:.1f} min |"
        )
    lines += ["", "Accuracy per evaluation batch (1..E-1):", ""]
    for r in results:
        n = r["batches"] - 1
        lines.append(f"| {r['stream']} | " + " | ".join(str(i) for i in range(1, n + 1)) + " |")
        lines.append("|---" * (n + 1) + "|")
        for line in LINES:
            values = r["accuracy"][line] or [None] * n
            lines.append(f"| {line} | " + " | ".join(_fmt(v) for v in values) + " |")
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------- the plot (PNG, no deps)

COLOURS = {
    "static": (127, 127, 127),
    "dynamic": (31, 119, 180),
    "naive": (255, 127, 14),
    "oracle": (44, 160, 44),
}
NAMES = {
    "static": "STATIC",
    "dynamic": "DYNAMIC (DEFAULTS)",
    "naive": "NAIVE SLIDING (2 BATCHES)",
    "oracle": "ORACLE (5-FOLD WITHIN BATCH)",
}


def _panel(
    canvas: Canvas, origin: tuple[int, int], size: tuple[int, int], r: dict[str, Any]
) -> None:
    (x0, y0), (w, h) = origin, size
    black, grey, light = (0, 0, 0), (110, 110, 110), (225, 225, 225)
    stream = streams.STREAMS[r["stream"]]
    g = r["gain_recovery"]["dynamic"]
    title = r["stream"]
    if stream.drifting:
        title += f"  GAIN {_fmt(g, 2)}"
    else:
        c = r.get("counts") or {}
        title += f"  Q {c.get('quarantined', '?')}  RB {c.get('rollbacks', '?')}"
    canvas.text(x0 + 60, y0 + 8, title, black)
    left, top, right, bottom = x0 + 60, y0 + 34, x0 + w - 16, y0 + h - 36
    series = {k: v for k, v in r["accuracy"].items() if v}
    values = [float(v) for vs in series.values() for v in vs]
    if not values:
        canvas.text(left, top + 20, "NO DATA", grey)
        return
    lo = math.floor((min(values) - 0.01) * 20) / 20
    hi = min(1.0, math.ceil((max(values) + 0.01) * 20) / 20)
    if hi - lo < 0.1:
        lo = hi - 0.1
    n = len(values) // len(series)

    def px(i: float) -> float:  # batch index 1..n -> x
        return left + (i - 1) / max(n - 1, 1) * (right - left)

    def py(v: float) -> float:
        return bottom - (v - lo) / (hi - lo) * (bottom - top)

    step = 0.05 if hi - lo <= 0.3 else 0.1
    tick = math.ceil(lo / step - 1e-9) * step
    while tick <= hi + 1e-9:
        y = round(py(tick))
        canvas.line((left, y), (right, y), light)
        label = f"{tick:.2f}"
        canvas.text(left - 8 - canvas.text_width(label), y - 7, label, grey)
        tick += step
    for change in stream.changes(r["batches"], r["rows"]):
        if 1 < change <= n:
            # Point i stands for batch i's rows: a change at the start of batch c
            # falls between the points c-1 and c.
            x = round(px(change - 0.5))
            canvas.line((x, top), (x, bottom), (200, 200, 200), width=2, dash=6)
    canvas.line((left, bottom), (right, bottom), black)
    canvas.line((left, top), (left, bottom), black)
    every = 1 if n <= 12 else 2
    for i in range(1, n + 1, every):
        x = round(px(i))
        canvas.line((x, bottom), (x, bottom + 4), black)
        canvas.text(x - canvas.text_width(str(i)) // 2, bottom + 8, str(i), grey)
    for line in LINES:
        vs = series.get(line)
        if not vs:
            continue
        pts = [(px(i + 1), py(v)) for i, v in enumerate(vs)]
        for a, b in itertools.pairwise(pts):
            canvas.line(a, b, COLOURS[line], width=3, dash=8 if line == "oracle" else 0)
        for cx, cy in pts:
            canvas.rect(round(cx) - 3, round(cy) - 3, round(cx) + 4, round(cy) + 4, COLOURS[line])


def plot(results: list[dict[str, Any]], path: Path, machine: str) -> None:
    """One panel per stream, accuracy per evaluation batch, four lines; legend last."""
    cols = min(3, len(results) + 1)
    rows = math.ceil((len(results) + 1) / cols)
    w, h, header = 470, 300, 70
    canvas = Canvas(cols * w, header + rows * h)
    canvas.text(16, 12, "FRESHET ADAPTATION: ACCURACY PER EVALUATION BATCH", (0, 0, 0))
    canvas.text(16, 40, machine[: (canvas.width - 32) // 12], (110, 110, 110))
    for k, r in enumerate(results):
        _panel(canvas, ((k % cols) * w, header + (k // cols) * h), (w, h), r)
    k = len(results)
    x0, y0 = (k % cols) * w + 40, header + (k // cols) * h + 50
    for i, line in enumerate(LINES):
        y = y0 + i * 34
        canvas.line((x0, y + 7), (x0 + 40, y + 7), COLOURS[line], 3, 8 if line == "oracle" else 0)
        canvas.rect(x0 + 17, y + 4, x0 + 24, y + 11, COLOURS[line])
        canvas.text(x0 + 52, y, NAMES[line], (0, 0, 0))
    y = y0 + len(LINES) * 34 + 6
    canvas.line((x0, y), (x0 + 40, y + 0), (200, 200, 200), width=2, dash=6)
    canvas.text(x0 + 52, y - 7, "ABRUPT CHANGE", (110, 110, 110))
    for i, note in enumerate(
        ("GAIN = (DYNAMIC - STATIC) /", "       (ORACLE - STATIC)", "Q QUARANTINED, RB ROLLBACKS")
    ):
        canvas.text(x0, y + 24 + 22 * i, note, (110, 110, 110))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(canvas.png())


# ---------------------------------------------------------------- main


@dataclass
class Prepared:
    name: str
    batches: list[pd.DataFrame]
    files: list[list[pd.DataFrame]]
    offline: dict[str, list[float]] = field(default_factory=dict)


def prepare(name: str, args: argparse.Namespace) -> Prepared:
    stream = streams.STREAMS[name]
    n = args.batches or stream.batches
    batches = stream.make(args.seed, n, args.rows)
    files = [split_files(b, args.files) for b in batches]
    p = Prepared(name, batches, files)
    p.offline["naive"] = batch_accuracy(naive_sliding(files, 2 * args.files))
    p.offline["oracle"] = oracle(batches, args.seed)
    return p


def machine() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count() or 0} cores, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}, scikit-learn "
        f"{sklearn.__version__}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--streams", nargs="+", default=list(streams.STREAMS))
    parser.add_argument("--batches", type=int, default=None, help="E (default: per stream)")
    parser.add_argument("--rows", type=int, default=2000, help="B, rows per evaluation batch")
    parser.add_argument("--files", type=int, default=5, help="F, files per evaluation batch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parallel", type=int, default=3, help="streams run at once")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "adaptation.png")
    parser.add_argument("--json", type=Path, default=None, help="also write all results here")
    parser.add_argument("--state", type=Path, default=None, help="stack state directory")
    args = parser.parse_args()
    unknown = set(args.streams) - set(streams.STREAMS)
    if unknown:
        parser.error(f"unknown streams {sorted(unknown)}; choose from {list(streams.STREAMS)}")
    if args.batches is not None and args.batches < 2:
        parser.error("--batches must be at least 2 (batch 0 is warm-up)")

    started = time.monotonic()
    prepared = [prepare(name, args) for name in args.streams]
    log(f"offline lines done in {time.monotonic() - started:.1f}s")

    state = args.state or Path(tempfile.mkdtemp(prefix="freshet-bench-adaptation-"))
    with contextlib.redirect_stdout(sys.stderr):
        s = stack.up(state)
    results: list[dict[str, Any]] = []
    live_started = time.monotonic()
    try:
        release.install(s)
        new_client: Any = config.new_client_from_config  # untyped
        api = new_client(s.kubeconfig)
        lock = threading.Lock()

        def one(p: Prepared) -> dict[str, Any]:
            t0 = time.monotonic()
            live = LiveStream(s, api, p.name, p.files)
            error = None
            try:
                live.run()
            except Exception as e:
                error = f"{type(e).__name__}: {e}"
                log(f"{p.name}: FAILED: {error}\n{traceback.format_exc()}")
            r = stream_result(
                p.name,
                args=args,
                batches=p.batches,
                files=p.files,
                offline=p.offline,
                live=live,
                wall_s=time.monotonic() - t0,
                error=error,
            )
            with lock:
                compact = {k: v for k, v in r.items() if k != "files"}
                print(json.dumps(compact), flush=True)
            return r

        with ThreadPoolExecutor(max_workers=max(1, args.parallel)) as pool:
            results = list(pool.map(one, prepared))
    finally:
        live_wall = time.monotonic() - live_started
        stack.down(state)

    wall = time.monotonic() - started
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    where = f"{machine()} ({when}); wall {wall / 60:.1f} min"
    print()
    print(summary_tables(results))
    print(
        f"Machine: {where}; live part {live_wall / 60:.1f} min with {args.parallel} stream(s)"
        f" at a time; stack state {state}"
    )
    plot(results, args.out, where)
    print(f"Plot: {args.out}")
    if args.json:
        args.json.write_text(
            json.dumps({"machine": where, "args": vars(args), "streams": results}, default=str)
        )


if __name__ == "__main__":
    main()
