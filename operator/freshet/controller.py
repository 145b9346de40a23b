"""One policy's control loop: snapshot, decide, transition, effects, status.

Each TrainingPolicy gets one `PolicyController`, its loop an asyncio task the
`Runtime` starts on the policy's first event and cancels on its deletion, so a
policy's runs are strictly serial while many policies proceed concurrently. No
finalizer is involved: nothing needs the loop to stop before the policy goes
(its Jobs go with it, its data stays), so a policy is never held up by an
operator that is down or uninstalled.
A step gathers a frozen `Snapshot`, asks the pure `decisions.step` what now,
computes the next ledger with a pure `transitions` function, saves it and only
then takes it as the policy's ledger, carries out the writes through
`Effects` in the order the invariants need (run spec, ledger, Job), and writes
status once, only what changed. Any failure becomes a condition and an Event
(`failures`); a step can be interrupted and repeated anywhere, and the
ledger's run intent makes a crash neither lose a batch nor train twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import aiohttp
import kopf
from freshet_contract.layout import StateLayout
from freshet_contract.result import RunResult
from freshet_contract.run import PolicyRef
from freshet_contract.scoring import ScoringSpec
from freshet_contract.scoring import manifest_key as scoring_manifest_key
from pydantic import ValidationError

from freshet import gather, live, metrics, monitoring, serverscrape, serving, status, transitions
from freshet.config import OperatorConfig
from freshet.decisions import analysis, rollback, scoring, staleness, step, trigger
from freshet.decisions.outcome import judge_run
from freshet.effects import Effects
from freshet.failures import Failure, backoff, from_api
from freshet.kube import ApiError, Kube, older
from freshet.ledger import Ledger, ModelRef
from freshet.loops import Kept, sleep_or_wake
from freshet.objectstore import ObjectStore, Stores
from freshet.runspec import build_scoring_spec
from freshet.seen_jobs import SeenJobs
from freshet.setcontroller import SetController
from freshet.snapshot import PolicyFacts, Slots, Snapshot, observed
from freshet.spec import MonitoringSource, PolicySpec, parse_policy_spec
from freshet.store_secrets import StoreSecrets
from freshet.transitions import Judged
from freshet.watcher import BucketWatcher, WatcherRegistry

_PROMOTING_SECONDS = 1.0
STEPS_AT_ONCE = 16


@dataclass
class Runtime:
    """Operator-wide state shared by all policy controllers (kopf's `memo`)."""

    kube: Kube
    config: OperatorConfig
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    stores: Stores = field(default_factory=Stores)
    store_secrets: StoreSecrets = field(init=False)
    seen_jobs: SeenJobs = field(default_factory=SeenJobs)
    watchers: WatcherRegistry = field(default_factory=WatcherRegistry)
    controllers: dict[str, PolicyController | SetController] = field(default_factory=dict)
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    active_runs: set[str] = field(default_factory=set)
    active_backfills: set[str] = field(default_factory=set)
    stepping: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(STEPS_AT_ONCE))
    """Steps in progress at once, operator-wide. A step is mostly waiting (API server,
    store); at a thousand policies woken together (a restart) unbounded steps hold a
    thousand half-built snapshots at once, and the process keeps that peak as RSS."""
    _http: aiohttp.ClientSession | None = None

    def __post_init__(self) -> None:
        self.store_secrets = StoreSecrets(self.kube)

    def http(self) -> aiohttp.ClientSession:
        """One HTTP session for all metric queries, created on the event loop."""
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession()
        return self._http

    def wake(self, uid: str) -> None:
        controller = self.controllers.get(uid)
        if controller is not None:
            controller.wake.set()

    def policy_event(self, kind: str | None, body: kopf.Body) -> None:
        """A policy was seen: start its loop, hand it the newest object, wake it if its
        spec or annotations changed (status-only events do not wake), or stop it."""
        self._event(kind, body, PolicyController)

    def set_event(self, kind: str | None, body: kopf.Body) -> None:
        """The same for a TrainingPolicySet (setcontroller.SetController)."""
        self._event(kind, body, SetController)

    def _event(
        self,
        kind: str | None,
        body: kopf.Body,
        make: type[PolicyController] | type[SetController],
    ) -> None:
        meta = body.get("metadata") or {}
        uid = str(meta["uid"])
        if kind == "DELETED":
            task = self.tasks.pop(uid, None)
            if task is not None:
                task.cancel()
            return
        controller = self.controllers.get(uid)
        if controller is None:
            controller = make(self, str(meta["namespace"]), str(meta["name"]), uid)
            controller.keep(body)
            self.controllers[uid] = controller
            task = asyncio.create_task(controller.run(), name=f"{make.__name__} {controller.key}")
            task.add_done_callback(functools.partial(self._ended, uid))
            self.tasks[uid] = task
            return
        controller.keep(body)
        if controller.observed != observed(body):
            controller.wake.set()

    def _ended(self, uid: str, task: asyncio.Task[None]) -> None:
        """A loop ended: cancelled (deleted, shutting down) or, a bug, crashed: the next
        event of the policy starts it again."""
        if self.tasks.get(uid) is task:
            del self.tasks[uid]
        if not task.cancelled() and task.exception() is not None:
            logging.getLogger("freshet.policy").error(
                "policy loop crashed", exc_info=task.exception()
            )

    async def stop(self, grace: float) -> None:
        """Cancel every policy's loop and wait up to `grace` seconds for them (the
        operator is stopping)."""
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=grace)


@dataclass(frozen=True, slots=True)
class Progress:
    """What a step found besides the ledger: the status is computed from it."""

    delay: float | None
    """Seconds until the policy must be looked at again; None: only when something
    changes (data, spec, a Job), or at the idle resync."""
    waiting: step.Wait | None = None
    running: step.Running | None = None
    scoring: dict[str, Any] | None = None
    """status.scoring, when the policy has spec.scoring."""


class PolicyLog(logging.LoggerAdapter[logging.Logger]):
    """Every line names the policy in full (`namespace/name`)."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"[{self.extra['policy'] if self.extra else '?'}] {msg}", kwargs


class PolicyController:
    def __init__(self, rt: Runtime, namespace: str, name: str, uid: str) -> None:
        self.rt = rt
        self.namespace, self.name, self.uid = namespace, name, uid
        self.key = f"{namespace}/{name}"
        self.layout = StateLayout.for_policy(namespace, name)
        self.wake = asyncio.Event()
        self.log = PolicyLog(logging.getLogger("freshet.policy"), {"policy": self.key})
        # Caches across steps, never a step's result: the store client, the
        # ledger as last saved, keys already counted as seen, the last scrape
        # (the model server's counters are diffed against it).
        self._store: ObjectStore | None = None
        self._ledger: Ledger | None = None
        self._seen: tuple[str, ...] = ()
        self._last_scrape: serverscrape.Scrape | None = None
        self._errors = 0
        self._written: tuple[str, dict[str, Any]] | None = None
        """(resourceVersion, status) of the policy after the last status write, until
        the watch brings that version back."""
        self.observed: tuple[int, str] | None = None
        """(generation, annotations) of the policy at the last step's start."""
        self.kept: Kept | None = None
        """The newest object seen (Runtime.policy_event keeps it current)."""

    def keep(self, body: kopf.Body) -> None:
        """The newest object seen; once it is as new as the last status write, that
        write's copy of the status is not needed any more."""
        self.kept = Kept(body)
        if self._written is not None and not older(_version(body), self._written[0]):
            self._written = None

    # -- the loop --------------------------------------------------------------

    async def run(self) -> None:
        """Step, then wait for a wake-up or the step's delay, until cancelled."""
        try:
            while True:
                self.wake.clear()
                assert self.kept is not None, "policy_event keeps the object before the loop starts"
                try:
                    async with self.rt.stepping:
                        # The object as it is once the step may run, not as it was
                        # before the wait: the watch may have brought the last
                        # status write back meanwhile, and that write's copy
                        # (`_written`) is gone then.
                        delay = await self.step(self.kept.body())
                    self._errors = 0
                except Exception as e:  # a bug or an error nobody classified yet
                    delay = await self._unexpected(self.kept.body(), e)
                await sleep_or_wake(self.wake, delay)
        finally:
            if self.rt.controllers.get(self.uid) is self:
                del self.rt.controllers[self.uid]
            self._release_slots()
            self.rt.watchers.unsubscribe(self.key)
            metrics.forget(self.namespace, self.name)

    async def _unexpected(self, body: kopf.Body, e: Exception) -> float:
        """Say it once, with the traceback; then as a condition and an Event, backing off."""
        self._errors += 1
        if self._errors == 1:
            self.log.exception("step failed unexpectedly")
        else:
            self.log.error("step failed unexpectedly again (%d in a row): %s", self._errors, e)
        delay = backoff(self._errors)
        failure = Failure("ReconcileFailed", f"{type(e).__name__}: {e}; retrying in {delay:.0f}s")
        with contextlib.suppress(Exception):
            await self._write_status(body, PolicyFacts.of(body, *self._id), None, blocked=failure)
        return delay

    @property
    def _id(self) -> tuple[str, str, str]:
        return self.namespace, self.name, self.uid

    async def step(self, body: kopf.Body) -> float:
        """One reconcile; returns how long until the next one unless woken."""
        policy = PolicyFacts.of(body, *self._id)
        self.observed = observed(body)
        try:
            spec = parse_policy_spec(body)
        except ValidationError as e:
            await self._write_status(body, policy, None, spec_error=_first_error(e))
            return self._idle()  # only a new spec can change this, and it wakes the loop
        progress, blocked, snap = Progress(None), None, None
        try:
            store = await self._open_store(spec)
            book = await self._load_ledger(store)
            watcher = await gather.watch(self.rt.watchers, self.key, store, spec, self.wake.set)
            effects = Effects(self.rt.kube, store, policy, body, self.log)
            book = await self._user_requests(effects, policy, spec, book)
            snap = await gather.snapshot(
                kube=self.rt.kube,
                seen_jobs=self.rt.seen_jobs,
                policy=policy,
                spec=spec,
                book=book,
                store=store,
                watcher=watcher,
                slots=self._slots(),
                now=self.rt.clock(),
                log=self.log,
            )
            self._count_seen(snap)
            if book.intent is not None:
                progress = await self._track(effects, snap)
            else:
                await self._enforce_pointer(effects, spec, book)
                progress = await self._plan(effects, snap, watcher)
            delay = await self._periodic_check(effects, spec)
            progress = replace(progress, delay=_sooner(progress.delay, delay))
            if spec.scoring is not None:
                delay, scored = await self._score(effects, snap)
                progress = replace(progress, delay=_sooner(progress.delay, delay), scoring=scored)
        except Failure as f:
            blocked = f
            progress = replace(progress, delay=_sooner(progress.delay, f.delay))
            self.log.warning("blocked: %s", f)
            # The fix may be in the Secret (rotated credentials, a moved endpoint).
            self.rt.store_secrets.forget(self.namespace, spec.data.store_ref.name)
        await self._write_status(body, policy, spec, snap=snap, progress=progress, blocked=blocked)
        delay = _sooner(progress.delay, self._turns_stale(spec))
        return self._idle() if delay is None else delay

    def _turns_stale(self, spec: PolicySpec) -> float | None:
        """Seconds until the serving model turns stale (or a stale retrain falls due)."""
        served = self._ledger
        if served is None or served.serving is None:
            return None
        turns = staleness.next_change(
            served.serving.promoted_time,
            self.rt.clock(),
            spec.max_model_age,
            served.last_stale_retrain,
        )
        return None if turns is None else turns.total_seconds()

    def _idle(self) -> float:
        """The idle resync, jittered so that policies created together (or an
        operator restart) do not all come back in the same second."""
        return self.rt.config.idle_resync_seconds * random.uniform(0.9, 1.1)

    # -- facts ---------------------------------------------------------------

    async def _open_store(self, spec: PolicySpec) -> ObjectStore:
        secret = spec.data.store_ref.name
        config = await self.rt.store_secrets.config(self.namespace, secret, "spec.data.storeRef")
        if self._store is None or self._store.config != config:
            self._store = self.rt.stores.get(config)
            self._ledger = None  # another bucket means another record
        return self._store

    async def _load_ledger(self, store: ObjectStore) -> Ledger:
        if self._ledger is None:
            self._ledger = await gather.ledger(store, self.layout)
        return self._ledger

    def _count_seen(self, snap: Snapshot) -> None:
        keys = tuple(b.key for b in snap.batches)
        if new := set(keys) - set(self._seen):
            metrics.BATCHES_SEEN.labels(self.namespace, self.name).inc(len(new))
        self._seen = keys

    async def _commit(self, effects: Effects, book: Ledger) -> Ledger:
        """Save `book`; only a saved ledger becomes the one the next step starts from."""
        await effects.save(book)
        self._ledger = book
        return book

    # -- starting a run ------------------------------------------------------

    async def _plan(self, effects: Effects, snap: Snapshot, watcher: BucketWatcher) -> Progress:
        # Count the slots and take them with no await in between: every policy
        # runs on this event loop, so a count taken earlier (or slots taken
        # later) would let two policies take the last slot.
        planned = step.plan(replace(snap, slots=self._slots()))
        if isinstance(planned, step.Wait):
            return Progress(planned.retry_after, waiting=planned)
        spec, intent = snap.spec, planned.intent
        self._take_slots(intent.trigger)
        try:
            await effects.check_job_prerequisites(spec)
        except Failure as f:
            self._release_slots()
            if f.permanent:
                raise
            return Progress(f.delay, waiting=step.Wait(f.reason, f.message, f.delay))
        try:
            await effects.write_run_spec(intent.spec_key, planned.run_spec)
            book = await self._commit(effects, transitions.started(snap.ledger, intent, snap.now))
        except BaseException:
            self._release_slots()  # no saved intent: nothing will replay it
            raise
        # The intent is durable before the Job exists: a crash from here on is
        # replayed by _track, which creates the Job if it is missing.
        try:
            await effects.create_job(
                spec, planned.run_spec, preprocess=intent.phase == "Preprocessing"
            )
        except Failure as f:
            if not f.permanent:
                raise
            await self._refused(effects, replace(snap, ledger=book), f)
            return Progress(1.0)
        seen = [
            watcher.first_seen[b.key]
            for b in planned.decision.batches
            if b.key in watcher.first_seen
        ]
        effects.run_started(intent, step.window_holds(spec, planned.decision.batches), seen)
        return Progress(self.rt.config.resync_seconds)

    async def _refused(self, effects: Effects, snap: Snapshot, f: Failure) -> None:
        """The API server refused the run's Job: record the run as failed, for this spec."""
        judged = Judged(
            "Failed",
            f.reason,
            f.message,
            permanent=True,
            refused_fingerprint=step.spec_fingerprint(snap.spec),
        )
        await self._finish(effects, snap, judged, None)

    def _slots(self) -> Slots:
        return Slots(
            runs_elsewhere=len(self.rt.active_runs - {self.uid}),
            backfills_elsewhere=len(self.rt.active_backfills - {self.uid}),
            max_runs=self.rt.config.max_concurrent_runs,
            max_backfills=self.rt.config.max_concurrent_backfills,
        )

    def _take_slots(self, reason: str) -> None:
        self.rt.active_runs.add(self.uid)
        if reason == trigger.TrainReason.BACKFILL:
            self.rt.active_backfills.add(self.uid)
        metrics.ACTIVE_RUNS.set(len(self.rt.active_runs))

    def _release_slots(self) -> None:
        self.rt.active_runs.discard(self.uid)
        self.rt.active_backfills.discard(self.uid)
        metrics.ACTIVE_RUNS.set(len(self.rt.active_runs))

    # -- tracking a run ------------------------------------------------------

    async def _track(self, effects: Effects, snap: Snapshot) -> Progress:
        intent, spec = snap.ledger.intent, snap.spec
        assert intent is not None
        self._take_slots(intent.trigger)
        tracked = step.track(snap)
        resync = self.rt.config.resync_seconds
        if isinstance(tracked, step.Lost):
            raise Failure("RunSpecMissing", tracked.message)
        if isinstance(tracked, step.Replay | step.Prepared):
            if isinstance(tracked, step.Prepared):
                # Spec first, then the phase: a crash in between rewrites the same spec.
                await effects.write_run_spec(intent.spec_key, tracked.run_spec)
                book = await self._commit(effects, transitions.preprocessed(snap.ledger))
                snap = replace(snap, ledger=book)
                effects.run_preprocessed(intent, tracked.batches, tracked.refused)
            else:
                what = "prep Job" if tracked.preprocess else "Job"
                self.log.info(
                    "run %s (%s) has no %s; replaying the intent",
                    intent.run_id,
                    intent.version,
                    what,
                )
            try:
                await effects.create_job(
                    spec,
                    tracked.run_spec,
                    preprocess=isinstance(tracked, step.Replay) and tracked.preprocess,
                )
            except Failure as f:
                if not f.permanent:
                    raise
                await self._refused(effects, snap, f)
                return Progress(1.0)
            return Progress(resync)
        if isinstance(tracked, step.PreprocessFailed):
            judged = Judged("Failed", "PreprocessFailed", tracked.message)
            await self._finish(effects, snap, judged, None)
            return Progress(1.0)
        if isinstance(tracked, step.Running):
            return Progress(resync, running=tracked)
        book, result = snap.ledger, snap.result
        live_measurement = None
        if result is not None and result.status != "Failed":
            live_measurement, book = await self._prequential(effects, snap, book, result)
        last_rollback = book.last_rollback
        decided = judge_run(
            result=result,
            job_summary=tracked.job_summary,
            gate_spec=spec.gate,
            live=live_measurement,
            rolled_back=(
                live_measurement is not None
                and last_rollback is not None
                and last_rollback.time >= live_measurement.time
            ),
            pinned=spec.serving.pinned_version if spec.serving is not None else None,
        )
        if decided.outcome == "Promoted" and spec.serving is not None:
            assert result is not None
            if not await self._promote(effects, spec, book, result, snap.now):
                return Progress(_PROMOTING_SECONDS)
        judged = Judged(decided.outcome, decided.reason, decided.message)
        await self._finish(effects, replace(snap, ledger=self._ledger or book), judged, result)
        return Progress(_PROMOTING_SECONDS)

    async def _promote(
        self, effects: Effects, spec: PolicySpec, book: Ledger, result: RunResult, now: datetime
    ) -> bool:
        """Apply the model pointer and report whether the rollout has completed."""
        assert result.model is not None and book.intent is not None
        pointer = serving.ModelPointer(
            result.model.version, result.model.model_key, result.model.sha256
        )
        started = book.intent.promotion_started
        dep = await effects.point(spec, pointer, reapply=started is None)
        if started is None:
            book = await self._commit(effects, transitions.promotion_started(book, now))
            started = now
        complete = serving.rollout_complete(dep)
        stuck = step.promotion(
            started=started,
            now=now,
            complete=complete,
            failure=serving.rollout_failed(dep),
            timeout=self.rt.config.rollout_timeout_seconds,
        )
        if stuck is not None:
            raise Failure("RolloutStalled", f"{pointer.version}: {stuck}")
        return complete

    async def _finish(
        self, effects: Effects, snap: Snapshot, judged: Judged, result: RunResult | None
    ) -> None:
        intent = snap.ledger.intent
        assert intent is not None
        quarantined = await effects.quarantine(result.quarantined if result else [])
        before = snap.ledger.consumed_etags()
        book = await self._commit(
            effects, transitions.finished(snap.ledger, judged, result, quarantined, snap.now)
        )
        self._release_slots()
        consumed = sum(1 for b in book.consumed if before.get(b.key) != b.etag)
        effects.run_finished(
            intent, judged, result, message=book.runs[0].message, consumed=consumed
        )
        await effects.prune_jobs()

    # -- batch scoring -----------------------------------------------------------

    async def _score(self, effects: Effects, snap: Snapshot) -> tuple[float | None, dict[str, Any]]:
        """One step of batch scoring (decisions.scoring), after training's: start a
        run, replay or watch the one in flight, record it when done. Returns the delay
        until it needs looking at again and status.scoring."""
        spec, book = snap.spec, self._ledger or snap.ledger
        snap = replace(snap, ledger=book)
        resync = self.rt.config.resync_seconds
        try:
            model = self._desired(spec, book)
        except Failure:
            model = None  # an unusable pin: training's status already says why
        intent = book.scoring
        if intent is None:
            planned = scoring.plan(snap, model)
            pending = len(scoring.pending(snap, model)) if model is not None else 0
            if isinstance(planned, scoring.Wait):
                return planned.retry_after, status.scoring_status(
                    book, model.version if model else None, pending
                )
            assert model is not None
            made = build_scoring_spec(
                policy=PolicyRef(
                    namespace=self.namespace,
                    name=self.name,
                    uid=self.uid,
                    generation=snap.policy.generation,
                ),
                spec=spec,
                bucket=snap.bucket,
                intent=planned.intent,
                model=model,
            )
            # Spec, then intent, then Job: a crash in between replays the intent.
            await effects.write_document("the scoring spec", planned.intent.spec_key, made)
            started = transitions.scoring_started(
                book,
                planned.intent,
                snap.now,
                scheduled=spec.scoring is not None and spec.scoring.schedule is not None,
            )
            book = await self._commit(effects, started)
            await effects.create_scoring_job(spec, made)
            effects.scoring_started(planned.intent)
            return resync, status.scoring_status(book, model.version, pending)
        used = book.models.get(intent.version) or model
        assert used is not None, "a scoring run names a model the ledger has"
        shards = min(spec.scoring.shards if spec.scoring else 1, max(1, len(intent.inputs)))
        tracked = scoring.track(intent, snap.scoring_job, snap.shard_reports, shards, used)
        if isinstance(tracked, scoring.Replay):
            doc = await gather.read(
                "read the scoring spec", effects.store.get_json, intent.spec_key
            )
            if doc is None:
                book = await self._commit(
                    effects,
                    transitions.scoring_failed(book, f"{intent.spec_key} vanished", snap.now),
                )
            else:
                await effects.create_scoring_job(spec, ScoringSpec.model_validate(doc))
        elif isinstance(tracked, scoring.Finished):
            assert spec.scoring is not None
            key = scoring_manifest_key(spec.scoring.output_prefix, intent.version, intent.run_id)
            await effects.write_document("the scoring manifest", key, tracked.manifest)
            await effects.quarantine(list(tracked.manifest.refused))
            book = await self._commit(
                effects, transitions.scoring_finished(book, tracked.manifest, key, snap.now)
            )
            assert book.last_scoring is not None
            effects.scoring_finished(book.last_scoring)
            await effects.prune_jobs()
        elif isinstance(tracked, scoring.Failed):
            book = await self._commit(
                effects, transitions.scoring_failed(book, tracked.message, snap.now)
            )
            assert book.last_scoring is not None
            effects.scoring_finished(book.last_scoring)
        version = model.version if model else None
        pending = len(scoring.pending(replace(snap, ledger=book), model)) if model else 0
        return (
            resync if isinstance(tracked, scoring.Running) else 1.0,
            status.scoring_status(book, version, pending),
        )

    # -- the live model --------------------------------------------------------

    def _desired(self, spec: PolicySpec, book: Ledger) -> ModelRef | None:
        """The model the Deployment should run: the user's pin, else the serving one."""
        if spec.serving is not None and spec.serving.pinned_version is not None:
            target = rollback.pinned_target(
                spec.serving.pinned_version, list(book.models), set(book.rejected)
            )
            if target.version is None:
                raise Failure(target.reason, target.message, delay=self.rt.config.resync_seconds)
            return book.models[target.version]
        return book.serving

    async def _enforce_pointer(self, effects: Effects, spec: PolicySpec, book: Ledger) -> None:
        """Point the Deployment at the desired model if anything else points it elsewhere.

        This is how a rollback or a pin takes effect, and how a hand edit of the
        model fields is undone; between runs only, so it never fights a promotion.
        """
        desired = self._desired(spec, book)
        if spec.serving is not None and desired is not None:
            await effects.point(
                spec, serving.ModelPointer(desired.version, desired.model_key, desired.sha256)
            )

    async def _user_requests(
        self, effects: Effects, policy: PolicyFacts, spec: PolicySpec, book: Ledger
    ) -> Ledger:
        """A new value of the freshet.dev/rollback annotation rolls back once, now."""
        request = policy.rollback_request
        if request is None or request == book.rollback_request:
            return book
        book = transitions.rollback_requested(book, request)
        if book.serving is None:
            book = await self._commit(effects, book)
            effects.warn("RollbackRefused", "no model is serving yet")
            return book
        return await self._rollback(
            effects,
            spec,
            book,
            reason="RollbackRequested",
            message=f"requested by annotation freshet.dev/rollback={request!r}",
        )

    async def _prequential(
        self, effects: Effects, snap: Snapshot, book: Ledger, result: RunResult
    ) -> tuple[analysis.Measurement | None, Ledger]:
        """Count the run's test-then-train score of the serving model, once per run."""
        spec, intent = snap.spec, book.intent
        assert intent is not None
        if (
            result.monitoring is None
            or spec.monitoring is None
            or spec.monitoring.source is not MonitoringSource.PREQUENTIAL
            or book.serving is None
        ):
            return None, book
        measurement = monitoring.prequential(spec, result.monitoring, intent.created_time)
        if not intent.measured:
            book = await self._observe(effects, spec, book, measurement)
            book = await self._commit(effects, transitions.prequential_counted(book))
        return measurement, book

    async def _periodic_check(self, effects: Effects, spec: PolicySpec) -> float | None:
        """Take the Prometheus or model-server measurement when it is due.

        Returns the seconds until the next one; None when there is none to take.
        """
        book, mon = self._ledger, spec.monitoring
        if book is None or mon is None or not mon.periodic or book.serving is None:
            return None
        if spec.serving is not None and spec.serving.pinned_version is not None:
            return None
        now = self.rt.clock()
        record = book.analysis or monitoring.fresh(book.serving.version, now)
        due = analysis.next_measurement(monitoring.settings(mon), monitoring.to_state(record), now)
        if due > now:
            return (due - now).total_seconds()
        measurement, self._last_scrape = await live.measure(
            kube=self.rt.kube,
            http=self.rt.http(),
            namespace=self.namespace,
            name=self.name,
            spec=spec,
            version=book.serving.version,
            now=now,
            last_scrape=self._last_scrape,
        )
        await self._commit(effects, await self._observe(effects, spec, book, measurement))
        return float(mon.interval_seconds)

    async def _observe(
        self, effects: Effects, spec: PolicySpec, book: Ledger, measurement: analysis.Measurement
    ) -> Ledger:
        """Fold a measurement into the analysis; roll back if it says so."""
        assert spec.monitoring is not None and book.serving is not None
        version = book.serving.version
        book, outcome = transitions.measured(
            book, monitoring.settings(spec.monitoring), measurement
        )
        effects.measured(version, measurement.verdict.value, outcome.message)
        if outcome.action is not analysis.Action.ROLLBACK:
            return book
        if not spec.rollback.automatic:
            effects.warn(
                "RegressionDetected", f"{version}: {outcome.message} (rollback.automatic is false)"
            )
            return book
        return await self._rollback(
            effects, spec, book, reason="AnalysisFailed", message=outcome.message
        )

    async def _rollback(
        self, effects: Effects, spec: PolicySpec, book: Ledger, *, reason: str, message: str
    ) -> Ledger:
        """Switch back to the previous good version and reject the failing one."""
        assert book.serving is not None
        failing = book.serving.version
        target = rollback.rollback_target(
            failing, [m.version for m in book.previous], set(book.rejected)
        )
        if target.version is None:
            effects.warn(target.reason, f"{target.message}; {message}")
            return await self._commit(effects, book)
        restored = next(m for m in book.previous if m.version == target.version)
        book = await self._commit(
            effects,
            transitions.rolled_back(
                book, restored, reason=reason, message=message, now=self.rt.clock()
            ),
        )
        if spec.serving is not None and spec.serving.pinned_version is None:
            # Now, even while a run is in flight: a rollback cannot wait.
            await effects.point(
                spec, serving.ModelPointer(restored.version, restored.model_key, restored.sha256)
            )
        effects.rolled_back(failing, restored.version, reason, message)
        return book

    # -- status --------------------------------------------------------------

    async def _write_status(
        self,
        body: kopf.Body,
        policy: PolicyFacts,
        spec: PolicySpec | None,
        *,
        spec_error: str | None = None,
        snap: Snapshot | None = None,
        progress: Progress | None = None,
        blocked: Failure | None = None,
    ) -> None:
        """Compute the status in memory; write only what changed; an Event for a new problem."""
        now = self.rt.clock()
        book = self._ledger or Ledger()
        data = None
        if snap is not None:
            waited = progress.waiting if progress else None
            data = status.data_counts(snap, book, waited.labels_changed if waited else None)
        waiting, running_now = (progress.waiting, progress.running) if progress else (None, None)
        observation = status.Observation(
            generation=policy.generation,
            state_root=self.layout.root,
            now=now,
            spec=spec,
            spec_error=spec_error,
            blocked=(blocked.reason, blocked.message) if blocked else None,
            waiting=(waiting.reason, waiting.message) if waiting else None,
            running=(running_now.reason, running_now.message) if running_now else None,
            data=data,
            scoring=progress.scoring if progress else None,
        )
        current = dict(body.get("status") or {})
        if self._written is not None and older(_version(body), self._written[0]):
            # The watch has not brought the last write back yet (at a thousand
            # policies it lags the Job events that wake the next step): diffed
            # against the older status, the same patch would be sent again.
            current = self._written[1]
        desired = status.build(book, current, observation)
        metrics.report_state(self.namespace, self.name, desired)
        for reason, message in status.new_problems(current, desired):
            kopf.warn(body, reason=reason, message=message)
        patch = status.merge_patch(current, desired)
        if patch:
            try:
                written = await asyncio.to_thread(
                    self.rt.kube.patch_status, self.namespace, self.name, patch
                )
                seen = _version(self.kept.body()) if self.kept is not None else None
                self._written = (written, desired) if written and older(seen, written) else None
            except ApiError as e:
                self.log.error(
                    "cannot write status: %s",
                    from_api(e, "patch status", rejected="StatusRejected"),
                )


def _version(body: kopf.Body) -> str | None:
    return (body.get("metadata") or {}).get("resourceVersion")


def _sooner(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ()))
    return f"spec.{where}: {err.get('msg')}" if where else str(err.get("msg"))
