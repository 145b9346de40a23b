"""Trigger latency: batch written to the bucket -> training Job created.

Starts its own stack (control plane, S3, a real node), the operator installed
with the chart, and N Dynamic policies on one bucket, each on its
own prefix, so all of them share one bucket watcher. It writes one batch per
policy at a steady rate and times each from the end of its PUT to the Job's
ADDED event on a watch, both on this machine's clock. Jobs only need to be
created: a ResourceQuota of zero pods keeps them from running (the operator
reports PodsNotCreated). Prints p50/p95/p99/max,
and counts missed (no Job) and duplicated (more than one Job) batches.

    .venv/bin/python bench/trigger_latency.py [--policies 200] [--rate 20] [--poll 1]
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path

from devstack import measure, release, s3store, stack
from kubernetes import client, config, watch
from urllib3.exceptions import ProtocolError

NS = "bench"
BUCKET = "bench-trigger"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="batches written per second")
    parser.add_argument("--poll", type=int, default=1, help="trigger.pollIntervalSeconds")
    parser.add_argument("--state", type=Path, default=None)
    parser.add_argument(
        "--store",
        choices=["seaweedfs", "minio"],
        default="seaweedfs",
        help="minio streams bucket notifications; seaweedfs has none (polling only)",
    )
    args = parser.parse_args()

    state = args.state or Path(tempfile.mkdtemp(prefix="freshet-bench-"))
    s = stack.up(state)
    try:
        # Every policy's first run starts at once: lift the operator-wide cap.
        release.install(s, {"maxConcurrentRuns": str(args.policies + 1)})
        api = config.new_client_from_config(s.kubeconfig)
        core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
        release.serve_namespace(api, NS)
        core.create_namespaced_resource_quota(
            NS,
            client.V1ResourceQuota(
                metadata=client.V1ObjectMeta(name="no-pods"),
                spec=client.V1ResourceQuotaSpec(hard={"pods": "0"}),
            ),
        )
        store = (
            s.s3
            if args.store == "seaweedfs"
            else s3store.start(state / "minio", "minio", address=s.address)
        )
        s3 = s3store.client(store)
        s3.make_bucket(BUCKET)
        s3store.store_secret(api, NS, store, BUCKET)
        names = [f"p{i:04d}" for i in range(args.policies)]
        for name in names:
            custom.create_namespaced_custom_object(
                "freshet.dev",
                "v1alpha1",
                NS,
                "trainingpolicies",
                {
                    "apiVersion": "freshet.dev/v1alpha1",
                    "kind": "TrainingPolicy",
                    "metadata": {"name": name},
                    "spec": {
                        "mode": "Dynamic",
                        "data": {
                            "storeRef": {"name": "store"},
                            "prefix": f"in/{name}/",
                            "label": "y",
                        },
                        "trigger": {
                            "pollIntervalSeconds": args.poll,
                            "onArrival": {"minBatches": 1, "quietSeconds": 0},
                        },
                        "training": {
                            "image": "freshet-trainer:dev",
                            "estimator": {"class": "sklearn.linear_model.LogisticRegression"},
                        },
                    },
                },
            )
        # Every policy has reconciled once (its watcher subscription exists).
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            items = custom.list_namespaced_custom_object(
                "freshet.dev", "v1alpha1", NS, "trainingpolicies"
            )["items"]
            reconciled = sum(1 for p in items if (p.get("status") or {}).get("observedGeneration"))
            if reconciled == len(names):
                break
            time.sleep(0.5)
        else:
            raise SystemExit("policies did not all reconcile within 120s")

        arrivals: set[str | None] = set()
        want = "Notifications" if args.store == "minio" else "Polling"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and arrivals != {want}:
            items = custom.list_namespaced_custom_object(
                "freshet.dev", "v1alpha1", NS, "trainingpolicies"
            )["items"]
            arrivals = {(p.get("status") or {}).get("data", {}).get("arrivals") for p in items}
            time.sleep(1.0)

        created: dict[str, list[float]] = {}
        stop = threading.Event()

        def watch_jobs() -> None:
            w = watch.Watch()
            try:
                for event in w.stream(
                    client.BatchV1Api(api).list_namespaced_job, NS, timeout_seconds=600
                ):
                    if event["type"] == "ADDED":
                        policy = event["object"].metadata.labels["freshet.dev/policy"]
                        created.setdefault(policy, []).append(time.monotonic())
                    if stop.is_set():
                        w.stop()
            except ProtocolError:
                pass  # the stack is being torn down under the watch

        watcher = threading.Thread(target=watch_jobs, daemon=True)
        watcher.start()
        time.sleep(1.0)

        written: dict[str, float] = {}
        body = b"x1,x2,y\n0.1,0.2,1\n0.3,0.1,0\n"
        interval = 1.0 / args.rate
        start = time.monotonic()
        for i, name in enumerate(names):
            target = start + i * interval
            if (delay := target - time.monotonic()) > 0:
                time.sleep(delay)
            s3.put_object(BUCKET, f"in/{name}/batch.csv", io.BytesIO(body), len(body))
            written[name] = time.monotonic()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(created) < len(names):
            time.sleep(0.2)
        time.sleep(3.0)  # long enough for a duplicate to show up
        stop.set()

        latencies = [created[n][0] - written[n] for n in names if n in created]
        missed = [n for n in names if n not in created]
        duplicated = [n for n in names if len(created.get(n, [])) > 1]
        result = {
            "policies": len(names),
            "batches": len(names),
            "rate_per_s": args.rate,
            "poll_interval_s": args.poll,
            "store": args.store,
            "arrivals": sorted(arrivals),
            "p50_s": round(statistics.median(latencies), 3) if latencies else None,
            "p95_s": round(measure.percentile(latencies, 0.95), 3) if latencies else None,
            "p99_s": round(measure.percentile(latencies, 0.99), 3) if latencies else None,
            "max_s": round(max(latencies), 3) if latencies else None,
            "missed": len(missed),
            "duplicated": len(duplicated),
            "machine": (
                f"{platform.machine()}, {_cores()} cores, Python {platform.python_version()}"
            ),
        }
        print(json.dumps(result, indent=1))
    finally:
        if args.store == "minio":
            s3store.stop(state / "minio")
        stack.down(state)


def _cores() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    main()
