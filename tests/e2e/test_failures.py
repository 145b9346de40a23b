"""Failures become a condition and an Event within a step, never a silent retry loop.

Each case is a policy that passes admission but cannot work as written, or a
store that fails one write: the real operator must say so in status and in an
Event, create no Job it should not, log no traceback, and carry on once the
cause is fixed.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import scenario as sc
from devstack import release
from devstack.stack import Stack
from faults import FaultyS3
from kubernetes import client
from kubernetes.client.rest import ApiException


@pytest.fixture
def operator_log(freshet_operator: Stack) -> Iterator[None]:
    """The test fails if the operator's container logs a traceback meanwhile (read
    the cluster way, as `kubectl logs`), or if it restarts."""
    restarts = release.restarts(freshet_operator)
    before = release.logs(freshet_operator)
    yield
    assert release.restarts(freshet_operator) == restarts, "the operator restarted"
    log = release.logs(freshet_operator)
    assert log.startswith(before), "the operator's log was replaced"
    written = log[len(before) :]
    assert "Traceback" not in written, written[-4000:]


def events(api: client.ApiClient, ns: str, name: str) -> dict[str, list[str]]:
    """The policy's Events: reason -> messages."""
    listed = client.CoreV1Api(api).list_namespaced_event(
        ns, field_selector=f"involvedObject.name={name},involvedObject.kind=TrainingPolicy"
    )
    found: dict[str, list[str]] = {}
    for e in listed.items:
        found.setdefault(e.reason, []).append(e.message)
    return found


def reason_is(api: client.ApiClient, ns: str, name: str, ctype: str, reason: str) -> Any:
    p = sc.get_policy(api, ns, name)
    return p if sc.condition(p, ctype).get("reason") == reason else None


def test_an_intent_that_cannot_be_saved_gets_no_job(
    kube_api: client.ApiClient,
    namespace: str,
    bucket: str,
    s3: Any,
    stack: Stack,
    operator_log: None,
) -> None:
    """The run spec is written, the ledger save fails: no Job until the intent is saved."""
    with FaultyS3(stack.s3.endpoint) as store:
        sc.store_secret(
            kube_api, namespace, stack, bucket, store=replace(stack.s3, endpoint=store.endpoint)
        )
        store.fail(lambda method, path: method == "PUT" and path.endswith("/ledger.json"))
        sc.create_policy(kube_api, namespace, sc.policy("saves", serving=None))
        sc.put(s3, bucket, "incoming/b0.csv", sc.batch_csv(300, seed=1))

        p = sc.wait_for(
            "the failed save in status",
            lambda: reason_is(kube_api, namespace, "saves", "Ready", "StoreUnavailable"),
        )
        assert "save the ledger" in sc.condition(p, "Ready")["message"]
        root = p["status"]["stateRoot"]
        specs = [o.object_name for o in s3.list_objects(bucket, f"{root}runs/", recursive=True)]
        assert any(k.endswith("/spec.json") for k in specs), specs
        time.sleep(3)  # a few more steps, each failing to save
        assert sc.jobs_of(kube_api, namespace, "saves") == []
        assert store.failed >= 2
        assert "StoreUnavailable" in events(kube_api, namespace, "saves")

        store.heal()
        p = sc.wait_for(
            "v1 once the ledger can be saved",
            lambda: (
                (q := sc.get_policy(kube_api, namespace, "saves"))
                and [h["phase"] for h in (q.get("status") or {}).get("history") or []]
                == ["Promoted"]
                and q
            ),
            timeout=180,
        )
    assert len(sc.jobs_of(kube_api, namespace, "saves")) == 1
    book = json.loads(s3.get_object(bucket, f"{root}ledger.json").read())
    assert book["intent"] is None
    assert [b["key"] for b in book["consumed"]] == ["incoming/b0.csv"]


def test_rotated_store_credentials_are_used_on_the_next_step(
    kube_api: client.ApiClient,
    namespace: str,
    bucket: str,
    s3: Any,
    stack: Stack,
    freshet_operator: Stack,
    operator_log: None,
) -> None:
    """The store Secret holds a key the store refuses (a revoked one); once the Secret
    holds the new key the policy carries on, although the operator keeps store
    Secrets for a while (store_secrets): a failed step reads its Secret again."""
    sc.store_secret(kube_api, namespace, stack, bucket, store=replace(stack.s3, secret_key="old"))
    sc.create_policy(kube_api, namespace, sc.policy("rotated", serving=None))
    sc.put(s3, bucket, "incoming/b0.csv", sc.batch_csv(300, seed=5))
    p = sc.wait_for(
        "the refused key in status",
        lambda: (
            reason_is(kube_api, namespace, "rotated", "Ready", "StoreUnavailable")
            or reason_is(kube_api, namespace, "rotated", "Ready", "StoreAccessDenied")
        ),
    )
    assert "read the ledger" in sc.condition(p, "Ready")["message"], sc.condition(p, "Ready")
    assert sc.jobs_of(kube_api, namespace, "rotated") == []

    core = client.CoreV1Api(kube_api)
    core.delete_namespaced_secret("store", namespace)
    sc.store_secret(kube_api, namespace, stack, bucket)
    sc.wait_for(
        "a Job once the Secret holds the new key",
        lambda: sc.jobs_of(kube_api, namespace, "rotated"),
    )
    p = sc.get_policy(kube_api, namespace, "rotated")
    assert sc.condition(p, "Ready")["reason"] not in ("StoreUnavailable", "StoreAccessDenied")


@pytest.fixture
def jobs_refused(kube_api: client.ApiClient, ns: str) -> Iterator[None]:
    """A cluster admission policy that refuses every Job in `ns`, as a site policy
    (Kyverno, Gatekeeper, a ValidatingAdmissionPolicy) refuses what it does not allow."""
    api = client.AdmissionregistrationV1Api(kube_api)
    name = f"no-jobs-{ns}"
    api.create_validating_admission_policy(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": ["batch"],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE"],
                            "resources": ["jobs"],
                        }
                    ]
                },
                "validations": [
                    {"expression": "false", "message": "site policy: no Jobs in this namespace"}
                ],
            },
        }
    )
    api.create_validating_admission_policy_binding(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}
                },
            },
        }
    )
    # The API server loads admission policies asynchronously: wait until it refuses.
    probe = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "probe"},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
                 "containers": [{"name": "c", "image": "x"}]}}},
    }  # fmt: skip

    def refused() -> bool:
        try:
            client.BatchV1Api(kube_api).create_namespaced_job(ns, probe, dry_run="All")
        except ApiException as e:
            return e.status == 422
        return False

    sc.wait_for("the admission policy to take effect", refused, timeout=30)
    try:
        yield
    finally:
        with contextlib.suppress(ApiException):  # the test may have lifted it already
            api.delete_validating_admission_policy_binding(name)
        api.delete_validating_admission_policy(name)


def test_a_job_the_api_server_refuses_fails_the_run_once_until_the_spec_changes(
    kube_api: client.ApiClient,
    ns: str,
    bucket: str,
    s3: Any,
    operator_log: None,
    jobs_refused: None,
) -> None:
    sc.create_policy(kube_api, ns, sc.policy("refused", serving=None))
    sc.put(s3, bucket, "incoming/b0.csv", sc.batch_csv(300, seed=2))

    p = sc.wait_for(
        "the refused Job in status",
        lambda: reason_is(kube_api, ns, "refused", "Degraded", "JobRejected"),
    )
    assert [h["phase"] for h in p["status"]["history"]] == ["Failed"]
    assert "site policy: no Jobs" in sc.condition(p, "Degraded")["message"]
    assert any("JobRejected" in m for m in events(kube_api, ns, "refused")["TrainingFailed"])
    p = sc.wait_for(
        "training to wait for a spec change",
        lambda: reason_is(kube_api, ns, "refused", "Training", "JobRejected"),
    )
    assert "fix the spec" in sc.condition(p, "Training")["message"]
    time.sleep(5)  # several resyncs: no second attempt
    p = sc.get_policy(kube_api, ns, "refused")
    assert len(p["status"]["history"]) == 1
    assert sc.jobs_of(kube_api, ns, "refused") == []

    api = client.AdmissionregistrationV1Api(kube_api)
    api.delete_validating_admission_policy_binding(f"no-jobs-{ns}")
    time.sleep(3)
    assert len(sc.get_policy(kube_api, ns, "refused")["status"]["history"]) == 1
    client.CustomObjectsApi(kube_api).patch_namespaced_custom_object(
        sc.GROUP, sc.VERSION, ns, sc.PLURAL, "refused", {"spec": {"training": {"seed": 1}}}
    )
    sc.wait_for(
        "a Job once the spec changes", lambda: sc.jobs_of(kube_api, ns, "refused"), timeout=60
    )


def test_a_missing_or_unallowed_service_account_waits_before_any_job(
    kube_api: client.ApiClient, ns: str, bucket: str, s3: Any, operator_log: None
) -> None:
    body = sc.policy("nosa", serving=None, training__serviceAccountName="trainer")
    sc.create_policy(kube_api, ns, body)
    sc.put(s3, bucket, "incoming/b0.csv", sc.batch_csv(300, seed=3))

    p = sc.wait_for(
        "the missing ServiceAccount in status",
        lambda: reason_is(kube_api, ns, "nosa", "Training", "ServiceAccountNotFound"),
    )
    assert "'trainer'" in sc.condition(p, "Training")["message"]
    assert "ServiceAccountNotFound" in events(kube_api, ns, "nosa")
    assert sc.jobs_of(kube_api, ns, "nosa") == []
    assert "lastRun" not in p["status"]

    core = client.CoreV1Api(kube_api)
    core.create_namespaced_service_account(
        ns, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="trainer"))
    )
    # It exists, but the namespace's admin has not allowed it for training yet.
    p = sc.wait_for(
        "the ServiceAccount not allowed, in status",
        lambda: reason_is(kube_api, ns, "nosa", "Training", "ServiceAccountNotAllowed"),
        timeout=60,
    )
    assert "freshet.dev/training-service-accounts" in sc.condition(p, "Training")["message"]
    assert "ServiceAccountNotAllowed" in events(kube_api, ns, "nosa")
    assert sc.jobs_of(kube_api, ns, "nosa") == []

    core.patch_namespace(
        ns, {"metadata": {"annotations": {"freshet.dev/training-service-accounts": "ci, trainer"}}}
    )
    (job,) = sc.wait_for(
        "a Job once the ServiceAccount is allowed",
        lambda: sc.jobs_of(kube_api, ns, "nosa"),
        timeout=60,
    )
    assert job.spec.template.spec.service_account_name == "trainer"


def test_a_job_that_cannot_create_pods_is_reported_as_such(
    kube_api: client.ApiClient, ns: str, bucket: str, s3: Any, operator_log: None
) -> None:
    client.CoreV1Api(kube_api).create_namespaced_resource_quota(
        ns,
        client.V1ResourceQuota(
            metadata=client.V1ObjectMeta(name="no-pods"),
            spec=client.V1ResourceQuotaSpec(hard={"pods": "0"}),
        ),
    )
    sc.create_policy(kube_api, ns, sc.policy("nopods", serving=None))
    sc.put(s3, bucket, "incoming/b0.csv", sc.batch_csv(300, seed=4))

    p = sc.wait_for(
        "pods that cannot be created in status",
        lambda: reason_is(kube_api, ns, "nopods", "Training", "PodsNotCreated"),
    )
    training = sc.condition(p, "Training")
    assert training["status"] == "True"
    assert "quota" in training["message"]
    assert "PodsNotCreated" in events(kube_api, ns, "nopods")


@pytest.mark.parametrize(
    ("case", "override", "field"),
    [
        ("never-fires", {"trigger__schedule": "0 0 30 2 *"}, "spec.trigger.schedule"),
        (
            "unknown-param",
            {"training__estimator__params": {"max_iter": 200, "alhpa": 1}},
            "spec.training.estimator.params.alhpa",
        ),
    ],
)
def test_a_spec_only_the_operator_can_judge_gets_invalid_spec_before_any_run(
    kube_api: client.ApiClient,
    ns: str,
    bucket: str,
    s3: Any,
    operator_log: None,
    case: str,
    override: dict[str, Any],
    field: str,
) -> None:
    sc.put(s3, bucket, "incoming/b0.csv", sc.batch_csv(300, seed=5))
    sc.create_policy(kube_api, ns, sc.policy(case, serving=None, **override))

    p = sc.wait_for("InvalidSpec", lambda: reason_is(kube_api, ns, case, "Ready", "InvalidSpec"))
    assert sc.condition(p, "Ready")["message"].startswith(field)
    assert [m for m in events(kube_api, ns, case).get("InvalidSpec", []) if field in m]
    time.sleep(2)
    assert sc.jobs_of(kube_api, ns, case) == []


def test_a_policy_with_a_300_kb_spec_is_deleted_within_seconds(
    kube_api: client.ApiClient, ns: str, operator_log: None
) -> None:
    params = {f"p{i:04d}": "x" * 1000 for i in range(300)}
    sc.create_policy(
        kube_api, ns, sc.policy("huge", serving=None, training__estimator__params=params)
    )
    sc.wait_for(
        "the operator to see it", lambda: reason_is(kube_api, ns, "huge", "Ready", "InvalidSpec")
    )
    p = sc.get_policy(kube_api, ns, "huge")
    assert len(json.dumps(p["spec"])) > 300_000
    assert not p["metadata"].get("finalizers")  # nothing holds a deletion up

    client.CustomObjectsApi(kube_api).delete_namespaced_custom_object(
        sc.GROUP, sc.VERSION, ns, sc.PLURAL, "huge"
    )
    started = time.monotonic()

    def gone() -> bool:
        try:
            sc.get_policy(kube_api, ns, "huge")
        except ApiException as e:
            return e.status == 404
        return False

    sc.wait_for("the policy to be deleted", gone, timeout=30)
    print(f"deleted in {time.monotonic() - started:.1f}s")
