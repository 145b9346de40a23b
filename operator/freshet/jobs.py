"""The batch/v1 Job that carries out one run. Pure: builds the manifest, creates nothing.

The Job's name is the run id, so creating it twice fails with AlreadyExists
instead of training twice. The pod gets only what the contract says (where the
run spec is, how to reach the store) and runs under the restricted Pod Security
profile with no Kubernetes API token: it handles untrusted data and pickles,
so it should be able to do nothing but read and write its bucket.
"""

from __future__ import annotations

from typing import Any

from freshet_contract import env
from freshet_contract.layout import StateLayout
from freshet_contract.run import RunSpec

from freshet import names
from freshet.spec import PolicySpec
from freshet.store_config import ACCESS_KEY_ID_KEY, SECRET_ACCESS_KEY_KEY, StoreConfig

CONTAINER_NAME = "trainer"
COMMAND = "freshet-train"
TERMINATION_LOG = "/dev/termination-log"
NONROOT_UID = 65532
"""The conventional "nonroot" user of distroless images."""


def job_labels(policy_name: str, run_id: str) -> dict[str, str]:
    """Labels on the Job and its pods; select a policy's Jobs with ``freshet.dev/policy``."""
    return {
        names.MANAGED_BY_LABEL: names.MANAGED_BY,
        names.POLICY_LABEL: policy_name,
        names.RUN_ID_LABEL: run_id,
    }


def build_job(spec: PolicySpec, run_spec: RunSpec, store: StoreConfig) -> dict[str, Any]:
    """The Job manifest for ``run_spec``, owned by its policy.

    The store's endpoint and bucket are passed as values, not Secret
    references: the Job must read the very bucket the operator wrote the run
    intent to, even if the Secret is edited meanwhile. Credentials are the
    exception and only ever travel as ``secretKeyRef``.

    No ``ttlSecondsAfterFinished``: the operator records a finished run's result
    before the Job may go, and cleans up itself.
    """
    policy = run_spec.policy
    training = spec.training
    labels = job_labels(policy.name, run_spec.run_id)
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": training.image,
        "command": [COMMAND],
        "env": _env(run_spec, store),
        "resources": training.resources.model_dump(mode="json", exclude_defaults=True),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": NONROOT_UID,
            "runAsGroup": NONROOT_UID,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        "terminationMessagePath": TERMINATION_LOG,
        # The trainer writes a one-line summary there; if it dies before it
        # can, the tail of its log is the next best explanation.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if training.image_pull_policy is not None:
        container["imagePullPolicy"] = training.image_pull_policy
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": NONROOT_UID,
            "runAsGroup": NONROOT_UID,
            "fsGroup": NONROOT_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        # The only writable place on a read-only root filesystem.
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }
    if training.service_account_name is not None:
        pod_spec["serviceAccountName"] = training.service_account_name
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": run_spec.run_id,
            "namespace": policy.namespace,
            "labels": labels,
            "ownerReferences": [
                {
                    "apiVersion": names.API_VERSION,
                    "kind": names.KIND,
                    "name": policy.name,
                    "uid": policy.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "backoffLimit": training.backoff_limit,
            "activeDeadlineSeconds": training.active_deadline_seconds,
            # A pod evicted by a node drain or preemption did nothing wrong:
            # do not spend the policy's retries on it.
            "podFailurePolicy": {
                "rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]
            },
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def _env(run_spec: RunSpec, store: StoreConfig) -> list[dict[str, Any]]:
    layout = StateLayout(root=run_spec.store.root)
    variables: list[dict[str, Any]] = [
        {"name": env.RUN_SPEC_KEY, "value": layout.run_spec_key(run_spec.run_id)},
        {"name": env.S3_ENDPOINT, "value": store.endpoint},
        {"name": env.S3_SECURE, "value": "true" if store.secure else "false"},
        {"name": env.S3_BUCKET, "value": run_spec.store.bucket},
    ]
    if store.region is not None:
        variables.append({"name": env.S3_REGION, "value": store.region})
    variables += [
        _secret_env(env.ACCESS_KEY_ID, store.secret_name, ACCESS_KEY_ID_KEY),
        _secret_env(env.SECRET_ACCESS_KEY, store.secret_name, SECRET_ACCESS_KEY_KEY),
    ]
    return variables


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
