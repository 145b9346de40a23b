"""kopf wiring: thin handlers that hand each TrainingPolicy to its controller.

Operator-wide state (`controller.Runtime`) lives in kopf's `memo`.

Registered when kopf imports this module (`python -m freshet`). Everything that
decides lives in `controller` and `decisions`; this module only maps kopf's
events onto it.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException
from prometheus_client import start_http_server

from freshet import names
from freshet.config import OperatorConfig
from freshet.controller import PolicyController, Runtime
from freshet.kube import Kube, api_client

_POLICIES = (names.GROUP, names.VERSION, names.PLURAL)
FINALIZER = f"{names.GROUP}/finalizer"


@kopf.on.startup()
def configure(
    settings: kopf.OperatorSettings, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    config = OperatorConfig.from_env()
    # kopf keeps only its finalizer on a policy (the daemon must stop before
    # the policy goes). No change handler is registered, so kopf stores no copy
    # of the spec in annotations: a spec near the API server's size limit
    # could not be annotated, and its deletion would hang on that patch.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="freshet.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="freshet.dev", key="last-handled-configuration"
    )
    settings.persistence.finalizer = FINALIZER
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    settings.networking.error_backoffs = [1, 2, 5, 10]
    memo.runtime = Runtime(kube=Kube(api_client()), config=config)
    start_http_server(config.metrics_port)
    logger.info(
        "freshet operator started: max %d concurrent runs, metrics on :%d",
        config.max_concurrent_runs,
        config.metrics_port,
    )


@kopf.on.cleanup()
def release_finalizers(memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    """Leave no policy waiting for an operator that is gone.

    kopf puts a finalizer on each policy so that its daemon stops before the
    policy goes; nothing else depends on it (Jobs go with their owner, data is
    kept). Once the daemons have stopped, at shutdown, it is taken off again, so
    a policy deleted after `helm uninstall` (or while the operator restarts) is
    deleted at once instead of hanging; the next start puts it back.
    """
    runtime: Runtime | None = memo.get("runtime")
    if runtime is None:
        return
    finalizer = FINALIZER
    try:
        held = runtime.kube.policies_with_finalizer(runtime.config.namespaces, finalizer)
    except ApiException as e:
        logger.warning("cannot list policies to release their finalizers: %s", e.reason)
        return
    for namespace, name, finalizers in held:
        try:
            runtime.kube.remove_finalizer(namespace, name, finalizers, finalizer)
        except ApiException as e:  # gone, or changed meanwhile: the next start sees it
            logger.warning("[%s/%s] finalizer kept: %s", namespace, name, e.reason)
    logger.info("released the finalizers of %d policies", len(held))


@kopf.daemon(*_POLICIES, cancellation_timeout=30)
async def reconcile(
    *,
    body: kopf.Body,
    name: str,
    namespace: str | None,
    uid: str,
    memo: kopf.Memo,
    stopped: kopf.DaemonStopped,
    **_: Any,
) -> None:
    """The policy's serial control loop, alive as long as the policy exists."""
    # kopf types `namespace` for cluster-scoped resources too; TrainingPolicy is namespaced.
    assert namespace is not None, "TrainingPolicy is a namespaced resource"
    await PolicyController(memo.runtime, namespace, name, uid).run(body, stopped)


@kopf.on.event(*_POLICIES)
def changed(body: kopf.Body, uid: str, memo: kopf.Memo, **_: Any) -> None:
    """A spec or annotation change (e.g. freshet.dev/retrain): look again now.

    An event handler, not an update handler: it needs no stored copy of the
    spec to diff against (see `configure`). Status-only events do not wake.
    """
    runtime: Runtime | None = memo.get("runtime")
    if runtime is not None:
        runtime.wake_on_change(uid, body)


@kopf.on.event("batch", "v1", "jobs", labels={names.MANAGED_BY_LABEL: names.MANAGED_BY})
def job_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A training Job progressed: wake the policy that owns it."""
    runtime: Runtime | None = memo.get("runtime")
    for owner in body.get("metadata", {}).get("ownerReferences") or []:
        if owner.get("kind") == names.KIND and runtime is not None:
            runtime.wake(owner["uid"])
