"""Live monitoring on the real stack: a regressed model is rolled back (prequential and
Prometheus-driven), a steady one never is."""

from __future__ import annotations

from typing import Any

import scenario as sc
from devstack import release
from devstack.stack import Stack
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from tests.gitops import argocd_health


def _deployment_version(api: client.ApiClient, ns: str) -> str | None:
    dep = client.AppsV1Api(api).read_namespaced_deployment("model-server", ns)
    return (dep.spec.template.metadata.annotations or {}).get("freshet.dev/model-version")


def _serving(api: client.ApiClient, ns: str, name: str, version: str) -> dict[str, Any]:
    p: dict[str, Any] = sc.wait_for(
        f"{version} to serve",
        lambda: (q := sc.get_policy(api, ns, name)) and sc.serving_version(q) == version and q,
    )
    return p


def _events(api: client.ApiClient, ns: str, name: str, reason: str) -> list[str]:
    return [
        e.message
        for e in client.CoreV1Api(api).list_namespaced_event(ns).items
        if e.involved_object.name == name and e.reason == reason
    ]


def test_prequential_monitoring_rolls_back_a_regressed_model(
    kube_api: client.ApiClient,
    ns: str,
    bucket: str,
    s3: Any,
) -> None:
    sc.create_policy(
        kube_api,
        ns,
        sc.policy(
            "ctr",
            data__window={"maxBatches": 1},
            # The inverted batch must reach production for monitoring to catch it.
            validation={"labelContradiction": {"action": "Allow"}},
            monitoring={
                "source": "Prequential",
                "failureLimit": 1,
                "maxRegression": "0.1",
                "minRows": 50,
            },
        ),
    )
    sc.put(s3, bucket, "incoming/b0.csv", sc.batch_csv(600, seed=50))
    _serving(kube_api, ns, "ctr", "v1")

    # A batch whose labels follow the inverted concept: the model trained on it
    # wins on its own holdout, passes the gate, and goes live. A regression.
    sc.put(s3, bucket, "incoming/b1.csv", sc.batch_csv(600, seed=51, flip=True))
    _serving(kube_api, ns, "ctr", "v2")

    # The next clean batch first scores v2 and v1 on its rows: v2 is far worse.
    # One failure is tolerated (failureLimit 1), but the run's candidate was
    # gated against the suspect v2, so it is held back and v2 keeps serving:
    # otherwise a promotion would reset the count before it could act.
    sc.put(s3, bucket, "incoming/b2.csv", sc.batch_csv(600, seed=52))
    p = sc.wait_for(
        "v3 to be held back",
        lambda: (
            (q := sc.get_policy(kube_api, ns, "ctr"))
            and q["status"]["history"][0]["version"] == "v3"
            and q
        ),
    )
    assert p["status"]["history"][0]["reason"] == "ServingUnderSuspicion"
    assert sc.serving_version(p) == "v2"
    assert sc.condition(p, "Degraded")["reason"] == "RegressionSuspected"
    assert p["status"]["monitoring"]["consecutiveFailures"] == 1

    # The second failure in a row rolls back to v1.
    sc.put(s3, bucket, "incoming/b3.csv", sc.batch_csv(600, seed=53))
    p = sc.wait_for(
        "the rollback",
        lambda: (q := sc.get_policy(kube_api, ns, "ctr")) and q["status"].get("lastRollback") and q,
    )
    status = p["status"]
    assert status["lastRollback"]["fromVersion"] == "v2"
    assert status["lastRollback"]["toVersion"] == "v1"
    assert status["lastRollback"]["reason"] == "AnalysisFailed"
    assert status["serving"]["version"] == "v1"
    assert status["rejectedVersions"] == ["v2"]
    assert sc.condition(p, "Degraded")["reason"] == "RolledBack"
    health, message = argocd_health(p)  # docs/gitops/health.lua on the live status
    assert health == "Degraded" and message.startswith("RolledBack: "), message
    assert "2 failed measurement(s) in a row (failureLimit 1)" in status["lastRollback"]["message"]
    assert "> maxRegression 0.1" in status["lastRollback"]["message"]
    # A fresh analysis starts for the restored version.
    assert status["monitoring"]["version"] == "v1"
    assert "lastMeasurement" not in status["monitoring"]
    assert any("v2 -> v1" in m for m in _events(kube_api, ns, "ctr", "RolledBack"))
    sc.wait_for("the Deployment back on v1", lambda: _deployment_version(kube_api, ns) == "v1")

    # The run that measured the regression was gated against the bad model: its
    # candidate is not promoted, and v2 is never served again.
    p = sc.wait_for(
        "the run to be recorded",
        lambda: (
            (q := sc.get_policy(kube_api, ns, "ctr"))
            and q["status"]["history"][0]["version"] == "v4"
            and q
        ),
    )
    assert p["status"]["history"][0]["phase"] == "Rejected"
    assert p["status"]["history"][0]["reason"] == "BaselineRolledBack"
    assert sc.serving_version(p) == "v1"


def _measured(text: str, ns: str, name: str) -> dict[str, float]:
    """freshet_monitoring_measurements_total of one policy, by verdict."""
    return {
        sample.labels["verdict"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "freshet_monitoring_measurements_total"
        and sample.labels.get("namespace") == ns
        and sample.labels.get("policy") == name
    }


def test_prequential_measurements_stay_visible_after_each_promotion(
    kube_api: client.ApiClient,
    ns: str,
    bucket: str,
    s3: Any,
    freshet_operator: Stack,
) -> None:
    """Each run measures the serving model, then its promotion replaces it: status keeps
    that measurement (the replaced version's analysis) and totals agree with the counter."""
    sc.create_policy(
        kube_api,
        ns,
        sc.policy(
            "steady",
            gate={"metric": "accuracy", "maxRegression": "0.1"},
            monitoring={"source": "Prequential", "maxRegression": "0.2", "minRows": 50},
        ),
    )
    for i in range(3):
        sc.put(s3, bucket, f"incoming/p{i}.csv", sc.batch_csv(600, seed=110 + i))
        p = _serving(kube_api, ns, "steady", f"v{i + 1}")

    monitoring = p["status"]["monitoring"]
    # v3 has not been measured yet: no run has scored it on new rows.
    assert (monitoring["version"], monitoring["measurements"]) == ("v3", 0)
    assert "lastMeasurement" not in monitoring
    # v2 was measured by the run that trained v3, just before v3 replaced it.
    previous = monitoring["previous"]
    assert (previous["version"], previous["measurements"], previous["phase"]) == (
        "v2",
        1,
        "Healthy",
    )
    assert previous["lastMeasurement"]["verdict"] == "Pass"
    assert "on 600 new rows" in previous["lastMeasurement"]["message"]
    # Two runs measured the serving model (v1, then v2): status and the counter agree.
    assert monitoring["totals"] == {"Pass": 2}
    assert _measured(release.metrics(freshet_operator), ns, "steady") == {"Pass": 2.0}


def test_prometheus_analysis_holds_steady_then_rolls_back(
    kube_api: client.ApiClient,
    ns: str,
    bucket: str,
    s3: Any,
    prometheus: str,
) -> None:
    sc.create_policy(
        kube_api,
        ns,
        sc.policy(
            "ads",
            data__window={"maxBatches": 1},
            # The inverted batch must reach production for monitoring to catch it.
            validation={"labelContradiction": {"action": "Allow"}},
            monitoring={
                "source": "Prometheus",
                "intervalSeconds": 1,
                "failureLimit": 2,
                "prometheus": {"url": prometheus, "query": sc.POSITIVE_RATE, "minValue": "0.5"},
            },
        ),
    )
    # Traffic from where the concept says "1": a good model answers mostly 1.
    with sc.Traffic(kube_api, ns, rate=10, center=(1.5, -1.0)) as traffic:
        sc.put(s3, bucket, "incoming/a0.csv", sc.batch_csv(600, seed=60))
        _serving(kube_api, ns, "ads", "v1")

        # A steady model over 50+ intervals: measured every second, never rolled back.
        p = sc.wait_for(
            "50 measurements of v1",
            lambda: (
                (q := sc.get_policy(kube_api, ns, "ads"))
                and (q["status"].get("monitoring") or {}).get("measurements", 0) >= 50
                and q
            ),
            timeout=150,
        )
        status = p["status"]
        assert status["monitoring"]["version"] == "v1"
        assert status["monitoring"]["phase"] == "Healthy"
        assert status["monitoring"]["lastMeasurement"]["verdict"] == "Pass"
        assert "lastRollback" not in status
        assert not _events(kube_api, ns, "ads", "RolledBack")

        # An inverted model goes live and answers mostly 0 on the same traffic:
        # three failing intervals in a row (failureLimit 2) roll it back.
        sc.put(s3, bucket, "incoming/a1.csv", sc.batch_csv(600, seed=61, flip=True))
        _serving(kube_api, ns, "ads", "v2")
        p = sc.wait_for(
            "the rollback",
            lambda: (
                (q := sc.get_policy(kube_api, ns, "ads")) and q["status"].get("lastRollback") and q
            ),
            timeout=90,
        )
        assert traffic.sent > 0
    rollback = p["status"]["lastRollback"]
    assert (rollback["fromVersion"], rollback["toVersion"]) == ("v2", "v1")
    assert "3 failed measurement(s) in a row (failureLimit 2)" in rollback["message"]
    assert "minValue 0.5" in rollback["message"]
    assert p["status"]["serving"]["version"] == "v1"
    sc.wait_for("the Deployment back on v1", lambda: _deployment_version(kube_api, ns) == "v1")


def test_a_stale_model_is_reported_and_retrained(
    kube_api: client.ApiClient,
    ns: str,
    bucket: str,
    s3: Any,
) -> None:
    sc.create_policy(kube_api, ns, sc.policy("aging", monitoring={"maxModelAgeSeconds": 10}))
    sc.put(s3, bucket, "incoming/s0.csv", sc.batch_csv(400, seed=70))
    p = _serving(kube_api, ns, "aging", "v1")
    assert sc.condition(p, "Stale")["status"] == "False"

    # No new data: after 10 s the model is stale, and a Dynamic policy retrains
    # on its current window.
    p = _serving(kube_api, ns, "aging", "v2")
    assert p["status"]["history"][0]["trigger"] == "Stale"
    stale_events = [
        e for e in _events(kube_api, ns, "aging", "Triggered") if "maxModelAgeSeconds" in e
    ]
    assert stale_events


def test_model_server_metrics_scraped_by_the_operator_roll_back_a_regression(
    kube_api: client.ApiClient,
    ns: str,
    bucket: str,
    s3: Any,
) -> None:
    """No Prometheus: the operator scrapes the serving pods' /metrics itself."""
    share = {"metric": "freshet_server_predictions_total", "labels": {"version": "$version"}}
    ones = {**share, "labels": {"version": "$version", "class": "1"}}
    sc.create_policy(
        kube_api,
        ns,
        sc.policy(
            "scraped",
            data__window={"maxBatches": 1},
            # The inverted batch must reach production for monitoring to catch it.
            validation={"labelContradiction": {"action": "Allow"}},
            monitoring={
                "source": "ModelServer",
                "intervalSeconds": 1,
                "failureLimit": 2,
                "modelServer": {
                    "numerator": ones,
                    "denominator": share,
                    "minCount": 10,
                    "minValue": "0.5",
                },
            },
        ),
    )
    with sc.Traffic(kube_api, ns, rate=10, center=(1.5, -1.0)) as traffic:
        sc.put(s3, bucket, "incoming/a0.csv", sc.batch_csv(600, seed=60))
        _serving(kube_api, ns, "scraped", "v1")
        p = sc.wait_for(
            "10 passing measurements of v1",
            lambda: (
                (q := sc.get_policy(kube_api, ns, "scraped"))
                and (m := q["status"].get("monitoring") or {}).get("measurements", 0) >= 10
                and m.get("lastMeasurement", {}).get("verdict") == "Pass"
                and q
            ),
            timeout=90,
        )
        assert p["status"]["monitoring"]["phase"] == "Healthy"
        assert "over 1 pod(s)" in p["status"]["monitoring"]["lastMeasurement"]["message"]

        sc.put(s3, bucket, "incoming/a1.csv", sc.batch_csv(600, seed=61, flip=True))
        _serving(kube_api, ns, "scraped", "v2")
        p = sc.wait_for(
            "the rollback",
            lambda: (
                (q := sc.get_policy(kube_api, ns, "scraped"))
                and q["status"].get("lastRollback")
                and q
            ),
            timeout=90,
        )
        assert traffic.sent > 0
    rollback = p["status"]["lastRollback"]
    assert (rollback["fromVersion"], rollback["toVersion"]) == ("v2", "v1")
    assert "3 failed measurement(s) in a row (failureLimit 2)" in rollback["message"]
    assert "< minValue 0.5" in rollback["message"]
    assert _events(kube_api, ns, "scraped", "RolledBack")
    sc.wait_for("the Deployment back on v1", lambda: _deployment_version(kube_api, ns) == "v1")
