"""Batch scoring throughput: rows per second on one core for a 1M-row input file.

Starts a real S3 store (SeaweedFS), trains the model of bench/serve_throughput.py
with the trainer's own run, uploads one input of ROWS rows (the same features,
plus an id and a passthrough column), then runs `freshet-score` as a subprocess
pinned to one core with one OpenMP/BLAS thread, as one shard of a scoring run:
download, file checks, parsing, prediction in chunks, writing the output back.
Prints wall seconds, CPU seconds (of that process) and rows/s per core, for each
estimator.

    .venv/bin/python bench/scoring_throughput.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from devstack import s3store
from freshet_trainer.store import ObjectStore, StoreConfig
from serve_throughput import BUCKET, synthetic, train_model

CORE = 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--estimator",
        nargs="+",
        default=[
            "sklearn.linear_model.LogisticRegression",
            "sklearn.ensemble.HistGradientBoostingClassifier",
        ],
    )
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="freshet-bench-score-"))
    info = s3store.start(state)
    try:
        s3store.client(info).make_bucket(BUCKET)
        env = s3store.trainer_env(info, BUCKET)
        store = ObjectStore(StoreConfig.from_env(env))
        frame = synthetic(args.rows, seed=7).drop(columns="y")
        frame.insert(0, "id", range(args.rows))
        data = frame.to_csv(index=False).encode()
        etag = store.put_bytes("score/in/big.csv", data)
        print(f"input: {args.rows} rows, {len(data) / 2**20:.0f} MiB CSV")
        print(f"{'estimator':50} {'wall s':>8} {'cpu s':>8} {'rows/s/core':>12}")
        for n, estimator in enumerate(args.estimator):
            key, sha256 = train_model(store, estimator)
            spec_key = f"freshet/bench/score/scoring/s{n}/spec.json"
            store.put_json(
                spec_key,
                {
                    "apiVersion": "freshet.dev/score/v1",
                    "kind": "ScoringSpec",
                    "runId": f"s{n}",
                    "policy": {"namespace": "bench", "name": "score", "uid": "u", "generation": 1},
                    "store": {"bucket": BUCKET, "root": "freshet/bench/score/"},
                    "model": {"version": "v1", "modelKey": key, "sha256": sha256},
                    "format": "csv",
                    "idColumns": ["id"],
                    "passthroughColumns": ["region"],
                    "inputs": [
                        {
                            "key": "score/in/big.csv",
                            "etag": etag,
                            "size": len(data),
                            "outputKey": f"score/out/s{n}/big.csv",
                        }
                    ],
                    "shards": 1,
                    "maxBatchBytes": 2**31,
                },
            )
            one = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            subprocess.run(
                [str(Path(sys.executable).parent / "freshet-score")],
                env={
                    **os.environ,
                    **env,
                    **one,
                    "FRESHET_SCORING_SPEC_KEY": spec_key,
                    "FRESHET_TERMINATION_LOG": str(state / "termination"),
                },
                stderr=subprocess.DEVNULL,
                check=True,
                preexec_fn=lambda: os.sched_setaffinity(0, {CORE}),
            )
            wall = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            print(f"{estimator:50} {wall:8.1f} {cpu:8.1f} {args.rows / cpu:12.0f}")
        print(f"machine: {platform.node()}, {os.cpu_count()} cores; scorer pinned to core {CORE}")
    finally:
        s3store.stop(state)


if __name__ == "__main__":
    main()
