"""Model-server cost and throughput on one core, side by side with MLServer.

Starts a real S3 store (SeaweedFS), and for each estimator trains a model with
the trainer's own run (`freshet_trainer.train.run`, on a synthetic batch
uploaded to the store). Then it starts, pinned to core 0 with one OpenMP and
BLAS thread each:

- `freshet-serve`, loading that model from the store by its checksum;
- MLServer 1.7.1 with its scikit-learn runtime (`mlserver-sklearn`), in a
  virtualenv of its own that this script creates under ~/.cache/freshet with the
  same scikit-learn, NumPy, SciPy, pandas and PyArrow as freshet, serving the
  same fitted pipeline (the artifact's, written with joblib). Settings: one
  process (`parallel_workers: 0`), access log off (`debug: false`), responses not
  gzipped (`gzip_enabled: false`; freshet does not compress), its Prometheus
  metrics on (as freshet's are); gRPC listens but gets no traffic.

Both get the same bytes: an Open Inference Protocol (v2) request with one input
per feature column (numbers FP64, categories BYTES with `content_type: str`, the
request `content_type: pd`, so MLServer builds a DataFrame for the pipeline),
asking for the `predict_proba` output; freshet's own `/predict` (JSON rows) is
measured too. This process (on core 1) keeps N requests in flight for SECONDS
per window; windows of each cell (estimator x rows per request x in flight) are
interleaved server by server, REPEATS times, in alternating order. Per window:
the server process tree's CPU time (utime + stime from /proc) per request,
predictions/s and client-side p50/p99 latency; medians over repeats are
printed. "bare" is `pipeline.predict_proba(frame)` in this process on the same
rows (the frame already built with the training schema's types), CPU time per
call with one thread.

    .venv/bin/python bench/serve_throughput.py [--seconds 5] [--repeats 3]
        [--rows 1 100] [--in-flight 1 8] [--peer mlserver|none]
        [--estimators sklearn.linear_model.LogisticRegression ...]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import joblib
import numpy as np
import pandas as pd
from devstack import procs, s3store
from freshet_contract.run import RunSpec
from freshet_trainer.artifact import ModelArtifact
from freshet_trainer.store import ObjectStore, StoreConfig
from freshet_trainer.train import run
from threadpoolctl import threadpool_limits

BUCKET = "bench-serve"
SERVER_CORE = 0
CLIENT_CORE = 1
MLSERVER = "1.7.1"
ESTIMATORS = {
    "LR": "sklearn.linear_model.LogisticRegression",
    "HGB": "sklearn.ensemble.HistGradientBoostingClassifier",
}
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
SAME_AS_FRESHET = ("scikit-learn", "numpy", "scipy", "pandas", "pyarrow", "joblib")
TICK = os.sysconf("SC_CLK_TCK")


def synthetic(rows: int, seed: int) -> pd.DataFrame:
    """Eight numeric features and two categorical ones; a label that depends on both."""
    rng = np.random.default_rng(seed)
    numeric = rng.normal(size=(rows, 8))
    plan = rng.choice(["free", "pro", "team", "enterprise"], size=rows)
    region = rng.choice([f"r{i}" for i in range(12)], size=rows)
    score = numeric @ rng.normal(size=8) + np.where(plan == "pro", 1.0, -0.3)
    frame = pd.DataFrame(numeric, columns=[f"x{i}" for i in range(8)])
    return frame.assign(plan=plan, region=region, y=(score > 0).astype(int))


def train_model(store: ObjectStore, estimator: str) -> tuple[str, str]:
    """Upload a batch, run the trainer on it; return the model key and sha256."""
    frame = synthetic(20_000, seed=1)
    data = frame.to_csv(index=False).encode()
    etag = store.put_bytes("in/batch-0.csv", data)
    name = estimator.rsplit(".", 1)[-1].lower()
    root = f"freshet/bench/serve-{name}/"
    spec = RunSpec.model_validate(
        {
            "apiVersion": "freshet.dev/run/v1",
            "kind": "RunSpec",
            "runId": "serve-bench",
            "policy": {"namespace": "bench", "name": "serve", "uid": "u", "generation": 1},
            "store": {"bucket": BUCKET, "root": root},
            "data": {
                "format": "csv",
                "label": "y",
                "batches": [{"key": "in/batch-0.csv", "etag": etag, "size": len(data)}],
                "newBatches": ["in/batch-0.csv"],
            },
            "training": {"estimator": {"class": estimator, "params": {}}, "seed": 0},
            "evaluation": {"metric": "roc_auc", "holdoutFraction": 0.2},
            "baseline": None,
            "output": {
                "version": "v1",
                "modelPrefix": f"{root}models/v1/",
                "resultKey": f"{root}runs/serve-bench/result.json",
            },
        }
    )
    result = run(spec, store)
    if result.model is None:
        raise SystemExit(f"training failed: {result.reason}: {result.message}")
    print(f"trained {estimator}: roc_auc={result.metrics.candidate.get('roc_auc', 0):.3f}")
    return result.model.model_key, result.model.sha256


def pinned() -> None:
    os.sched_setaffinity(0, {SERVER_CORE})


def start_freshet(info: s3store.S3Info, key: str, sha256: str, port: int) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        **ONE_THREAD,
        "PORT": str(port),
        "FRESHET_BIND": "127.0.0.1",
        "FRESHET_MODEL_VERSION": "v1",
        "FRESHET_MODEL_KEY": key,
        "FRESHET_MODEL_SHA256": sha256,
        "FRESHET_S3_ENDPOINT": info.endpoint,
        "FRESHET_S3_SECURE": "false",
        "FRESHET_S3_BUCKET": BUCKET,
        "FRESHET_S3_REGION": info.region,
        "AWS_ACCESS_KEY_ID": info.access_key,
        "AWS_SECRET_ACCESS_KEY": info.secret_key,
    }
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "freshet-serve")],
        env=env,
        stderr=subprocess.DEVNULL,
        text=True,
        preexec_fn=pinned,  # noqa: PLW1509
    )


def mlserver_venv() -> Path:
    """MLServer's own virtualenv, with freshet's versions of the libraries the
    pipeline runs on (so both load the same pickle into the same code)."""
    pins = [f"mlserver=={MLSERVER}", f"mlserver-sklearn=={MLSERVER}"]
    pins += [f"{name}=={importlib.metadata.version(name)}" for name in SAME_AS_FRESHET]
    venv = Path.home() / ".cache" / "freshet" / f"mlserver-{MLSERVER}"
    marker = venv / "freshet-pins.txt"
    if marker.exists() and marker.read_text().split() == pins:
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    print(f"creating {venv}: {' '.join(pins)}")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--disable-pip-version-check", *pins], check=True)
    marker.write_text("\n".join(pins) + "\n")
    return venv


def start_mlserver(venv: Path, pipeline: object, workdir: Path, port: int) -> subprocess.Popen[str]:
    model = workdir / "model"
    model.mkdir(parents=True, exist_ok=True)
    joblib.dump(pipeline, model / "model.joblib")
    settings = {
        "name": "model",
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib", "version": "v1"},
    }
    (model / "model-settings.json").write_text(json.dumps(settings))
    server = {
        "debug": False,
        "parallel_workers": 0,
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": procs.free_port(),
        "metrics_port": procs.free_port(),
        "gzip_enabled": False,
        "load_models_at_startup": True,
    }
    (workdir / "settings.json").write_text(json.dumps(server))
    return subprocess.Popen(
        [str(venv / "bin" / "mlserver"), "start", str(workdir)],
        cwd=workdir,
        env={**os.environ, **ONE_THREAD, "PYTHONPATH": ""},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        preexec_fn=pinned,  # noqa: PLW1509
    )


def wait_ready(url: str, loaded: Callable[[bytes], bool], timeout: float = 120.0) -> None:
    """Until URL answers 200 with a body LOADED accepts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if loaded(answer.read()):
                    return
        except (urllib.error.URLError, OSError, ValueError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"server did not load the model: {url}")


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime of PID and its living descendants."""
    children: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        child, parent = int(entry), int(fields[1])
        children.setdefault(parent, []).append(child)
        ticks[child] = int(fields[11]) + int(fields[12])
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += ticks.get(current, 0)
        todo.extend(children.get(current, []))
    return total / TICK


def v2_body(frame: pd.DataFrame, numeric: tuple[str, ...]) -> bytes:
    """One Open Inference Protocol request: a column per feature, as a DataFrame."""
    inputs = []
    for column in frame.columns:
        values = frame[column].tolist()
        if column in numeric:
            inputs.append({"name": column, "shape": [len(values)], "datatype": "FP64",
                           "data": values})  # fmt: skip
        else:
            inputs.append({"name": column, "shape": [len(values)], "datatype": "BYTES",
                           "data": values, "parameters": {"content_type": "str"}})  # fmt: skip
    request = {
        "parameters": {"content_type": "pd"},
        "inputs": inputs,
        "outputs": [{"name": "predict_proba"}],
    }
    return json.dumps(request).encode()


@dataclass(frozen=True)
class Target:
    name: str
    pid: int
    url: str
    bodies: list[bytes]


@dataclass(frozen=True)
class Window:
    cpu_ms: float
    predictions_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


async def drive(target: Target, rows: int, seconds: float, in_flight: int) -> Window:
    """IN_FLIGHT workers post the target's bodies back to back for SECONDS."""
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=in_flight)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def worker(offset: int, deadline: float, record: bool) -> None:
            nonlocal errors
            i = offset
            while time.monotonic() < deadline:
                started = time.perf_counter()
                async with session.post(target.url, data=target.bodies[i % 64]) as response:
                    await response.read()
                    if record and response.status != 200:
                        errors += 1
                if record:
                    latencies.append(time.perf_counter() - started)
                i += 1

        warm = time.monotonic() + 0.5
        await asyncio.gather(*(worker(n, warm, False) for n in range(in_flight)))
        cpu = tree_cpu_seconds(target.pid)
        began = time.monotonic()
        await asyncio.gather(*(worker(n, began + seconds, True) for n in range(in_flight)))
        elapsed = time.monotonic() - began
        cpu = tree_cpu_seconds(target.pid) - cpu
    ordered = np.sort(np.asarray(latencies))
    return Window(
        cpu_ms=cpu * 1000 / len(latencies),
        predictions_per_s=len(latencies) * rows / elapsed,
        p50_ms=float(np.quantile(ordered, 0.5)) * 1000,
        p99_ms=float(np.quantile(ordered, 0.99)) * 1000,
        requests=len(latencies),
        errors=errors,
    )


def bare_ms(pipeline: Any, frames: list[pd.DataFrame], calls: int = 300) -> float:
    """CPU ms per `pipeline.predict_proba(frame)` in this process, one thread."""
    with threadpool_limits(1):
        for frame in frames[:8]:
            pipeline.predict_proba(frame)
        started = time.process_time()
        for i in range(calls):
            pipeline.predict_proba(frames[i % len(frames)])
        return (time.process_time() - started) * 1000 / calls


def check_same_answers(targets: list[Target], peer: str | None) -> None:
    """Both servers give the same probabilities for the same request."""
    if peer is None:
        return
    answers = []
    for target in targets[:2]:
        request = urllib.request.Request(
            target.url, data=target.bodies[0], headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            (output,) = (o for o in json.load(answer)["outputs"] if o["name"] == "predict_proba")
            answers.append(np.asarray(output["data"], dtype=np.float64).ravel())
    if not np.allclose(answers[0], answers[1], rtol=0, atol=1e-12):
        raise SystemExit("freshet and MLServer disagree on the same request")


@contextmanager
def servers(
    info: s3store.S3Info, store: ObjectStore, estimator: str, peer: str | None, work: Path
) -> Iterator[tuple[ModelArtifact, dict[str, int]]]:
    """Train, start freshet (and the peer) on that model; yield the artifact and ports."""
    key, sha256 = train_model(store, estimator)
    artifact = ModelArtifact.loads_verified(store.get_bytes(key), sha256)
    started: list[subprocess.Popen[str]] = []
    try:
        ports = {"freshet": procs.free_port()}
        started.append(start_freshet(info, key, sha256, ports["freshet"]))
        if peer == "mlserver":
            ports["mlserver"] = procs.free_port()
            workdir = work / f"mlserver-{estimator.rsplit('.', 1)[-1]}"
            started.append(start_mlserver(mlserver_venv(), artifact.pipeline, workdir,
                                          ports["mlserver"]))  # fmt: skip
            wait_ready(f"http://127.0.0.1:{ports['mlserver']}/v2/models/model/ready",
                       lambda _: True)  # fmt: skip
        wait_ready(f"http://127.0.0.1:{ports['freshet']}/readyz",
                   lambda body: json.loads(body)["model"] == "loaded")  # fmt: skip
        ports.update({f"pid:{n}": p.pid for n, p in zip(ports, started, strict=False)})
        time.sleep(3)  # let start-up work (imports, first collections) finish
        yield artifact, ports
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def measure(
    args: argparse.Namespace, info: s3store.S3Info, store: ObjectStore, work: Path
) -> list[dict[str, Any]]:
    peer = None if args.peer == "none" else args.peer
    sample = synthetic(1000, seed=2).drop(columns="y")
    cells: list[dict[str, Any]] = []
    for short, estimator in ((s, ESTIMATORS.get(s, s)) for s in args.estimators):
        with servers(info, store, estimator, peer, work) as (artifact, ports):
            features = artifact.features(sample)
            for rows in args.rows:
                frames = [features.iloc[(i * rows) % 900 :][:rows] for i in range(64)]
                records = [f.to_dict(orient="records") for f in frames]
                v2 = [v2_body(f, artifact.numeric) for f in frames]
                infer = "/v2/models/model/infer"
                targets = [Target("freshet", ports["pid:freshet"],
                                  f"http://127.0.0.1:{ports['freshet']}{infer}", v2)]  # fmt: skip
                if peer is not None:
                    peer_url = f"http://127.0.0.1:{ports[peer]}{infer}"
                    targets.append(Target(peer, ports[f"pid:{peer}"], peer_url, v2))
                targets.append(
                    Target("freshet /predict", ports["pid:freshet"],
                           f"http://127.0.0.1:{ports['freshet']}/predict",
                           [json.dumps({"rows": r}).encode() for r in records])
                )  # fmt: skip
                check_same_answers(targets, peer)
                for in_flight in args.in_flight:
                    windows: dict[str, list[Window]] = {t.name: [] for t in targets}
                    bare: list[float] = []
                    for repeat in range(args.repeats):
                        order = targets if repeat % 2 == 0 else targets[::-1]
                        for target in order:
                            window = asyncio.run(drive(target, rows, args.seconds, in_flight))
                            windows[target.name].append(window)
                        bare.append(bare_ms(artifact.pipeline, frames))
                    cell = {"estimator": short, "rows": rows, "in_flight": in_flight,
                            "bare_ms": statistics.median(bare)}  # fmt: skip
                    for name, got in windows.items():
                        cell[name] = {
                            field: statistics.median(getattr(w, field) for w in got)
                            for field in ("cpu_ms", "predictions_per_s", "p50_ms", "p99_ms")
                        } | {"errors": sum(w.errors for w in got)}
                    cells.append(cell)
                    print(json.dumps(cell))
    return cells


def people(value: float) -> str:
    """Three significant digits, thousands separated."""
    if value == 0:
        return "0"
    digits = max(0, 2 - int(np.floor(np.log10(abs(value)))))
    return f"{round(value, digits):,.{digits}f}"


def report(cells: list[dict[str, Any]], args: argparse.Namespace) -> None:
    peer = None if args.peer == "none" else args.peer
    print(
        f"\nservers pinned to core {SERVER_CORE} (one OpenMP/BLAS thread), client on core "
        f"{CLIENT_CORE}; {args.repeats} interleaved windows of {args.seconds:g} s per cell, medians"
    )
    head = "| model | rows | in flight | freshet CPU ms/req |"
    rule = "|---|---|---|---|"
    if peer is not None:
        head += f" {peer} CPU ms/req | freshet / {peer} |"
        rule += "---|---|"
    head += " bare predict_proba ms | freshet / bare | freshet /predict CPU ms/req |"
    rule += "---|---|---|"
    print(head)
    print(rule)
    for c in cells:
        ours = c["freshet"]["cpu_ms"]
        line = f"| {c['estimator']} | {c['rows']} | {c['in_flight']} | {people(ours)} |"
        if peer is not None:
            theirs = c[peer]["cpu_ms"]
            line += f" {people(theirs)} | {ours / theirs:.2f} |"
        line += (
            f" {people(c['bare_ms'])} | {ours / c['bare_ms']:.2f} |"
            f" {people(c['freshet /predict']['cpu_ms'])} |"
        )
        print(line)
    print()
    names = ["freshet", *([peer] if peer else []), "freshet /predict"]
    print("| model | rows | in flight | server | predictions/s | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for c in cells:
        for name in names:
            r = c[name]
            print(
                f"| {c['estimator']} | {c['rows']} | {c['in_flight']} | {name} "
                f"| {people(r['predictions_per_s'])} | {people(r['p50_ms'])} "
                f"| {people(r['p99_ms'])} | {r['errors']} |"
            )
    versions = ", ".join(f"{n} {importlib.metadata.version(n)}" for n in SAME_AS_FRESHET)
    print(
        f"\nMachine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {versions}"
        + (f"; MLServer {MLSERVER} + mlserver-sklearn {MLSERVER}" if peer else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per window")
    parser.add_argument("--repeats", type=int, default=3, help="windows per server and cell")
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--in-flight", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--peer", choices=["mlserver", "none"], default="mlserver")
    parser.add_argument(
        "--estimators", nargs="+", default=list(ESTIMATORS), help="LR, HGB or class paths"
    )
    parser.add_argument("--json", type=Path, help="also write the cells here")
    args = parser.parse_args()

    os.sched_setaffinity(0, {CLIENT_CORE % (os.cpu_count() or 1)})
    state = Path(tempfile.mkdtemp(prefix="freshet-bench-serve-"))
    info = s3store.start(state)
    try:
        s3store.client(info).make_bucket(BUCKET)
        store = ObjectStore(
            StoreConfig.from_env(
                {
                    "FRESHET_S3_ENDPOINT": info.endpoint,
                    "FRESHET_S3_SECURE": "false",
                    "FRESHET_S3_BUCKET": BUCKET,
                    "FRESHET_S3_REGION": info.region,
                    "AWS_ACCESS_KEY_ID": info.access_key,
                    "AWS_SECRET_ACCESS_KEY": info.secret_key,
                }
            )
        )
        cells = measure(args, info, store, state)
    finally:
        s3store.stop(state)
        shutil.rmtree(state, ignore_errors=True)
    if args.json is not None:
        args.json.write_text(json.dumps(cells, indent=1))
    report(cells, args)


if __name__ == "__main__":
    main()
