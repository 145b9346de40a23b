"""status.conditions per the Kubernetes API conventions, derived from plain facts.

Two pure steps: :func:`derive_conditions` says what each condition should be
given what the operator knows, one function per condition type whose rules are
a list in order of precedence (the first that applies wins), so no condition
is set twice in a step; and :func:`set_condition` merges one into the
existing list the way the conventions require: ``lastTransitionTime`` moves
only when ``status`` changes (so "since when" stays true), while reason,
message and ``observedGeneration`` always reflect the latest evaluation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from freshet.decisions.runs import RunPhase

ConditionStatus = Literal["True", "False", "Unknown"]


class ConditionType(StrEnum):
    READY = "Ready"
    """A gated model is serving (the printer column shows this one)."""
    TRAINING = "Training"
    DEGRADED = "Degraded"
    """The last run failed or its candidate was rejected: the model is not getting fresher."""
    DATA_HEALTHY = "DataHealthy"
    STALE = "Stale"
    """The serving model is older than monitoring.maxModelAgeSeconds."""
    RECONCILING = "Reconciling"
    """kstatus: working towards a first model (tools that wait, wait)."""
    STALLED = "Stalled"
    """kstatus: cannot make progress until someone acts (tools that wait, fail)."""


FIRST_RUN_DUE = frozenset({"Settling", "ConcurrencyLimit"})
"""Training reasons that say a run starts soon on its own."""

NEEDS_ACTION = frozenset(
    {
        "InvalidSpec",
        "Forbidden",
        "JobRejected",
        "ServiceAccountNotFound",
        "ServiceAccountNotAllowed",
        "PodsNotCreated",
        "StoreAccessDenied",
        "StoreSecretNotFound",
        "StoreSecretInvalid",
        "DeploymentNotFound",
        "ServingContainerNotFound",
        "PointerRejected",
        "RolloutStalled",
    }
)
"""Reasons that hold a policy until a person changes something (the spec, RBAC, a
Secret, a Deployment, a quota): Stalled. An outage (APIUnavailable,
StoreUnavailable) clears by itself and is not."""


@dataclass(frozen=True, slots=True)
class ConditionUpdate:
    type: ConditionType
    status: ConditionStatus
    reason: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusFacts:
    """What the conditions are computed from, read off status and the spec parse."""

    spec_error: str | None = None
    """Why the spec could not be used, when it could not."""
    serving_version: str | None = None
    last_run_id: str | None = None
    last_run_version: str | None = None
    last_run_phase: RunPhase | None = None
    last_run_reason: str | None = None
    last_run_message: str | None = None
    quarantined: int = 0
    blocked: tuple[str, str] | None = None
    """(reason, message): something outside freshet must change first."""
    waiting: tuple[str, str] | None = None
    """(reason, message): why no run started."""
    running: tuple[str, str] | None = None
    """(reason, message): how the run in flight is doing, when known."""
    live: ConditionUpdate | None = None
    """Degraded because of the live model (rolled back, failing, unmeasurable)."""
    stale: ConditionUpdate | None = None
    """Stale, when it can apply at all."""


def derive_conditions(facts: StatusFacts) -> list[ConditionUpdate]:
    """Ready, Training, Degraded, DataHealthy, Reconciling, Stalled and (when it
    applies) Stale: one each. Reconciling and Stalled follow from Ready and
    Training, in the abnormal-true polarity kstatus (kubectl wait, Flux, Helm 4's
    --wait) reads."""
    ready, training = _ready(facts), _training(facts)
    updates = [
        ready,
        training,
        _degraded(facts),
        _data_healthy(facts),
        _reconciling(facts, ready, training),
        _stalled(ready, training),
    ]
    return updates if facts.stale is None else [*updates, facts.stale]


def _ready(facts: StatusFacts) -> ConditionUpdate:
    """Precedence: invalid spec; blocked; a model serving; the first model's progress."""

    def not_ready(reason: str, message: str) -> ConditionUpdate:
        return ConditionUpdate(ConditionType.READY, "False", reason, message)

    if facts.spec_error is not None:
        return not_ready("InvalidSpec", facts.spec_error)
    if facts.blocked is not None:
        reason, message = facts.blocked
        # A model keeps serving while freshet is blocked: Ready says so, and why.
        ready: ConditionStatus = "True" if facts.serving_version is not None else "False"
        return ConditionUpdate(ConditionType.READY, ready, reason, message)
    if facts.serving_version is not None:
        # A model keeps serving while a newer one trains or after one is
        # rejected: readiness is about what users get now.
        return ConditionUpdate(
            ConditionType.READY, "True", "Serving", f"model {facts.serving_version} is serving"
        )
    phase = facts.last_run_phase
    if phase is None:
        return not_ready("AwaitingFirstRun", "no model yet; waiting for data to train on")
    if not phase.finished:
        return not_ready(
            "FirstModelTraining", f"run {facts.last_run_id} is training the first model"
        )
    detail = facts.last_run_message or facts.last_run_reason or phase.value
    if phase is RunPhase.SKIPPED:
        return not_ready("AwaitingFirstRun", f"no model yet: run {facts.last_run_id}: {detail}")
    if phase is RunPhase.REJECTED:
        return not_ready("FirstModelRejected", f"run {facts.last_run_id}: {detail}")
    return not_ready("FirstRunFailed", f"run {facts.last_run_id}: {detail}")


def _training(facts: StatusFacts) -> ConditionUpdate:
    """Precedence: a run in flight (and how it is doing); why none starts; idle."""
    phase = facts.last_run_phase
    if phase is not None and not phase.finished:
        if facts.running is not None:
            return ConditionUpdate(ConditionType.TRAINING, "True", *facts.running)
        return ConditionUpdate(
            ConditionType.TRAINING,
            "True",
            phase.value,
            f"run {facts.last_run_id} is producing {facts.last_run_version}",
        )
    if facts.waiting is not None:
        return ConditionUpdate(ConditionType.TRAINING, "False", *facts.waiting)
    return ConditionUpdate(ConditionType.TRAINING, "False", "Idle", "no run is active")


def _degraded(facts: StatusFacts) -> ConditionUpdate:
    """Precedence: the live model (rolled back, failing); the last run; as expected."""
    if facts.live is not None:
        return facts.live
    phase = facts.last_run_phase
    if phase is RunPhase.FAILED or phase is RunPhase.REJECTED:
        fallback = "RunFailed" if phase is RunPhase.FAILED else "CandidateRejected"
        return ConditionUpdate(
            ConditionType.DEGRADED,
            "True",
            facts.last_run_reason or fallback,
            f"run {facts.last_run_id} ({facts.last_run_version}) {phase.value.lower()}: "
            f"{facts.last_run_message or 'no details'}",
        )
    return ConditionUpdate(
        ConditionType.DEGRADED, "False", "AsExpected", "the last run did not fail"
    )


def _reconciling(
    facts: StatusFacts, ready: ConditionUpdate, training: ConditionUpdate
) -> ConditionUpdate:
    """True while the first model is on its way: training, or its run about to start
    (the quiet period, a free slot). Waiting for data that is not there yet, and a
    Dynamic policy's later retrains, are its steady state, not reconciling."""
    if ready.reason == "FirstModelTraining":
        return ConditionUpdate(ConditionType.RECONCILING, "True", ready.reason, ready.message)
    if facts.serving_version is None and training.reason in FIRST_RUN_DUE:
        return ConditionUpdate(ConditionType.RECONCILING, "True", training.reason, training.message)
    return ConditionUpdate(ConditionType.RECONCILING, "False", "Reconciled", "nothing in progress")


def _stalled(ready: ConditionUpdate, training: ConditionUpdate) -> ConditionUpdate:
    """True when Ready or Training says a person must act first (NEEDS_ACTION)."""
    for c in (ready, training):
        if c.reason in NEEDS_ACTION:
            return ConditionUpdate(ConditionType.STALLED, "True", c.reason, c.message)
    return ConditionUpdate(ConditionType.STALLED, "False", "Progressing", "no action needed")


def _data_healthy(facts: StatusFacts) -> ConditionUpdate:
    if facts.quarantined:
        return ConditionUpdate(
            ConditionType.DATA_HEALTHY,
            "False",
            "BatchesQuarantined",
            f"{facts.quarantined} batch(es) quarantined; see the reasons under the state root",
        )
    return ConditionUpdate(
        ConditionType.DATA_HEALTHY, "True", "NoQuarantine", "no batch quarantined"
    )


def set_condition(
    conditions: Sequence[Mapping[str, Any]],
    update: ConditionUpdate,
    *,
    generation: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """A new conditions list with ``update`` applied; the input is not modified.

    An existing condition of the same type keeps its place and, if its status
    is unchanged, its ``lastTransitionTime``; a new type is appended.
    """
    result = [dict(condition) for condition in conditions]
    fresh = {
        "type": update.type.value,
        "status": update.status,
        "reason": update.reason,
        "message": update.message,
        "observedGeneration": generation,
        "lastTransitionTime": format_time(now),
    }
    for index, current in enumerate(result):
        if current.get("type") == update.type.value:
            if current.get("status") == update.status and current.get("lastTransitionTime"):
                fresh["lastTransitionTime"] = current["lastTransitionTime"]
            result[index] = fresh
            return result
    result.append(fresh)
    return result


def set_conditions(
    conditions: Sequence[Mapping[str, Any]],
    updates: Iterable[ConditionUpdate],
    *,
    generation: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """``set_condition`` for each update in turn."""
    result = [dict(condition) for condition in conditions]
    for update in updates:
        result = set_condition(result, update, generation=generation, now=now)
    return result


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC at second precision, the form metav1.Time serializes to."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
