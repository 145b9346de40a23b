"""The operator at 200 to 2,000 policies: memory, idle CPU and detection latency.

Starts its own stack (control plane, S3, a real node) with the operator
installed by the chart. For each size N, in a namespace and bucket of its own,
and with the operator restarted so its memory is that of N policies only:

1. N prefixes of 20 objects each are written, then N Dynamic policies, one per
   prefix, all on one bucket (one shared watcher), polling every `--poll` s and
   waiting for 21 batches (`onArrival.minBatches`): the 20 are pending, nothing
   trains. Time from the first policy created to every policy having a status.
2. Idle for `--idle` s: RSS and CPU (utime + stime from /proc/<pid>/stat) of the
   operator, and of the S3 store, kube-apiserver and etcd for scale.
3. Detection: one more batch for `--sample` of the policies, at `--rate` a
   second; each timed from the end of its PUT to its training Job's ADDED event
   on a watch (a ResourceQuota of zero pods keeps the Jobs from running).
   Missed: no Job within 60 s; duplicated: more than one Job. The API server's
   requests meanwhile (its `apiserver_request_total`, every client), per batch.

Between 2 and 3, the operator's CPU per GET of its /metrics (as Prometheus
scrapes it), over 20 GETs.

`--store minio` runs the same against MinIO, which streams bucket
notifications (SeaweedFS has none: polling only). Prints one JSON line per size
and a table; `--svg` writes the growth plot.

    .venv/bin/python bench/scale.py [--policies 200 500 1000 2000] [--store seaweedfs]
        [--idle 120] [--poll 1] [--sample 400] [--rate 20] [--svg docs/images/scale.svg]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import re
import statistics
import subprocess
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from devstack import controlplane, measure, procs, release, s3store, stack
from kubernetes import client, config, watch
from urllib3.exceptions import ProtocolError

OBJECTS_PER_PREFIX = 20
SCRAPES = 20
BATCH = b"x1,x2,y\n0.1,0.2,1\n0.3,0.1,0\n"


def policy(name: str, prefix: str, poll: int) -> dict[str, Any]:
    return {
        "apiVersion": "freshet.dev/v1alpha1",
        "kind": "TrainingPolicy",
        "metadata": {"name": name},
        "spec": {
            "mode": "Dynamic",
            "data": {"storeRef": {"name": "store"}, "prefix": prefix, "label": "y"},
            "trigger": {
                "pollIntervalSeconds": poll,
                "onArrival": {"minBatches": OBJECTS_PER_PREFIX + 1, "quietSeconds": 0},
            },
            "training": {
                "image": "freshet-trainer:dev",
                "estimator": {"class": "sklearn.linear_model.LogisticRegression"},
            },
        },
    }


class Bench:
    def __init__(self, s: stack.Stack, store: s3store.S3Info, args: argparse.Namespace) -> None:
        self.s, self.store, self.args = s, store, args
        self.api = config.new_client_from_config(s.kubeconfig)
        self.core = client.CoreV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.s3 = s3store.client(store)

    def others(self) -> dict[str, int]:
        """The processes besides the operator whose CPU is reported."""
        pids = {
            # The stack's SeaweedFS, or the MinIO started beside it (its own state).
            "s3": procs.pid_of(
                s3store.NAME,
                (self.s.state if self.store.flavour == "seaweedfs" else self.s.state / "minio"),
            ),
            "kube-apiserver": procs.pid_of("kube-apiserver", self.s.state.resolve()),
            "etcd": procs.pid_of("etcd", self.s.state.resolve()),
        }
        return {name: pid for name, pid in pids.items() if pid is not None}

    def policies(self, ns: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.custom.list_namespaced_custom_object(
            "freshet.dev", "v1alpha1", ns, "trainingpolicies"
        )["items"]
        return items

    def size(self, n: int) -> dict[str, Any]:
        ns, bucket = f"scale-{n}", f"bench-scale-{n}"
        self.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
        release.serve_namespace(self.api, ns)
        self.core.create_namespaced_resource_quota(
            ns,
            client.V1ResourceQuota(
                metadata=client.V1ObjectMeta(name="no-pods"),
                spec=client.V1ResourceQuotaSpec(hard={"pods": "0"}),
            ),
        )
        self.s3.make_bucket(bucket)
        s3store.store_secret(self.api, ns, self.store, bucket)
        names = [f"p{i:04d}" for i in range(n)]

        def put(i: int) -> None:
            name, j = names[i // OBJECTS_PER_PREFIX], i % OBJECTS_PER_PREFIX
            self.s3.put_object(bucket, f"in/{name}/b{j:02d}.csv", io.BytesIO(BATCH), len(BATCH))

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(put, range(n * OBJECTS_PER_PREFIX)))
        # A fresh operator process: its memory is that of these N policies only.
        release.kill(self.s)
        pid = release.operator_pid(self.s)
        started = time.monotonic()
        for name in names:
            self.custom.create_namespaced_custom_object(
                "freshet.dev",
                "v1alpha1",
                ns,
                "trainingpolicies",
                policy(name, f"in/{name}/", self.args.poll),
            )
        created_in = time.monotonic() - started
        want = "Notifications" if self.store.flavour == "minio" else "Polling"
        deadline = time.monotonic() + 600
        while True:
            items = self.policies(ns)
            ready = sum(
                1
                for p in items
                if (p.get("status") or {}).get("observedGeneration")
                and (p["status"].get("data") or {}).get("arrivals") == want
                and (p["status"].get("data") or {}).get("pending") == OBJECTS_PER_PREFIX
            )
            if ready == n:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"{ready}/{n} policies reported a status within 600 s")
            time.sleep(1.0)
        to_statuses = time.monotonic() - started
        time.sleep(10)  # the last status writes settle
        others = self.others()
        cpu0 = {"operator": measure.cpu_seconds(pid)} | {
            k: measure.cpu_seconds(p) for k, p in others.items()
        }
        t0 = time.monotonic()
        time.sleep(self.args.idle)
        elapsed = time.monotonic() - t0
        cpu1 = {"operator": measure.cpu_seconds(pid)} | {
            k: measure.cpu_seconds(p) for k, p in others.items()
        }
        idle = {k: round(100 * (cpu1[k] - cpu0[k]) / elapsed, 2) for k in cpu0}
        rss = measure.rss_mib(pid)
        before = measure.cpu_seconds(pid)
        for _ in range(SCRAPES):
            release.metrics(self.s)
        scrape_ms = 1000 * (measure.cpu_seconds(pid) - before) / SCRAPES
        detection = self.detect(ns, bucket, names)
        return {
            "policies": n,
            "objects": n * OBJECTS_PER_PREFIX,
            "store": self.store.flavour,
            "arrivals": want,
            "poll_interval_s": self.args.poll,
            "created_s": round(created_in, 1),
            "to_all_statuses_s": round(to_statuses, 1),
            "operator_rss_mib": round(rss, 1),
            "idle_cpu_percent_of_a_core": idle,
            "scrape_cpu_ms": round(scrape_ms, 1),
            **detection,
        }

    def detect(self, ns: str, bucket: str, names: list[str]) -> dict[str, Any]:
        sample = sorted(random.Random(0).sample(names, min(self.args.sample, len(names))))
        created: dict[str, list[float]] = {}
        stop = threading.Event()

        def watch_jobs() -> None:
            w = watch.Watch()
            try:
                for event in w.stream(
                    client.BatchV1Api(self.api).list_namespaced_job, ns, timeout_seconds=900
                ):
                    if event["type"] == "ADDED":
                        owner = event["object"].metadata.labels["freshet.dev/policy"]
                        created.setdefault(owner, []).append(time.monotonic())
                    if stop.is_set():
                        w.stop()
            except ProtocolError:
                pass  # the stack is being torn down under the watch

        watcher = threading.Thread(target=watch_jobs, daemon=True)
        watcher.start()
        time.sleep(1.0)
        requests_before = self.api_requests()
        written: dict[str, float] = {}
        interval = 1.0 / self.args.rate
        start = time.monotonic()
        for i, name in enumerate(sample):
            if (delay := start + i * interval - time.monotonic()) > 0:
                time.sleep(delay)
            self.s3.put_object(bucket, f"in/{name}/new.csv", io.BytesIO(BATCH), len(BATCH))
            written[name] = time.monotonic()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(created) < len(sample):
            time.sleep(0.2)
        time.sleep(5.0)  # long enough for a duplicate to show up
        requests = self.api_requests()
        requests.subtract(requests_before)
        stop.set()
        latencies = [created[n][0] - written[n] for n in sample if n in created]
        strays = sorted(set(created) - set(sample))  # a Job for a policy given nothing new
        return {
            "batches": len(sample),
            "rate_per_s": self.args.rate,
            "detection_p50_s": round(statistics.median(latencies), 2) if latencies else None,
            "detection_p99_s": round(measure.percentile(latencies, 0.99), 2) if latencies else None,
            "detection_max_s": round(max(latencies), 2) if latencies else None,
            "missed": sum(1 for n in sample if n not in created),
            "duplicated": sum(1 for n in sample if len(created.get(n, [])) > 1),
            "unexpected_jobs": len(strays),
            "api_requests_per_batch": round(requests.total() / len(sample), 2),
            "api_requests_per_batch_top": {
                what: round(count / len(sample), 2) for what, count in requests.most_common(8)
            },
        }

    def api_requests(self) -> Counter[str]:
        """Requests the API server has served, by verb and resource, from every client
        (the operator, the Job controller, this bench's watch): its own counter."""
        metrics = subprocess.run(
            [*self.s.kubectl(), "get", "--raw", "/metrics"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        counts: Counter[str] = Counter()
        for line in metrics.splitlines():
            if not line.startswith("apiserver_request_total{"):
                continue
            labels, value = line[len("apiserver_request_total{") :].rsplit("} ", 1)
            got = dict(re.findall(r'(\w+)="([^"]*)"', labels))
            what = "/".join(filter(None, (got.get("resource"), got.get("subresource"))))
            counts[f"{got.get('verb', '?')} {what}"] += int(float(value))
        return counts

    def teardown(self, n: int) -> None:
        self.core.delete_namespace(f"scale-{n}", propagation_policy="Background")
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                self.core.read_namespace(f"scale-{n}")
            except client.ApiException as e:
                if e.status == 404:
                    return
                raise
            time.sleep(1.0)


def svg(rows: list[dict[str, Any]], path: Path) -> None:
    """Three panels against the number of policies: the operator's RSS, its idle
    CPU, and the detection p99, each with its target."""
    xs = [r["policies"] for r in rows]
    panels = [
        ("operator RSS (MiB)", [r["operator_rss_mib"] for r in rows], 128.0),
        (
            "operator idle CPU (% of a core)",
            [r["idle_cpu_percent_of_a_core"]["operator"] for r in rows],
            2.0,
        ),
        ("detection p99 (s)", [r["detection_p99_s"] or 0.0 for r in rows], 2.0),
    ]
    pad = 50
    width, height = pad + len(panels) * 330, 300
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
        ' font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    panel_w = (width - (len(panels) + 1) * pad) / len(panels)
    for i, (title, ys, target) in enumerate(panels):
        left, top, bottom = pad + i * (panel_w + pad), 30, height - pad
        top_y = max([*ys, target]) * 1.15
        max_x = max(xs)

        def px(x: float, y: float, box: tuple[float, float, float, float]) -> tuple[float, float]:
            left, bottom, x_per, y_per = box
            return left + x * x_per, bottom - y * y_per

        box = (left, bottom, panel_w / max_x, (bottom - top) / top_y)
        parts.append(f'<text x="{left}" y="18" font-weight="bold">{title}</text>')
        parts.append(
            f'<line x1="{left}" y1="{bottom}" x2="{left + panel_w}" y2="{bottom}" stroke="#444"/>'
            f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#444"/>'
        )
        tx0, ty = px(0, target, box)
        parts.append(
            f'<line x1="{tx0}" y1="{ty:.1f}" x2="{left + panel_w}" y2="{ty:.1f}"'
            ' stroke="#c33" stroke-dasharray="5,4"/>'
            f'<text x="{left + panel_w - 110}" y="{ty - 4:.1f}" fill="#c33">'
            f"target at 1,000: {target:g}</text>"
        )
        points = [px(x, y, box) for x, y in zip(xs, ys, strict=True)]
        parts.append(
            '<polyline fill="none" stroke="#2a6fdb" stroke-width="2" points="'
            + " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            + '"/>'
        )
        for (x, y), value, n in zip(points, ys, xs, strict=True):
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="#2a6fdb"/>')
            parts.append(f'<text x="{x - 10:.1f}" y="{y - 8:.1f}">{value:g}</text>')
            parts.append(f'<text x="{x - 12:.1f}" y="{bottom + 16}">{n:,}</text>')
        parts.append(f'<text x="{left + panel_w / 2 - 30}" y="{bottom + 34}">policies</text>')
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", type=int, nargs="+", default=[200, 500, 1000, 2000])
    parser.add_argument("--store", choices=["seaweedfs", "minio"], default="seaweedfs")
    parser.add_argument("--idle", type=float, default=120.0)
    parser.add_argument("--poll", type=int, default=1, help="trigger.pollIntervalSeconds")
    parser.add_argument("--sample", type=int, default=400, help="new batches per size")
    parser.add_argument("--rate", type=float, default=20.0, help="new batches per second")
    parser.add_argument("--svg", type=Path, default=None, help="write the growth plot here")
    parser.add_argument("--state", type=Path, default=None)
    args = parser.parse_args()
    state = args.state or Path(tempfile.mkdtemp(prefix="freshet-bench-scale-"))
    s = stack.up(state)
    rows = []
    try:
        # Every sampled policy's run may start at once: lift the operator-wide cap.
        release.install(s, {"maxConcurrentRuns": str(max(args.policies) + 1)})
        store = (
            s.s3
            if args.store == "seaweedfs"
            else s3store.start(state / "minio", "minio", address=s.address)
        )
        bench = Bench(s, store, args)
        for n in args.policies:
            row = bench.size(n)
            print(json.dumps(row), flush=True)
            rows.append(row)
            bench.teardown(n)
    finally:
        if args.store == "minio":
            s3store.stop(state / "minio")
        stack.down(state)
    print(
        f"\n{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()},"
        f" Kubernetes {controlplane.versions().get('KUBE_VERSION', '?')}, store {args.store}"
    )
    print(
        "| policies | objects | to all statuses | RSS | idle CPU operator | idle CPU store |"
        " CPU per scrape | detection p50 / p99 | missed | duplicated |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        cpu = r["idle_cpu_percent_of_a_core"]
        print(
            f"| {r['policies']:,} | {r['objects']:,} | {r['to_all_statuses_s']:.0f} s"
            f" | {r['operator_rss_mib']:.0f} MiB | {cpu['operator']:.2g}% | {cpu.get('s3', 0):.2g}%"
            f" | {r['scrape_cpu_ms']} ms"
            f" | {r['detection_p50_s']} / {r['detection_p99_s']} s | {r['missed']}"
            f" | {r['duplicated']} |"
        )
    if args.svg is not None and rows:
        svg(rows, args.svg)
        print(f"plot: {args.svg}")


if __name__ == "__main__":
    main()
