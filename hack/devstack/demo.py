"""`make demo`: what freshet does, end to end on the local stack, narrated.

The story, one step each (`Story`; tests/e2e/test_demo.py runs the same steps
and checks what each one shows):

1. setup: the stack comes up and freshet is installed the way a user would,
   `helm install` of charts/freshet; a namespace gets the store Secret and three
   model-server Deployments (docs/examples/model-server.yaml).
2. physics versus fashion: a Static and a Dynamic policy on the same stream,
   which changes for good halfway (x1 moves, the concept is non-linear, so
   the old model is wrong after the change). Before each new window of data is
   trained on, both served models predict it over HTTP, and an oracle that
   knows the window scores it too. Static stays on v1; Dynamic follows.
3. a malformed batch (an export missing a column) lands in the stream: it is
   quarantined with its reason and never trained on.
4. a regression: an upstream bug flips every label; with the label check
   switched off for this policy, the model trained on it goes live, the next
   labelled batch measures it (prequential monitoring) and it is rolled back.
5. a worse candidate (a one-split decision stump instead of the logistic
   regression) is trained on the same data and refused by the gate.
6. late labels: conversions arrive days after the impressions; rows count
   once they are two days old by event time, and when late conversions change
   past days, those days are retrained once (a Backfill run).
7. the final table (per window: static, dynamic, oracle; and what happened)
   and a PNG plot of the metric over time, written to <state>/demo/metric.png.

Everything is torn down at the end, unless `--keep` (`make demo KEEP=1`).
"""

from __future__ import annotations

import io
import itertools
import json
import math
import re
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from kubernetes import client, config

from devstack import release, s3store, stack, synthetic
from devstack.pngchart import Canvas

NAMESPACE = "freshet-demo"
BUCKET = "ml-data"
EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
# The examples name the released image; the stack has the one built here.
RELEASED_TRAINER, LOCAL_TRAINER = "freshet-trainer:0.1.0", "freshet-trainer:dev"
GROUP, VERSION, PLURAL = "freshet.dev", "v1alpha1", "trainingpolicies"

STATIC, DYNAMIC, SPAM, ADS = "physics", "fashion", "spam", "conversions"
SERVERS = {STATIC: "static-server", DYNAMIC: "dynamic-server", SPAM: "spam-server"}
LOGISTIC = {"class": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 300}}
STUMP = {
    "class": "sklearn.ensemble.RandomForestClassifier",
    # A merge patch merges params: null removes the logistic regression's key.
    "params": {"n_estimators": 1, "max_depth": 1, "max_iter": None},
}
LATE_START = datetime(2026, 11, 1, tzinfo=UTC)
LABEL_DELAY = timedelta(days=2)


# ---------------------------------------------------------------- numbers for people


def pct(value: float | None) -> str:
    """An accuracy as a percentage with one decimal: 0.79213 -> '79.2%'."""
    return "-" if value is None else f"{100 * value:.1f}%"


def sig(value: float | None, digits: int = 3) -> str:
    """Three significant digits: 0.0000029761 -> '2.98e-06', 0.81234 -> '0.812'."""
    return "-" if value is None else f"{value:.{digits}g}"


_LONG_NUMBER = re.compile(r"-?\d+\.\d{4,}(?:[eE][-+]?\d+)?")


def humane(text: str) -> str:
    """A product message with its full-precision numbers cut to three significant digits."""
    return _LONG_NUMBER.sub(lambda m: sig(float(m.group())), text)


def wait_for(what: str, check: Callable[[], Any], timeout: float = 180.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.5)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


# ---------------------------------------------------------------- the stream


def window_frame(i: int, rows: int, shifted: bool, seed: int = 0) -> pd.DataFrame:
    """One window of the physics-or-fashion stream (devstack.synthetic.shifted_csv)."""
    data = synthetic.shifted_csv(rows, seed=1000 * seed + i, shifted=shifted)
    return pd.read_csv(io.BytesIO(data))


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return str(frame.to_csv(index=False)).encode()


def oracle_accuracy(frame: pd.DataFrame, folds: int = 5) -> float:
    """Cross-fitted within the window: each row predicted by a logistic regression
    fitted on the window's other rows. It knows the current distribution."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = frame.drop(columns="label").to_numpy(), frame["label"].to_numpy()
    predicted = np.empty_like(y)
    for train, test in KFold(folds, shuffle=True, random_state=0).split(x):
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300))
        predicted[test] = model.fit(x[train], y[train]).predict(x[test])
    return float(np.mean(predicted == y))


def malformed_csv(rows: int, seed: int) -> bytes:
    """An export that lost a column on the way: x1 and the label, no x2."""
    frame = window_frame(seed, rows, shifted=True, seed=7)
    return csv_bytes(frame.drop(columns="x2"))


# ---------------------------------------------------------------- what the steps report


@dataclass
class Window:
    """One window of the stream: predicted by both served models, then trained on."""

    index: int
    changed: bool
    static: float
    static_version: str
    dynamic: float
    dynamic_version: str
    oracle: float
    outcome: str = ""
    """What the Dynamic policy's run on this window did (phase, version, reason)."""


@dataclass
class Stream:
    windows: list[Window]
    change_at: int
    static_versions: set[str]
    dynamic_versions: list[str]
    drift_events: list[str]


@dataclass
class Quarantine:
    key: str
    reason: str
    message: str
    last_run: dict[str, Any]
    quarantined: int


@dataclass
class Rollback:
    bad_version: str
    from_version: str
    to_version: str
    reason: str
    message: str
    serving: str
    deployment_version: str | None


@dataclass
class Refusal:
    version: str
    phase: str
    reason: str
    candidate: float | None
    serving: float | None
    serving_version: str


@dataclass
class Backfill:
    first: dict[str, Any]
    backfill: dict[str, Any]
    relabelled: list[str]
    matured: int
    immature: int
    labeled: int
    labeled_after: int


@dataclass
class Report:
    table: str
    events: dict[str, int]
    plot: Path


@dataclass
class Story:
    """The demo's steps on one stack, namespace and bucket; `run()` tells them in order."""

    s: stack.Stack
    api: client.ApiClient
    namespace: str
    bucket: str
    out: Path
    """Where the plot goes (`metric.png`)."""
    windows: int = 10
    rows: int = 800
    started: float = field(default_factory=time.monotonic)
    stream: Stream | None = None
    quarantine: Quarantine | None = None
    rollback: Rollback | None = None
    refusal: Refusal | None = None
    backfill: Backfill | None = None

    def __post_init__(self) -> None:
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.s3 = s3store.client(self.s.s3)

    # -- telling

    def step(self, n: int, title: str) -> None:
        minutes, seconds = divmod(int(time.monotonic() - self.started), 60)
        print(f"\n[{minutes:02d}:{seconds:02d}] ==> {n}/7 {title}", flush=True)

    def note(self, message: str) -> None:
        print(f"    {message}", flush=True)

    def kubectl(self, *args: str, stdin: str | None = None, show: bool = True) -> str:
        out = subprocess.run(
            [*self.s.kubectl(), "-n", self.namespace, *args],
            check=True,
            capture_output=True,
            text=True,
            input=stdin,
        ).stdout
        if show:
            print(f"$ kubectl {' '.join(args)}\n{humane(out.rstrip())}", flush=True)
        return out

    # -- reading

    def policy(self, name: str) -> dict[str, Any]:
        obj: Any = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name
        )
        return dict(obj)

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.policy(name).get("status") or {})

    def serving(self, name: str) -> str | None:
        return (self.status(name).get("serving") or {}).get("version")

    def history(self, name: str) -> list[dict[str, Any]]:
        """The policy's finished runs, newest first."""
        return list(self.status(name).get("history") or [])

    def runs(self, name: str) -> list[dict[str, Any]]:
        """Every finished run the policy's ledger keeps (the newest 50), newest first."""
        return list(self.doc(name, "ledger.json").get("runs") or [])

    def events(self, name: str, reason: str) -> list[str]:
        return [
            str(e.message)
            for e in self.core.list_namespaced_event(self.namespace).items
            if e.involved_object.name == name and e.reason == reason
        ]

    def doc(self, name: str, key: str) -> Any:
        """A JSON document under the policy's state root in the bucket."""
        root = self.status(name)["stateRoot"]
        return json.loads(self.s3.get_object(self.bucket, f"{root}{key}").read())

    def put(self, key: str, data: bytes) -> None:
        self.s3.put_object(self.bucket, key, io.BytesIO(data), len(data))

    def deployed(self, server: str) -> str | None:
        """The model version the Deployment's pod template carries."""
        dep: Any = self.apps.read_namespaced_deployment(server, self.namespace)
        return (dep.spec.template.metadata.annotations or {}).get("freshet.dev/model-version")

    def server_urls(self, server: str) -> list[str]:
        """The model server's Ready pods, on their pod IPs."""
        urls = []
        pods: Any = self.core.list_namespaced_pod(self.namespace, label_selector=f"app={server}")
        for pod in pods.items:
            ready = any(
                c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []
            )
            if ready and not pod.metadata.deletion_timestamp and pod.status.pod_ip:
                urls.append(f"http://{pod.status.pod_ip}:8080")
        return urls

    def predict(self, server: str, frame: pd.DataFrame, expect: str) -> tuple[np.ndarray, str]:
        """A Ready pod of `server` predicting the rows of `frame`, answering as `expect`
        (a pod of the version just replaced may still answer for a moment)."""
        rows = json.loads(frame.drop(columns="label").to_json(orient="records"))
        body = json.dumps({"rows": rows}).encode()
        seen: set[str] = set()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            for url in self.server_urls(server):
                request = urllib.request.Request(
                    f"{url}/predict",
                    data=body,
                    headers={"Content-Type": "application/json"},
                )
                try:
                    with urllib.request.urlopen(request, timeout=30) as answer:
                        got = json.loads(answer.read())
                except (urllib.error.URLError, OSError):
                    continue  # going away mid-rollout
                seen.add(str(got["version"]))
                if got["version"] == expect:
                    return np.asarray(got["predictions"]), expect
            time.sleep(0.5)
        raise RuntimeError(f"{server}: no Ready pod answered as {expect} (saw {sorted(seen)})")

    def accuracy(self, server: str, frame: pd.DataFrame, expect: str) -> float:
        predictions, _ = self.predict(server, frame, expect)
        return float(np.mean(predictions == frame["label"].to_numpy()))

    def until_serving(self, name: str, version: str) -> None:
        """Wait until the policy serves `version` and its Deployment carries it."""
        wait_for(f"{name} to serve {version}", lambda: self.serving(name) == version)
        server = SERVERS[name]
        wait_for(f"{server} on {version}", lambda: self.deployed(server) == version, 60)

    def newest(self, name: str) -> str | None:
        """The run id of the policy's newest finished run (None before its first)."""
        history = self.history(name)
        return str(history[0]["runId"]) if history else None

    def finished_run(self, name: str, after: str | None, timeout: float = 180) -> dict[str, Any]:
        """Wait for the policy's next finished run after run `after` (its newest one
        before; status keeps only the latest ten) and, if it promoted or rolled back,
        for the Deployment to carry the serving version; return the run."""
        history = wait_for(
            f"{name}'s next run after {after}",
            lambda: (h := self.history(name)) and h[0]["runId"] != after and h,
            timeout,
        )
        server = SERVERS.get(name)
        if server:
            version = self.serving(name)
            wait_for(f"{server} on {version}", lambda: self.deployed(server) == version, 60)
        return dict(history[0])

    # -- writing

    def apply_policy(self, body: dict[str, Any]) -> None:
        text = yaml.safe_dump(body, sort_keys=False)
        print("\n".join(f"    | {line}" for line in text.rstrip().splitlines()), flush=True)
        self.kubectl("apply", "-f", "-", stdin=text)

    def policy_body(self, name: str, mode: str, prefix: str, **spec: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "mode": mode,
            "data": {"storeRef": {"name": "store"}, "prefix": prefix, "label": "label"},
            "training": {"image": LOCAL_TRAINER, "estimator": LOGISTIC},
        }
        if mode == "Dynamic":
            # Faster than the defaults (poll 5 s, quiet 5 s), for the demo's pace.
            body["trigger"] = {
                "pollIntervalSeconds": 1,
                "onArrival": {"minBatches": 1, "quietSeconds": 1},
            }
        if name in SERVERS:
            body["serving"] = {"deploymentRef": {"name": SERVERS[name]}}
        for key, value in spec.items():
            if isinstance(value, dict) and isinstance(body.get(key), dict):
                body[key] = {**body[key], **value}
            else:
                body[key] = value
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "TrainingPolicy",
            "metadata": {"name": name},
            "spec": body,
        }

    def model_server(self, name: str) -> dict[str, Any]:
        """docs/examples/model-server.yaml under another name, one replica, the local
        image, and the namespace's store Secret."""
        text = (EXAMPLES / "model-server.yaml").read_text()
        text = text.replace("spam-server", name).replace(RELEASED_TRAINER, LOCAL_TRAINER)
        text = text.replace("name: ml-store", "name: store")
        body: dict[str, Any] = yaml.safe_load(text)
        body["spec"]["replicas"] = 1
        return body

    # -- the steps

    def setup(self) -> None:
        self.step(1, f"freshet installed; namespace {self.namespace} gets a store and servers")
        s3store.store_secret(self.api, self.namespace, self.s.s3, self.bucket)
        self.note(f"Secret store: the stack's S3 endpoint, bucket {self.bucket}")
        for server in SERVERS.values():
            body: Any = self.model_server(server)  # the client takes a plain dict too
            self.apps.create_namespaced_deployment(self.namespace, body)
        self.note(
            "Deployments " + ", ".join(SERVERS.values()) + ": docs/examples/model-server.yaml,"
            " one replica each, no model yet"
        )

    def physics_versus_fashion(self) -> Stream:
        change = self.windows // 2
        self.step(
            2,
            f"physics versus fashion: Static {STATIC!r} and Dynamic {DYNAMIC!r} on one stream"
            f" of {self.windows} windows x {self.rows} rows that changes for good at window"
            f" {change}",
        )
        frames = [window_frame(i, self.rows, shifted=i >= change) for i in range(self.windows)]
        self.put("stream/window-00.csv", csv_bytes(frames[0]))
        self.note("put s3://.../stream/window-00.csv; both policies train on it")
        self.apply_policy(self.policy_body(STATIC, "Static", "stream/"))
        self.apply_policy(self.policy_body(DYNAMIC, "Dynamic", "stream/"))
        for name in (STATIC, DYNAMIC):
            self.until_serving(name, "v1")
        self.kubectl("get", "trainingpolicies")
        self.note(
            "each later window: both served models predict it over HTTP first, then it lands"
            " in the bucket and the Dynamic policy trains on it"
        )
        self.note(
            f"{'window':>8} {'':7} {'static':>13} {'dynamic':>13} {'oracle':>7}"
            "   then the Dynamic run"
        )
        rows: list[Window] = []
        dynamic_versions = ["v1"]
        for i in range(1, self.windows):
            frame = frames[i]
            serving = self.serving(DYNAMIC) or "v1"
            w = Window(
                index=i,
                changed=i >= change,
                static=self.accuracy(SERVERS[STATIC], frame, "v1"),
                static_version="v1",
                dynamic=self.accuracy(SERVERS[DYNAMIC], frame, serving),
                dynamic_version=serving,
                oracle=oracle_accuracy(frame),
            )
            before = self.newest(DYNAMIC)
            self.put(f"stream/window-{i:02d}.csv", csv_bytes(frame))
            run = self.finished_run(DYNAMIC, before)
            w.outcome = f"{run['phase']} {run['version']}" + (
                f" ({run['reason']})" if run["phase"] != "Promoted" else ""
            )
            if self.serving(DYNAMIC) not in dynamic_versions:
                dynamic_versions.append(str(self.serving(DYNAMIC)))
            rows.append(w)
            self.note(
                f"{i:>8} {'changed' if w.changed else 'before':7}"
                f" {pct(w.static):>7} ({w.static_version})"
                f" {pct(w.dynamic):>7} ({w.dynamic_version})"
                f" {pct(w.oracle):>7}   {w.outcome}"
            )
        if any(w.outcome.startswith("Rejected") for w in rows):
            self.note(
                "Rejected (Regressed): the default gate (accuracy, maxRegression 0) keeps the"
                " serving model when a candidate scores any lower on the same holdout"
            )
        drift = self.events(DYNAMIC, "DriftDetected")
        for message in drift[:2]:
            self.note(f"Event DriftDetected: {humane(message)}")
        static_history = self.history(STATIC)
        training: dict[str, Any] = next(
            (c for c in self.status(STATIC).get("conditions") or [] if c["type"] == "Training"), {}
        )
        self.note(f"{STATIC} (Static), condition Training: {humane(str(training.get('message')))}")
        after = [w for w in rows if w.changed]
        self.note(
            f"after the change: static {pct(float(np.mean([w.static for w in after])))},"
            f" dynamic {pct(float(np.mean([w.dynamic for w in after])))},"
            f" oracle {pct(float(np.mean([w.oracle for w in after])))} (mean accuracy)"
        )
        self.kubectl("get", "trainingpolicies")
        self.stream = Stream(
            windows=rows,
            change_at=change,
            static_versions={str(h["version"]) for h in static_history},
            dynamic_versions=dynamic_versions,
            drift_events=drift,
        )
        return self.stream

    def malformed_batch(self) -> Quarantine:
        key = "stream/export-broken.csv"
        self.step(3, f"a malformed batch: {key} lost its x2 column on the way")
        before = self.newest(DYNAMIC)
        self.put(key, malformed_csv(self.rows, seed=90))
        run = self.finished_run(DYNAMIC, before)
        st = self.status(DYNAMIC)
        reason = self.doc(DYNAMIC, f"quarantine/{key}.reason.json")
        self.note(
            f"quarantined: {key} -> {st['stateRoot']}quarantine/{key}"
            f" (reason {reason['reason']}: {humane(str(reason.get('message', '')))})"
        )
        self.note(
            f"the run: {run['phase']} ({run['reason']}); {self.serving(DYNAMIC)} keeps serving"
        )
        for message in self.events(DYNAMIC, "Quarantined")[:1]:
            self.note(f"Event Quarantined: {humane(message)}")
        self.kubectl("get", "trainingpolicy", DYNAMIC)
        self.quarantine = Quarantine(
            key=key,
            reason=str(reason["reason"]),
            message=str(reason.get("message", "")),
            last_run=run,
            quarantined=int(st["data"]["quarantined"]),
        )
        return self.quarantine

    def regression(self) -> Rollback:
        self.step(4, f"a regression injected and rolled back: Dynamic {SPAM!r}, watched live")
        body = self.policy_body(
            SPAM,
            "Dynamic",
            "spam/",
            data={"window": {"maxBatches": 1}},
            # Off here so the flipped batch reaches production; with it on (the
            # default), the batch would be held as LabelsContradictModel.
            validation={"labelContradiction": {"action": "Allow"}},
            gate={"metric": "accuracy", "maxRegression": "0.02"},
            monitoring={
                "source": "Prequential",
                "failureLimit": 0,
                "maxRegression": "0.1",
                "minRows": 50,
            },
        )
        self.apply_policy(body)
        self.put("spam/b0.csv", synthetic.batch_csv(600, seed=50))
        run = self.finished_run(SPAM, None)
        self.note(f"spam/b0.csv -> {run['phase']} {run['version']}")
        self.put("spam/b1-flipped.csv", synthetic.batch_csv(600, seed=51, flip=True))
        run = self.finished_run(SPAM, run["runId"])
        bad = str(run["version"])
        self.note(
            f"spam/b1-flipped.csv (an upstream bug flipped every label) -> {run['phase']} {bad}:"
            " on its own holdout the flipped model wins, so the gate lets it through"
        )
        before = str(run["runId"])
        self.put("spam/b2.csv", synthetic.batch_csv(600, seed=52))
        self.note("spam/b2.csv: correct labels again; the run first scores the live model on them")
        st = wait_for("the rollback", lambda: (q := self.status(SPAM)).get("lastRollback") and q)
        wait_for(
            "spam-server back",
            lambda: self.deployed(SERVERS[SPAM]) == st["lastRollback"]["toVersion"],
            60,
        )
        rb = st["lastRollback"]
        self.note(
            f"rolled back {rb['fromVersion']} -> {rb['toVersion']} ({rb['reason']}):"
            f" {humane(rb['message'])}"
        )
        measured = self.finished_run(SPAM, before)
        self.note(
            f"the run that measured it: {measured['phase']} {measured['version']}"
            f" ({measured['reason']}): its candidate was gated against the rolled-back model"
        )
        self.kubectl("rollout", "history", f"deployment/{SERVERS[SPAM]}")
        self.rollback = Rollback(
            bad_version=bad,
            from_version=str(rb["fromVersion"]),
            to_version=str(rb["toVersion"]),
            reason=str(rb["reason"]),
            message=str(rb["message"]),
            serving=str(st["serving"]["version"]),
            deployment_version=self.deployed(SERVERS[SPAM]),
        )
        return self.rollback

    def worse_candidate(self) -> Refusal:
        self.step(5, f"a worse candidate refused: {SPAM!r} asked to train a one-split stump")
        wait_for(f"{SPAM} idle", lambda: (self.status(SPAM).get("lastRun") or {}).get("phase")
                 not in (None, "Running"))  # fmt: skip
        before = self.newest(SPAM)
        serving = str(self.serving(SPAM))
        self.note(
            "$ kubectl patch trainingpolicy spam --type merge -p"
            ' \'{"spec":{"training":{"estimator":' + json.dumps(STUMP) + "}}}'"
        )
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, SPAM,
            {"spec": {"training": {"estimator": STUMP}}},
        )  # fmt: skip
        run = self.finished_run(SPAM, before)
        while run["trigger"] != "SpecChanged":  # a run already under way when patched
            run = self.finished_run(SPAM, run["runId"])
        candidate = self.status(SPAM).get("candidate") or {}
        cand = (candidate.get("metrics") or {}).get("accuracy")
        base = (candidate.get("baselineMetrics") or {}).get("accuracy")
        now = str(self.serving(SPAM))
        self.note(
            f"candidate {run['version']}: accuracy {pct(cand)} on the holdout, serving"
            f" {serving} {pct(base)} -> {run['phase']} ({run['reason']}); {now} keeps serving"
        )
        for message in self.events(SPAM, "GateRejected"):
            if message.startswith(f"{run['version']}:"):
                self.note(f"Event GateRejected: {humane(message)}")
        self.kubectl("get", "trainingpolicy", SPAM, "-o", "wide")
        self.refusal = Refusal(
            version=str(run["version"]),
            phase=str(run["phase"]),
            reason=str(run["reason"]),
            candidate=cand,
            serving=base,
            serving_version=now,
        )
        return self.refusal

    def late_labels(self) -> Backfill:
        self.step(6, f"late labels: {ADS!r}, conversions arriving days after the impressions")
        body = self.policy_body(
            ADS,
            "Dynamic",
            "ads/impressions/",
            data={
                "label": "converted",
                "labels": {
                    "prefix": "ads/conversions/",
                    "idColumn": "event_id",
                    "eventTimeColumn": "event_time",
                    "delaySeconds": int(LABEL_DELAY.total_seconds()),
                    "negativeValue": "0",
                },
            },
            trigger={
                "pollIntervalSeconds": 1,
                "onArrival": {"minBatches": 1, "quietSeconds": 2},
                "backfill": {"quietSeconds": 1, "minIntervalSeconds": 0},
            },
            validation={"labelValues": ["0", "1"]},
            gate={"metric": "roc_auc", "maxRegression": "0.05"},
        )
        self.apply_policy(body)
        days = [
            synthetic.conversion_day(
                d, 300, seed=100 + d, start=LATE_START, max_delay=timedelta(days=4)
            )
            for d in range(4)
        ]
        t1 = max(t for d in days for t in d.event_times.values())
        t2 = t1 + timedelta(days=1)

        def labels(day: synthetic.ConversionDay, after: datetime | None, until: datetime) -> int:
            body = day.observed(after, until)
            self.put(f"ads/conversions/day-{day.day:02d}/until-{until:%Y%m%dT%H%M%S}.csv", body)
            return len(body.decode().splitlines()) - 1

        seen = sum(labels(d, None, t1) for d in days)
        for d in days:
            self.put(f"ads/impressions/day-{d.day:02d}.csv", d.features)
        self.note(
            f"impressions of days 0-3 (4 x 300 rows) and the {seen} conversions seen by"
            f" {t1:%b %d %H:%M}; a row counts once it is {LABEL_DELAY.days} days old"
        )
        first = self.finished_run(ADS, None)
        result = self.doc(ADS, f"runs/{first['runId']}/result.json")["labels"]["rows"]
        self.note(
            f"run 1 ({first['trigger']}): {result['matured']} rows matured (days 0-1),"
            f" {result['immature']} too young to judge; {result['labeled']} converted,"
            f" {result['defaulted']} counted as no conversion so far -> {first['phase']}"
            f" {first['version']}"
        )
        late = labels(days[0], t1, t2) + labels(days[1], t1, t2)
        self.note(f"a day later, {late} late conversions arrive for days 0 and 1")
        second = self.finished_run(ADS, first["runId"])
        book = self.doc(ADS, "ledger.json")
        relabelled = [
            key
            for r in book["runs"]
            if r["runId"] == second["runId"]
            for key in r.get("relabelled") or []
        ]
        after = self.doc(ADS, f"runs/{second['runId']}/result.json")["labels"]["rows"]
        self.note(
            f"run 2 ({second['trigger']}): retrained once for the changed days"
            f" {', '.join(relabelled)}; {after['labeled']} of {after['matured']} matured rows"
            f" converted now (was {result['labeled']}) -> {second['phase']} {second['version']}"
        )
        for message in self.events(ADS, "Triggered"):
            if "labels of" in message:
                self.note(f"Event Triggered: {humane(message)}")
        self.backfill = Backfill(
            first=first,
            backfill=second,
            relabelled=relabelled,
            matured=int(result["matured"]),
            immature=int(result["immature"]),
            labeled=int(result["labeled"]),
            labeled_after=int(after["labeled"]),
        )
        return self.backfill

    def events_summary(self) -> list[tuple[str, int, str]]:
        """What freshet did, across the demo's policies: (event, count, where)."""
        names = (STATIC, DYNAMIC, SPAM, ADS)
        statuses = {name: self.status(name) for name in names}
        quarantined = sum(
            int((st.get("data") or {}).get("quarantined", 0)) for st in statuses.values()
        )
        refused = [  # policy by policy, oldest first
            (name, r) for name in names for r in reversed(self.runs(name))
            if r["outcome"] == "Rejected" and r["reason"] == "Regressed"
        ]  # fmt: skip
        rollbacks = [st["lastRollback"] for st in statuses.values() if st.get("lastRollback")]
        backfills = [r for r in self.runs(ADS) if r["trigger"] == "Backfill"]
        where_refused = ", ".join(
            f"{name} {h['version']}"
            + (
                f" (the stump: {pct(self.refusal.candidate)} vs {pct(self.refusal.serving)})"
                if self.refusal and name == SPAM and h["version"] == self.refusal.version
                else ""
            )
            for name, h in refused
        )
        return [
            (
                "quarantined",
                quarantined,
                f"{self.quarantine.key}: {self.quarantine.reason}" if self.quarantine else "",
            ),
            ("refused by the gate (Regressed)", len(refused), where_refused),
            (
                "rolled back",
                len(rollbacks),
                ", ".join(
                    f"{SPAM} {r['fromVersion']} -> {r['toVersion']} ({r['reason']})"
                    for r in rollbacks
                ),
            ),
            (
                "backfilled",
                len(backfills),
                f"{ADS} {self.backfill.backfill['version']}: {', '.join(self.backfill.relabelled)}"
                if self.backfill and backfills
                else "",
            ),
        ]

    def report(self) -> Report:
        self.step(7, "the final table and the plot")
        if self.stream is None:
            raise RuntimeError("the stream step has not run")
        lines = [
            "| window | stream | static | dynamic | oracle | the Dynamic run on it |",
            "|---:|---|---:|---:|---:|---|",
        ]
        for w in self.stream.windows:
            lines.append(
                f"| {w.index} | {'changed' if w.changed else 'before'} |"
                f" {pct(w.static)} ({w.static_version}) | {pct(w.dynamic)} ({w.dynamic_version})"
                f" | {pct(w.oracle)} | {w.outcome} |"
            )
        for label, part in (
            ("before", [w for w in self.stream.windows if not w.changed]),
            ("changed", [w for w in self.stream.windows if w.changed]),
        ):
            if part:
                lines.append(
                    f"| mean | {label} | {pct(float(np.mean([w.static for w in part])))} |"
                    f" {pct(float(np.mean([w.dynamic for w in part])))} |"
                    f" {pct(float(np.mean([w.oracle for w in part])))} | |"
                )
        summary = self.events_summary()
        lines += ["", "| event | count | where |", "|---|---:|---|"]
        lines += [f"| {event} | {count} | {where} |" for event, count, where in summary]
        table = "\n".join(lines)
        print(table, flush=True)
        self.kubectl("get", "trainingpolicies", "-o", "wide")
        events = {event.split(" (")[0]: count for event, count, _ in summary}
        path = self.out / "metric.png"
        plot(self.stream, path, events)
        print(f"\nplot: {path}", flush=True)
        return Report(table=table, events=events, plot=path)

    def run(self) -> Report:
        self.setup()
        self.physics_versus_fashion()
        self.malformed_batch()
        self.regression()
        self.worse_candidate()
        self.late_labels()
        return self.report()


# ---------------------------------------------------------------- the plot

LINES = {
    "static": ((127, 127, 127), "STATIC (TRAINED ONCE)"),
    "dynamic": ((31, 119, 180), "DYNAMIC (ON ARRIVAL)"),
    "oracle": ((44, 160, 44), "ORACLE (FIT ON THE WINDOW)"),
}


def plot(stream: Stream, path: Path, events: dict[str, int]) -> None:
    """Accuracy on each window, before training on it: static, dynamic, oracle."""
    width, height = 1000, 560
    canvas = Canvas(width, height)
    black, grey, light = (0, 0, 0), (110, 110, 110), (225, 225, 225)
    canvas.text(20, 14, "FRESHET DEMO: ACCURACY ON EACH NEW WINDOW, BEFORE TRAINING ON IT", black)
    counts = "  ".join(f"{k.upper()} {v}" for k, v in events.items())
    canvas.text(20, 42, counts, grey)
    left, top, right, bottom = 90, 90, width - 30, height - 150
    series = {
        "static": [w.static for w in stream.windows],
        "dynamic": [w.dynamic for w in stream.windows],
        "oracle": [w.oracle for w in stream.windows],
    }
    values = [v for vs in series.values() for v in vs]
    lo = max(0.0, math.floor((min(values) - 0.02) * 10) / 10)
    hi = min(1.0, math.ceil((max(values) + 0.02) * 10) / 10)
    n = len(stream.windows)
    first = stream.windows[0].index

    def px(i: float) -> float:
        return left + (i - first) / max(n - 1, 1) * (right - left)

    def py(v: float) -> float:
        return bottom - (v - lo) / (hi - lo) * (bottom - top)

    tick = lo
    while tick <= hi + 1e-9:
        y = round(py(tick))
        canvas.line((left, y), (right, y), light)
        label = f"{100 * tick:.0f}%"
        canvas.text(left - 10 - canvas.text_width(label), y - 7, label, grey)
        tick += 0.1
    x = round(px(stream.change_at - 0.5))
    canvas.line((x, top), (x, bottom), (200, 200, 200), width=2, dash=6)
    canvas.text(x + 8, top + 4, "THE STREAM CHANGES", grey)
    canvas.line((left, bottom), (right, bottom), black)
    canvas.line((left, top), (left, bottom), black)
    for w in stream.windows:
        x = round(px(w.index))
        canvas.line((x, bottom), (x, bottom + 4), black)
        canvas.text(x - canvas.text_width(str(w.index)) // 2, bottom + 10, str(w.index), grey)
    canvas.text((left + right) // 2 - canvas.text_width("WINDOW") // 2, bottom + 34, "WINDOW", grey)
    for name, (colour, _) in LINES.items():
        pts = [(px(w.index), py(v)) for w, v in zip(stream.windows, series[name], strict=True)]
        for a, b in itertools.pairwise(pts):
            canvas.line(a, b, colour, width=3, dash=8 if name == "oracle" else 0)
        for cx, cy in pts:
            canvas.rect(round(cx) - 3, round(cy) - 3, round(cx) + 4, round(cy) + 4, colour)
    y = bottom + 66
    for k, (name, (colour, label)) in enumerate(LINES.items()):
        x0 = left + k * 300
        canvas.line((x0, y + 7), (x0 + 36, y + 7), colour, 3, 8 if name == "oracle" else 0)
        canvas.text(x0 + 44, y, label.split(" (")[0], black)
        canvas.text(x0 + 44, y + 22, "(" + label.split(" (")[1], grey)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(canvas.png())


# ---------------------------------------------------------------- make demo


def run(state: Path, keep: bool = False) -> int:
    started = time.monotonic()
    print("==> starting the local stack (control plane, S3 store, a real node)", flush=True)
    ok = False
    try:
        # Inside the try: a stack that fails half-way up is torn down as well.
        s = stack.up(state)
        print("==> helm install freshet charts/freshet: CRDs, RBAC, the operator", flush=True)
        pod = release.install(s)
        print(f"    operator pod {release.NAMESPACE}/{pod.metadata.name} Ready", flush=True)
        api = config.new_client_from_config(s.kubeconfig)  # type: ignore[no-untyped-call]  # untyped client
        core = client.CoreV1Api(api)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
        wait_for(
            "the default ServiceAccount",
            lambda: (
                core.list_namespaced_service_account(
                    NAMESPACE, field_selector="metadata.name=default"
                ).items
            ),
        )
        release.serve_namespace(api, NAMESPACE)
        print(
            f"    namespace {NAMESPACE}, let in with a RoleBinding to {release.TENANT_ROLE}",
            flush=True,
        )
        s3 = s3store.client(s.s3)
        if not s3.bucket_exists(BUCKET):
            s3.make_bucket(BUCKET)
        Story(s, api, NAMESPACE, BUCKET, out=state / "demo", started=started).run()
        ok = True
        elapsed = time.monotonic() - started
        print(f"\n==> demo finished in {elapsed // 60:.0f} min {elapsed % 60:.0f} s", flush=True)
    finally:
        if keep:
            kubeconfig = state.resolve() / "kubeconfig"
            print(f"\nstack left running: export KUBECONFIG={kubeconfig}; `make down` stops it")
        else:
            print("\n==> tearing down", flush=True)
            stack.down(state)
    return 0 if ok else 1
