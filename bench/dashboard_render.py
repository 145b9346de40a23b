"""Dashboard page times: 200 policies in the list, a 100-version history on a policy page.

Starts its own stack (control plane, S3, a real node), installs the chart with the
dashboard, then scales the operator to zero so the synthetic record stays as written:
N TrainingPolicies with a status (conditions, serving version, last run, counts) and,
for one of them, a ledger of V runs (every version with candidate, serving and dummy
metrics and a prequential value), the newest run's result document (10 validated
batches) and Q quarantined batches with their reasons. Then it times each page,
interleaved, R times, through two paths:

- cluster: the dashboard pod the chart runs, with a ServiceAccount's bearer token
  (TokenReview cached, a SubjectAccessReview per check, reads as its own account);
- local: `freshet dashboard` on this machine with the kubeconfig (SelfSubjectAccessReviews).

Prints p50 / p95 / max milliseconds and the page size, and the share of a policy
page spent rendering (templates and SVG, in-process, no I/O).

    .venv/bin/python bench/dashboard_render.py [--policies 200] [--versions 100] [--repeats 30]
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from devstack import browser, measure, release, s3store, stack
from freshet.dashboard import views
from freshet.dashboard.app import policy_context, templates
from freshet.ledger import Ledger, ModelRef, RunRecord
from kubernetes import client, config

NS = "bench"
BUCKET = "bench-dashboard"
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def condition(kind: str, status: str, reason: str, message: str) -> dict[str, Any]:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": "2026-11-30T12:00:00Z",
        "observedGeneration": 1,
    }


def status(i: int, versions: int) -> dict[str, Any]:
    v = f"v{versions if i == 0 else 1 + i % 7}"
    degraded = i % 13 == 0
    return {
        "observedGeneration": 1,
        "stateRoot": f"freshet/{NS}/p{i:04d}/",
        "conditions": [
            condition("Ready", "True", "Promoted", f"{v} serves"),
            condition(
                "Degraded",
                "True" if degraded else "False",
                "Regressed" if degraded else "Healthy",
                "accuracy 0.71 < serving 0.80 - 0.02" if degraded else "ok",
            ),
            condition("Training", "False", "Idle", "no run in flight"),
            condition("DataHealthy", "True", "NoQuarantine", "no batch is quarantined"),
        ],
        "serving": {
            "version": v,
            "runId": f"p{i:04d}-r",
            "promotedTime": "2026-11-30T12:00:00Z",
            "metrics": {"accuracy": 0.8},
        },
        "lastRun": {
            "runId": f"p{i:04d}-r",
            "jobName": f"p{i:04d}-r",
            "phase": "Promoted",
            "trigger": "NewData",
            "version": v,
            "reason": "Improved",
        },
        "data": {"seen": 40, "consumed": 38, "pending": i % 3, "quarantined": i % 5},
    }


def ledger(versions: int) -> Ledger:
    runs, models = [], {}
    for n in range(1, versions + 1):
        value = 0.78 + 0.06 * ((n * 37) % 11) / 11
        outcome = "Rejected" if n % 9 == 0 else "Promoted"
        start = T0 + timedelta(hours=6 * n)
        runs.append(
            RunRecord(
                runId=f"p0000-{n:04d}",
                version=f"v{n}",
                outcome=outcome,
                reason="Regressed" if outcome == "Rejected" else "Improved",
                message="candidate accuracy against the serving model's on the same holdout",
                trigger="NewData",
                startedTime=start,
                finishedTime=start + timedelta(seconds=48),
                metrics={"accuracy": value, "f1": value - 0.1, "roc_auc": value + 0.08},
                baselineMetrics={"accuracy": value - 0.01} if n > 1 else None,
                dummyMetrics={"accuracy": 0.62},
                liveMetrics={"accuracy": value - 0.03},
                trainRows=4000 + 40 * n,
                holdoutRows=1000,
                batches=20,
            )
        )
        if outcome == "Promoted":
            models[f"v{n}"] = ModelRef(
                version=f"v{n}", runId=f"p0000-{n:04d}", modelKey=f"m/v{n}", sha256="0" * 64
            )
    return Ledger(
        runs=list(reversed(runs)), models=models, rejected=["v50"], nextVersion=versions + 1
    )


def result(versions: int) -> dict[str, Any]:
    checks = [
        {"name": name, "code": code, "passed": True, "value": 0.01, "limit": 0.05}
        for name, code in (
            ("schema", "SchemaMismatch"),
            ("nulls", "TooManyNulls"),
            ("drift", "FeatureDrift"),
        )
    ]
    return {
        "apiVersion": "freshet.dev/run/v1",
        "kind": "RunResult",
        "runId": f"p0000-{versions:04d}",
        "status": "Succeeded",
        "model": {
            "version": f"v{versions}",
            "modelKey": "m",
            "sha256": "0" * 64,
            "manifestKey": "k",
        },
        "metrics": {
            "candidate": {"accuracy": 0.83},
            "baseline": {"accuracy": 0.82},
            "dummy": {"accuracy": 0.62},
        },
        "rows": {"train": 8000, "holdout": 1000},
        "validation": {
            "reference": {"batches": [f"in/b{i}.csv" for i in range(10)], "rows": 9000},
            "batches": [
                {
                    "key": f"in/b{i}.csv",
                    "etag": "e",
                    "new": i > 7,
                    "status": "Accepted",
                    "rows": 400,
                    "checks": checks,
                }
                for i in range(10)
            ],
        },
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch(url: str, headers: dict[str, str]) -> tuple[float, int]:
    started = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as r:
        body = r.read()
        assert r.status == 200, (url, r.status)
    return (time.perf_counter() - started) * 1000, len(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", type=int, default=200)
    parser.add_argument("--versions", type=int, default=100)
    parser.add_argument("--quarantined", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--state", type=Path, default=None)
    parser.add_argument(
        "--screenshots", type=Path, default=None, help="save the list and policy pages here"
    )
    args = parser.parse_args()

    state = args.state or Path(tempfile.mkdtemp(prefix="freshet-bench-"))
    s = stack.up(state)
    local = None
    try:
        release.install(s, {"dashboard.enabled": "true"})
        cluster_url = release.dashboard_url(s)
        release.scale(s, 0)  # the synthetic record below stays as written
        api = config.new_client_from_config(s.kubeconfig)
        core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
        release.serve_namespace(api, NS)
        s3 = s3store.client(s.s3)
        s3.make_bucket(BUCKET)
        s3store.store_secret(api, NS, s.s3, BUCKET)
        for i in range(args.policies):
            name = f"p{i:04d}"
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
                        "mode": "Dynamic" if i % 4 else "Static",
                        "data": {
                            "storeRef": {"name": "store"},
                            "prefix": f"in/{name}/",
                            "label": "y",
                        },
                        "training": {
                            "image": "freshet-trainer:dev",
                            "estimator": {"class": "sklearn.linear_model.LogisticRegression"},
                        },
                    },
                },
            )
            custom.patch_namespaced_custom_object_status(
                "freshet.dev",
                "v1alpha1",
                NS,
                "trainingpolicies",
                name,
                {"status": status(i, args.versions)},
            )
        book = ledger(args.versions)
        root = f"freshet/{NS}/p0000/"

        def put(key: str, doc: Any) -> None:
            data = json.dumps(doc).encode()
            import io

            s3.put_object(BUCKET, key, io.BytesIO(data), len(data))

        put(f"{root}ledger.json", book.model_dump(by_alias=True, mode="json"))
        run_id = f"p0000-{args.versions:04d}"
        put(f"{root}runs/{run_id}/result.json", result(args.versions))
        for q in range(args.quarantined):
            put(f"{root}quarantine/in/p0000/bad{q}.csv", {"not": "csv"})
            put(
                f"{root}quarantine/in/p0000/bad{q}.csv.reason.json",
                {
                    "reason": "SchemaMismatch",
                    "message": "column y is missing",
                    "checks": [
                        {
                            "name": "schema",
                            "code": "SchemaMismatch",
                            "passed": False,
                            "message": "column y is missing",
                        }
                    ],
                },
            )

        # Cluster: a ServiceAccount bound `edit` (it sees the buttons, so every check runs).
        core.create_namespaced_service_account(
            NS, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="alice"))
        )
        client.RbacAuthorizationV1Api(api).create_namespaced_role_binding(
            NS,
            client.V1RoleBinding(
                metadata=client.V1ObjectMeta(name="alice"),
                role_ref=client.V1RoleRef(
                    api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="edit"
                ),
                subjects=[client.RbacV1Subject(kind="ServiceAccount", name="alice", namespace=NS)],
            ),
        )
        token = core.create_namespaced_service_account_token(
            "alice",
            NS,
            client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[])),
        ).status.token

        port = free_port()
        local = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "freshet"),
                "dashboard",
                "--kubeconfig",
                s.kubeconfig,
                "--listen",
                f"127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        local_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                fetch(f"{local_url}/healthz", {})
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

        pages = {
            f"list ({args.policies} policies)": "/",
            f"policy ({args.versions} versions)": f"/policies/{NS}/p0000",
            "run (10 batches validated)": f"/policies/{NS}/p0000/runs/{run_id}",
            f"quarantine ({args.quarantined} batches)": f"/policies/{NS}/p0000/quarantine",
        }
        paths = {
            "cluster": (cluster_url, {"Authorization": f"Bearer {token}"}),
            "local": (local_url, {}),
        }
        times: dict[tuple[str, str], list[float]] = {}
        sizes: dict[str, int] = {}
        for _ in range(2):  # warm both (TokenReview cache, connection pools)
            for base, headers in paths.values():
                for path in pages.values():
                    fetch(base + path, headers)
        for _ in range(args.repeats):
            for mode, (base, headers) in paths.items():
                for page, path in pages.items():
                    ms, size = fetch(base + path, headers)
                    times.setdefault((mode, page), []).append(ms)
                    sizes[page] = size

        # Rendering alone: the policy page's templates and SVG, in-process.
        env = templates()
        p = custom.get_namespaced_custom_object(
            "freshet.dev", "v1alpha1", NS, "trainingpolicies", "p0000"
        )
        render_ms = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            context = policy_context(
                p,
                book=book,
                newest=None,
                events=[],
                store_error="",
                may=views.Permissions(patch=True, can_pin=True),
            )
            env.get_template("policy.html").render(
                **context, viewer=None, csrf_token="x", notice="", login_required=False
            )
            render_ms.append((time.perf_counter() - started) * 1000)

        if args.screenshots:
            driver = browser.chromium()
            try:
                driver.get(f"{local_url}/")
                browser.screenshot(driver, args.screenshots / "dashboard-list-200.png", False)
                driver.get(f"{local_url}/policies/{NS}/p0000")
                browser.screenshot(driver, args.screenshots / "dashboard-history-100.png")
            finally:
                driver.quit()

        print(
            f"dashboard page times, {platform.node()} ({platform.processor() or 'cpu'}),"
            f" {args.repeats} requests each, interleaved"
        )
        print(f"{'page':34} {'path':8} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'KiB':>7}")
        for (mode, page), values in sorted(times.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            print(
                f"{page:34} {mode:8} {statistics.median(values):8.1f}"
                f" {measure.percentile(values, 0.95):8.1f} {max(values):8.1f}"
                f" {sizes[page] / 1024:7.1f}"
            )
        print(
            f"policy page rendering alone (templates + SVG, no I/O): p50"
            f" {statistics.median(render_ms):.1f} ms,"
            f" p95 {measure.percentile(render_ms, 0.95):.1f} ms"
        )
    finally:
        if local is not None:
            local.terminate()
            local.wait(10)
        stack.down(state)


if __name__ == "__main__":
    main()
