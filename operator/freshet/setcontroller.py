"""The loop of one TrainingPolicySet: read its segments, apply its children, prune,
keep the shared Deployment's segment models current, write its status once.

Like a policy's loop (controller.PolicyController) it runs as a task of the
Runtime, woken by the set's own events and by its children's (their status names
a newly promoted model), and otherwise every FOLDER_POLL_SECONDS while it has a
folder generator (folders appear in the bucket, which sends no event), else every
resync. Folders are read from the operator's shared bucket watcher: one listing
serves every set and policy on the bucket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import kopf
from pydantic import ValidationError

from freshet import policysets, serving
from freshet.failures import Failure, api_message, backoff
from freshet.gather import FIRST_LISTING_SECONDS
from freshet.kube import ApiError
from freshet.loops import Kept, sleep_or_wake
from freshet.policysets import SetSpec
from freshet.snapshot import observed

if TYPE_CHECKING:
    from freshet.controller import Runtime

FOLDER_POLL_SECONDS = 5.0


class SetLog(logging.LoggerAdapter[logging.Logger]):
    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"[{self.extra['set'] if self.extra else '?'}] {msg}", kwargs


class Problem(Exception):
    """Something the set's owner must fix; reason and message go to its Ready condition."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


class SetController:
    def __init__(self, rt: Runtime, namespace: str, name: str, uid: str) -> None:
        self.rt = rt
        self.namespace, self.name, self.uid = namespace, name, uid
        self.key = f"{namespace}/{name}"
        self.watch_key = f"TrainingPolicySet {self.key}"
        """Its subscription to the bucket watcher, apart from a policy of the same name."""
        self.wake = asyncio.Event()
        self.log = SetLog(logging.getLogger("freshet.policyset"), {"set": self.key})
        self.kept: Kept | None = None
        self.observed: tuple[int, str] | None = None
        self._errors = 0

    def keep(self, body: kopf.Body) -> None:
        """The newest object seen (Runtime.set_event keeps it current)."""
        self.kept = Kept(body)

    async def run(self) -> None:
        try:
            while True:
                self.wake.clear()
                assert self.kept is not None
                body = self.kept.body()
                try:
                    delay = await self.step(body)
                    self._errors = 0
                except Exception as e:  # a bug or an API outage: say it, back off
                    self._errors += 1
                    delay = backoff(self._errors)
                    self.log.exception("set step failed (%d in a row)", self._errors)
                    with contextlib.suppress(Exception):
                        await self._status(body, None, Problem("ReconcileFailed", str(e)))
                await sleep_or_wake(self.wake, delay)
        finally:
            if self.rt.controllers.get(self.uid) is self:
                del self.rt.controllers[self.uid]
            self.rt.watchers.unsubscribe(self.watch_key)

    async def step(self, body: kopf.Body) -> float:
        self.observed = observed(body)
        try:
            spec = SetSpec.model_validate(body.get("spec") or {})
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err.get("loc", ()))
            await self._status(body, None, Problem("InvalidSpec", f"spec.{where}: {err['msg']}"))
            return self.rt.config.resync_seconds
        try:
            found = await self._reconcile(body, spec)
        except Problem as p:
            self.log.warning("%s: %s", p.reason, p.message)
            await self._status(body, None, p)
            return self.rt.config.resync_seconds
        await self._status(body, found, found.pop("problem", None))
        return FOLDER_POLL_SECONDS if spec.folder_prefixes else self.rt.config.resync_seconds

    async def _listings(self, spec: SetSpec) -> dict[str, list[str]]:
        if not spec.folder_prefixes:
            return {}
        secret = spec.store_ref
        if secret is None:
            raise Problem("InvalidSpec", "a folders generator needs template.spec.data.storeRef")
        try:
            config = await self.rt.store_secrets.config(
                self.namespace, secret, "template.spec.data.storeRef"
            )
        except Failure as f:
            raise Problem(f.reason, f.message) from None
        watcher = self.rt.watchers.subscribe(
            self.watch_key,
            self.rt.stores.get(config),
            spec.folder_prefixes,
            FOLDER_POLL_SECONDS,
            self.wake.set,
        )
        try:
            async with asyncio.timeout(FIRST_LISTING_SECONDS):
                await watcher.listed(spec.folder_prefixes)
        except TimeoutError:
            raise Problem("StoreUnavailable", "no listing of the bucket yet") from None
        if watcher.errors:
            raise Problem("StoreUnavailable", f"cannot list the bucket: {watcher.last_error}")
        return {p: [o.key for o in watcher.objects(p)] for p in spec.folder_prefixes}

    async def _reconcile(self, body: kopf.Body, spec: SetSpec) -> dict[str, Any]:
        kube, ns = self.rt.kube, self.namespace
        wanted, skipped = policysets.segments(spec, await self._listings(spec))
        selector = f"{policysets.SET_LABEL}={self.name}"
        existing = await asyncio.to_thread(kube.list_policies, ns, selector)
        by_name = {c["metadata"]["name"]: c for c in existing}
        problem: Problem | None = None
        for segment in wanted:
            desired = policysets.render(body, spec, segment)
            name = desired["metadata"]["name"]
            if not policysets.needs_apply(desired, by_name.get(name)):
                continue
            try:
                await asyncio.to_thread(kube.apply_policy, ns, desired, policysets.FIELD_MANAGER)
            except ApiError as e:
                if e.status not in (400, 422):
                    raise
                problem = Problem("ChildRejected", f"{name}: {api_message(e)}")
                continue
            if name not in by_name:
                kopf.info(body, reason="SegmentAdded", message=f"{segment}: TrainingPolicy {name}")
                self.log.info("segment %s: created TrainingPolicy %s", segment, name)
        segments_of = {
            n: (c["metadata"].get("labels") or {}).get(policysets.SEGMENT_LABEL, "")
            for n, c in by_name.items()
        }
        pruned = policysets.to_prune(segments_of, wanted, spec.prune)
        for name in pruned:
            await asyncio.to_thread(kube.delete_policy, ns, name)
            kopf.info(body, reason="SegmentPruned", message=f"{segments_of[name]}: {name} deleted")
            self.log.info("segment %s is gone: deleted TrainingPolicy %s", segments_of[name], name)
        live = [c for n, c in by_name.items() if n not in pruned]
        models = policysets.segment_models(
            c for c in live if segments_of.get(c["metadata"]["name"]) in set(wanted)
        )
        if spec.serving is not None:
            problem = await self._serve(spec, models) or problem
        ready = sum(
            1
            for c in live
            for cond in (c.get("status") or {}).get("conditions") or []
            if cond.get("type") == "Ready" and cond.get("status") == "True"
        )
        return {
            "segments": len(wanted),
            "children": len(
                set(by_name) - set(pruned) | {policysets.child_name(self.name, s) for s in wanted}
            ),
            "ready": ready,
            "serving": len(models),
            "skipped": skipped,
            "problem": problem,
        }

    async def _serve(self, spec: SetSpec, models: Mapping[str, Any]) -> Problem | None:
        assert spec.serving is not None
        name = spec.serving.deployment_ref.name
        dep = await asyncio.to_thread(self.rt.kube.deployment, self.namespace, name)
        if dep is None:
            return Problem("DeploymentNotFound", f"Deployment {name} (spec.serving.deploymentRef)")
        try:
            container = serving.container_name(dep, spec.serving.container)
        except serving.ServingError as e:
            return Problem("ServingContainerNotFound", str(e))
        patch = policysets.serving_patch(name, container, models)
        value = patch["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"]
        if policysets.served_models(dep, container) != value:
            await asyncio.to_thread(
                self.rt.kube.apply_deployment, self.namespace, patch, policysets.FIELD_MANAGER
            )
            self.log.info("serving Deployment %s: %d segment model(s)", name, len(models))
        return None

    async def _status(
        self, body: kopf.Body, found: dict[str, Any] | None, problem: Problem | None
    ) -> None:
        current = dict(body.get("status") or {})
        generation = int(body["metadata"].get("generation", 0))
        if problem is None:
            counts = found or {}
            ready = (
                "True",
                "Applied",
                f"{counts.get('segments', 0)} segment(s),"
                f" {counts.get('serving', 0)} with a promoted model",
            )
        else:
            ready = ("False", problem.reason, problem.message)
        old: dict[str, Any] = next(
            (c for c in current.get("conditions") or [] if c.get("type") == "Ready"), {}
        )
        since = old.get("lastTransitionTime") if old.get("status") == ready[0] else None
        status: dict[str, Any] = {
            **({k: v for k, v in current.items() if k != "conditions"} if found is None else {}),
            **(found or {}),
            "observedGeneration": generation,
            "conditions": [
                {
                    "type": "Ready",
                    "status": ready[0],
                    "reason": ready[1],
                    "message": ready[2],
                    "observedGeneration": generation,
                    "lastTransitionTime": since or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
            ],
        }
        if problem is not None and old.get("reason") != problem.reason:
            kopf.warn(body, reason=problem.reason, message=problem.message)
        if status != current:
            await asyncio.to_thread(
                self.rt.kube.patch_set_status, self.namespace, self.name, status
            )
