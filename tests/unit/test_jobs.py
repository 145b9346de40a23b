"""The training Job: deterministic, owned, restricted, and wired per the contract."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from freshet.batches import Batch
from freshet.jobs import build_job
from freshet.runspec import build_run_spec
from freshet.spec import PolicySpec, parse_policy_spec
from freshet.store_config import StoreConfig
from freshet_contract.run import PolicyRef
from policies import valid_policy

POLICY = PolicyRef(namespace="ml", name="spam-filter", uid="uid-1", generation=4)
STORE = StoreConfig(
    secret_name="ml-store",
    endpoint="minio.storage:9000",
    bucket="ml-data",
    secure=False,
    region=None,
    access_key_id="AKIA-NEVER-INLINE",
    secret_access_key="SECRET-NEVER-INLINE",
)


def job_for(spec: PolicySpec, store: StoreConfig = STORE) -> dict[str, Any]:
    window = [Batch("spam/incoming/a.csv", "e1", 10, datetime(2026, 11, 27, tzinfo=UTC))]
    run_spec = build_run_spec(
        policy=POLICY,
        spec=spec,
        bucket=store.bucket,
        run_id="spam-filter-0123456789",
        version="v1",
        window=window,
        new_batches=window,
        baseline=None,
    )
    return build_job(spec, run_spec, store)


SPEC = parse_policy_spec(valid_policy())
JOB = job_for(SPEC)
POD = JOB["spec"]["template"]["spec"]
(CONTAINER,) = POD["containers"]
ENV = {e["name"]: e for e in CONTAINER["env"]}
LABELS = {
    "app.kubernetes.io/managed-by": "freshet",
    "freshet.dev/policy": "spam-filter",
    "freshet.dev/run-id": "spam-filter-0123456789",
}


@pytest.mark.parametrize(
    ("actual", "expected"),
    [
        pytest.param(JOB["apiVersion"], "batch/v1", id="kind"),
        pytest.param(JOB["metadata"]["name"], "spam-filter-0123456789", id="name is the run id"),
        pytest.param(JOB["metadata"]["namespace"], "ml", id="namespace"),
        pytest.param(JOB["metadata"]["labels"], LABELS, id="job labels"),
        pytest.param(JOB["spec"]["template"]["metadata"]["labels"], LABELS, id="pod labels"),
        pytest.param(JOB["metadata"]["ownerReferences"], [{
            "apiVersion": "freshet.dev/v1alpha1", "kind": "TrainingPolicy", "name": "spam-filter",
            "uid": "uid-1", "controller": True, "blockOwnerDeletion": True}], id="owner"),
        pytest.param(JOB["spec"]["backoffLimit"], 1, id="backoffLimit"),
        pytest.param(JOB["spec"]["activeDeadlineSeconds"], 3600, id="activeDeadlineSeconds"),
        pytest.param("ttlSecondsAfterFinished" in JOB["spec"], False, id="no ttl"),
        pytest.param(POD["restartPolicy"], "Never", id="restartPolicy"),
        pytest.param(POD["automountServiceAccountToken"], False, id="no API token"),
        pytest.param("serviceAccountName" in POD, False, id="default service account"),
        pytest.param(POD["securityContext"]["runAsNonRoot"], True, id="pod non-root"),
        pytest.param(POD["securityContext"]["seccompProfile"], {"type": "RuntimeDefault"},
                     id="pod seccomp"),
        pytest.param(CONTAINER["name"], "trainer", id="container name"),
        pytest.param(CONTAINER["image"], "registry.example.com/freshet-trainer:0.1.0",
                     id="image"),
        pytest.param(CONTAINER["command"], ["freshet-train"], id="command"),
        pytest.param("imagePullPolicy" in CONTAINER, False, id="pull policy left to Kubernetes"),
        pytest.param(CONTAINER["securityContext"], {
            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
            "runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}},
            id="restricted container"),
        pytest.param(CONTAINER["volumeMounts"], [{"name": "tmp", "mountPath": "/tmp"}],
                     id="tmp mount"),
        pytest.param(POD["volumes"], [{"name": "tmp", "emptyDir": {}}], id="tmp emptyDir"),
        pytest.param(CONTAINER["terminationMessagePath"], "/dev/termination-log",
                     id="termination path"),
        pytest.param(CONTAINER["terminationMessagePolicy"], "FallbackToLogsOnError",
                     id="termination policy"),
        pytest.param(CONTAINER["resources"], {"limits": {"cpu": "2"}, "requests": {"cpu": "500m"}},
                     id="resources"),
        pytest.param(ENV["FRESHET_RUN_SPEC_KEY"]["value"],
                     "freshet/ml/spam-filter/runs/spam-filter-0123456789/spec.json",
                     id="run spec key"),
        pytest.param(ENV["FRESHET_S3_ENDPOINT"]["value"], "minio.storage:9000", id="endpoint"),
        pytest.param(ENV["FRESHET_S3_SECURE"]["value"], "false", id="secure"),
        pytest.param(ENV["FRESHET_S3_BUCKET"]["value"], "ml-data", id="bucket"),
        pytest.param("FRESHET_S3_REGION" in ENV, False, id="no region unless set"),
        pytest.param(ENV["AWS_ACCESS_KEY_ID"]["valueFrom"],
                     {"secretKeyRef": {"name": "ml-store", "key": "accessKeyID"}},
                     id="access key from the Secret"),
        pytest.param(ENV["AWS_SECRET_ACCESS_KEY"]["valueFrom"],
                     {"secretKeyRef": {"name": "ml-store", "key": "secretAccessKey"}},
                     id="secret key from the Secret"),
    ],
)  # fmt: skip
def test_job_field(actual: object, expected: object) -> None:
    assert actual == expected


def test_credentials_never_appear_inline() -> None:
    text = repr(JOB)
    assert "NEVER-INLINE" not in text
    assert "NEVER-INLINE" not in repr(STORE)


def test_optional_fields_when_set() -> None:
    body = valid_policy()
    body["spec"]["training"] |= {
        "imagePullPolicy": "IfNotPresent",
        "serviceAccountName": "trainer",
        "activeDeadlineSeconds": 600,
        "backoffLimit": 0,
    }
    store = StoreConfig("ml-store", "s3.example.com", "ml-data", True, "eu-west-1", "a", "s")
    job = job_for(parse_policy_spec(body), store)
    pod = job["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert pod["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert pod["serviceAccountName"] == "trainer"
    assert (job["spec"]["activeDeadlineSeconds"], job["spec"]["backoffLimit"]) == (600, 0)
    assert (env["FRESHET_S3_REGION"], env["FRESHET_S3_SECURE"]) == ("eu-west-1", "true")


def test_disruptions_do_not_spend_retries() -> None:
    rules = JOB["spec"]["podFailurePolicy"]["rules"]
    assert rules == [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]


def test_same_run_same_job() -> None:
    assert job_for(SPEC) == JOB
