"""Everything one step knows, frozen: the input of the pure step decisions.

A step gathers the facts once (the policy resource, its spec, the ledger as
last saved, the bucket watcher's listing, the released keys, the run's Job and
result, the operator-wide run slots, the clock) and decides over this value
only, so a decision never sees a half-updated ledger or reads the world twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from freshet_contract.layout import StateLayout
from freshet_contract.preprocess import PreparedData
from freshet_contract.result import RunResult
from freshet_contract.run import RunSpec
from freshet_contract.scoring import ShardReport

from freshet import names
from freshet.batches import Batch
from freshet.ledger import Ledger, ModelRef
from freshet.spec import PolicySpec


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyFacts:
    """What the step reads off the TrainingPolicy object itself."""

    namespace: str
    name: str
    uid: str
    generation: int
    created: datetime | None
    retrain_request: str | None
    """The freshet.dev/retrain annotation."""
    rollback_request: str | None
    """The freshet.dev/rollback annotation."""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def of(cls, body: Any, namespace: str, name: str, uid: str) -> PolicyFacts:
        meta = body.get("metadata") or {}
        annotations = meta.get("annotations") or {}
        return cls(
            namespace=namespace,
            name=name,
            uid=uid,
            generation=int(meta.get("generation", 0)),
            created=parse_time(meta.get("creationTimestamp")),
            retrain_request=annotations.get(names.RETRAIN_ANNOTATION),
            rollback_request=annotations.get(names.ROLLBACK_ANNOTATION),
        )


@dataclass(frozen=True, slots=True)
class JobView:
    """The run's Job as the step saw it."""

    finished: Literal["succeeded", "failed"] | None
    message: str
    """The Job's failure condition, or why its pods cannot be created."""
    pods_not_created: bool = False
    """The Job controller reports FailedCreate and no pod exists: it will not run."""


@dataclass(frozen=True, slots=True)
class Slots:
    """Operator-wide runs in flight, not counting this policy's."""

    runs_elsewhere: int
    backfills_elsewhere: int
    max_runs: int
    max_backfills: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    now: datetime
    policy: PolicyFacts
    spec: PolicySpec
    ledger: Ledger
    """As last saved: a step's transitions build new ledgers from it."""
    bucket: str
    batches: tuple[Batch, ...]
    """Listed under spec.data.prefix."""
    label_objects: tuple[Batch, ...] = ()
    """Listed under spec.data.labels.prefix."""
    released: frozenset[str] = frozenset()
    """Quarantined keys put back by `kubectl freshet quarantine release` (see gather)."""
    streaming: bool = False
    """The bucket announces changes (notifications) rather than being polled."""
    slots: Slots
    job: JobView | None = None
    """The run's Job; None when there is no run or its Job does not exist."""
    run_spec: RunSpec | None = None
    """The run intent's spec document, read when its Job is missing (to replay it),
    and when its prep Job has finished (to add the prepared data)."""
    prep_job: JobView | None = None
    """A preprocessing run's prep Job; None when it does not exist (or no such phase)."""
    prepared: PreparedData | None = None
    """The prep Job's manifest, read once it succeeded."""
    prepared_error: str | None = None
    """The manifest is missing or the contract cannot read it."""
    foreign_baseline: ModelRef | None = None
    """The serving model of spec.baselineFrom's policy (a TrainingPolicySet's global)."""
    scoring_inputs: tuple[Batch, ...] = ()
    """Listed under spec.scoring.prefix."""
    scoring_job: JobView | None = None
    """The batch scoring run's Job, while one is in flight."""
    shard_reports: list[ShardReport] | None = None
    """Every shard's report, once the scoring Job succeeded; None if one is missing."""
    result: RunResult | None = None
    result_error: str | None = None
    """The run wrote a result the contract cannot read."""

    @property
    def held(self) -> dict[str, str]:
        """Quarantined keys and ETags, released ones not counted."""
        return {k: e for k, e in self.ledger.quarantined.items() if k not in self.released}

    def pending(self) -> list[Batch]:
        """Batches under the prefix not consumed by a recorded run and not held back."""
        consumed, held = self.ledger.consumed_etags(), self.held
        return [
            b for b in self.batches if consumed.get(b.key) != b.etag and held.get(b.key) != b.etag
        ]


def find_released(
    etag: Callable[[str], str | None],
    layout: StateLayout,
    quarantined: Mapping[str, str],
    listed: tuple[Batch, ...],
) -> frozenset[str]:
    """Quarantined batches (and label files) put back by `kubectl freshet quarantine release`.

    A released batch keeps its ETag, so the ledger alone would ignore it
    forever: one that is under the prefix again and gone from quarantine/
    is pending again. Only keys listed with their quarantined ETag are
    checked (`etag` is a store call): none outside a release, or a few for one
    listing interval right after a move (still in quarantine/, so still ignored).
    """
    candidates = [b.key for b in listed if quarantined.get(b.key) == b.etag]
    return frozenset(k for k in candidates if etag(layout.quarantine_key(k)) is None)


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def observed(body: Any) -> tuple[int, str]:
    """(generation, annotations) of an object: what a loop wakes for when it changes."""
    meta = body.get("metadata") or {}
    return int(meta.get("generation", 0)), json.dumps(meta.get("annotations") or {}, sort_keys=True)
