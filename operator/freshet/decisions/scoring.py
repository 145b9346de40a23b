"""Batch scoring (spec.scoring): what to score, when, and how a scoring run ends.
Pure, over one snapshot, like decisions.step for training.

What to score: every input under scoring.prefix whose (key, ETag) the model the
Deployment runs has not scored, unless quarantined; with rescoreOnPromotion
false, only inputs no version has scored. When: at once, or at the schedule's
times; after a failed run, the same inputs back off as training runs do. A
scoring run is independent of training: the two may be in flight together.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from croniter import croniter
from freshet_contract.layout import StateLayout
from freshet_contract.run import ModelRef as RunModelRef
from freshet_contract.scoring import ScoringManifest, ShardReport

from freshet.batches import Batch
from freshet.decisions.runs import HASH_HEX, _dns_label_part
from freshet.ledger import BatchRef, ModelRef, ScoringIntent
from freshet.snapshot import JobView, Snapshot

NAME_PART_MAX = 40


def run_id(policy_name: str, uid: str, version: str, inputs: Iterable[Batch], attempt: int) -> str:
    """``<policy ≤40>-s<10 hex>``: the same version over the same inputs (and attempt)
    is the same run, so a replayed intent finds its Job instead of making another."""
    lines = [uid, "scoring", version, *sorted(f"{b.key}:{b.etag}" for b in inputs)]
    if attempt > 0:
        lines.append(str(attempt))
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:HASH_HEX]
    return f"{_dns_label_part(policy_name)[: NAME_PART_MAX - 1].strip('-')}-s{digest}"


def pending(s: Snapshot, model: ModelRef) -> list[Batch]:
    spec = s.spec.scoring
    assert spec is not None
    held = s.held
    done = s.ledger.scored.get(model.version, {})
    everywhere = {k: e for scored in s.ledger.scored.values() for k, e in scored.items()}
    return [
        b
        for b in s.scoring_inputs
        if held.get(b.key) != b.etag
        and done.get(b.key) != b.etag
        and (spec.rescore_on_promotion or everywhere.get(b.key) != b.etag)
    ]


@dataclass(frozen=True, slots=True)
class Wait:
    reason: str
    message: str
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class Start:
    intent: ScoringIntent


def plan(s: Snapshot, model: ModelRef | None) -> Wait | Start:
    spec, book = s.spec.scoring, s.ledger
    assert spec is not None
    if model is None:
        return Wait("NoModel", "nothing to score with until a model serves")
    todo = pending(s, model)
    if not todo:
        return Wait("UpToDate", f"every input is scored with {model.version}")
    if book.scoring_retry_not_before is not None and s.now < book.scoring_retry_not_before:
        wait = (book.scoring_retry_not_before - s.now).total_seconds()
        return Wait("Backoff", f"the last scoring run failed; trying again in {wait:.0f}s", wait)
    if spec.schedule is not None:
        anchor = book.last_scoring_schedule or s.policy.created or s.now
        due: datetime = croniter(spec.schedule, anchor).get_next(datetime)
        if due > s.now:
            return Wait(
                "Scheduled",
                f"{len(todo)} input(s) wait for the schedule ({due:%Y-%m-%dT%H:%M:%SZ})",
                (due - s.now).total_seconds(),
            )
    rid = run_id(s.policy.name, s.policy.uid, model.version, todo, book.scoring_failures)
    layout = StateLayout.for_policy(s.policy.namespace, s.policy.name)
    return Start(
        ScoringIntent(
            run_id=rid,
            version=model.version,
            inputs=[BatchRef.of(b) for b in todo],
            spec_key=layout.scoring_spec_key(rid),
            created_time=s.now,
        )
    )


@dataclass(frozen=True, slots=True)
class Replay:
    """The intent is saved, its Job is missing: create it from the written spec."""


@dataclass(frozen=True, slots=True)
class Running:
    message: str


@dataclass(frozen=True, slots=True)
class Finished:
    """The Job succeeded and every shard reported: write `manifest` last, then record."""

    manifest: ScoringManifest


@dataclass(frozen=True, slots=True)
class Failed:
    message: str


def track(
    intent: ScoringIntent,
    job: JobView | None,
    reports: list[ShardReport] | None,
    shards: int,
    model: ModelRef,
) -> Replay | Running | Finished | Failed:
    if job is None:
        return Replay()
    if job.finished is None:
        if job.pods_not_created:
            return Running(f"Job {intent.run_id} cannot create pods: {job.message}")
        return Running(f"scoring {len(intent.inputs)} input(s) with {intent.version}")
    if job.finished == "failed":
        return Failed(f"Job {intent.run_id} failed: {job.message}")
    if reports is None or len(reports) != shards:
        return Failed(f"Job {intent.run_id} completed, but not every shard wrote its report")
    return Finished(
        ScoringManifest(
            run_id=intent.run_id,
            model=RunModelRef(
                version=model.version, model_key=model.model_key, sha256=model.sha256
            ),
            scored=[s for r in sorted(reports, key=lambda r: r.index) for s in r.scored],
            refused=[q for r in sorted(reports, key=lambda r: r.index) for q in r.refused],
        )
    )
