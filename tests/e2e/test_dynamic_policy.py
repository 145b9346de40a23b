"""A Dynamic policy on the real stack: arrival triggers, bursts, the gate, promotion."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import scenario as sc
from devstack import release
from devstack.stack import Stack
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families


def _deployment_version(api: client.ApiClient, ns: str) -> tuple[str | None, str | None]:
    dep = client.AppsV1Api(api).read_namespaced_deployment("model-server", ns)
    annotations = dep.spec.template.metadata.annotations or {}
    env = {e.name: e.value for e in dep.spec.template.spec.containers[0].env or []}
    return annotations.get("freshet.dev/model-version"), env.get("FRESHET_MODEL_VERSION")


def _rolled_out(api: client.ApiClient, ns: str) -> bool:
    dep = client.AppsV1Api(api).read_namespaced_deployment("model-server", ns)
    st = dep.status
    return bool(
        st.observed_generation >= dep.metadata.generation
        and st.updated_replicas == dep.spec.replicas
        and st.available_replicas == dep.spec.replicas
        and (st.replicas or 0) == dep.spec.replicas
    )


def test_dynamic_policy_trains_on_arrival_and_gates_candidates(
    kube_api: client.ApiClient,
    ns: str,
    bucket: str,
    s3: Any,
    freshet_operator: Stack,
) -> None:
    sc.create_policy(
        kube_api,
        ns,
        sc.policy("churn", trigger__onArrival={"minBatches": 3, "quietSeconds": 2}),
    )

    # Below the minimum: two batches wait, and say so.
    for i in range(2):
        sc.put(s3, bucket, f"incoming/a{i}.csv", sc.batch_csv(400, seed=i))
    sc.wait_for(
        "the policy to report it awaits batches",
        lambda: (
            sc.condition(sc.get_policy(kube_api, ns, "churn"), "Training").get("reason")
            == "AwaitingBatches"
            and sc.get_policy(kube_api, ns, "churn")["status"]["data"]["pending"] == 2
        ),
        timeout=30,
    )
    assert sc.jobs_of(kube_api, ns, "churn") == []

    # A burst of three more becomes one run over all five.
    for i in range(2, 5):
        sc.put(s3, bucket, f"incoming/a{i}.csv", sc.batch_csv(400, seed=i))
    p = sc.wait_for(
        "v1 to serve",
        lambda: (q := sc.get_policy(kube_api, ns, "churn")) and sc.serving_version(q) == "v1" and q,
    )
    assert len(sc.jobs_of(kube_api, ns, "churn")) == 1
    assert p["status"]["history"][0]["phase"] == "Promoted"
    assert p["status"]["data"]["consumed"] == 5
    assert sc.condition(p, "Ready")["status"] == "True"
    sc.wait_for("the v1 rollout", lambda: _rolled_out(kube_api, ns), timeout=60)
    assert _deployment_version(kube_api, ns) == ("v1", "v1")

    # More data retrains; the new model is promoted and rolled out.
    for i in range(5, 8):
        sc.put(s3, bucket, f"incoming/b{i}.csv", sc.batch_csv(400, seed=i))
    p = sc.wait_for(
        "v2 to serve",
        lambda: (q := sc.get_policy(kube_api, ns, "churn")) and sc.serving_version(q) == "v2" and q,
    )
    assert len(sc.jobs_of(kube_api, ns, "churn")) == 2
    assert p["status"]["data"]["consumed"] == 8
    assert p["status"]["lastRun"]["trigger"] == "NewData"
    sc.wait_for("the v2 rollout", lambda: _rolled_out(kube_api, ns), timeout=60)
    assert _deployment_version(kube_api, ns) == ("v2", "v2")

    # A worse candidate on the same holdout (a single decision stump replacing a
    # logistic regression: better than the majority class, worse than serving)
    # is rejected: v2 keeps serving, the Deployment is untouched.
    client.CustomObjectsApi(kube_api).patch_namespaced_custom_object(
        sc.GROUP,
        sc.VERSION,
        ns,
        sc.PLURAL,
        "churn",
        {
            "spec": {
                "training": {
                    "estimator": {
                        "class": "sklearn.ensemble.RandomForestClassifier",
                        # A merge patch merges params: null removes the old key.
                        "params": {"n_estimators": 1, "max_depth": 1, "max_iter": None},
                    }
                }
            }
        },
    )
    p = sc.wait_for(
        "the gate to reject v3",
        lambda: (
            (q := sc.get_policy(kube_api, ns, "churn"))
            and q["status"]["lastRun"].get("version") == "v3"
            and q["status"]["lastRun"].get("phase") == "Rejected"
            and q
        ),
    )
    assert p["status"]["lastRun"]["reason"] == "Regressed"
    assert p["status"]["lastRun"]["trigger"] == "SpecChanged"
    assert sc.serving_version(p) == "v2"
    assert sc.condition(p, "Degraded")["status"] == "True"
    assert _deployment_version(kube_api, ns) == ("v2", "v2")
    reasons = {
        e.reason
        for e in client.CoreV1Api(kube_api).list_namespaced_event(ns).items
        if e.involved_object.name == "churn"
    }
    assert {"Triggered", "Trained", "Promoted", "GateRejected"} <= reasons

    scraped = _samples(release.metrics(freshet_operator), namespace=ns, policy="churn")
    assert scraped["freshet_promotions_total"] == 2
    assert scraped["freshet_gate_rejections_total"] == 1
    assert scraped["freshet_batches_seen_total"] == 8
    assert scraped["freshet_batches_consumed_total"] == 8
    assert scraped["freshet_trainings_total/started"] == 3
    assert scraped["freshet_trainings_total/succeeded"] == 3
    # The state gauges say what status says.
    assert scraped["freshet_policy_serving_version"] == 2
    assert scraped["freshet_policy_condition/Degraded"] == 1
    assert scraped["freshet_policy_condition/Ready"] == 1
    assert scraped["freshet_policy_pending_batches"] == 0
    promoted = datetime.fromisoformat(p["status"]["serving"]["promotedTime"].replace("Z", "+00:00"))
    assert scraped["freshet_policy_last_promotion_timestamp_seconds"] == promoted.timestamp()


def _seconds_between(earlier: str, later: str) -> float:
    """Between two status timestamps (RFC 3339, UTC)."""

    def parse(t: str) -> datetime:
        return datetime.fromisoformat(t.replace("Z", "+00:00"))

    return (parse(later) - parse(earlier)).total_seconds()


def test_failed_runs_give_their_version_back_and_new_inputs_skip_the_backoff(
    kube_api: client.ApiClient,
    ns: str,
    bucket: str,
    s3: Any,
) -> None:
    """A refused estimator fails every run: the same inputs wait out the backoff, a
    new batch or the fixed spec start at once, and the first model is still v1."""
    refused = {"class": "sklearn.linear_model.LogisticRegression", "params": {"C": -1.0}}
    sc.create_policy(kube_api, ns, sc.policy("flaky", training__estimator=refused))
    sc.put(s3, bucket, "incoming/f0.csv", sc.batch_csv(400, seed=80))

    def history(n: int) -> dict[str, Any] | None:
        """The policy once `n` runs have finished."""
        q = sc.get_policy(kube_api, ns, "flaky")
        return q if len((q.get("status") or {}).get("history") or []) >= n else None

    p = sc.wait_for("the first run to fail", lambda: history(1))
    first = p["status"]["history"][0]
    assert (first["version"], first["phase"]) == ("v1", "Failed")
    assert p["status"]["lastRun"]["reason"] == "InvalidEstimatorParams"
    # The same inputs again would fail again: they wait out the 30 s backoff.
    p = sc.wait_for(
        "the backoff",
        lambda: (
            (q := sc.get_policy(kube_api, ns, "flaky"))
            and sc.condition(q, "Training").get("reason") == "Backoff"
            and q
        ),
        timeout=20,
    )
    assert "over these inputs" in sc.condition(p, "Training")["message"]
    assert len(sc.jobs_of(kube_api, ns, "flaky")) == 1

    # A new batch is another input set: it does not wait for that backoff.
    sc.put(s3, bucket, "incoming/f1.csv", sc.batch_csv(400, seed=81))
    p = sc.wait_for("the second run to fail", lambda: history(2))
    second = p["status"]["history"][0]
    assert (second["version"], second["phase"]) == ("v1", "Failed")
    assert _seconds_between(first["finishedTime"], second["startedTime"]) < 25

    # Fixing the spec changes the inputs too: v1 is trained at once, not v3.
    client.CustomObjectsApi(kube_api).patch_namespaced_custom_object(
        sc.GROUP, sc.VERSION, ns, sc.PLURAL, "flaky",
        {"spec": {"training": {"estimator": {"params": {"C": 1.0}}}}},
    )  # fmt: skip
    p = sc.wait_for(
        "v1 to serve",
        lambda: (q := sc.get_policy(kube_api, ns, "flaky")) and sc.serving_version(q) == "v1" and q,
    )
    done = p["status"]["history"]
    assert [h["version"] for h in done] == ["v1", "v1", "v1"]
    assert [h["phase"] for h in done] == ["Promoted", "Failed", "Failed"]
    assert _seconds_between(second["finishedTime"], done[0]["startedTime"]) < 25
    run_ids = [h["runId"] for h in done]
    assert len(set(run_ids)) == 3
    assert {j.metadata.name for j in sc.jobs_of(kube_api, ns, "flaky")} == set(run_ids)
    root = p["status"]["stateRoot"]
    book = json.loads(s3.get_object(bucket, f"{root}ledger.json").read())
    assert (book["nextVersion"], book["failures"], book["failedInputs"]) == (2, 0, None)


def _samples(text: str, **labels: str) -> dict[str, float]:
    """Sample values of one policy's series, keyed by name (and outcome, if any)."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if all(sample.labels.get(k) == v for k, v in labels.items()):
                key = sample.name
                for extra in ("outcome", "type"):
                    if extra in sample.labels:
                        key += "/" + sample.labels[extra]
                out[key] = sample.value
    return out
