"""kopf wiring: thin handlers that hand each TrainingPolicy to its controller.

Operator-wide state (`controller.Runtime`) lives in kopf's `memo`.

Registered when kopf imports this module (`python -m freshet`). Everything that
decides lives in `controller` and `decisions`; this module only maps kopf's
events onto it.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf

from freshet import memory, metrics, names
from freshet.config import OperatorConfig
from freshet.controller import STEPS_AT_ONCE, Runtime
from freshet.kube import Kube

_POLICIES = (names.GROUP, names.VERSION, names.PLURAL)
_SETS = (names.GROUP, names.VERSION, names.SET_PLURAL)
STOP_TIMEOUT_SECONDS = 30.0


@kopf.on.startup()
def configure(
    settings: kopf.OperatorSettings, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    config = OperatorConfig.from_env()
    # No change handler is registered, so kopf stores no copy of the spec in
    # annotations: a spec near the API server's size limit could not be
    # annotated, and its deletion would hang on that patch. No handler needs a
    # finalizer either; kopf takes this one, which operator 0.1.0's daemons
    # needed, off every policy it sees ("no handlers requiring it").
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="freshet.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="freshet.dev", key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{names.GROUP}/finalizer"
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    settings.networking.error_backoffs = [1, 2, 5, 10]
    # kopf's liveness endpoint is an aiohttp server that logs every request at
    # INFO: a line per kubelet probe, every 20 s, for as long as the pod lives.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    memo.runtime = Runtime(kube=Kube.from_environment(), config=config)
    metrics.serve(config.metrics_port)
    logger.info(
        "freshet operator started: max %d concurrent runs, metrics on :%d",
        config.max_concurrent_runs,
        config.metrics_port,
    )


@kopf.on.startup()
async def size_threads(**_: Any) -> None:
    """Enough threads for every step allowed at once to make its blocking calls.

    asyncio's default pool has min(32, cores + 4) threads: 6 on two cores, so
    the sixteen steps `Runtime.stepping` lets run would queue for threads, not
    for the API server. Each step holds at most one thread; the rest is headroom
    for the dashboard and the status writes.
    """
    pool = ThreadPoolExecutor(STEPS_AT_ONCE + 4, thread_name_prefix="blocking")
    asyncio.get_running_loop().set_default_executor(pool)


@kopf.on.startup()
async def trim_memory(memo: kopf.Memo, **_: Any) -> None:
    """Return freed memory to the system once a minute (freshet.memory)."""
    memo.trimmer = asyncio.create_task(memory.trim_periodically(), name="trim memory")


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    """Stop every policy's loop before the operator exits."""
    trimmer: asyncio.Task[None] | None = memo.get("trimmer")
    if trimmer is not None:
        trimmer.cancel()
    runtime: Runtime | None = memo.get("runtime")
    if runtime is not None:
        await runtime.stop(grace=STOP_TIMEOUT_SECONDS)


@kopf.on.event(*_POLICIES)
async def policy_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Every event of a policy: its loop starts on the first, gets the newest object
    on each, wakes when the spec or annotations changed (e.g. freshet.dev/retrain),
    and stops when the policy is deleted.

    Event handlers only: kopf registers no change handler (so it stores no copy of
    the spec to diff against, see `configure`) and no daemon (so it puts no
    finalizer on policies).
    """
    runtime: Runtime | None = memo.get("runtime")
    if runtime is not None:
        runtime.policy_event(event.get("type"), body)
        # A segment's policy changed (e.g. promoted a model): its set looks again.
        for owner in body.get("metadata", {}).get("ownerReferences") or []:
            if owner.get("kind") == names.SET_KIND:
                runtime.wake(owner["uid"])


@kopf.on.event(*_SETS)
async def set_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Every event of a TrainingPolicySet: the same loop lifecycle as a policy's."""
    runtime: Runtime | None = memo.get("runtime")
    if runtime is not None:
        runtime.set_event(event.get("type"), body)


@kopf.on.event("batch", "v1", "jobs", labels={names.MANAGED_BY_LABEL: names.MANAGED_BY})
async def job_changed(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A training Job progressed: keep what the step reads of it, then wake the policy
    that owns it. Async, so it runs on the event loop: kopf runs sync handlers in
    threads, and asyncio.Event is not thread-safe."""
    runtime: Runtime | None = memo.get("runtime")
    if runtime is None:
        return
    runtime.seen_jobs.seen(event.get("type"), body)
    for owner in body.get("metadata", {}).get("ownerReferences") or []:
        if owner.get("kind") == names.KIND:
            runtime.wake(owner["uid"])
