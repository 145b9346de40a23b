"""charts/freshet rendered with `helm template` (the pinned helm binary): every value
changes what it says, the schema refuses what would fail later, the CRD is the
one in crds/. No cluster: installs are in tests/e2e (the session's release)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from devstack import controlplane

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "freshet"
NS = "freshet-system"


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [controlplane.binary("helm"), *args], capture_output=True, text=True, check=False
    )


def render(*sets: str) -> dict[str, dict[str, Any]]:
    """The rendered objects by `Kind/name`."""
    argv = ["template", "freshet", str(CHART), "--namespace", NS]
    for s in sets:
        argv += ["--set", s]
    p = helm(*argv)
    assert p.returncode == 0, p.stderr
    objects = [o for o in yaml.safe_load_all(p.stdout) if o]
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in objects}


def refused(*sets: str) -> str:
    argv = ["template", "freshet", str(CHART)]
    for s in sets:
        argv += ["--set", s]
    p = helm(*argv)
    assert p.returncode != 0, f"{sets} rendered"
    return p.stderr


def operator(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    pod: dict[str, Any] = objects["Deployment/freshet-operator"]["spec"]["template"]
    return pod


def env(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (c,) = operator(objects)["spec"]["containers"]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}


def test_lint_strict() -> None:
    p = helm("lint", "--strict", str(CHART))
    assert p.returncode == 0, p.stdout + p.stderr


def test_defaults_render_the_operator_and_its_crd() -> None:
    objects = render()
    assert set(objects) == {
        "ServiceAccount/freshet-operator",
        "ClusterRole/freshet-operator",
        "ClusterRoleBinding/freshet-operator",
        "Service/freshet-operator-metrics",
        "Deployment/freshet-operator",
        "CustomResourceDefinition/trainingpolicies.freshet.dev",
    }
    (c,) = operator(objects)["spec"]["containers"]
    assert c["image"] == "freshet-operator:0.1.0"  # the chart's appVersion
    assert "--log-format=json" in c["args"]
    assert env(objects) == {
        "FRESHET_MAX_CONCURRENT_RUNS": "10",
        "FRESHET_MAX_CONCURRENT_BACKFILLS": "2",
        "FRESHET_RESYNC_SECONDS": "30",
        "FRESHET_ROLLOUT_TIMEOUT": "600",
        "FRESHET_METRICS_PORT": "9090",
    }
    assert "imagePullSecrets" not in operator(objects)["spec"]


def test_the_crd_is_crds_own_and_kept_on_uninstall() -> None:
    source = yaml.safe_load((REPO / "crds" / "trainingpolicies.freshet.dev.yaml").read_text())
    crd = render()["CustomResourceDefinition/trainingpolicies.freshet.dev"]
    assert crd["spec"] == source["spec"]
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    unkept = render("crds.keep=false")["CustomResourceDefinition/trainingpolicies.freshet.dev"]
    assert "helm.sh/resource-policy" not in (unkept["metadata"].get("annotations") or {})
    assert not any(k.startswith("CustomResourceDefinition/") for k in render("crds.enabled=false"))


def test_every_operator_setting_reaches_its_env_var() -> None:
    got = env(
        render(
            "maxConcurrentRuns=3",
            "maxConcurrentBackfills=1",
            "resyncSeconds=5",
            "rolloutTimeoutSeconds=120",
            "metrics.port=9100",
        )
    )
    assert got["FRESHET_MAX_CONCURRENT_RUNS"] == "3"
    assert got["FRESHET_MAX_CONCURRENT_BACKFILLS"] == "1"
    assert got["FRESHET_RESYNC_SECONDS"] == "5"
    assert got["FRESHET_ROLLOUT_TIMEOUT"] == "120"
    assert got["FRESHET_METRICS_PORT"] == "9100"


def test_pod_values() -> None:
    objects = render(
        "image.repository=registry.example/freshet-operator",
        "image.tag=1.2.3",
        "image.pullPolicy=Always",
        "imagePullSecrets[0].name=pull",
        "podAnnotations.team=ml",
        "podLabels.tier=platform",
        "serviceAccount.annotations.role=arn",
        "priorityClassName=system-cluster-critical",
        "nodeSelector.pool=ops",
        "tolerations[0].key=dedicated",
        "tolerations[0].operator=Exists",
        "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
        ".nodeSelectorTerms[0].matchExpressions[0].key=zone",
        "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
        ".nodeSelectorTerms[0].matchExpressions[0].operator=Exists",
        "resources.limits.memory=512Mi",
        "extraEnv[0].name=HTTPS_PROXY",
        "extraEnv[0].value=http://proxy:3128",
        "logFormat=plain",
    )
    pod = operator(objects)
    spec = pod["spec"]
    (c,) = spec["containers"]
    assert c["image"] == "registry.example/freshet-operator:1.2.3"
    assert c["imagePullPolicy"] == "Always"
    assert spec["imagePullSecrets"] == [{"name": "pull"}]
    assert pod["metadata"]["annotations"] == {"team": "ml"}
    assert pod["metadata"]["labels"]["tier"] == "platform"
    # The selector stays the chart's: labels added to pods never break upgrades.
    selector = objects["Deployment/freshet-operator"]["spec"]["selector"]["matchLabels"]
    assert "tier" not in selector
    sa = objects["ServiceAccount/freshet-operator"]
    assert sa["metadata"]["annotations"] == {"role": "arn"}
    assert spec["priorityClassName"] == "system-cluster-critical"
    assert spec["nodeSelector"] == {"pool": "ops"}
    assert spec["tolerations"] == [{"key": "dedicated", "operator": "Exists"}]
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"][0]["matchExpressions"][0]["key"] == "zone"
    assert c["resources"]["limits"] == {"memory": "512Mi"}
    assert env(objects)["HTTPS_PROXY"] == "http://proxy:3128"
    assert "--log-format=plain" in c["args"]


def test_monitors_only_when_enabled() -> None:
    assert not any("Monitor/" in k for k in render())
    objects = render(
        "metrics.serviceMonitor.enabled=true",
        "metrics.serviceMonitor.interval=10s",
        "metrics.serviceMonitor.labels.release=kube-prometheus",
        "metrics.podMonitor.enabled=true",
    )
    sm = objects["ServiceMonitor/freshet-operator"]
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus"
    assert sm["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "10s"}]
    service = objects["Service/freshet-operator-metrics"]
    assert sm["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    pm = objects["PodMonitor/freshet-operator-model-servers"]
    assert pm["spec"]["selector"] == {
        "matchLabels": {"app.kubernetes.io/component": "model-server"}
    }
    assert pm["spec"]["namespaceSelector"] == {"any": True}
    assert pm["spec"]["podMetricsEndpoints"][0]["port"] == "http"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("maxConcurrentRuns=banana", "/maxConcurrentRuns"),
        ("maxConcurrentRuns=0", "/maxConcurrentRuns"),
        ("bogus=1", "bogus"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("metrics.port=8080", "/metrics/port"),  # the health port
        ("metrics.serviceMonitor=true", "/metrics/serviceMonitor"),  # the 0.1.0 spelling
        ("metrics.serviceMonitor.interval=often", "/metrics/serviceMonitor/interval"),
        ("logFormat=xml", "/logFormat"),
    ],
)
def test_the_schema_refuses_values_that_would_fail_later(value: str, says: str) -> None:
    assert says in refused(value)


def test_notes() -> None:
    p = helm("install", "freshet", str(CHART), "--namespace", NS, "--dry-run=client")
    assert p.returncode == 0, p.stderr
    notes = p.stdout.split("NOTES:", 1)[1]
    assert f"kubectl --namespace {NS} rollout status deployment/freshet-operator" in notes
    assert "keeps the CRD" in notes
