"""The batch/v1 Job that carries out one run. Pure: builds the manifest, creates nothing.

The Job's name is the run id, so creating it twice fails with AlreadyExists
instead of training twice. The pod gets only what the contract says (where the
run spec is, how to reach the store) and runs under the restricted Pod Security
profile with no Kubernetes API token: it handles untrusted data and pickles,
so it should be able to do nothing but read and write its bucket.
"""

from __future__ import annotations

from typing import Any

from freshet_contract import env, preprocess
from freshet_contract.layout import StateLayout
from freshet_contract.run import PolicyRef, RunSpec
from freshet_contract.scoring import ScoringSpec

from freshet import names
from freshet.spec import PolicySpec
from freshet.store_config import ACCESS_KEY_ID_KEY, SECRET_ACCESS_KEY_KEY, StoreConfig

CONTAINER_NAME = "trainer"
COMMAND = "freshet-train"
PREP_INPUTS_CONTAINER, PREP_INPUTS_COMMAND = "inputs", "freshet-preprocess-inputs"
PREP_STEP_CONTAINER = "step"
PREP_PUBLISH_CONTAINER, PREP_PUBLISH_COMMAND = "publish", "freshet-preprocess-publish"
SCORER_CONTAINER, SCORER_COMMAND = "scorer", "freshet-score"
STEP_LABEL = f"{names.GROUP}/step"
"""preprocess on a run's prep Job, score on a batch scoring Job; a training Job has none."""
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
    """The training Job manifest for ``run_spec``, owned by its policy.

    The store's endpoint and bucket are passed as values, not Secret
    references: the Job must read the very bucket the operator wrote the run
    intent to, even if the Secret is edited meanwhile. Credentials are the
    exception and only ever travel as ``secretKeyRef``.

    No ``ttlSecondsAfterFinished``: the operator records a finished run's result
    before the Job may go, and cleans up itself.
    """
    training = spec.training
    container = _container(
        CONTAINER_NAME,
        training.image,
        training.image_pull_policy,
        [COMMAND],
        env=_env(run_spec, store),
        resources=training.resources.model_dump(mode="json", exclude_defaults=True),
    )
    return _job(
        run_spec.policy,
        run_spec.run_id,
        run_spec.run_id,
        spec=spec,
        containers=[container],
        backoff_limit=training.backoff_limit,
        deadline=training.active_deadline_seconds,
    )


def build_prep_job(spec: PolicySpec, run_spec: RunSpec, store: StoreConfig) -> dict[str, Any]:
    """The preprocessing Job, ``<runId>-prep`` (freshet_contract.preprocess).

    Three containers in order, sharing an emptyDir at /freshet: the trainer
    image fetches and checks the raw batches (init), the user's step turns
    them into prepared files (init), and the trainer image uploads those and
    writes the manifest (the main container, so the Job succeeds only when the
    manifest is written). The user's container gets neither store credentials
    nor an API token: it handles files only.
    """
    assert spec.preprocess is not None
    step, training = spec.preprocess, spec.training
    store_env = _env(run_spec, store)
    files = [
        {"name": env.INPUT_DIR, "value": preprocess.INPUT_DIR},
        {"name": env.OUTPUT_DIR, "value": preprocess.OUTPUT_DIR},
    ]
    step_env = [
        *files,
        {"name": env.INPUTS, "value": f"{preprocess.INPUT_DIR}/{preprocess.INPUTS_FILE}"},
        {"name": env.DATA_FORMAT, "value": str(spec.data.format)},
        {"name": env.LABEL, "value": spec.data.label},
    ]
    work = [{"name": "work", "mountPath": preprocess.WORK_DIR}]
    inputs = _container(
        PREP_INPUTS_CONTAINER,
        training.image,
        training.image_pull_policy,
        [PREP_INPUTS_COMMAND],
        env=store_env + files,
        mounts=work,
    )
    user = _container(
        PREP_STEP_CONTAINER,
        step.image,
        step.image_pull_policy,
        step.command,
        args=step.args,
        env=step_env,
        mounts=work,
        resources=step.resources.model_dump(mode="json", exclude_defaults=True),
    )
    publish = _container(
        PREP_PUBLISH_CONTAINER,
        training.image,
        training.image_pull_policy,
        [PREP_PUBLISH_COMMAND],
        env=store_env + files,
        mounts=work,
    )
    return _job(
        run_spec.policy,
        run_spec.run_id,
        preprocess.prep_job_name(run_spec.run_id),
        spec=spec,
        containers=[publish],
        init_containers=[inputs, user],
        backoff_limit=training.backoff_limit,
        deadline=step.active_deadline_seconds,
        step="preprocess",
        volumes=[{"name": "work", "emptyDir": {}}],
    )


def build_scoring_job(spec: PolicySpec, scoring: ScoringSpec, store: StoreConfig) -> dict[str, Any]:
    """The Indexed Job of a batch scoring run (freshet_contract.scoring): one pod per
    shard, each scoring its share of the inputs with the trainer image."""
    assert spec.scoring is not None
    settings, training = spec.scoring, spec.training
    layout = StateLayout(root=scoring.store.root)
    variables = [
        {"name": env.SCORING_SPEC_KEY, "value": layout.scoring_spec_key(scoring.run_id)},
        *_store_env(scoring.store.bucket, store),
    ]
    container = _container(
        SCORER_CONTAINER,
        training.image,
        training.image_pull_policy,
        [SCORER_COMMAND],
        env=variables,
        resources=settings.resources.model_dump(mode="json", exclude_defaults=True),
    )
    job = _job(
        scoring.policy,
        scoring.run_id,
        scoring.run_id,
        spec=spec,
        containers=[container],
        backoff_limit=training.backoff_limit,
        deadline=settings.active_deadline_seconds,
        step="score",
    )
    job["spec"].update(
        completionMode="Indexed", completions=scoring.shards, parallelism=scoring.shards
    )
    return job


def _container(
    name: str,
    image: str,
    pull_policy: str | None,
    command: list[str],
    *,
    env: list[dict[str, Any]],
    args: list[str] | None = None,
    mounts: list[dict[str, Any]] | None = None,
    resources: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A container under the restricted Pod Security profile, read-only but /tmp."""
    container: dict[str, Any] = {
        "name": name,
        "image": image,
        "command": command,
        "env": env,
        "resources": resources or {},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": NONROOT_UID,
            "runAsGroup": NONROOT_UID,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, *(mounts or [])],
        "terminationMessagePath": TERMINATION_LOG,
        # The trainer writes a one-line summary there; if a container dies before
        # it can, the tail of its log is the next best explanation.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if args:
        container["args"] = args
    if pull_policy is not None:
        container["imagePullPolicy"] = pull_policy
    return container


def _job(
    policy: PolicyRef,
    run_id: str,
    name: str,
    *,
    spec: PolicySpec,
    containers: list[dict[str, Any]],
    init_containers: list[dict[str, Any]] | None = None,
    backoff_limit: int,
    deadline: int,
    step: str | None = None,
    volumes: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    labels = job_labels(policy.name, run_id)
    if step is not None:
        labels[STEP_LABEL] = step
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
        "containers": containers,
        # The only writable places on a read-only root filesystem.
        "volumes": [{"name": "tmp", "emptyDir": {}}, *(volumes or [])],
    }
    if init_containers:
        pod_spec["initContainers"] = init_containers
    if spec.training.service_account_name is not None:
        pod_spec["serviceAccountName"] = spec.training.service_account_name
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
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
            "backoffLimit": backoff_limit,
            "activeDeadlineSeconds": deadline,
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
    return [
        {"name": env.RUN_SPEC_KEY, "value": layout.run_spec_key(run_spec.run_id)},
        *_store_env(run_spec.store.bucket, store),
    ]


def _store_env(bucket: str, store: StoreConfig) -> list[dict[str, Any]]:
    variables: list[dict[str, Any]] = [
        {"name": env.S3_ENDPOINT, "value": store.endpoint},
        {"name": env.S3_SECURE, "value": "true" if store.secure else "false"},
        {"name": env.S3_BUCKET, "value": bucket},
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
