"""Rollback latency: failing check -> the Deployment back on the previous version.

Starts its own stack (control plane, S3, a real node, Prometheus scraping the
model-server pods every second) and the real operator. Each trial gets a fresh
namespace, bucket, model-server Deployment and a Dynamic policy with
`monitoring.source: Prometheus`, `intervalSeconds: 1`, `failureLimit: 0` and the
positive-rate query of tests/e2e/test_monitoring.py (`minValue: 0.5`), with
steady traffic from where the concept says 1. A good v1 is promoted and measured
healthy, then an inverted v2 (a batch with flipped labels, `window.maxBatches: 1`)
passes the gate and goes live; it answers mostly 0, so its first conclusive
measurement fails and rolls back.

Clocks, all this machine's wall clock:

- t0, the failing check: the operator's log line ``measured v2: Fail`` (written
  right after the PromQL answer is judged, before the rollback starts; the
  JSON log's timestamps have microsecond precision; status and events only carry
  seconds, and with failureLimit 0 status never shows v2 failing at all,
  because the same reconcile rolls back before status is written);
- (a) status: the first TrainingPolicy watch event with `status.lastRollback`
  and `status.serving.version` back at v1 (the ledger in the object store is written just before the
  Deployment patch, so it is never later than (b));
- (b) pointer: the first Deployment watch event whose pod-template annotation
  `freshet.dev/model-version` is back at v1;
- (c) rollout: the first Deployment watch event at v1 with the rollout complete
  (`kubectl rollout status`'s test: all replicas updated, none old, all available).

Prints per-trial numbers and p50/max of each, as JSON.

    .venv/bin/python bench/rollback_latency.py [--trials 5] [--replicas 1]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from devstack import release, s3store, stack
from freshet.serving import VERSION_ANNOTATION, rollout_complete
from kubernetes import client, config, watch
from urllib3.exceptions import ProtocolError

REPO = Path(__file__).resolve().parents[1]
# The e2e scenario's building blocks: the model-server Deployment, the policy
# body, synthetic batches and the traffic generator.
sys.path.insert(0, str(REPO / "tests" / "e2e"))
sc: Any = importlib.import_module("scenario")

GROUP, VERSION, PLURAL = "freshet.dev", "v1alpha1", "trainingpolicies"
FAILING_CHECK = re.compile(r"measured v2: Fail\b")


class Recorder:
    """Watch one namespace's Deployments and policies; keep (arrival time, object)."""

    def __init__(self, api: client.ApiClient, ns: str) -> None:
        self.api, self.ns = api, ns
        self.deployments: list[tuple[float, dict[str, Any]]] = []
        self.policies: list[tuple[float, dict[str, Any]]] = []
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._deployments, daemon=True),
            threading.Thread(target=self._policies, daemon=True),
        ]

    def __enter__(self) -> Recorder:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=5)

    def _deployments(self) -> None:
        apps = client.AppsV1Api(self.api)
        listed = apps.list_namespaced_deployment(self.ns)
        self._stream(
            apps.list_namespaced_deployment,
            (self.ns,),
            listed.metadata.resource_version,
            self.deployments,
        )

    def _policies(self) -> None:
        custom = client.CustomObjectsApi(self.api)
        listed = custom.list_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL)
        self._stream(
            custom.list_namespaced_custom_object,
            (GROUP, VERSION, self.ns, PLURAL),
            listed["metadata"]["resourceVersion"],
            self.policies,
        )

    def _stream(
        self, fn: Any, args: tuple[str, ...], rv: str, out: list[tuple[float, dict[str, Any]]]
    ) -> None:
        while not self.stop.is_set():
            w = watch.Watch()
            try:
                for event in w.stream(fn, *args, resource_version=rv, timeout_seconds=5):
                    now = time.time()
                    obj = event["object"]
                    if not isinstance(obj, dict):
                        obj = self.api.sanitize_for_serialization(obj)
                    rv = obj["metadata"]["resourceVersion"]
                    out.append((now, obj))
                    if self.stop.is_set():
                        w.stop()
            except ProtocolError:
                return  # the stack is going down


def _annotation(dep: dict[str, Any]) -> str | None:
    meta = dep["spec"]["template"].get("metadata") or {}
    return (meta.get("annotations") or {}).get(VERSION_ANNOTATION)


def _serving(policy: dict[str, Any]) -> str | None:
    return ((policy.get("status") or {}).get("serving") or {}).get("version")


def _failing_check(log: str) -> float:
    """When the operator logged the failing check (the chart's JSON log lines carry
    an ISO timestamp with microseconds)."""
    for line in log.splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        if FAILING_CHECK.search(str(entry.get("message", ""))):
            return datetime.fromisoformat(entry["timestamp"]).timestamp()
    raise RuntimeError("no 'measured v2: Fail' line in the operator log")


def trial(s: stack.Stack, api: client.ApiClient, i: int, replicas: int) -> dict[str, Any]:
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    apps = client.AppsV1Api(api)
    ns, bucket = f"rollback-{i}", f"bench-rollback-{i}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    release.serve_namespace(api, ns)
    s3 = s3store.client(s.s3)
    s3.make_bucket(bucket)
    sc.store_secret(api, ns, s, bucket)
    sc.model_server(api, ns, replicas=replicas)
    sc.create_policy(
        api,
        ns,
        sc.policy(
            "ads",
            data__window={"maxBatches": 1},
            # The inverted batch must reach production for monitoring to catch it.
            validation={"labelContradiction": {"action": "Allow"}},
            monitoring={
                "source": "Prometheus",
                "intervalSeconds": 1,
                "failureLimit": 0,
                "prometheus": {
                    "url": s.prometheus_url,
                    "query": sc.POSITIVE_RATE,
                    "minValue": "0.5",
                },
            },
        ),
    )

    def policy() -> dict[str, Any]:
        return dict(custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "ads"))

    def deployment() -> dict[str, Any]:
        dep = apps.read_namespaced_deployment("model-server", ns)
        return dict(api.sanitize_for_serialization(dep))

    with sc.Traffic(api, ns, rate=10, center=(1.5, -1.0)) as traffic:
        sc.put(s3, bucket, "incoming/a0.csv", sc.batch_csv(600, seed=60 + 2 * i))
        sc.wait_for("v1 to serve", lambda: _serving(policy()) == "v1", timeout=180)
        sc.wait_for(
            "v1 rolled out",
            lambda: _annotation(d := deployment()) == "v1" and rollout_complete(d),
            timeout=120,
        )
        sc.wait_for(
            "v1 measured healthy",
            lambda: (
                (m := policy()["status"].get("monitoring") or {}).get("version") == "v1"
                and m.get("phase") == "Healthy"
                and m.get("measurements", 0) >= 3
            ),
            timeout=120,
        )
        offset = len(release.logs(s))
        with Recorder(api, ns) as rec:
            sc.put(s3, bucket, "incoming/a1.csv", sc.batch_csv(600, seed=61 + 2 * i, flip=True))
            rolled = sc.wait_for(
                "the rollback",
                lambda: (p := policy())["status"].get("lastRollback") and p,
                timeout=240,
            )
            sc.wait_for(
                "v1 rolled out again",
                lambda: _annotation(d := deployment()) == "v1" and rollout_complete(d),
                timeout=120,
            )
            time.sleep(0.5)  # the watch events behind the reads above
        sent, errors = traffic.sent, traffic.errors
    rollback = rolled["status"]["lastRollback"]
    assert (rollback["fromVersion"], rollback["toVersion"]) == ("v2", "v1"), rollback

    t0 = _failing_check(release.logs(s)[offset:])
    # The pointer goes v1 -> v2 (promotion) -> v1 (rollback): take the first v1 after a v2.
    seen_v2 = False
    t_pointer = t_rollout = None
    for t, dep in rec.deployments:
        version = _annotation(dep)
        seen_v2 = seen_v2 or version == "v2"
        if seen_v2 and version == "v1":
            t_pointer = t_pointer or t
            if rollout_complete(dep):
                t_rollout = t
                break
    # Status may never show v2 serving: when the rollout completes late enough for v2's
    # series to exist, one reconcile promotes, measures and rolls back before writing it.
    t_status = next(
        (
            t
            for t, p in rec.policies
            if _serving(p) == "v1" and (p.get("status") or {}).get("lastRollback")
        ),
        None,
    )
    t_event = None
    for e in core.list_namespaced_event(ns).items:
        if e.reason == "RolledBack" and e.event_time is not None:
            t_event = e.event_time.timestamp()
    if t_status is None or t_pointer is None or t_rollout is None:
        raise RuntimeError(f"trial {i}: missing a watch event ({t_status}, {t_pointer})")
    # Leave the namespace to the namespace controller; nothing waits on it.
    with contextlib.suppress(Exception):
        core.delete_namespace(ns)
    return {
        "trial": i,
        "status_s": round(t_status - t0, 3),
        "pointer_s": round(t_pointer - t0, 3),
        "rollout_s": round(t_rollout - t0, 3),
        "event_s": round(t_event - t0, 3) if t_event is not None else None,
        "message": rollback["message"],
        "requests_sent": sent,
        "request_errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--replicas", type=int, default=1, help="model-server replicas")
    parser.add_argument("--state", type=Path, default=None)
    args = parser.parse_args()

    state = args.state or Path(tempfile.mkdtemp(prefix="freshet-bench-rollback-"))
    s = stack.up(state, prometheus=True)
    try:
        release.install(s)
        api = config.new_client_from_config(s.kubeconfig)
        trials = []
        for i in range(args.trials):
            trials.append(trial(s, api, i, args.replicas))
            print(json.dumps(trials[-1]), file=sys.stderr, flush=True)

        def summary(key: str) -> dict[str, float]:
            values = [t[key] for t in trials if t[key] is not None]
            return {"p50_s": round(statistics.median(values), 3), "max_s": max(values)}

        result = {
            "trials": len(trials),
            "replicas": args.replicas,
            "monitoring": "Prometheus, intervalSeconds 1, failureLimit 0, scrape 1s, rate[5s]",
            "clock": "t0 = operator log line 'measured v2: Fail' (ms); watch arrival (ms)",
            "status_serving_v1": summary("status_s"),
            "deployment_pointer_v1": summary("pointer_s"),
            "rollout_complete_v1": summary("rollout_s"),
            "rolledback_event_time": summary("event_s"),
            "per_trial": trials,
            "machine": (
                f"{platform.machine()}, {os.cpu_count() or 0} cores, "
                f"Python {platform.python_version()}"
            ),
        }
        print(json.dumps(result, indent=1))
    finally:
        stack.down(state)


if __name__ == "__main__":
    main()
