"""kopf wiring: thin handlers that hand each TrainingPolicy to its controller.

Registered when kopf imports this module (`python -m freshet`). Everything that
decides lives in `controller` and `decisions`; this module only maps kopf's
events onto it.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf
from prometheus_client import start_http_server

from freshet import names
from freshet.config import OperatorConfig
from freshet.controller import PolicyController, Runtime
from freshet.kube import Kube, api_client

_POLICIES = (names.GROUP, names.VERSION, names.PLURAL)
_runtime: Runtime | None = None


def runtime() -> Runtime:
    if _runtime is None:
        raise kopf.TemporaryError("operator still starting", delay=1)
    return _runtime


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, logger: kopf.Logger, **_: Any) -> None:
    # Set once at startup and read by every handler; kopf handlers are plain functions.
    global _runtime  # noqa: PLW0603
    config = OperatorConfig.from_env()
    # Keep kopf's bookkeeping in annotations under our own prefix: status is
    # the policy's public story and its schema has no room for kopf's fields.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="freshet.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="freshet.dev", key="last-handled-configuration"
    )
    settings.persistence.finalizer = "freshet.dev/finalizer"
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    settings.networking.error_backoffs = [1, 2, 5, 10]
    _runtime = Runtime(kube=Kube(api_client()), config=config)
    start_http_server(config.metrics_port)
    logger.info(
        "freshet operator started: max %d concurrent runs, metrics on :%d",
        config.max_concurrent_runs,
        config.metrics_port,
    )


@kopf.daemon(*_POLICIES, cancellation_timeout=30)
async def reconcile(
    body: kopf.Body,
    name: str,
    namespace: str | None,
    uid: str,
    stopped: kopf.DaemonStopped,
    **_: Any,
) -> None:
    """The policy's serial control loop, alive as long as the policy exists."""
    # kopf types `namespace` for cluster-scoped resources too; TrainingPolicy is namespaced.
    assert namespace is not None, "TrainingPolicy is a namespaced resource"
    await PolicyController(runtime(), namespace, name, uid).run(body, stopped)


@kopf.on.update(*_POLICIES)
def changed(uid: str, **_: Any) -> None:
    """A spec or annotation change (e.g. freshet.dev/retrain): look again now."""
    runtime().wake(uid)


@kopf.on.event("batch", "v1", "jobs", labels={names.MANAGED_BY_LABEL: names.MANAGED_BY})
def job_changed(body: kopf.Body, **_: Any) -> None:
    """A training Job progressed: wake the policy that owns it."""
    for owner in body.get("metadata", {}).get("ownerReferences") or []:
        if owner.get("kind") == names.KIND and _runtime is not None:
            _runtime.wake(owner["uid"])
