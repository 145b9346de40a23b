"""charts/freshet rendered with `helm template` (the pinned helm binary): every value
changes what it says, the schema refuses what would fail later, the CRD is the
one in crds/. No cluster: installs are in tests/e2e (the session's release)."""

from __future__ import annotations

import json
import re
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
    """The rendered objects by `Kind/name`. A set `path:=json` goes as `--set-json`
    (`--set` makes every float a string)."""
    argv = ["template", "freshet", str(CHART), "--namespace", NS]
    for s in sets:
        argv += ["--set-json", s.replace(":=", "=", 1)] if ":=" in s else ["--set", s]
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
        "ClusterRole/freshet-operator-discovery",
        "ClusterRole/freshet-operator-watch",
        "ClusterRole/freshet-operator-tenant",
        "ClusterRoleBinding/freshet-operator-discovery",
        "ClusterRoleBinding/freshet-operator-watch",
        "Service/freshet-operator-metrics",
        "Deployment/freshet-operator",
        "CustomResourceDefinition/trainingpolicies.freshet.dev",
        "CustomResourceDefinition/trainingpolicysets.freshet.dev",
        "ValidatingAdmissionPolicy/freshet-operator-jobs",
        "ValidatingAdmissionPolicyBinding/freshet-operator-jobs",
        "ClusterRole/freshet-operator-view",
        "ClusterRole/freshet-operator-edit",
    }
    (c,) = operator(objects)["spec"]["containers"]
    assert c["image"] == "freshet-operator:0.1.0"  # the chart's appVersion
    assert "--log-format=json" in c["args"]
    assert env(objects) == {
        "FRESHET_MAX_CONCURRENT_RUNS": "10",
        "FRESHET_MAX_CONCURRENT_BACKFILLS": "2",
        "FRESHET_RESYNC_SECONDS": "30",
        "FRESHET_IDLE_RESYNC_SECONDS": "600",
        "FRESHET_ROLLOUT_TIMEOUT": "600",
        "FRESHET_METRICS_PORT": "9090",
    }
    assert "imagePullSecrets" not in operator(objects)["spec"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    # Readiness must not render /metrics: at a thousand policies that was most of the idle CPU.
    assert c["readinessProbe"]["tcpSocket"] == {"port": "metrics"}


def _rules(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_cluster_mode_binds_no_write_and_no_secret_cluster_wide() -> None:
    objects = render()
    bound = {
        o["roleRef"]["name"] for k, o in objects.items() if k.startswith("ClusterRoleBinding/")
    }
    assert bound == {"freshet-operator-discovery", "freshet-operator-watch"}
    cluster_wide = set().union(*(_rules(objects[f"ClusterRole/{name}"]) for name in bound))
    writes = {"create", "delete", "patch", "update"}
    assert {(g, r, v) for g, r, v in cluster_wide if v in writes} == {
        ("freshet.dev", "trainingpolicies", "patch"),
        ("freshet.dev", "trainingpolicies/status", "patch"),
        ("freshet.dev", "trainingpolicysets/status", "patch"),
    }
    assert not any(r in ("secrets", "pods", "serviceaccounts") for _, r, _ in cluster_wide)
    # What a namespace's admin binds to let it in.
    tenant = _rules(objects["ClusterRole/freshet-operator-tenant"])
    assert ("", "secrets", "get") in tenant
    assert ("batch", "jobs", "create") in tenant
    assert ("apps", "deployments", "patch") in tenant
    # A TrainingPolicySet's children are created and pruned only where freshet is let in.
    assert {("freshet.dev", "trainingpolicies", v) for v in ("create", "delete")} <= tenant
    assert not any(v in ("list", "watch") for _, r, v in tenant if r == "secrets")
    assert not any(k.startswith("RoleBinding/") for k in objects)
    assert "FRESHET_NAMESPACES" not in env(objects)


def test_namespaced_mode_binds_only_the_listed_namespaces() -> None:
    p = helm(
        "template", "freshet", str(CHART), "--namespace", NS, "--set", "namespaces={team-a,team-b}"
    )
    assert p.returncode == 0, p.stderr
    objects = [o for o in yaml.safe_load_all(p.stdout) if o]
    bindings = {
        (o["metadata"]["namespace"], o["roleRef"]["name"])
        for o in objects
        if o["kind"] == "RoleBinding"
    }
    assert bindings == {
        (ns, f"freshet-operator-{role}")
        for ns in ("team-a", "team-b")
        for role in ("watch", "tenant")
    }
    cluster_bound = {o["roleRef"]["name"] for o in objects if o["kind"] == "ClusterRoleBinding"}
    assert cluster_bound == {"freshet-operator-discovery"}
    (deployment,) = (o for o in objects if o["kind"] == "Deployment")
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    assert {"name": "FRESHET_NAMESPACES", "value": "team-a,team-b"} in c["env"]
    assert "'/namespaces/0': 'Team_A' does not match pattern" in refused("namespaces={Team_A}")


def test_the_admission_policy_judges_only_the_operators_jobs() -> None:
    objects = render()
    vap = objects["ValidatingAdmissionPolicy/freshet-operator-jobs"]
    (condition,) = vap["spec"]["matchConditions"]
    assert condition["expression"] == (
        'request.userInfo.username == "system:serviceaccount:freshet-system:freshet-operator"'
    )
    binding = objects["ValidatingAdmissionPolicyBinding/freshet-operator-jobs"]
    assert binding["spec"] == {"policyName": "freshet-operator-jobs", "validationActions": ["Deny"]}
    assert not any("ValidatingAdmission" in k for k in render("admissionPolicy.enabled=false"))


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
            "idleResyncSeconds=900",
            "rolloutTimeoutSeconds=120",
            "metrics.port=9100",
        )
    )
    assert got["FRESHET_MAX_CONCURRENT_RUNS"] == "3"
    assert got["FRESHET_MAX_CONCURRENT_BACKFILLS"] == "1"
    assert got["FRESHET_RESYNC_SECONDS"] == "5"
    assert got["FRESHET_IDLE_RESYNC_SECONDS"] == "900"
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
        ("dashboard.replicas=2", "/dashboard"),  # one replica: sessions are in memory
        ("dashboard.service.type=Internal", "/dashboard/service/type"),
        ("dashboard.ingress.tls[0].secret=x", "/dashboard/ingress/tls/0"),
        ("rbac.aggregateToDefaultRoles=maybe", "/rbac/aggregateToDefaultRoles"),
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


DASHBOARD = "freshet-operator-dashboard"
DASHBOARD_OBJECTS = {
    f"ServiceAccount/{DASHBOARD}",
    f"ClusterRole/{DASHBOARD}-review",
    f"ClusterRole/{DASHBOARD}-reader",
    f"ClusterRole/{DASHBOARD}-store",
    f"ClusterRoleBinding/{DASHBOARD}-review",
    f"ClusterRoleBinding/{DASHBOARD}-reader",
    f"Deployment/{DASHBOARD}",
    f"Service/{DASHBOARD}",
}


def _dashboard_container(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (c,) = objects[f"Deployment/{DASHBOARD}"]["spec"]["template"]["spec"]["containers"]
    return c


def test_defaults_aggregate_policy_rights_into_the_default_roles_and_no_dashboard() -> None:
    objects = render()
    assert not any("dashboard" in k for k in objects)
    assert not any(k.startswith("Ingress/") for k in objects)
    view = objects["ClusterRole/freshet-operator-view"]
    edit = objects["ClusterRole/freshet-operator-edit"]
    aggregate = "rbac.authorization.k8s.io/aggregate-to-"
    assert {k: v for k, v in view["metadata"]["labels"].items() if k.startswith(aggregate)} == {
        f"{aggregate}view": "true",
        f"{aggregate}edit": "true",
        f"{aggregate}admin": "true",
    }
    assert {k: v for k, v in edit["metadata"]["labels"].items() if k.startswith(aggregate)} == {
        f"{aggregate}edit": "true",
        f"{aggregate}admin": "true",
    }
    assert _rules(view) == {
        ("freshet.dev", r, v)
        for r in ("trainingpolicies", "trainingpolicysets")
        for v in ("get", "list", "watch")
    }
    assert _rules(edit) == {
        ("freshet.dev", r, v)
        for r in ("trainingpolicies", "trainingpolicysets")
        for v in ("create", "update", "patch", "delete")
    }
    # Bound by nobody: the default roles carry them.
    assert not any(
        o["roleRef"]["name"] in ("freshet-operator-view", "freshet-operator-edit")
        for k, o in objects.items()
        if k.startswith(("RoleBinding/", "ClusterRoleBinding/"))
    )
    off = render("rbac.aggregateToDefaultRoles=false")
    assert set(objects) - set(off) == {
        "ClusterRole/freshet-operator-view",
        "ClusterRole/freshet-operator-edit",
    }


def test_the_dashboard_runs_read_only_as_its_own_account() -> None:
    default = render()
    objects = render("dashboard.enabled=true")
    assert set(objects) - set(default) == DASHBOARD_OBJECTS
    assert _rules(objects[f"ClusterRole/{DASHBOARD}-review"]) == {
        ("authentication.k8s.io", "tokenreviews", "create"),
        ("authorization.k8s.io", "subjectaccessreviews", "create"),
    }
    assert _rules(objects[f"ClusterRole/{DASHBOARD}-reader"]) == {
        ("freshet.dev", "trainingpolicies", "get"),
        ("freshet.dev", "trainingpolicies", "list"),
        ("freshet.dev", "trainingpolicies", "watch"),
        ("", "events", "get"),
        ("", "events", "list"),
        ("batch", "jobs", "get"),
        ("batch", "jobs", "list"),
        ("", "pods", "get"),
        ("", "pods", "list"),
    }
    # Secrets only where a namespace opts in (like the operator's tenant role).
    assert _rules(objects[f"ClusterRole/{DASHBOARD}-store"]) == {("", "secrets", "get")}
    assert not any(
        o["roleRef"]["name"] == f"{DASHBOARD}-store"
        for k, o in objects.items()
        if k.startswith(("RoleBinding/", "ClusterRoleBinding/"))
    )
    subject = {"kind": "ServiceAccount", "name": DASHBOARD, "namespace": NS}
    for role in ("review", "reader"):
        binding = objects[f"ClusterRoleBinding/{DASHBOARD}-{role}"]
        assert binding["roleRef"]["name"] == f"{DASHBOARD}-{role}"
        assert binding["subjects"] == [subject]
    # The operator's own RBAC does not change.
    operator_rbac = {k: o for k, o in default.items() if "Role" in k}
    assert {k: objects[k] for k in operator_rbac} == operator_rbac

    deployment = objects[f"Deployment/{DASHBOARD}"]
    assert deployment["spec"]["replicas"] == 1
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == DASHBOARD
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    c = _dashboard_container(objects)
    assert c["image"] == "freshet-operator:0.1.0"
    assert c["command"] == ["freshet"]
    assert c["args"] == ["dashboard", "--in-cluster", "--listen", "0.0.0.0:8080"]
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert c["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {}}]
    assert c["ports"] == [{"name": "http", "containerPort": 8080}]
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["env"] == [{"name": "FRESHET_LOG_FORMAT", "value": "json"}]  # all namespaces
    assert c["resources"] == {
        "requests": {"cpu": "20m", "memory": "96Mi"},
        "limits": {"memory": "256Mi"},
    }

    service = objects[f"Service/{DASHBOARD}"]
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http"}]
    # Each Service selects only its own component's pods.
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    operator_labels = operator(objects)["metadata"]["labels"]
    metrics = objects["Service/freshet-operator-metrics"]["spec"]["selector"]
    assert not service["spec"]["selector"].items() <= operator_labels.items()
    assert not metrics.items() <= labels.items()


def test_dashboard_values() -> None:
    objects = render(
        "dashboard.enabled=true",
        "dashboard.service.type=NodePort",
        "dashboard.service.port=8443",
        "dashboard.resources.limits.memory=1Gi",
        "dashboard.podAnnotations.team=ml",
        "logFormat=plain",
        "image.repository=registry.example/freshet-operator",
        "image.tag=1.2.3",
        "imagePullSecrets[0].name=pull",
        "priorityClassName=system-cluster-critical",
        "nodeSelector.pool=ops",
        "tolerations[0].key=dedicated",
        "tolerations[0].operator=Exists",
        "affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight=1",
    )
    template = objects[f"Deployment/{DASHBOARD}"]["spec"]["template"]
    pod = template["spec"]
    c = _dashboard_container(objects)
    assert c["image"] == "registry.example/freshet-operator:1.2.3"
    assert {"name": "FRESHET_LOG_FORMAT", "value": "plain"} in c["env"]
    assert c["resources"]["limits"] == {"memory": "1Gi"}
    assert template["metadata"]["annotations"] == {"team": "ml"}
    # The operator's pod annotations are its own.
    assert "annotations" not in operator(objects)["metadata"]
    # Placement and pulling as the operator's pod.
    for key in ("imagePullSecrets", "priorityClassName", "nodeSelector", "tolerations", "affinity"):
        assert pod[key] == operator(objects)["spec"][key], key
    assert pod["imagePullSecrets"] == [{"name": "pull"}]
    assert pod["nodeSelector"] == {"pool": "ops"}
    service = objects[f"Service/{DASHBOARD}"]["spec"]
    assert service["type"] == "NodePort"
    assert service["ports"] == [{"name": "http", "port": 8443, "targetPort": "http"}]


def test_namespaced_dashboard_reads_only_the_listed_namespaces() -> None:
    p = helm(
        "template",
        "freshet",
        str(CHART),
        "--namespace",
        NS,
        "--set",
        "namespaces={team-a,team-b}",
        "--set",
        "dashboard.enabled=true",
    )
    assert p.returncode == 0, p.stderr
    objects = [o for o in yaml.safe_load_all(p.stdout) if o]
    dashboard_bindings = {
        (o["kind"], o["metadata"].get("namespace", ""), o["roleRef"]["name"])
        for o in objects
        if o["kind"] in ("RoleBinding", "ClusterRoleBinding")
        and o["subjects"][0]["name"] == DASHBOARD
    }
    assert dashboard_bindings == {
        ("ClusterRoleBinding", "", f"{DASHBOARD}-review"),
        ("RoleBinding", "team-a", f"{DASHBOARD}-reader"),
        ("RoleBinding", "team-b", f"{DASHBOARD}-reader"),
        ("RoleBinding", "team-a", f"{DASHBOARD}-store"),
        ("RoleBinding", "team-b", f"{DASHBOARD}-store"),
    }
    for o in objects:
        if o["kind"] == "RoleBinding" and o["roleRef"]["name"].startswith(DASHBOARD):
            assert o["roleRef"]["kind"] == "ClusterRole"
            assert o["subjects"] == [{"kind": "ServiceAccount", "name": DASHBOARD, "namespace": NS}]
    (deployment,) = (
        o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == DASHBOARD
    )
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    assert {"name": "FRESHET_NAMESPACES", "value": "team-a,team-b"} in c["env"]


def test_dashboard_ingress_only_when_enabled() -> None:
    assert f"Ingress/{DASHBOARD}" not in render("dashboard.enabled=true")
    assert not any(k.startswith("Ingress/") for k in render("dashboard.ingress.enabled=true"))
    objects = render(
        "dashboard.enabled=true",
        "dashboard.ingress.enabled=true",
        "dashboard.ingress.className=nginx",
        "dashboard.ingress.host=freshet.example.com",
        "dashboard.ingress.annotations.cert-manager\\.io/cluster-issuer=letsencrypt",
        "dashboard.ingress.tls[0].hosts[0]=freshet.example.com",
        "dashboard.ingress.tls[0].secretName=freshet-dashboard-tls",
    )
    ingress = objects[f"Ingress/{DASHBOARD}"]
    assert ingress["apiVersion"] == "networking.k8s.io/v1"
    assert ingress["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [
        {"hosts": ["freshet.example.com"], "secretName": "freshet-dashboard-tls"}
    ]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "freshet.example.com"
    (path,) = rule["http"]["paths"]
    assert path["path"] == "/"
    assert path["pathType"] == "Prefix"
    assert path["backend"] == {"service": {"name": DASHBOARD, "port": {"name": "http"}}}
    assert "http" in {p["name"] for p in objects[f"Service/{DASHBOARD}"]["spec"]["ports"]}
    # No host, class or TLS: every host, the cluster's default class.
    bare = render("dashboard.enabled=true", "dashboard.ingress.enabled=true")[
        f"Ingress/{DASHBOARD}"
    ]
    (rule,) = bare["spec"]["rules"]
    assert "host" not in rule
    assert "tls" not in bare["spec"]
    assert "ingressClassName" not in bare["spec"]


def test_dashboard_notes() -> None:
    p = helm(
        "install",
        "freshet",
        str(CHART),
        "--namespace",
        NS,
        "--dry-run=client",
        "--set",
        "dashboard.enabled=true",
        "--set",
        "dashboard.service.port=8081",
    )
    assert p.returncode == 0, p.stderr
    notes = p.stdout.split("NOTES:", 1)[1]
    assert f"kubectl --namespace {NS} port-forward svc/{DASHBOARD} 8080:8081" in notes
    assert "http://127.0.0.1:8080" in notes
    assert "create token" in notes
    assert "Authorization: Bearer" in notes
    p = helm("install", "freshet", str(CHART), "--namespace", NS, "--dry-run=client")
    assert "port-forward" not in p.stdout.split("NOTES:", 1)[1]


def _exported_names() -> set[str]:
    """Every series name the operator and the model server export."""
    from freshet import metrics
    from freshet_trainer.serve import ServerMetrics
    from prometheus_client import REGISTRY

    names = set()
    for registry in (REGISTRY, metrics.POLICY_STATES.registry, ServerMetrics().registry):
        for family in registry.collect():
            for suffix in ("", "_total", "_bucket", "_sum", "_count", "_created"):
                names.add(family.name + suffix)
    return names


def _series_in(expr: str) -> set[str]:
    return set(re.findall(r"\b(freshet_[a-z_]+)", expr))


def test_alerts_only_when_enabled_and_on_exported_series() -> None:
    assert "PrometheusRule/freshet-operator" not in render()
    rule = render("metrics.prometheusRule.enabled=true", "metrics.prometheusRule.labels.a=b")[
        "PrometheusRule/freshet-operator"
    ]
    assert rule["metadata"]["labels"]["a"] == "b"
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert set(alerts) == {
        "FreshetOperatorDown",
        "FreshetPolicyDegraded",
        "FreshetModelRolledBack",
        "FreshetModelStale",
        "FreshetQuarantineRateHigh",
        "FreshetTrainingRunsFailing",
    }
    exported = _exported_names()
    for name, alert in alerts.items():
        assert _series_in(alert["expr"]) <= exported, name
        assert alert["labels"]["severity"] in {"critical", "warning"}
    # Prometheus's own templates survive helm's templating.
    summary = alerts["FreshetPolicyDegraded"]["annotations"]["summary"]
    assert "{{ $labels.namespace }}/{{ $labels.policy }}" in summary
    assert 'up{job="freshet-operator-metrics"}' in alerts["FreshetOperatorDown"]["expr"]
    assert "> 0.25" in alerts["FreshetQuarantineRateHigh"]["expr"]
    stricter = render(
        "metrics.prometheusRule.enabled=true", "metrics.prometheusRule.quarantineRatio:=0.1"
    )
    groups = stricter["PrometheusRule/freshet-operator"]["spec"]["groups"]
    rate = next(r for g in groups for r in g["rules"] if r["alert"] == "FreshetQuarantineRateHigh")
    assert "> 0.1" in rate["expr"]


def test_dashboard_configmap_queries_exported_series() -> None:
    assert "ConfigMap/freshet-operator-dashboard" not in render()
    cm = render("metrics.dashboard.enabled=true", "metrics.dashboard.namespace=monitoring")[
        "ConfigMap/freshet-operator-dashboard"
    ]
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(cm["data"]["freshet.json"])
    assert dashboard["uid"] == "freshet"
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", []) if "expr" in t]
    assert len(exprs) >= 20
    used = set().union(*map(_series_in, exprs))
    assert used <= _exported_names(), used - _exported_names()
    # Every per-policy state gauge is on the dashboard.
    assert {
        "freshet_policy_condition",
        "freshet_policy_serving_version",
        "freshet_policy_pending_batches",
        "freshet_policy_quarantined_batches",
        "freshet_policy_last_promotion_timestamp_seconds",
    } <= used


def _promtool(*args: str) -> None:
    from devstack import prometheus

    promtool = Path(prometheus.binary()).with_name("promtool")
    p = subprocess.run([str(promtool), *args], capture_output=True, text=True, check=False)
    assert p.returncode == 0, p.stdout + p.stderr


def _series(name: str, policy: str, values: str, **labels: str) -> dict[str, str]:
    extra = "".join(f', {k}="{v}"' for k, v in labels.items())
    return {"series": f'{name}{{namespace="ml", policy="{policy}"{extra}}}', "values": values}


def _expect(rule: dict[str, Any], policy: str, **labels: str) -> dict[str, Any]:
    """The alert `rule` firing for ml/<policy>, its annotations expanded."""
    annotations = {
        k: v.replace("{{ $labels.namespace }}", "ml").replace("{{ $labels.policy }}", policy)
        for k, v in rule["annotations"].items()
    }
    return {
        "exp_labels": {**rule["labels"], "namespace": "ml", "policy": policy, **labels},
        "exp_annotations": annotations,
    }


def test_alerts_are_valid_promql_and_fire_on_what_they_say(tmp_path: Path) -> None:
    """promtool (from Debian's Prometheus package, as the stack's) checks the rules and
    runs them over synthetic series: a policy Degraded for 20m fires, one that recovered
    does not; a policy quarantining 1 batch in 2 fires, 1 in 10 does not."""
    groups = render("metrics.prometheusRule.enabled=true")["PrometheusRule/freshet-operator"][
        "spec"
    ]["groups"]
    rules = {r["alert"]: r for g in groups for r in g["rules"]}
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": groups}))
    _promtool("check", "rules", str(rules_file))

    quarantining = _expect(rules["FreshetQuarantineRateHigh"], "bad")
    quarantining["exp_annotations"]["summary"] = "ml/bad quarantines 50% of its new batches"
    cases = {
        "rule_files": [str(rules_file)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    _series("freshet_policy_condition", "bad", "1x30", type="Degraded"),
                    _series("freshet_policy_condition", "ok", "1x5 0x25", type="Degraded"),
                    # 30 batches an hour each.
                    _series("freshet_batches_seen_total", "bad", "0+0.5x120"),
                    _series("freshet_batches_quarantined_total", "bad", "0+0.25x120"),
                    _series("freshet_batches_seen_total", "ok", "0+0.5x120"),
                    _series("freshet_batches_quarantined_total", "ok", "0+0.05x120"),
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "20m",
                        "alertname": "FreshetPolicyDegraded",
                        "exp_alerts": [
                            _expect(rules["FreshetPolicyDegraded"], "bad", type="Degraded")
                        ],
                    },
                    {
                        "eval_time": "100m",
                        "alertname": "FreshetQuarantineRateHigh",
                        "exp_alerts": [quarantining],
                    },
                ],
            }
        ],
    }
    tests = tmp_path / "tests.yaml"
    tests.write_text(yaml.safe_dump(cases))
    _promtool("test", "rules", str(tests))
