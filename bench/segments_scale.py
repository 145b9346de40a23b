"""A TrainingPolicySet of N segments: the operator's memory and idle CPU.

Starts its own stack (control plane, S3, a real node) with the operator installed
by the chart, then one TrainingPolicySet whose list generator names N segments,
each child a Dynamic policy on its own empty prefix of one bucket (polling every
5 s, nothing to train). Times the set from creation to every child reconciled,
then reads the operator process's RSS (VmRSS) and CPU (utime + stime, from
/proc/<pid>/stat) over IDLE seconds with nothing happening, before the set exists
and with it.

    .venv/bin/python bench/segments_scale.py [--segments 500] [--idle 120]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from devstack import measure, release, s3store, stack
from kubernetes import client, config

NS = "bench"
BUCKET = "bench-segments"


def idle(pid: int, seconds: float) -> tuple[float, float]:
    """(RSS MiB at the end, share of one core used) over `seconds`."""
    started, cpu = time.monotonic(), measure.cpu_seconds(pid)
    time.sleep(seconds)
    return measure.rss_mib(pid), (measure.cpu_seconds(pid) - cpu) / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=500)
    parser.add_argument("--idle", type=float, default=120.0)
    parser.add_argument("--state", type=Path, default=None)
    args = parser.parse_args()
    state = args.state or Path(tempfile.mkdtemp(prefix="freshet-bench-segments-"))
    s = stack.up(state)
    try:
        release.install(s)
        api = config.new_client_from_config(s.kubeconfig)
        core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
        release.serve_namespace(api, NS)
        s3store.client(s.s3).make_bucket(BUCKET)
        s3store.store_secret(api, NS, s.s3, BUCKET)
        pid = release.operator_pid(s)
        before_rss, before_cpu = idle(pid, args.idle)
        segments = [f"s{i:04d}" for i in range(args.segments)]
        started = time.monotonic()
        custom.create_namespaced_custom_object(
            "freshet.dev",
            "v1alpha1",
            NS,
            "trainingpolicysets",
            {
                "apiVersion": "freshet.dev/v1alpha1",
                "kind": "TrainingPolicySet",
                "metadata": {"name": "bench"},
                "spec": {
                    "template": {
                        "spec": {
                            "mode": "Dynamic",
                            "data": {
                                "storeRef": {"name": "store"},
                                "prefix": "users/{{segment}}/",
                                "label": "y",
                            },
                            "trigger": {"pollIntervalSeconds": 5},
                            "training": {
                                "image": "freshet-trainer:dev",
                                "estimator": {"class": "sklearn.linear_model.LogisticRegression"},
                            },
                        }
                    },
                    "generators": [{"list": segments}],
                },
            },
        )
        deadline = time.monotonic() + 900
        while True:
            items = custom.list_namespaced_custom_object(
                "freshet.dev", "v1alpha1", NS, "trainingpolicies"
            )["items"]
            done = sum(1 for p in items if (p.get("status") or {}).get("observedGeneration"))
            if done == args.segments:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"only {done}/{args.segments} children reconciled in 900 s")
            time.sleep(1)
        ready = time.monotonic() - started
        after_rss, after_cpu = idle(pid, args.idle)
        print(f"{args.segments} segments: every child applied and reconciled in {ready:.1f} s")
        print(f"{'':24} {'RSS MiB':>8} {'idle CPU':>10}")
        print(f"{'before the set':24} {before_rss:8.0f} {before_cpu:9.1%}")
        print(f"{'with the set':24} {after_rss:8.0f} {after_cpu:9.1%}")
        print(f"idle over {args.idle:.0f} s, operator process only (pid {pid})")
    finally:
        stack.down(state)


if __name__ == "__main__":
    main()
