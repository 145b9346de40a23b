"""Model-server throughput: predictions per second and latency on one core.

Starts a real S3 store (SeaweedFS), trains a model with the trainer's own run
(`freshet_trainer.train.run`, on a synthetic batch uploaded to the store),
starts `freshet-serve` as a subprocess pinned to one core with one OpenMP and
BLAS thread, loading that model from the store by its checksum, and drives it
from this process (pinned to another core) with CONCURRENCY requests in flight
for SECONDS per request size. Prints requests/s, predictions/s and p50/p99
latency per request size.

    .venv/bin/python bench/serve_throughput.py [--seconds 15] [--concurrency 8]
        [--rows 1 100] [--estimator sklearn.ensemble.HistGradientBoostingClassifier]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pandas as pd
from devstack import procs, s3store
from freshet_contract.run import RunSpec
from freshet_trainer.store import ObjectStore, StoreConfig
from freshet_trainer.train import run

BUCKET = "bench-serve"
SERVER_CORE = 0
CLIENT_CORE = 1


def synthetic(rows: int, seed: int) -> pd.DataFrame:
    """Eight numeric features and two categorical ones; a label that depends on both."""
    rng = np.random.default_rng(seed)
    numeric = rng.normal(size=(rows, 8))
    plan = rng.choice(["free", "pro", "team", "enterprise"], size=rows)
    region = rng.choice([f"r{i}" for i in range(12)], size=rows)
    score = numeric @ rng.normal(size=8) + np.where(plan == "pro", 1.0, -0.3)
    frame = pd.DataFrame(numeric, columns=[f"x{i}" for i in range(8)])
    return frame.assign(plan=plan, region=region, y=(score > 0).astype(int))


def train_model(store: ObjectStore, estimator: str) -> tuple[str, str, list[dict[str, Any]]]:
    """Upload a batch, run the trainer on it; return the model key, sha256 and sample rows."""
    frame = synthetic(20_000, seed=1)
    data = frame.to_csv(index=False).encode()
    etag = store.put_bytes("in/batch-0.csv", data)
    root = "freshet/bench/serve/"
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
    rows = synthetic(1000, seed=2).drop(columns="y").to_dict(orient="records")
    return result.model.model_key, result.model.sha256, rows


def start_server(info: s3store.S3Info, key: str, sha256: str, port: int) -> subprocess.Popen[str]:
    one_thread = {
        name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    }
    env = {
        **os.environ,
        **one_thread,
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
        preexec_fn=lambda: os.sched_setaffinity(0, {SERVER_CORE}),  # noqa: PLW1509
    )


def wait_loaded(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as answer:
                if json.load(answer)["model"] == "loaded":
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise SystemExit("server did not load the model")


async def drive(
    port: int, rows: list[dict[str, Any]], size: int, seconds: float, concurrency: int
) -> dict[str, float]:
    """CONCURRENCY workers post SIZE-row requests back to back for SECONDS."""
    url = f"http://127.0.0.1:{port}/predict"
    bodies = [
        json.dumps({"rows": [rows[(i * size + j) % len(rows)] for j in range(size)]}).encode()
        for i in range(64)
    ]
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds

    async def worker(session: aiohttp.ClientSession, offset: int) -> None:
        nonlocal errors
        i = offset
        while time.monotonic() < deadline:
            started = time.perf_counter()
            async with session.post(url, data=bodies[i % len(bodies)]) as response:
                await response.read()
                if response.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - started)
            i += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        began = time.monotonic()
        await asyncio.gather(*(worker(session, n) for n in range(concurrency)))
        elapsed = time.monotonic() - began
    ordered = np.sort(np.asarray(latencies))
    return {
        "rows": size,
        "requests": len(latencies),
        "errors": errors,
        "requests_per_s": len(latencies) / elapsed,
        "predictions_per_s": len(latencies) * size / elapsed,
        "p50_ms": float(np.quantile(ordered, 0.5)) * 1000,
        "p99_ms": float(np.quantile(ordered, 0.99)) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="per request size")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--estimator", default="sklearn.ensemble.HistGradientBoostingClassifier")
    args = parser.parse_args()

    os.sched_setaffinity(0, {CLIENT_CORE % os.cpu_count()})  # type: ignore[operator]
    state = Path(tempfile.mkdtemp(prefix="freshet-bench-serve-"))
    info = s3store.start(state)
    server: subprocess.Popen[str] | None = None
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
        key, sha256, rows = train_model(store, args.estimator)
        port = procs.free_port()
        server = start_server(info, key, sha256, port)
        wait_loaded(port)
        results = [
            asyncio.run(drive(port, rows, size, args.seconds, args.concurrency))
            for size in args.rows
        ]
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=15)
        s3store.stop(state)

    print(
        f"\nfreshet-serve pinned to core {SERVER_CORE}, client on core {CLIENT_CORE}, "
        f"concurrency {args.concurrency}, {args.seconds:.0f} s per size, {args.estimator}"
    )
    print("| rows/request | requests/s | predictions/s | p50 | p99 | errors |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['rows']} | {r['requests_per_s']:.0f} | {r['predictions_per_s']:.0f} "
            f"| {r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms | {r['errors']} |"
        )
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    print(f"\nMachine: {machine}, Python {platform.python_version()}")


if __name__ == "__main__":
    main()
