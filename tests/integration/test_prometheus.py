"""The stack's Prometheus discovers annotated pods, scrapes them at podIP:containerPort
on the stack's bridge with namespace/pod/container/app labels, leaves
unannotated pods alone, and drops a pod's target when the pod goes away."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from devstack import stack as devstack
from kubernetes import client

pytestmark = pytest.mark.integration

T = TypeVar("T")

# Serves Prometheus text on port 8080 with a counter of a known value (in the
# trainer image, which has prometheus_client). The
# container declares another port first, so the scrape port must come from
# the `prometheus.io/port` annotation, not from "the first port".
EXPORTER = """
import sys, threading
from prometheus_client import Counter, start_http_server
c = Counter("freshet_devstack_probe", "probe counter", ["flavour"])
c.labels(sys.argv[1]).inc(float(sys.argv[2]))
start_http_server(8080)
threading.Event().wait()
"""


def exporter(name: str, value: int, scrape: bool) -> dict[str, Any]:
    annotations = {"prometheus.io/scrape": "true", "prometheus.io/port": "8080"} if scrape else {}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": annotations},
                "spec": {
                    "terminationGracePeriodSeconds": 2,
                    "automountServiceAccountToken": False,
                    "containers": [
                        {
                            "name": "exporter",
                            "image": "freshet-trainer:dev",
                            "command": ["python", "-c", EXPORTER, name, str(value)],
                            "ports": [
                                {"name": "other", "containerPort": 9000},
                                {"name": "metrics", "containerPort": 8080},
                            ],
                        }
                    ],
                },
            },
        },
    }


def wait_for(check: Callable[[], T | None], what: str, timeout: float) -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def api(base: str, path: str, **params: str) -> Any:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}" if params else f"{base}{path}"
    with urllib.request.urlopen(url, timeout=5) as r:
        body = json.loads(r.read())
    assert body["status"] == "success", body
    return body["data"]


def query(base: str, promql: str) -> list[dict[str, Any]]:
    data = api(base, "/api/v1/query", query=promql)
    assert data["resultType"] == "vector", data
    return list(data["result"])


def targets_in(base: str, namespace: str) -> list[dict[str, Any]]:
    active = api(base, "/api/v1/targets", state="active")["activeTargets"]
    return [t for t in active if t["labels"].get("namespace") == namespace]


def running_pod(core: client.CoreV1Api, ns: str, app: str) -> Any:
    pods = core.list_namespaced_pod(ns, label_selector=f"app={app}").items
    if len(pods) == 1 and pods[0].status.phase == "Running":
        return pods[0]
    return None


def test_prometheus_scrapes_annotated_pods(
    stack: devstack.Stack, prometheus: str, kube_api: client.ApiClient, namespace: str
) -> None:
    apps, core = client.AppsV1Api(kube_api), client.CoreV1Api(kube_api)
    api(prometheus, "/api/v1/status/buildinfo")  # the API answers at all
    apps.create_namespaced_deployment(namespace, exporter("scraped", 42, scrape=True))
    apps.create_namespaced_deployment(namespace, exporter("ignored", 7, scrape=False))
    pod = wait_for(lambda: running_pod(core, namespace, "scraped"), "scraped pod running", 60)
    wait_for(lambda: running_pod(core, namespace, "ignored"), "ignored pod running", 60)
    name = pod.metadata.name
    # Scraped at the pod's own address and container port, as in a cluster.
    address = f"{pod.status.pod_ip}:8080"
    assert not pod.status.pod_ip.startswith("127.")

    promql = f'freshet_devstack_probe_total{{namespace="{namespace}"}}'
    series = wait_for(lambda: query(prometheus, promql), "the probe counter in Prometheus", 20)
    assert len(series) == 1, series
    labels, (_, value) = series[0]["metric"], series[0]["value"]
    assert float(value) == 42.0
    assert labels["namespace"] == namespace
    assert labels["pod"] == name
    assert labels["container"] == "exporter"
    assert labels["app"] == "scraped"
    assert labels["flavour"] == "scraped"
    assert labels["job"] == "kubernetes-pods"
    assert labels["instance"] == address

    (target,) = targets_in(prometheus, namespace)
    assert target["health"] == "up", target
    assert target["scrapeUrl"] == f"http://{address}/metrics"
    assert target["labels"]["pod"] == name

    # The unannotated pod has been running all along and was never scraped.
    assert query(prometheus, 'freshet_devstack_probe_total{flavour="ignored"}') == []

    apps.delete_namespaced_deployment("scraped", namespace, propagation_policy="Foreground")
    wait_for(lambda: not targets_in(prometheus, namespace), "the target to disappear", 30)
    # Staleness markers end the series at once, not after the 5 minute lookback.
    wait_for(lambda: not query(prometheus, promql), "the series to go stale", 10)
