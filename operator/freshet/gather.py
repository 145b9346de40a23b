"""Reading the world for one step: the ledger, the listing, the Job, the result.

Reads only, each error classified (`failures`), so that a step either has a
whole `Snapshot` to decide over or a `Failure` that says what it could not read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from freshet_contract.layout import StateLayout
from freshet_contract.preprocess import PreparedData, prep_job_name
from freshet_contract.result import RunResult
from freshet_contract.run import RunSpec
from freshet_contract.scoring import ShardReport
from pydantic import ValidationError

from freshet import ledger as ledgers
from freshet.batches import Batch
from freshet.failures import STORE_ERRORS, Failure, from_api, from_store
from freshet.kube import ApiError, Kube
from freshet.ledger import Ledger, ModelRef
from freshet.objectstore import ObjectStore
from freshet.seen_jobs import SeenJobs
from freshet.snapshot import JobView, PolicyFacts, Slots, Snapshot, find_released
from freshet.spec import PolicySpec
from freshet.watcher import BucketWatcher, WatcherRegistry

STATIC_RESCAN_SECONDS = 10.0
"""How often a Static policy's prefix is listed (it has no trigger.pollIntervalSeconds)."""
SCORING_POLL_SECONDS = 5.0
"""How often a policy with spec.scoring looks for new inputs when its trigger polls slower."""
FIRST_LISTING_SECONDS = 60.0
"""How long a step waits for the first listing that covers its policy's prefixes."""
POD_CREATION_GRACE_SECONDS = 10.0
"""How long a Job may have no pod before the step asks the Job controller's Events why."""


async def ledger(store: ObjectStore, layout: StateLayout) -> Ledger:
    try:
        return await asyncio.to_thread(ledgers.load, store, layout.ledger_key)
    except (*STORE_ERRORS, ValidationError) as e:
        raise from_store(e, "read the ledger") from e


async def watch(
    watchers: WatcherRegistry,
    key: str,
    store: ObjectStore,
    spec: PolicySpec,
    wake: Callable[[], None],
) -> BucketWatcher:
    """The shared bucket watcher for the policy's prefixes, listed at least once."""
    trig = spec.effective_trigger
    interval = float(trig.poll_interval_seconds) if trig else STATIC_RESCAN_SECONDS
    prefixes: tuple[str, ...] = (spec.data.prefix,)
    if spec.data.labels is not None:
        prefixes += (spec.data.labels.prefix,)
    if spec.scoring is not None:
        prefixes += (spec.scoring.prefix,)
        interval = min(interval, SCORING_POLL_SECONDS)
    watcher = watchers.subscribe(key, store, prefixes, interval, wake)
    try:
        async with asyncio.timeout(FIRST_LISTING_SECONDS):
            await watcher.listed(prefixes)
    except TimeoutError:
        raise Failure(
            "StoreUnavailable",
            f"no listing of the bucket within {FIRST_LISTING_SECONDS:.0f}s",
            delay=FIRST_LISTING_SECONDS,
        ) from None
    if watcher.errors:
        raise Failure("StoreUnavailable", f"cannot list the bucket: {watcher.last_error}")
    return watcher


async def snapshot(
    *,
    kube: Kube,
    seen_jobs: SeenJobs,
    policy: PolicyFacts,
    spec: PolicySpec,
    book: Ledger,
    store: ObjectStore,
    watcher: BucketWatcher,
    slots: Slots,
    now: datetime,
    log: logging.LoggerAdapter[logging.Logger],
) -> Snapshot:
    """Everything the step decides over; the Job and result only for a run in flight."""

    def listed(prefix: str) -> tuple[Batch, ...]:
        return tuple(Batch(o.key, o.etag, o.size, o.last_modified) for o in watcher.objects(prefix))

    layout = StateLayout.for_policy(policy.namespace, policy.name)
    labels = listed(spec.data.labels.prefix) if spec.data.labels is not None else ()
    batches = listed(spec.data.prefix)
    to_score = listed(spec.scoring.prefix) if spec.scoring is not None else ()
    released = await read(
        "look for released batches",
        find_released,
        store.etag,
        layout,
        book.quarantined,
        batches + labels + to_score,
    )
    snap = Snapshot(
        now=now,
        policy=policy,
        spec=spec,
        ledger=book,
        bucket=store.bucket,
        batches=batches,
        label_objects=labels,
        released=released,
        streaming=watcher.streaming,
        slots=slots,
        scoring_inputs=to_score,
    )
    if book.scoring is not None and spec.scoring is not None:
        snap = await _scoring(kube, seen_jobs, store, layout, snap)
    if spec.baseline_from is not None and book.serving is None and book.intent is None:
        snap = replace(snap, foreign_baseline=await _foreign_baseline(kube, policy, spec))
    intent = book.intent
    if intent is None:
        return snap
    if intent.phase == "Preprocessing":
        return await _preprocessing(kube, seen_jobs, store, layout, snap, log=log)
    job = await job_view(kube, seen_jobs, policy.namespace, intent.run_id, now)
    if job is None:
        doc = await read("read the run spec", store.get_json, intent.spec_key)
        return replace(snap, run_spec=None if doc is None else RunSpec.model_validate(doc))
    if job.finished is None:
        return replace(snap, job=job)
    raw = await read("read the run result", store.get_json, intent.result_key)
    try:
        result = None if raw is None else RunResult.model_validate(raw)
    except ValidationError as e:
        log.error("run %s (%s) wrote an invalid result: %s", intent.run_id, intent.version, e)
        return replace(snap, job=job, result_error=str(e))
    return replace(snap, job=job, result=result)


async def _foreign_baseline(kube: Kube, policy: PolicyFacts, spec: PolicySpec) -> ModelRef | None:
    """spec.baselineFrom's serving model, from that policy's status; None until it has one."""
    assert spec.baseline_from is not None
    name = spec.baseline_from.policy_ref.name
    try:
        other = await asyncio.to_thread(kube.policy, policy.namespace, name)
    except ApiError as e:
        raise from_api(
            e, f"read TrainingPolicy {name} (spec.baselineFrom)", rejected="InvalidSpec"
        ) from e
    serving = ((other or {}).get("status") or {}).get("serving") or {}
    if not serving.get("version") or not serving.get("modelKey") or not serving.get("sha256"):
        return None
    return ModelRef(
        version=serving["version"],
        run_id=serving.get("runId", ""),
        model_key=serving["modelKey"],
        sha256=serving["sha256"],
    )


async def _scoring(
    kube: Kube, seen_jobs: SeenJobs, store: ObjectStore, layout: StateLayout, snap: Snapshot
) -> Snapshot:
    """The batch scoring run in flight: its Job, and every shard's report once done."""
    intent, spec = snap.ledger.scoring, snap.spec.scoring
    assert intent is not None and spec is not None
    job = await job_view(kube, seen_jobs, snap.policy.namespace, intent.run_id, snap.now)
    if job is None or job.finished != "succeeded":
        return replace(snap, scoring_job=job)
    shards = min(spec.shards, max(1, len(intent.inputs)))
    reports = []
    for index in range(shards):
        key = layout.shard_report_key(intent.run_id, index)
        raw = await read("read a scoring shard's report", store.get_json, key)
        if raw is None:
            return replace(snap, scoring_job=job, shard_reports=None)
        try:
            reports.append(ShardReport.model_validate(raw))
        except ValidationError:
            return replace(snap, scoring_job=job, shard_reports=None)
    return replace(snap, scoring_job=job, shard_reports=reports)


async def _preprocessing(
    kube: Kube,
    seen_jobs: SeenJobs,
    store: ObjectStore,
    layout: StateLayout,
    snap: Snapshot,
    *,
    log: logging.LoggerAdapter[logging.Logger],
) -> Snapshot:
    """A run in its preprocessing phase: the prep Job, and once it has succeeded the
    run spec and the manifest it wrote."""
    intent = snap.ledger.intent
    assert intent is not None
    name = prep_job_name(intent.run_id)
    job = await job_view(kube, seen_jobs, snap.policy.namespace, name, snap.now)
    if job is not None and job.finished is None:
        return replace(snap, prep_job=job)
    if job is not None and job.finished == "failed":
        detail = await asyncio.to_thread(kube.failed_container, snap.policy.namespace, name)
        if detail is not None:
            job = replace(job, message=detail)
        return replace(snap, prep_job=job)
    doc = await read("read the run spec", store.get_json, intent.spec_key)
    snap = replace(
        snap, prep_job=job, run_spec=None if doc is None else RunSpec.model_validate(doc)
    )
    if job is None:
        return snap
    key = layout.prepared_manifest_key(intent.run_id)
    raw = await read("read the prepared data's manifest", store.get_json, key)
    if raw is None:
        return replace(snap, prepared_error=f"{key} was not written")
    try:
        return replace(snap, prepared=PreparedData.model_validate(raw))
    except ValidationError as e:
        log.error("run %s (%s) wrote an invalid manifest: %s", intent.run_id, intent.version, e)
        return replace(snap, prepared_error=f"{key}: {e}")


async def job_view(
    kube: Kube, seen: SeenJobs, namespace: str, run_id: str, now: datetime
) -> JobView | None:
    """The run's Job, or None when it does not exist: as the watch just saw it, else
    read. Refused pods are looked for only once the Job is POD_CREATION_GRACE_SECONDS
    old: a younger Job with no pod is still being started."""
    try:
        job = seen.get(namespace, run_id) or await asyncio.to_thread(kube.job, namespace, run_id)
        if job is None:
            return None
        view = _view(job)
        no_pod = view.finished is None and not (job.get("status") or {}).get("active")
        if no_pod and _age(job, now) >= POD_CREATION_GRACE_SECONDS:
            refused = await asyncio.to_thread(kube.pods_not_created, namespace, run_id)
            if refused is not None:
                view = JobView(None, refused, pods_not_created=True)
    except ApiError as e:
        raise from_api(e, f"read Job {run_id}", rejected="JobUnreadable") from e
    return view


def _age(job: dict[str, Any], now: datetime) -> float:
    """Seconds since the Job was created; unknown counts as old."""
    created = (job.get("metadata") or {}).get("creationTimestamp")
    if not created:
        return float("inf")
    return (now - datetime.fromisoformat(created)).total_seconds()


async def read(what: str, fn: Any, *args: Any) -> Any:
    """A store read off the event loop, its error classified."""
    try:
        return await asyncio.to_thread(fn, *args)
    except STORE_ERRORS as e:
        raise from_store(e, what) from e


def _view(job: dict[str, Any]) -> JobView:
    """'succeeded' or 'failed' once the Job controller has said so."""
    conditions = (job.get("status") or {}).get("conditions") or []
    for cond in conditions:
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "SuccessCriteriaMet"):
            return JobView("succeeded", "no result document")
    for cond in conditions:
        if cond.get("status") == "True" and cond.get("type") in ("Failed", "FailureTarget"):
            return JobView("failed", f"{cond.get('reason')}: {cond.get('message')}")
    return JobView(None, "")
