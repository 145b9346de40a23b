"""`make demo`: a Dynamic TrainingPolicy end to end on the local stack, narrated.

1. the stack comes up (control plane, S3 store, a real node with freshet's
   images) and freshet is installed the way a user would: `helm install` of
   charts/freshet (CRDs, RBAC, the operator pod as the chart's ServiceAccount);
2. the example serving Deployment and policy from docs/examples are applied
   (with the locally built image tag);
3. batches land in the bucket: one is not enough (minBatches: 2), the second
   triggers a training Job, the model passes the gate and is rolled out;
4. more batches arrive and the next model replaces it; the model server answers
   predictions with whichever version is live;
5. everything is torn down, unless `--keep`.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config

from devstack import release, s3store, stack, synthetic

NAMESPACE = "freshet-demo"
BUCKET = "ml-data"
POLICY = "spam-filter"
EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
# The examples name the released image; the stack has the one built here.
RELEASED_TRAINER, LOCAL_TRAINER = "freshet-trainer:0.1.0", "freshet-trainer:dev"


def say(msg: str) -> None:
    print(f"\n==> {msg}", flush=True)


def _wait(what: str, check: Callable[[], Any], timeout: float = 180.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.5)
    raise RuntimeError(f"timed out waiting for {what}")


class Demo:
    def __init__(self, s: stack.Stack) -> None:
        self.s = s
        api = config.new_client_from_config(s.kubeconfig)  # type: ignore[no-untyped-call]  # untyped client
        self.api = api
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.s3 = s3store.client(s.s3)

    def kubectl(self, *args: str, show: bool = True, stdin: str | None = None) -> str:
        out = subprocess.run(
            [*self.s.kubectl(), "-n", NAMESPACE, *args],
            check=True,
            capture_output=True,
            text=True,
            input=stdin,
        ).stdout
        if show:
            print(f"$ kubectl {' '.join(args)}\n{out.rstrip()}", flush=True)
        return out

    def setup(self) -> None:
        say("helm install freshet charts/freshet: CRDs, RBAC, the operator Deployment")
        started = time.monotonic()
        pod = release.install(self.s)
        print(
            f"operator pod {release.NAMESPACE}/{pod.metadata.name} Ready"
            f" in {time.monotonic() - started:.1f}s",
            flush=True,
        )
        if not self.s3.bucket_exists(BUCKET):
            self.s3.make_bucket(BUCKET)
        self.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
        say(f"letting freshet into {NAMESPACE}: a RoleBinding to ClusterRole {release.TENANT_ROLE}")
        release.serve_namespace(self.api, NAMESPACE)
        secret = yaml.safe_load((EXAMPLES / "store-secret.yaml").read_text())
        secret["stringData"].update(
            endpoint=self.s.s3.endpoint,
            bucket=BUCKET,
            secure="false",
            accessKeyID=self.s.s3.access_key,
            secretAccessKey=self.s.s3.secret_key,
        )
        secret["data"] = {
            k: base64.b64encode(v.encode()).decode() for k, v in secret.pop("stringData").items()
        }
        self.core.create_namespaced_secret(NAMESPACE, secret)
        say(
            "applying docs/examples/model-server.yaml and docs/examples/policy-dynamic.yaml"
            f" (image {RELEASED_TRAINER} -> {LOCAL_TRAINER}, built by `make images`)"
        )
        for example in ("model-server.yaml", "policy-dynamic.yaml"):
            text = (EXAMPLES / example).read_text().replace(RELEASED_TRAINER, LOCAL_TRAINER)
            self.kubectl("apply", "-f", "-", stdin=text)
        self.kubectl("rollout", "status", "deployment/spam-server", "--timeout=120s")

    def policy(self) -> dict[str, Any]:
        obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
            "freshet.dev", "v1alpha1", NAMESPACE, "trainingpolicies", POLICY
        )  # type: ignore[assignment]  # the client types custom objects as `object`
        return obj

    def put_batches(self, start: int, count: int) -> None:
        for i in range(start, start + count):
            data = synthetic.batch_csv(2000, seed=i)
            key = f"spam/incoming/batch-{i:03d}.csv"
            self.s3.put_object(BUCKET, key, io.BytesIO(data), len(data))
            print(f"put s3://{BUCKET}/{key} ({len(data)} bytes, 2000 rows)", flush=True)

    def serving(self, version: str) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            p = self.policy()
            return (
                p if (p.get("status") or {}).get("serving", {}).get("version") == version else None
            )

        p: dict[str, Any] = _wait(f"{version} to serve", check)
        return p

    def predict(self) -> None:
        pods = self.core.list_namespaced_pod(NAMESPACE, label_selector="app=spam-server").items
        ready = [
            (p.metadata.name, p.status.pod_ip)
            for p in pods
            if p.metadata is not None
            and p.status is not None
            and p.metadata.deletion_timestamp is None
            and any(c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))
        ]
        pod, ip = ready[0]
        body = json.dumps(
            {"rows": [{"x1": 1.2, "x2": -0.3, "cat": "a"}, {"x1": -1.0, "x2": 0.8, "cat": "b"}]}
        ).encode()
        req = urllib.request.Request(
            f"http://{ip}:8080/predict",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            answer = json.loads(r.read())
        print(f"POST http://{ip}:8080/predict (pod {pod}) -> {json.dumps(answer)}")

    def run(self) -> None:
        self.setup()

        say("one batch lands: below minBatches (2), so the policy waits and says why")
        self.put_batches(0, 1)
        _wait(
            "the policy to report it awaits batches",
            lambda: any(
                c["type"] == "Training" and c["reason"] == "AwaitingBatches"
                for c in (self.policy().get("status") or {}).get("conditions") or []
            ),
        )
        self.kubectl("get", "trainingpolicy", POLICY)

        say("a second batch: the policy trains, gates and promotes v1")
        self.put_batches(1, 1)
        self.serving("v1")
        self.kubectl("rollout", "status", "deployment/spam-server", "--timeout=120s")
        self.kubectl("get", "trainingpolicy", POLICY, "-o", "wide")
        self.predict()

        say("three more batches: the next run trains on all five and replaces v1")
        self.put_batches(2, 3)
        p = self.serving("v2")
        self.kubectl("rollout", "status", "deployment/spam-server", "--timeout=120s")
        self.kubectl("get", "trainingpolicy,jobs")
        self.kubectl("rollout", "history", "deployment/spam-server")
        self.predict()
        status = p["status"]
        print("serving:", json.dumps(status["serving"], indent=1))
        print("last decision:", status["lastRun"]["phase"], "-", status["lastRun"]["message"])

        say("the story in events")
        self.kubectl(
            "get",
            "events",
            "--field-selector",
            f"involvedObject.name={POLICY}",
            "--sort-by=.lastTimestamp",
            "-o",
            "custom-columns=REASON:.reason,MESSAGE:.message",
        )


def run(state: Path, keep: bool = False) -> int:
    say("starting the local stack (control plane, S3 store, a real node)")
    s = stack.up(state)
    ok = False
    try:
        Demo(s).run()
        ok = True
        say("demo succeeded")
    finally:
        if keep:
            print(f"\nstack left running: export KUBECONFIG={s.kubeconfig}; `make down` stops it")
        else:
            say("tearing down")
            stack.down(state)
    return 0 if ok else 1
