"""One policy's control loop: from batches in the bucket to a promoted model.

Each TrainingPolicy gets one `PolicyController`, driven by a kopf daemon, so a
policy's runs are strictly serial while many policies proceed concurrently.
A step reads the facts (spec, ledger, the bucket watcher's snapshot, the Job),
asks the pure decision functions what to do, does it, and writes status only
when it changed. Every step can be interrupted and repeated: the ledger's run
intent (see `ledger`) is what makes a crash neither lose a batch nor train
twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import aiohttp
import kopf
from freshet_contract.layout import StateLayout
from freshet_contract.result import RunResult
from freshet_contract.run import LabelFile, PolicyRef, RunSpec
from freshet_contract.run import ModelRef as RunModelRef
from pydantic import ValidationError

from freshet import jobs, ledger, metrics, monitoring, names, serverscrape, serving, status
from freshet.batches import Batch
from freshet.config import OperatorConfig
from freshet.decisions import (
    analysis,
    backfill,
    drift,
    retry,
    rollback,
    runs,
    staleness,
    trigger,
)
from freshet.decisions.outcome import Outcome, judge_run
from freshet.kube import Kube
from freshet.ledger import (
    BatchRef,
    DriftRecord,
    LabelFileRef,
    Ledger,
    ModelRef,
    RollbackRecord,
    RunIntent,
    RunRecord,
)
from freshet.objectstore import ObjectStore
from freshet.runspec import build_run_spec, run_labels_from_policy
from freshet.spec import (
    DelayedFeedback,
    ModelServerCheck,
    MonitoringSource,
    PolicySpec,
    parse_policy_spec,
)
from freshet.store_config import StoreConfig, StoreSecretError, parse_store_secret
from freshet.watcher import BucketWatcher, WatcherRegistry

STATIC_RESCAN_SECONDS = 10.0
KEEP_FINISHED_JOBS = 3
_EPOCH = datetime.min.replace(tzinfo=UTC)


class NotReady(Exception):
    """Something outside freshet must change first (a Secret, a Deployment)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class Runtime:
    """Operator-wide state shared by all policy controllers (kopf's global memo)."""

    kube: Kube
    config: OperatorConfig
    watchers: WatcherRegistry = field(default_factory=WatcherRegistry)
    controllers: dict[str, PolicyController] = field(default_factory=dict)
    active_runs: set[str] = field(default_factory=set)
    active_backfills: set[str] = field(default_factory=set)
    _http: aiohttp.ClientSession | None = None

    def http(self) -> aiohttp.ClientSession:
        """One HTTP session for all metric queries, created on the event loop."""
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession()
        return self._http

    def wake(self, uid: str) -> None:
        controller = self.controllers.get(uid)
        if controller is not None:
            controller.wake.set()


def _now() -> datetime:
    return datetime.now(UTC)


class PolicyController:
    def __init__(self, rt: Runtime, namespace: str, name: str, uid: str) -> None:
        self.rt = rt
        self.namespace, self.name, self.uid = namespace, name, uid
        self.key = f"{namespace}/{name}"
        self.layout = StateLayout.for_policy(namespace, name)
        self.wake = asyncio.Event()
        self.log = logging.getLogger("freshet.policy").getChild(self.key)
        self._store: ObjectStore | None = None
        self._ledger: Ledger | None = None
        self._watcher: BucketWatcher | None = None
        self._released: frozenset[str] = frozenset()
        self._promotion_started: datetime | None = None
        self._blocked: NotReady | None = None
        self._waiting: tuple[str, str] | None = None
        self._seen: set[str] = set()
        self._labels_changed: int | None = None
        self._last_scrape: serverscrape.Scrape | None = None

    # -- the loop --------------------------------------------------------------

    async def run(self, body: kopf.Body, stopped: kopf.DaemonStopped) -> None:
        self.rt.controllers[self.uid] = self
        try:
            while not stopped:
                self.wake.clear()
                try:
                    delay = await self.step(body)
                except kopf.TemporaryError as e:
                    self.log.warning("step failed, retrying: %s", e)
                    delay = e.delay or 10.0
                except Exception:
                    self.log.exception("step failed unexpectedly; retrying in 10s")
                    delay = 10.0
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout=delay)
        finally:
            self.rt.controllers.pop(self.uid, None)
            self.rt.active_runs.discard(self.uid)
            self.rt.active_backfills.discard(self.uid)
            self.rt.watchers.unsubscribe(self.key)

    async def step(self, body: kopf.Body) -> float:
        """One reconcile; returns how long until the next one unless woken."""
        generation = int(body.get("metadata", {}).get("generation", 0))
        self._blocked, self._waiting, self._labels_changed = None, None, None
        try:
            spec = parse_policy_spec(body)
        except ValidationError as e:
            await self._write_status(body, generation, None, spec_error=_first_error(e))
            return self.rt.config.resync_seconds
        delay = self.rt.config.resync_seconds
        try:
            store = await self._open_store(spec)
            book = await self._load_ledger(store)
            watcher = await self._watch(spec)
            self._count_seen(spec, watcher)
            await self._user_requests(body, spec, store, book)
            if book.intent is not None:
                delay = await self._track(body, spec, store, book)
            else:
                await self._enforce_pointer(spec, book)
                delay = await self._maybe_start(body, spec, store, book, watcher)
            delay = min(delay, await self._periodic_check(body, spec, store, book))
        except NotReady as e:
            self._blocked = e
            self.log.warning("blocked: %s: %s", e.reason, e.message)
        await self._write_status(body, generation, spec)
        return delay

    # -- facts ---------------------------------------------------------------

    async def _open_store(self, spec: PolicySpec) -> ObjectStore:
        secret = spec.data.store_ref.name
        data = await asyncio.to_thread(self.rt.kube.secret_data, self.namespace, secret)
        if data is None:
            raise NotReady(
                "StoreSecretNotFound", f"Secret {secret!r} (spec.data.storeRef) not found"
            )
        try:
            config = parse_store_secret(secret, data)
        except StoreSecretError as e:
            raise NotReady("StoreSecretInvalid", str(e)) from e
        if self._store is None or self._store.config != config:
            self._store = ObjectStore(config)
            self._ledger = None  # another bucket means another record
        return self._store

    async def _load_ledger(self, store: ObjectStore) -> Ledger:
        if self._ledger is None:
            try:
                self._ledger = await asyncio.to_thread(ledger.load, store, self.layout.ledger_key)
            except Exception as e:  # unreachable store, bad credentials
                raise NotReady("StoreUnavailable", f"cannot read the ledger: {e}") from e
        return self._ledger

    async def _save(self, store: ObjectStore, book: Ledger) -> None:
        await asyncio.to_thread(ledger.save, store, self.layout.ledger_key, book)

    async def _watch(self, spec: PolicySpec) -> BucketWatcher:
        assert self._store is not None
        trig = spec.effective_trigger
        interval = float(trig.poll_interval_seconds) if trig else STATIC_RESCAN_SECONDS
        prefixes: tuple[str, ...] = (spec.data.prefix,)
        if spec.data.labels is not None:
            prefixes += (spec.data.labels.prefix,)
        watcher = self.rt.watchers.subscribe(
            self.key, self._store.config, prefixes, interval, self.wake.set
        )
        if not watcher.listed_once.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(watcher.listed_once.wait(), timeout=10)
        if watcher.errors:
            raise NotReady("StoreUnavailable", f"cannot list the bucket: {watcher.last_error}")
        self._watcher = watcher
        return watcher

    def _count_seen(self, spec: PolicySpec, watcher: BucketWatcher) -> None:
        keys = {o.key for o in watcher.objects(spec.data.prefix)}
        if new := keys - self._seen:
            metrics.BATCHES_SEEN.labels(self.namespace, self.name).inc(len(new))
        self._seen = keys

    def _pending(self, spec: PolicySpec, book: Ledger, watcher: BucketWatcher) -> list[Batch]:
        consumed, quarantined = book.consumed_etags(), book.quarantined
        return [
            Batch(o.key, o.etag, o.size, o.last_modified)
            for o in watcher.objects(spec.data.prefix)
            if consumed.get(o.key) != o.etag
            and (quarantined.get(o.key) != o.etag or o.key in self._released)
        ]

    def _find_released(
        self, spec: PolicySpec, book: Ledger, watcher: BucketWatcher, store: ObjectStore
    ) -> frozenset[str]:
        """Quarantined batches (and label files) put back by `freshet-quarantine release`.

        A released batch keeps its ETag, so the ledger alone would ignore it
        forever: one that is under the prefix again and gone from quarantine/
        is pending again. Only keys listed with their quarantined ETag are
        checked: none outside a release, or a few for one listing interval
        right after a move (still in quarantine/, so still ignored).
        """
        held = book.quarantined
        prefixes = [spec.data.prefix] + ([spec.data.labels.prefix] if spec.data.labels else [])
        listed = [o.key for p in prefixes for o in watcher.objects(p) if held.get(o.key) == o.etag]
        return frozenset(k for k in listed if store.etag(self.layout.quarantine_key(k)) is None)

    # -- starting a run ------------------------------------------------------

    async def _maybe_start(
        self,
        body: kopf.Body,
        spec: PolicySpec,
        store: ObjectStore,
        book: Ledger,
        watcher: BucketWatcher,
    ) -> float:
        now = _now()
        self._released = await asyncio.to_thread(self._find_released, spec, book, watcher, store)
        pending = self._pending(spec, book, watcher)
        facts = _trigger_facts(body, spec, book, pending, now)
        if spec.serving is not None and spec.serving.pinned_version is not None:
            self._waiting = (
                "Pinned",
                f"spec.serving.pinnedVersion pins {spec.serving.pinned_version}; training waits",
            )
            return self.rt.config.resync_seconds
        decision = trigger.decide(spec.effective_trigger, facts)
        if isinstance(decision, trigger.Wait) and self._stale_retrain_due(spec, book, now):
            decision = trigger.Train(
                trigger.TrainReason.STALE,
                f"{book.serving.version if book.serving else 'the model'} is older than"
                " monitoring.maxModelAgeSeconds",
                tuple(pending),
            )
        if isinstance(decision, trigger.Wait):
            planned = self._plan_backfill(spec, book, watcher, now)
            if isinstance(planned, backfill.Backfill):
                decision = trigger.Train(
                    trigger.TrainReason.BACKFILL, planned.message, (), relabelled=planned.changed
                )
            elif isinstance(planned, backfill.Wait):
                # Both answers may change by the clock: wake for the sooner one.
                self._waiting = (str(planned.reason), planned.message)
                soonest = min(planned.retry_after, decision.retry_after or planned.retry_after)
                return max(0.05, min(soonest.total_seconds(), 3600.0))
        if isinstance(decision, trigger.Wait):
            self._waiting = (str(decision.reason), decision.message)
            if decision.retry_after is not None:
                return max(0.05, min(decision.retry_after.total_seconds(), 3600.0))
            return self.rt.config.resync_seconds
        window = self._window(spec, book, decision.batches, spare=True)
        label_files = self._window_label_files(spec, book, watcher, window)
        held = retry.hold(
            retry.RetryFacts(
                now=now,
                failures=book.failures,
                retry_not_before=book.retry_not_before,
                failed_inputs=book.failed_inputs,
                inputs=retry.fingerprint(
                    window, [(f.key, f.etag) for f in label_files], spec.training_hash()
                ),
            )
        )
        if held is not None:
            wait = held.total_seconds()
            self._waiting = (
                "Backoff",
                f"{book.failures} failed run(s) in a row over these inputs; next attempt in"
                f" {wait:.0f}s, or at once when new data or a spec change arrives",
            )
            return wait
        if self.uid not in self.rt.active_runs and (
            len(self.rt.active_runs) >= self.rt.config.max_concurrent_runs
        ):
            self._waiting = (
                "ConcurrencyLimit",
                f"{len(self.rt.active_runs)} runs in flight operator-wide",
            )
            return 5.0
        # Take the slots before the first await: every policy runs on this event
        # loop, so checking above and taking them later, in _start, would let two
        # policies take the last slot.
        self.rt.active_runs.add(self.uid)
        if decision.reason is trigger.TrainReason.BACKFILL:
            self.rt.active_backfills.add(self.uid)
        try:
            await self._start(
                body,
                spec,
                store,
                book,
                decision=decision,
                watcher=watcher,
                window=window,
                label_files=label_files,
            )
        except BaseException:
            if book.intent is None:  # nothing to replay: give the slots back
                self.rt.active_runs.discard(self.uid)
                self.rt.active_backfills.discard(self.uid)
            raise
        return self.rt.config.resync_seconds

    def _window(
        self, spec: PolicySpec, book: Ledger, new: tuple[Batch, ...], *, spare: bool = False
    ) -> tuple[Batch, ...]:
        """The batches of the next run, oldest first.

        With `spare`, as many older consumed batches as there are new ones come
        on top of `maxBatches`: the trainer keeps the newest `maxBatches` that
        pass validation, so a refused new batch takes no slot of the window.
        """
        window_size = spec.data.window.max_batches if spec.data.window else None
        if window_size is not None and spare:
            window_size += len(new)
        return runs.select_window([b.batch() for b in book.consumed], new, window_size)

    def _window_label_files(
        self, spec: PolicySpec, book: Ledger, watcher: BucketWatcher, window: tuple[Batch, ...]
    ) -> list[backfill.LabelFile]:
        """The late-label files a run over `window` joins, as the watcher lists them now."""
        files = self._label_files(spec, book, watcher, [b.key for b in window])
        return [f for batch_files in files.values() for f in batch_files]

    def _label_files(
        self, spec: PolicySpec, book: Ledger, watcher: BucketWatcher, batch_keys: list[str]
    ) -> dict[str, tuple[backfill.LabelFile, ...]]:
        """Each batch's late-label files as the watcher lists them now."""
        labels = spec.data.labels
        if labels is None:
            return {}
        return backfill.assign(
            spec.data.prefix,
            labels.prefix,
            batch_keys,
            (Batch(o.key, o.etag, o.size, o.last_modified) for o in watcher.objects(labels.prefix)),
            {k: e for k, e in book.quarantined.items() if k not in self._released},
        )

    def _plan_backfill(
        self, spec: PolicySpec, book: Ledger, watcher: BucketWatcher, now: datetime
    ) -> backfill.Backfill | backfill.Wait | None:
        """Whether late labels of trained batches changed, and whether to retrain now."""
        settings, labels = spec.backfill, spec.data.labels
        if settings is None or labels is None:
            return None
        window = self._window(spec, book, ())
        files = self._label_files(spec, book, watcher, [b.key for b in window])
        planned = backfill.plan(
            settings,
            backfill.BackfillFacts(
                now=now,
                window=window,
                files=files,
                trained={b.key: b.labels for b in book.consumed},
                first_event={b.key: b.first_event for b in book.consumed},
                cutoff=book.label_cutoff,
                immature_rows_train=labels.delayed_feedback is DelayedFeedback.FAKE_NEGATIVE,
                last_backfill=book.last_backfill,
                in_flight=len(self.rt.active_backfills - {self.uid}),
                limit=self.rt.config.max_concurrent_backfills,
            ),
        )
        self._labels_changed = len(planned.changed) if planned is not None else 0
        return planned

    async def _start(
        self,
        body: kopf.Body,
        spec: PolicySpec,
        store: ObjectStore,
        book: Ledger,
        *,
        decision: trigger.Train,
        watcher: BucketWatcher,
        window: tuple[Batch, ...],
        label_files: list[backfill.LabelFile],
    ) -> None:
        version = f"v{book.next_version}"
        # A failed run gave its version back: the failures in a row before this
        # run keep its id (and Job) apart from theirs.
        attempt = book.failures
        run_id = runs.run_id(self.name, self.uid, window, version, attempt)
        baseline = None
        if book.serving is not None:
            baseline = RunModelRef(
                version=book.serving.version,
                model_key=book.serving.model_key,
                sha256=book.serving.sha256,
            )
        good = [m for m in book.previous if m.version not in book.rejected]
        previous = (
            RunModelRef(version=good[0].version, model_key=good[0].model_key, sha256=good[0].sha256)
            if good
            else None
        )
        policy = PolicyRef(
            namespace=self.namespace,
            name=self.name,
            uid=self.uid,
            generation=int(body["metadata"].get("generation", 0)),
        )
        labels = None
        if spec.data.labels is not None:
            labels = run_labels_from_policy(
                spec.data.labels,
                [
                    LabelFile(batch=f.batch, key=f.key, etag=f.etag, size=f.size)
                    for f in label_files
                ],
                watermark_floor=book.label_watermark,
                previous_cutoff=book.label_cutoff,
            )
        run_spec = build_run_spec(
            policy=policy,
            spec=spec,
            bucket=store.bucket,
            run_id=run_id,
            version=version,
            window=window,
            new_batches=decision.batches,
            baseline=baseline,
            previous=previous,
            labels=labels,
            reference_from=book.reference_from,
            released=self._released,
            # A run for new data (or a policy's first) has nothing to learn when
            # every new batch is refused; a retrain, schedule or backfill does.
            new_data_required=decision.reason
            in (trigger.TrainReason.NEW_DATA, trigger.TrainReason.CREATED),
        )
        spec_key = self.layout.run_spec_key(run_id)
        # The intent is durable before the Job exists: a crash from here on is
        # replayed by _track, which creates the Job if it is missing.
        await asyncio.to_thread(
            store.put_json, spec_key, run_spec.model_dump(by_alias=True, mode="json")
        )
        book.intent = RunIntent(
            run_id=run_id,
            version=version,
            attempt=attempt,
            reason=str(decision.reason),
            trigger=str(decision.reason),
            message=decision.message,
            batches=[BatchRef.of(b) for b in window],
            new_batches=[b.key for b in decision.batches],
            spec_key=spec_key,
            result_key=run_spec.output.result_key,
            spec_hash=spec.training_hash(),
            retrain_request=decision.retrain_request,
            schedule_time=decision.schedule_time,
            created_time=_now(),
            label_files=[LabelFileRef(batch=f.batch, key=f.key, etag=f.etag) for f in label_files],
            relabelled=list(decision.relabelled),
        )
        book.next_version += 1
        book.note_arrivals(book.intent.batches)
        if decision.reason is trigger.TrainReason.STALE:
            book.last_stale_retrain = book.intent.created_time
        if decision.reason is trigger.TrainReason.BACKFILL:
            book.last_backfill = book.intent.created_time
            metrics.BACKFILLS.labels(self.namespace, self.name).inc()
        await self._save(store, book)
        metrics.ACTIVE_RUNS.set(len(self.rt.active_runs))
        await self._create_job(body, spec, store.config, run_spec)
        for b in decision.batches:
            seen = watcher.first_seen.get(b.key)
            if seen is not None:
                metrics.TRIGGER_LATENCY.observe(time.monotonic() - seen)
        metrics.TRAININGS.labels(self.namespace, self.name, "started").inc()
        self.log.info(
            "run %s started for %s: %s (%d batches in window, %d new)",
            run_id,
            version,
            decision.message,
            len(window),
            len(decision.batches),
        )
        kopf.info(
            body,
            reason="Triggered",
            message=f"run {run_id} trains {version}: {decision.message}; "
            f"{_window_holds(spec, window)} batch(es) in the window",
        )

    async def _create_job(
        self, body: kopf.Body, spec: PolicySpec, store: StoreConfig, run_spec: RunSpec
    ) -> None:
        job = jobs.build_job(spec, run_spec, store)
        await asyncio.to_thread(self.rt.kube.create_job, self.namespace, job)

    # -- tracking a run ------------------------------------------------------

    async def _track(
        self, body: kopf.Body, spec: PolicySpec, store: ObjectStore, book: Ledger
    ) -> float:
        intent = book.intent
        assert intent is not None
        self.rt.active_runs.add(self.uid)
        if intent.trigger == trigger.TrainReason.BACKFILL:
            self.rt.active_backfills.add(self.uid)
        job = await asyncio.to_thread(self.rt.kube.job, self.namespace, intent.run_id)
        if job is None:
            doc = await asyncio.to_thread(store.get_json, intent.spec_key)
            if doc is None:
                raise NotReady("RunSpecMissing", f"run spec {intent.spec_key} vanished")
            self.log.info("run %s has no Job (replaying the intent); creating it", intent.run_id)
            await self._create_job(body, spec, store.config, RunSpec.model_validate(doc))
            return self.rt.config.resync_seconds
        finished = _job_finished(job)
        if finished is None:
            return self.rt.config.resync_seconds
        raw = await asyncio.to_thread(store.get_json, intent.result_key)
        result: RunResult | None = None
        if raw is not None:
            try:
                result = RunResult.model_validate(raw)
            except ValidationError as e:
                self.log.error("run %s wrote an invalid result: %s", intent.run_id, e)
        live = None
        if result is not None and result.status != "Failed":
            live = await self._prequential(body, spec, store, book, result)
        last_rollback = book.last_rollback
        decided = judge_run(
            result=result,
            job_summary=f"Job {intent.run_id} {finished}: {_job_message(job)}",
            gate_spec=spec.gate,
            live=live,
            rolled_back=(
                live is not None and last_rollback is not None and last_rollback.time >= live.time
            ),
            pinned=spec.serving.pinned_version if spec.serving is not None else None,
        )
        if decided.outcome == "Promoted" and spec.serving is not None:
            assert result is not None
            if not await self._promote(spec, result):
                return 1.0
        await self._finish(
            body,
            store,
            book,
            result,
            outcome=decided.outcome,
            reason=decided.reason,
            message=decided.message,
        )
        return 1.0

    async def _promote(self, spec: PolicySpec, result: RunResult) -> bool:
        """Apply the model pointer and report whether the rollout has completed."""
        assert result.model is not None
        pointer = serving.ModelPointer(
            result.model.version, result.model.model_key, result.model.sha256
        )
        dep = await self._point(spec, pointer, reapply=self._promotion_started is None)
        self._promotion_started = self._promotion_started or _now()
        if serving.rollout_complete(dep):
            self._promotion_started = None
            return True
        failure = serving.rollout_failed(dep)
        elapsed = (_now() - self._promotion_started).total_seconds()
        if failure or elapsed > self.rt.config.rollout_timeout_seconds:
            raise NotReady(
                "RolloutStalled", failure or f"rollout of {pointer.version} takes {elapsed:.0f}s"
            )
        return False

    async def _finish(
        self,
        body: kopf.Body,
        store: ObjectStore,
        book: Ledger,
        result: RunResult | None,
        *,
        outcome: Outcome,
        reason: str,
        message: str,
    ) -> None:
        """Record the run's outcome, consume its batches, clear the intent: one write."""
        intent = book.intent
        assert intent is not None
        now = _now()
        quarantined = await self._quarantine(body, store, book, result)
        used = {b.key: b.etag for b in intent.batches}
        used.update((f.key, f.etag) for f in intent.label_files)
        drifted = result.drift if result is not None else []
        if outcome == "Skipped":
            # Every new batch was refused: nothing was trained, nothing failed.
            book.forget_released(used, quarantined)
            book.give_back(intent.version)
        elif outcome != "Failed":
            added = book.consume([b for b in intent.batches if b.key not in quarantined])
            metrics.BATCHES_CONSUMED.labels(self.namespace, self.name).inc(len(added))
            _record_labels(book, intent, result, quarantined)
            book.forget_released(used, quarantined)
            window = [b.key for b in intent.batches]
            trained = result.window.batches if result and result.window else window
            book.reference_from = drift.reference_from(
                book.reference_from, drifted, window, set(trained)
            )
            book.trained_spec_hash = intent.spec_hash
            if intent.retrain_request is not None:
                book.retrain_request = intent.retrain_request
            if intent.schedule_time is not None:
                book.last_schedule_time = intent.schedule_time
            book.failures, book.retry_not_before, book.failed_inputs = 0, None, None
        else:
            book.failures += 1
            backoff = retry.backoff(book.failures)
            book.retry_not_before = now + backoff
            book.failed_inputs = retry.fingerprint(
                (b.batch() for b in intent.batches),
                [(f.key, f.etag) for f in intent.label_files],
                intent.spec_hash,
            )
            # It produced no model: the next attempt trains the same version.
            book.give_back(intent.version)
            message = (
                f"{message} (attempt {book.failures}; the same inputs again in"
                f" {backoff.total_seconds():.0f}s, new data or a spec change at once)"
            )
        candidate = dict(result.metrics.candidate) if result else {}
        baseline_metrics = result.metrics.baseline if result else None
        book.record(
            RunRecord(
                run_id=intent.run_id,
                version=intent.version,
                outcome=outcome,
                reason=reason,
                message=message,
                trigger=intent.trigger,
                started_time=intent.created_time,
                finished_time=now,
                metrics=candidate,
                baseline_metrics=baseline_metrics,
                batches=_trained_batches(intent, result),
                relabelled=intent.relabelled,
            )
        )
        if drifted:
            newest = drifted[-1]
            book.note_drift(
                DriftRecord(
                    time=now,
                    version=intent.version,
                    batch=newest.key,
                    action=str(newest.action),
                    checks=newest.checks,
                    columns=newest.columns,
                    message=drift.describe(newest),
                ),
                len(drifted),
            )
        if outcome == "Promoted" and result is not None and result.model is not None:
            book.promote(
                ModelRef(
                    version=result.model.version,
                    run_id=intent.run_id,
                    model_key=result.model.model_key,
                    sha256=result.model.sha256,
                    metrics=candidate,
                    promoted_time=now,
                )
            )
            book.begin_analysis(result.model.version, now)
        book.intent = None
        await self._save(store, book)
        self.rt.active_runs.discard(self.uid)
        self.rt.active_backfills.discard(self.uid)
        metrics.ACTIVE_RUNS.set(len(self.rt.active_runs))

        labels = (self.namespace, self.name)
        for d in drifted:
            metrics.DRIFT_DETECTED.labels(*labels, str(d.action)).inc()
        for notice in drift.notices(drifted):
            report = kopf.warn if notice.warning else kopf.info
            report(body, reason="DriftDetected", message=notice.message)
            self.log.info("drift detected: %s", notice.message)
        if outcome == "Failed":
            metrics.TRAININGS.labels(*labels, "failed").inc()
            kopf.warn(
                body, reason="TrainingFailed", message=f"{intent.version}: {reason}: {message}"
            )
        elif outcome == "Skipped":
            metrics.TRAININGS.labels(*labels, "skipped").inc()
            kopf.info(
                body,
                reason="RunSkipped",
                message=f"{intent.version} not trained, the version stays free: {message}",
            )
        else:
            metrics.TRAININGS.labels(*labels, "succeeded").inc()
            kopf.info(
                body,
                reason="Trained",
                message=f"{intent.version} trained by {intent.run_id} on"
                f" {_trained_batches(intent, result)} batch(es)",
            )
        if outcome == "Rejected":
            metrics.GATE_REJECTIONS.labels(*labels).inc()
            kopf.warn(body, reason="GateRejected", message=f"{intent.version}: {message}")
        if outcome == "Promoted":
            metrics.PROMOTIONS.labels(*labels).inc()
            kopf.info(body, reason="Promoted", message=f"{intent.version} is serving: {message}")
        self.log.info(
            "run %s (%s) %s: %s: %s", intent.run_id, intent.version, outcome, reason, message
        )
        await asyncio.to_thread(self._prune_jobs)

    async def _quarantine(
        self, body: kopf.Body, store: ObjectStore, book: Ledger, result: RunResult | None
    ) -> set[str]:
        """Move refused batches out of the prefix, each with its reason document.

        Only the exact content the trainer refused is moved: if the producer has
        since overwritten the key (a new ETag), the new content is a new batch.
        """
        moved: set[str] = set()
        for q in result.quarantined if result else []:
            target = self.layout.quarantine_key(q.key)
            reason_doc = q.model_dump(by_alias=True, mode="json")

            def move(
                q_key: str = q.key,
                q_etag: str = q.etag,
                doc: dict[str, Any] = reason_doc,
                to: str = target,
            ) -> None:
                store.put_json(self.layout.quarantine_reason_key(q_key), doc)
                if store.etag(q_key) == q_etag:
                    store.move(q_key, to)

            await asyncio.to_thread(move)
            book.quarantined[q.key] = q.etag
            moved.add(q.key)
            metrics.BATCHES_QUARANTINED.labels(self.namespace, self.name).inc()
            kopf.warn(
                body,
                reason="Quarantined",
                message=f"{q.key} moved to {target}: {q.reason}",
            )
            self.log.warning("batch %s quarantined: %s", q.key, q.reason)
        return moved

    def _prune_jobs(self) -> None:
        """Keep the newest finished Jobs for `kubectl logs`; the record lives in the store."""
        selector = f"{names.POLICY_LABEL}={self.name}"
        listed = self.rt.kube.batch.list_namespaced_job(self.namespace, label_selector=selector)
        finished: list[tuple[datetime, str]] = []  # (created, name)
        for j in listed.items:
            meta, status = j.metadata, j.status
            if meta is None or meta.name is None or status is None:
                continue  # the API server always sets these; nothing to prune without them
            if (status.succeeded or status.failed) and any(
                o.uid == self.uid for o in meta.owner_references or []
            ):
                finished.append((meta.creation_timestamp or _EPOCH, meta.name))
        finished.sort(key=lambda f: f[0], reverse=True)
        for _, name in finished[KEEP_FINISHED_JOBS:]:
            self.rt.kube.batch.delete_namespaced_job(
                name, self.namespace, propagation_policy="Background"
            )

    # -- the live model --------------------------------------------------------

    def _desired(self, spec: PolicySpec, book: Ledger) -> ModelRef | None:
        """The model the Deployment should run: the user's pin, else the serving one."""
        if spec.serving is not None and spec.serving.pinned_version is not None:
            target = rollback.pinned_target(
                spec.serving.pinned_version, list(book.models), set(book.rejected)
            )
            if target.version is None:
                raise NotReady(target.reason, target.message)
            return book.models[target.version]
        return book.serving

    async def _enforce_pointer(self, spec: PolicySpec, book: Ledger) -> None:
        """Point the Deployment at the desired model if anything else points it elsewhere.

        This is how a rollback or a pin takes effect, and how a hand edit of the
        model fields is undone; between runs only, so it never fights a promotion.
        """
        desired = self._desired(spec, book)
        if spec.serving is not None and desired is not None:
            await self._point(
                spec, serving.ModelPointer(desired.version, desired.model_key, desired.sha256)
            )

    async def _point(
        self, spec: PolicySpec, pointer: serving.ModelPointer, *, reapply: bool = False
    ) -> dict[str, Any]:
        """Point the serving Deployment at a model; return the Deployment as it now is.

        Nothing is written when it already runs that version, unless `reapply`
        (a promotion re-asserts its fields once, in case someone edited them).
        """
        assert spec.serving is not None
        name = spec.serving.deployment_ref.name
        dep = await asyncio.to_thread(self.rt.kube.deployment, self.namespace, name)
        if dep is None:
            raise NotReady(
                "DeploymentNotFound",
                f"Deployment {name!r} (spec.serving.deploymentRef) not found;"
                f" {pointer.version} waits to be deployed",
            )
        if serving.served_version(dep) == pointer.version and not reapply:
            return dep
        try:
            container = serving.container_name(dep, spec.serving.container)
        except serving.ServingError as e:
            raise NotReady("ServingContainerNotFound", str(e)) from e
        await asyncio.to_thread(
            self.rt.kube.apply_deployment,
            self.namespace,
            serving.apply_patch(name, container, pointer),
        )
        self.log.info("Deployment %s pointed at %s", name, pointer.version)
        applied = await asyncio.to_thread(self.rt.kube.deployment, self.namespace, name)
        return applied or dep

    async def _user_requests(
        self, body: kopf.Body, spec: PolicySpec, store: ObjectStore, book: Ledger
    ) -> None:
        """A new value of the freshet.dev/rollback annotation rolls back once, now."""
        annotations = body.get("metadata", {}).get("annotations") or {}
        request = annotations.get(names.ROLLBACK_ANNOTATION)
        if request is None or request == book.rollback_request:
            return
        book.rollback_request = request
        if book.serving is None:
            await self._save(store, book)
            kopf.warn(body, reason="RollbackRefused", message="no model is serving yet")
            return
        await self._rollback(
            body,
            spec,
            store,
            book,
            reason="RollbackRequested",
            message=f"requested by annotation {names.ROLLBACK_ANNOTATION}={request!r}",
        )

    async def _prequential(
        self,
        body: kopf.Body,
        spec: PolicySpec,
        store: ObjectStore,
        book: Ledger,
        result: RunResult,
    ) -> analysis.Measurement | None:
        """Count the run's test-then-train score of the serving model, once per run."""
        intent = book.intent
        assert intent is not None
        if (
            result.monitoring is None
            or spec.monitoring is None
            or spec.monitoring.source is not MonitoringSource.PREQUENTIAL
            or book.serving is None
        ):
            return None
        measurement = monitoring.prequential(spec, result.monitoring, intent.created_time)
        if not intent.measured:
            await self._observe(body, spec, store, book, measurement)
            intent.measured = True
            await self._save(store, book)
        return measurement

    async def _periodic_check(
        self, body: kopf.Body, spec: PolicySpec, store: ObjectStore, book: Ledger
    ) -> float:
        """Take the Prometheus or model-server measurement when it is due.

        Returns the seconds until the next one.
        """
        mon = spec.monitoring
        if mon is None or not mon.periodic or book.serving is None:
            return self.rt.config.resync_seconds
        if spec.serving is not None and spec.serving.pinned_version is not None:
            return self.rt.config.resync_seconds
        record = book.analysis or monitoring.fresh(book.serving.version, _now())
        settings = monitoring.settings(mon)
        now = _now()
        due = analysis.next_measurement(settings, monitoring.to_state(record), now)
        if due > now:
            return (due - now).total_seconds()
        if mon.prometheus is not None:
            query = monitoring.render_query(
                mon.prometheus, book.serving.version, self.namespace, self.name
            )
            measurement = await monitoring.prometheus(mon.prometheus, query, now, self.rt.http())
        else:
            assert mon.model_server is not None
            measurement = await self._scrape_model_server(
                spec, mon.model_server, book.serving.version, now
            )
        await self._observe(body, spec, store, book, measurement)
        await self._save(store, book)
        return float(mon.interval_seconds)

    async def _scrape_model_server(
        self, spec: PolicySpec, check: ModelServerCheck, version: str, now: datetime
    ) -> analysis.Measurement:
        """Scrape the serving pods and judge the counters' increase since the last scrape."""
        assert spec.serving is not None
        name = spec.serving.deployment_ref.name
        dep = await asyncio.to_thread(self.rt.kube.deployment, self.namespace, name)
        if dep is None:
            return analysis.Measurement(
                now, analysis.Verdict.ERROR, f"Deployment {name!r} not found"
            )
        try:
            container = serving.container_name(dep, spec.serving.container)
        except serving.ServingError as e:
            return analysis.Measurement(now, analysis.Verdict.ERROR, str(e))
        labels = ((dep.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        pods = await asyncio.to_thread(self.rt.kube.pods, self.namespace, labels)
        found, problems = serverscrape.targets(pods, container, check, version)
        scraped = await serverscrape.scrape(self.rt.http(), found, check, version, now)
        if problems:
            scraped = replace(scraped, errors=(*scraped.errors, *problems))
        measurement = serverscrape.measure(check, self._last_scrape, scraped)
        if scraped.pods:
            self._last_scrape = scraped
        return measurement

    async def _observe(
        self,
        body: kopf.Body,
        spec: PolicySpec,
        store: ObjectStore,
        book: Ledger,
        measurement: analysis.Measurement,
    ) -> bool:
        """Fold a measurement into the analysis; roll back if it says so. True if rolled back."""
        assert spec.monitoring is not None and book.serving is not None
        record = book.analysis
        if record is None or record.version != book.serving.version:
            book.begin_analysis(
                book.serving.version, book.serving.promoted_time or measurement.time
            )
            record = book.analysis
            assert record is not None
        outcome = analysis.observe(
            monitoring.settings(spec.monitoring), monitoring.to_state(record), measurement
        )
        book.analysis = monitoring.to_record(outcome.state)
        # The ledger counts what the counter counts, in the same step, so that
        # status.monitoring.totals and the metric tell the same story.
        book.count_measurement(measurement.verdict.value)
        metrics.MEASUREMENTS.labels(self.namespace, self.name, measurement.verdict.value).inc()
        self.log.info(
            "measured %s: %s: %s", book.serving.version, measurement.verdict, outcome.message
        )
        if outcome.action is not analysis.Action.ROLLBACK:
            return False
        if not spec.rollback.automatic:
            kopf.warn(
                body,
                reason="RegressionDetected",
                message=f"{book.serving.version}: {outcome.message} (rollback.automatic is false)",
            )
            return False
        return await self._rollback(
            body, spec, store, book, reason="AnalysisFailed", message=outcome.message
        )

    async def _rollback(
        self,
        body: kopf.Body,
        spec: PolicySpec,
        store: ObjectStore,
        book: Ledger,
        *,
        reason: str,
        message: str,
    ) -> bool:
        """Switch back to the previous good version and reject the failing one."""
        assert book.serving is not None
        failing = book.serving.version
        target = rollback.rollback_target(
            failing, [m.version for m in book.previous], set(book.rejected)
        )
        if target.version is None:
            kopf.warn(body, reason=target.reason, message=f"{target.message}; {message}")
            await self._save(store, book)
            return False
        restored = next(m for m in book.previous if m.version == target.version)
        now = _now()
        book.roll_back(restored)
        book.begin_analysis(restored.version, now)
        book.last_rollback = RollbackRecord(
            from_version=failing,
            to_version=restored.version,
            time=now,
            reason=reason,
            message=message,
        )
        await self._save(store, book)
        if spec.serving is not None and spec.serving.pinned_version is None:
            # Now, even while a run is in flight: a rollback cannot wait.
            await self._point(
                spec, serving.ModelPointer(restored.version, restored.model_key, restored.sha256)
            )
        metrics.ROLLBACKS.labels(self.namespace, self.name).inc()
        kopf.warn(
            body,
            reason="RolledBack",
            message=f"{failing} -> {restored.version} ({reason}): {message}",
        )
        self.log.warning("rolled back %s -> %s: %s: %s", failing, restored.version, reason, message)
        return True

    # -- status --------------------------------------------------------------

    def _stale_retrain_due(self, spec: PolicySpec, book: Ledger, now: datetime) -> bool:
        if spec.effective_trigger is None or book.serving is None:
            return False
        return staleness.retrain_due(
            book.serving.promoted_time, now, spec.max_model_age, book.last_stale_retrain
        )

    async def _write_status(
        self,
        body: kopf.Body,
        generation: int,
        spec: PolicySpec | None,
        spec_error: str | None = None,
    ) -> None:
        """Compute the status in memory; write only what changed."""
        data = None
        now = _now()
        if spec is not None and self._watcher is not None and self._ledger is not None:
            book = self._ledger
            seen = self._watcher.objects(spec.data.prefix)
            pending = self._pending(spec, book, self._watcher)
            running = {(b.key, b.etag) for b in book.intent.batches} if book.intent else set()
            queue = trigger.backlog(
                spec.effective_trigger, _trigger_facts(body, spec, book, pending, now), running
            )
            data = status.DataCounts(
                arrivals="Notifications" if self._watcher.streaming else "Polling",
                seen=len(seen),
                pending=queue.pending,
                untrained=queue.untrained if spec.effective_trigger is None else None,
                last_arrival=max((o.last_modified for o in seen), default=None),
                labels_changed=self._labels_changed,
                released=len(self._released & book.quarantined.keys()),
            )
        blocked = self._blocked
        observation = status.Observation(
            generation=generation,
            state_root=self.layout.root,
            now=now,
            spec=spec,
            spec_error=spec_error,
            blocked=(blocked.reason, blocked.message) if blocked else None,
            waiting=self._waiting,
            data=data,
        )
        current = dict(body.get("status") or {})
        desired = status.build(self._ledger or Ledger(), current, observation)
        patch = status.merge_patch(current, desired)
        if patch:
            await asyncio.to_thread(self.rt.kube.patch_status, self.namespace, self.name, patch)


def _trigger_facts(
    body: kopf.Body, spec: PolicySpec, book: Ledger, pending: list[Batch], now: datetime
) -> trigger.TriggerFacts:
    """What `trigger.decide` (and `trigger.backlog`) need, from the resource and the ledger."""
    created = _parse_time(body.get("metadata", {}).get("creationTimestamp")) or now
    annotations = body.get("metadata", {}).get("annotations") or {}
    return trigger.TriggerFacts(
        now=now,
        pending=pending,
        consumed_count=len(book.consumed),
        run_active=book.intent is not None,
        has_run=book.trained_spec_hash is not None,
        has_serving_model=book.serving is not None,
        training_hash=spec.training_hash(),
        last_run_training_hash=book.trained_spec_hash,
        retrain_request=annotations.get(names.RETRAIN_ANNOTATION),
        honoured_retrain_request=book.retrain_request,
        schedule_anchor=book.last_schedule_time or created,
    )


def _record_labels(
    book: Ledger, intent: RunIntent, result: RunResult | None, quarantined: set[str]
) -> None:
    """What a finished run trained with: each batch's label files, the watermark, the cutoff.

    Quarantined label files are left out, as the next listing leaves them out,
    so a refused file does not look like a change to backfill.
    """
    if result is None or result.labels is None:
        return
    files: dict[str, list[tuple[str, str]]] = {b.key: [] for b in intent.batches}
    for f in intent.label_files:
        if f.key not in quarantined and f.batch in files:
            files[f.batch].append((f.key, f.etag))
    report = result.labels
    book.mark_labels(
        {key: backfill.fingerprint(pairs) for key, pairs in files.items()},
        {b.key: b.event_time_min for b in report.batches},
    )
    if report.watermark is not None:
        known = book.label_watermark
        book.label_watermark = report.watermark if known is None else max(known, report.watermark)
    if report.cutoff is not None:
        book.label_cutoff = report.cutoff


def _window_holds(spec: PolicySpec, window: tuple[Batch, ...]) -> str:
    """What a run's window holds at most: spare batches fill in for refused ones only."""
    limit = spec.data.window.max_batches if spec.data.window else None
    if limit is None or len(window) <= limit:
        return str(len(window))
    return f"at most {limit} of {len(window)}"


def _trained_batches(intent: RunIntent, result: RunResult | None) -> int:
    """How many batches the model was trained on (the window the trainer chose, which
    leaves out refused ones), or, without a model, how many the run was given."""
    if result is not None and result.window is not None and result.model is not None:
        return len(result.window.batches)
    if result is not None and result.model is None:
        return 0
    return len(intent.batches)


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ()))
    return f"spec.{where}: {err.get('msg')}" if where else str(err.get("msg"))


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _job_finished(job: dict[str, Any]) -> str | None:
    """'succeeded' or 'failed' once the Job controller has said so, else None."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "SuccessCriteriaMet"):
            return "succeeded"
        if cond.get("status") == "True" and cond.get("type") in ("Failed", "FailureTarget"):
            return "failed"
    return None


def _job_message(job: dict[str, Any]) -> str:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Failed", "FailureTarget") and cond.get("status") == "True":
            return f"{cond.get('reason')}: {cond.get('message')}"
    return "no result document"
