"""Every write a step makes, and every Event and metric it emits, in one place.

The order the invariants need is kept by the callers in `controller`, and each
write here turns the errors it can meet into a classified `failures.Failure`:
run spec, then ledger, then Job (the Job never exists without a saved intent);
quarantine moves before the ledger records them; the Deployment pointer; Job
pruning last.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import kopf
from freshet_contract.document import Document, to_document
from freshet_contract.layout import StateLayout
from freshet_contract.result import QuarantinedBatch, RunResult
from freshet_contract.run import RunSpec
from freshet_contract.scoring import ScoringSpec

from freshet import jobs, ledger, metrics, names, serving
from freshet.decisions import drift
from freshet.failures import STORE_ERRORS, Failure, from_api, from_store
from freshet.kube import ApiError, Kube
from freshet.ledger import Ledger, RunIntent, ScoringIntent, ScoringRecord
from freshet.objectstore import ObjectStore
from freshet.snapshot import PolicyFacts
from freshet.spec import PolicySpec
from freshet.transitions import Judged, trained_batches

KEEP_FINISHED_JOBS = 3


class Effects:
    """The writes of one policy, against its cluster objects and its bucket."""

    def __init__(
        self,
        kube: Kube,
        store: ObjectStore,
        policy: PolicyFacts,
        body: kopf.Body,
        log: logging.LoggerAdapter[logging.Logger],
    ) -> None:
        self.kube, self.store, self.policy, self.body, self.log = kube, store, policy, body, log
        self.layout = StateLayout.for_policy(policy.namespace, policy.name)
        self._labels = (policy.namespace, policy.name)

    # -- the bucket ------------------------------------------------------------

    async def save(self, book: Ledger) -> None:
        await self._store("save the ledger", ledger.save, self.store, self.layout.ledger_key, book)

    async def write_document(self, what: str, key: str, doc: Document) -> None:
        body = to_document(doc)
        await self._store(f"write {what} {key}", self.store.put_json, key, body)

    async def write_run_spec(self, key: str, run_spec: RunSpec) -> None:
        doc = run_spec.model_dump(by_alias=True, mode="json")
        await self._store(f"write the run spec {key}", self.store.put_json, key, doc)

    async def quarantine(self, refused: list[QuarantinedBatch]) -> set[str]:
        """Move refused batches (or scoring inputs) out of their prefix, each with its
        reason document.

        Only the exact content the trainer refused is moved: if the producer has
        since overwritten the key (a new ETag), the new content is a new batch.
        """
        moved: set[str] = set()
        for q in refused:
            target = self.layout.quarantine_key(q.key)
            reason_doc = q.model_dump(by_alias=True, mode="json")

            def move(
                q_key: str = q.key,
                q_etag: str = q.etag,
                doc: dict[str, Any] = reason_doc,
                to: str = target,
            ) -> None:
                self.store.put_json(self.layout.quarantine_reason_key(q_key), doc)
                if self.store.etag(q_key) == q_etag:
                    self.store.move(q_key, to)

            await self._store(f"quarantine {q.key}", move)
            moved.add(q.key)
            metrics.BATCHES_QUARANTINED.labels(*self._labels).inc()
            self.warn("Quarantined", f"{q.key} moved to {target}: {q.reason}")
            self.log.warning("batch %s quarantined: %s", q.key, q.reason)
        return moved

    async def _store(self, what: str, fn: Any, *args: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args)
        except STORE_ERRORS as e:
            raise from_store(e, what) from e

    # -- the cluster -----------------------------------------------------------

    async def check_job_prerequisites(self, spec: PolicySpec) -> None:
        """What the Job needs and the API server would refuse, or only report on its pods."""
        sa, ns = spec.training.service_account_name, self.policy.namespace
        if sa is None or sa == "default":
            return
        exists = self.kube.service_account_exists
        if not await self._api(f"read ServiceAccount {sa}", exists, ns, sa):
            raise Failure(
                "ServiceAccountNotFound",
                f"ServiceAccount {sa!r} (spec.training.serviceAccountName) not found in"
                f" {ns}; training waits for it",
                delay=30.0,
            )
        annotations = await self._api(f"read Namespace {ns}", self.kube.namespace_annotations, ns)
        if sa not in names.allowed_training_accounts(annotations):
            raise Failure(
                "ServiceAccountNotAllowed",
                f"ServiceAccount {sa!r} (spec.training.serviceAccountName) is not allowed to"
                f" run training Jobs in {ns}: its admin lists it in the namespace annotation"
                f" {names.TRAINING_ACCOUNTS_ANNOTATION}; training waits for it",
                delay=30.0,
            )

    async def create_scoring_job(self, spec: PolicySpec, scoring: ScoringSpec) -> None:
        job = jobs.build_scoring_job(spec, scoring, self.store.config)
        await self._api(
            f"create Job {scoring.run_id}",
            self.kube.create_job,
            self.policy.namespace,
            job,
            rejected="JobRejected",
        )

    async def create_job(
        self, spec: PolicySpec, run_spec: RunSpec, *, preprocess: bool = False
    ) -> None:
        """The run's training Job, or with `preprocess` its prep Job."""
        build = jobs.build_prep_job if preprocess else jobs.build_job
        job = build(spec, run_spec, self.store.config)
        await self._api(
            f"create Job {job['metadata']['name']}",
            self.kube.create_job,
            self.policy.namespace,
            job,
            rejected="JobRejected",
        )

    async def point(
        self, spec: PolicySpec, pointer: serving.ModelPointer, *, reapply: bool = False
    ) -> dict[str, Any]:
        """Point the serving Deployment at a model; return the Deployment as it now is.

        Nothing is written when it already runs that version, unless `reapply`
        (a promotion re-asserts its fields once, in case someone edited them).
        """
        assert spec.serving is not None
        name, ns = spec.serving.deployment_ref.name, self.policy.namespace
        dep = await self._api(f"read Deployment {name}", self.kube.deployment, ns, name)
        if dep is None:
            raise Failure(
                "DeploymentNotFound",
                f"Deployment {name!r} (spec.serving.deploymentRef) not found;"
                f" {pointer.version} waits to be deployed",
            )
        if serving.served_version(dep) == pointer.version and not reapply:
            return dict(dep)
        try:
            container = serving.container_name(dep, spec.serving.container)
        except serving.ServingError as e:
            raise Failure("ServingContainerNotFound", str(e)) from e
        await self._api(
            f"apply the model pointer to Deployment {name}",
            self.kube.apply_deployment,
            ns,
            serving.apply_patch(name, container, pointer),
            rejected="PointerRejected",
        )
        self.log.info("Deployment %s pointed at %s", name, pointer.version)
        applied = await self._api(f"read Deployment {name}", self.kube.deployment, ns, name)
        return dict(applied or dep)

    async def patch_status(self, patch: dict[str, Any]) -> None:
        await self._api(
            "patch the policy's status",
            self.kube.patch_status,
            self.policy.namespace,
            self.policy.name,
            patch,
            rejected="StatusRejected",
        )

    async def prune_jobs(self) -> None:
        """Keep the newest finished Jobs for `kubectl logs`; the record lives in the store."""
        await self._api("prune finished Jobs", self._prune)

    def _prune(self) -> None:
        ns = self.policy.namespace
        selector = f"{names.POLICY_LABEL}={self.policy.name}"
        finished: list[tuple[str, str]] = []  # (created, name)
        for job in self.kube.jobs(ns, selector):
            meta, status = job.get("metadata") or {}, job.get("status") or {}
            if (status.get("succeeded") or status.get("failed")) and any(
                o.get("uid") == self.policy.uid for o in meta.get("ownerReferences") or []
            ):
                # RFC 3339 UTC timestamps sort as text.
                finished.append((str(meta.get("creationTimestamp") or ""), str(meta["name"])))
        finished.sort(reverse=True)
        for _, name in finished[KEEP_FINISHED_JOBS:]:
            self.kube.delete_job(ns, name)

    async def _api(self, what: str, fn: Any, *args: Any, rejected: str = "Rejected") -> Any:
        try:
            return await asyncio.to_thread(fn, *args)
        except ApiError as e:
            raise from_api(e, what, rejected=rejected) from e

    # -- Events and metrics ----------------------------------------------------

    def info(self, reason: str, message: str) -> None:
        kopf.info(self.body, reason=reason, message=message)

    def warn(self, reason: str, message: str) -> None:
        kopf.warn(self.body, reason=reason, message=message)

    def run_started(self, intent: RunIntent, window_holds: str, first_seen: list[float]) -> None:
        for seen in first_seen:
            metrics.TRIGGER_LATENCY.observe(time.monotonic() - seen)
        metrics.TRAININGS.labels(*self._labels, "started").inc()
        if intent.trigger == "Backfill":
            metrics.BACKFILLS.labels(*self._labels).inc()
        self.log.info(
            "run %s started for %s: %s (%s batches in window, %d new)",
            intent.run_id,
            intent.version,
            intent.message,
            window_holds,
            len(intent.new_batches),
        )
        self.info(
            "Triggered",
            f"run {intent.run_id} trains {intent.version}: {intent.message}; "
            f"{window_holds} batch(es) in the window",
        )

    def scoring_started(self, intent: ScoringIntent) -> None:
        self.log.info(
            "scoring run %s started: %d input(s) with %s",
            intent.run_id,
            len(intent.inputs),
            intent.version,
        )
        self.info(
            "ScoringStarted",
            f"run {intent.run_id} scores {len(intent.inputs)} input(s) with {intent.version}",
        )

    def scoring_finished(self, record: ScoringRecord) -> None:
        if record.outcome == "Succeeded":
            self.log.info("scoring run %s done: %s", record.run_id, record.message)
            self.info("Scored", f"run {record.run_id} ({record.version}): {record.message}")
        else:
            self.log.warning("scoring run %s failed: %s", record.run_id, record.message)
            self.warn("ScoringFailed", f"run {record.run_id} ({record.version}): {record.message}")

    def run_preprocessed(self, intent: RunIntent, batches: int, refused: int) -> None:
        self.log.info(
            "run %s (%s) preprocessed: %d batch(es) prepared, %d refused; training next",
            intent.run_id,
            intent.version,
            batches,
            refused,
        )
        self.info(
            "Preprocessed",
            f"run {intent.run_id} ({intent.version}): {batches} batch(es) prepared,"
            f" {refused} refused before the step; training next",
        )

    def run_finished(
        self,
        intent: RunIntent,
        judged: Judged,
        result: RunResult | None,
        *,
        message: str,
        consumed: int,
    ) -> None:
        """Every Event and metric of a recorded run; `message` is the recorded one."""
        labels, outcome = self._labels, judged.outcome
        metrics.BATCHES_CONSUMED.labels(*labels).inc(consumed)
        drifted = result.drift if result is not None else []
        for d in drifted:
            metrics.DRIFT_DETECTED.labels(*labels, str(d.action)).inc()
        for notice in drift.notices(drifted):
            (self.warn if notice.warning else self.info)("DriftDetected", notice.message)
            self.log.info("drift detected: %s", notice.message)
        v = intent.version
        if outcome == "Failed":
            metrics.TRAININGS.labels(*labels, "failed").inc()
            self.warn("TrainingFailed", f"{v}: {judged.reason}: {message}")
        elif outcome == "Skipped":
            metrics.TRAININGS.labels(*labels, "skipped").inc()
            self.info("RunSkipped", f"{v} not trained, the version stays free: {message}")
        else:
            metrics.TRAININGS.labels(*labels, "succeeded").inc()
            self.info(
                "Trained",
                f"{v} trained by {intent.run_id} on {trained_batches(intent, result)} batch(es)",
            )
        if outcome == "Rejected":
            metrics.GATE_REJECTIONS.labels(*labels).inc()
            self.warn("GateRejected", f"{v}: {message}")
        if outcome == "Promoted":
            metrics.PROMOTIONS.labels(*labels).inc()
            self.info("Promoted", f"{v} is serving: {message}")
        self.log.info("run %s (%s) %s: %s: %s", intent.run_id, v, outcome, judged.reason, message)

    def rolled_back(self, failing: str, restored: str, reason: str, message: str) -> None:
        metrics.ROLLBACKS.labels(*self._labels).inc()
        self.warn("RolledBack", f"{failing} -> {restored} ({reason}): {message}")
        self.log.warning("rolled back %s -> %s: %s: %s", failing, restored, reason, message)

    def measured(self, version: str, verdict: str, message: str) -> None:
        metrics.MEASUREMENTS.labels(*self._labels, verdict).inc()
        self.log.info("measured %s: %s: %s", version, verdict, message)
