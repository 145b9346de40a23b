"""Building blocks of end-to-end scenarios: a store Secret, a serving Deployment,
a policy, and synthetic batches written into the bucket."""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable
from typing import Any

from devstack import s3store
from devstack.s3store import S3Info
from devstack.stack import Stack
from devstack.synthetic import batch_csv

__all__ = ["batch_csv"]
from kubernetes import client

GROUP, VERSION, PLURAL = "freshet.dev", "v1alpha1", "trainingpolicies"


def store_secret(
    api: client.ApiClient,
    ns: str,
    s: Stack,
    bucket: str,
    *,
    name: str = "store",
    store: S3Info | None = None,
) -> None:
    """The policy's store Secret: the stack's S3 store, or `store` (e.g. a MinIO)."""
    s3store.store_secret(api, ns, store or s.s3, bucket, name)


RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
"""The container security context of the Pod Security Standard `restricted`."""


def model_server(
    api: client.ApiClient, ns: str, name: str = "model-server", replicas: int = 1
) -> None:
    """A Deployment running the freshet model server, before any model exists,
    restricted as a platform would run it, and its Service."""

    def secret_env(env: str, key: str) -> dict[str, Any]:
        return {"name": env, "valueFrom": {"secretKeyRef": {"name": "store", "key": key}}}

    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {
                    "labels": {"app": name},
                    # Scraped by the stack's Prometheus when a test starts it.
                    "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "8080"},
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "containers": [
                        {
                            "name": "server",
                            "image": "freshet-trainer:dev",
                            "command": ["freshet-serve"],
                            "securityContext": RESTRICTED,
                            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "env": [
                                secret_env("FRESHET_S3_ENDPOINT", "endpoint"),
                                secret_env("FRESHET_S3_BUCKET", "bucket"),
                                secret_env("FRESHET_S3_SECURE", "secure"),
                                secret_env("AWS_ACCESS_KEY_ID", "accessKeyID"),
                                secret_env("AWS_SECRET_ACCESS_KEY", "secretAccessKey"),
                            ],
                            "readinessProbe": {
                                "httpGet": {"path": "/readyz", "port": "http"},
                                "periodSeconds": 1,
                            },
                        }
                    ],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }
    client.AppsV1Api(api).create_namespaced_deployment(ns, body)
    client.CoreV1Api(api).create_namespaced_service(
        ns,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {
                "selector": {"app": name},
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        },
    )


def policy(
    name: str,
    mode: str = "Dynamic",
    prefix: str = "incoming/",
    serving: str | None = "model-server",
    **overrides: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "mode": mode,
        "data": {
            "storeRef": {"name": "store"},
            "prefix": prefix,
            "format": "csv",
            "label": "label",
        },
        "training": {
            "image": "freshet-trainer:dev",
            "estimator": {
                "class": "sklearn.linear_model.LogisticRegression",
                "params": {"max_iter": 200},
            },
        },
        "gate": {"metric": "accuracy", "maxRegression": "0.02"},
    }
    if mode == "Dynamic":
        spec["trigger"] = {
            "pollIntervalSeconds": 1,
            "onArrival": {"minBatches": 1, "quietSeconds": 1},
        }
    if serving:
        spec["serving"] = {"deploymentRef": {"name": serving}}
    for path, value in overrides.items():
        node = spec
        keys = path.split("__")
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainingPolicy",
        "metadata": {"name": name},
        "spec": spec,
    }


def put(s3: Any, bucket: str, key: str, data: bytes) -> None:
    s3.put_object(bucket, key, io.BytesIO(data), len(data))


def get_policy(api: client.ApiClient, ns: str, name: str) -> dict[str, Any]:
    return dict(
        client.CustomObjectsApi(api).get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
    )


def create_policy(api: client.ApiClient, ns: str, body: dict[str, Any]) -> dict[str, Any]:
    return dict(
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, body
        )
    )


def condition(obj: dict[str, Any], ctype: str) -> dict[str, Any]:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == ctype:
            return dict(c)
    return {}


def wait_for(
    what: str, check: Callable[[], Any], timeout: float = 120.0, every: float = 0.5
) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def jobs_of(api: client.ApiClient, ns: str, policy_name: str) -> list[Any]:
    return list(
        client.BatchV1Api(api)
        .list_namespaced_job(ns, label_selector=f"freshet.dev/policy={policy_name}")
        .items
    )


def serving_version(obj: dict[str, Any]) -> str | None:
    return ((obj.get("status") or {}).get("serving") or {}).get("version")


def skewed_batch_csv(rows: int, seed: int, positive: float = 0.97) -> bytes:
    """A poisoned batch: features as usual, labels almost all 1 whatever the features say."""
    import numpy as np

    rng = np.random.default_rng(seed)
    lines = ["x1,x2,cat,label"]
    for _ in range(rows):
        label = int(rng.random() < positive)
        lines.append(f"{rng.normal():.5f},{rng.normal():.5f},{rng.choice(['a', 'b', 'c'])},{label}")
    return ("\n".join(lines) + "\n").encode()


def server_urls(api: client.ApiClient, ns: str, app: str = "model-server") -> list[str]:
    """Base URLs of the Ready model-server pods, on their pod IPs."""
    urls = []
    for pod in client.CoreV1Api(api).list_namespaced_pod(ns, label_selector=f"app={app}").items:
        ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
        if ready and pod.metadata.deletion_timestamp is None and pod.status.pod_ip:
            urls.append(f"http://{pod.status.pod_ip}:8080")
    return urls


class Traffic:
    """Steady prediction traffic against the model server's Ready pods, in a thread."""

    def __init__(
        self,
        api: client.ApiClient,
        ns: str,
        rate: float = 20.0,
        center: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        """`center` is the mean of (x1, x2): (1.5, -1.0) is where the concept says 1."""
        import threading

        self.api, self.ns, self.rate, self.center = api, ns, rate, center
        self.stop = threading.Event()
        self.sent = 0
        self.errors = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)

    def _run(self) -> None:
        import json
        import urllib.request

        import numpy as np

        rng = np.random.default_rng(0)
        urls: list[str] = []
        refreshed = 0.0
        while not self.stop.is_set():
            if time.monotonic() - refreshed > 1.0:
                # The API may be busy; keep the last pods and retry on the next tick.
                with contextlib.suppress(Exception):
                    urls = server_urls(self.api, self.ns)
                refreshed = time.monotonic()
            for url in urls:
                rows = [
                    {
                        "x1": float(rng.normal(self.center[0], 0.3)),
                        "x2": float(rng.normal(self.center[1], 0.3)),
                        "cat": "b",
                    }
                    for _ in range(10)
                ]
                req = urllib.request.Request(
                    f"{url}/predict",
                    data=json.dumps({"rows": rows}).encode(),
                    headers={"Content-Type": "application/json"},
                )
                try:
                    with urllib.request.urlopen(req, timeout=5) as r:
                        r.read()
                    self.sent += 1
                except OSError:
                    self.errors += 1  # a pod going away mid-rollout
            self.stop.wait(1.0 / self.rate)


POSITIVE_RATE = (
    'sum(rate(freshet_server_predictions_total{namespace="$namespace",version="$version",'
    'class="1"}[5s])) / sum(rate(freshet_server_predictions_total{namespace="$namespace",'
    'version="$version"}[5s]))'
)
"""The serving version's share of class-1 predictions over the last 5 s (Prometheus)."""
