"""Is the live model still good? The analysis state machine behind automatic rollback.

Semantics follow what users know from Argo Rollouts' AnalysisRun and Flagger:

- a measurement is taken every ``interval`` (Prometheus) or per labelled batch
  (prequential), and judged Pass, Fail, Inconclusive or Error;
- nothing counts during the ``bake`` period right after a promotion (a cold
  cache or a traffic shift is not a regression);
- ``failureLimit`` failed measurements in a row are tolerated; one more rolls
  back (Argo's rule: the analysis fails when failures exceed the limit, so 0
  means the first failure rolls back);
- Inconclusive (no traffic, no matured labels) holds: it neither passes nor
  fails, so a quiet night does not roll a model back, and it does not reset the
  failure count either, so a quiet minute does not hide a regression;
- errors (the metric source is down, a query is wrong) never roll back; more
  than ``consecutiveErrorLimit`` in a row put the analysis in Error, which the
  operator reports as a condition instead of passing silently.

Everything here is pure: the controller feeds measurements and acts on the
returned action.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum


class Verdict(StrEnum):
    PASS = "Pass"
    FAIL = "Fail"
    INCONCLUSIVE = "Inconclusive"
    ERROR = "Error"


class Phase(StrEnum):
    """status.monitoring.phase: what the analysis currently concludes."""

    BAKING = "Baking"
    HEALTHY = "Healthy"
    FAILING = "Failing"
    INCONCLUSIVE = "Inconclusive"
    ERROR = "Error"
    ROLLED_BACK = "RolledBack"


class Action(StrEnum):
    NONE = "None"
    ROLLBACK = "Rollback"


@dataclass(frozen=True, slots=True)
class Settings:
    interval: timedelta
    bake: timedelta
    failure_limit: int
    consecutive_error_limit: int


@dataclass(frozen=True, slots=True)
class Measurement:
    """One judged observation of the live model."""

    time: datetime
    verdict: Verdict
    message: str
    value: float | None = None
    reference: float | None = None


@dataclass(frozen=True, slots=True)
class State:
    """The analysis of one serving version; a promotion or rollback starts a new one."""

    version: str
    since: datetime
    """When this version started serving: the bake period counts from here."""
    consecutive_failures: int = 0
    consecutive_errors: int = 0
    measurements: int = 0
    phase: Phase = Phase.BAKING
    last: Measurement | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    state: State
    action: Action
    message: str


def judge(
    *,
    value: float | None,
    reference: float | None,
    higher_is_better: bool,
    max_regression: Decimal,
    min_value: Decimal | None,
    what: str,
) -> tuple[Verdict, str]:
    """Judge one live metric value against its reference and the absolute floor.

    ``value`` None means there was nothing to measure (no traffic, no labels):
    Inconclusive. A non-finite value is an error of the source, not a verdict
    on the model. The reference is what the model is compared with on the same
    data (the previous good model for prequential monitoring), or None.
    """
    if value is None:
        return Verdict.INCONCLUSIVE, f"no {what} to judge (no traffic or no labelled rows)"
    if not math.isfinite(value):
        return Verdict.ERROR, f"{what} is {value}"
    live = Decimal(repr(value))
    if min_value is not None:
        below = live < min_value if higher_is_better else live > min_value
        if below:
            return Verdict.FAIL, f"{what} {live} is worse than minValue {min_value}"
    if reference is not None and math.isfinite(reference):
        ref = Decimal(repr(reference))
        regression = ref - live if higher_is_better else live - ref
        if regression > max_regression:
            return (
                Verdict.FAIL,
                f"{what} {live} vs reference {ref}: regression {regression} "
                f"> maxRegression {max_regression}",
            )
        return Verdict.PASS, f"{what} {live} vs reference {ref} (regression {regression})"
    return Verdict.PASS, f"{what} {live}"


def within_bounds(
    value: float, low: Decimal | None, high: Decimal | None, what: str
) -> tuple[Verdict, str]:
    """Pass within [low, high] (either may be None), fail outside; the numbers in the message."""
    live = Decimal(repr(value))
    if low is not None and live < low:
        return Verdict.FAIL, f"{what} {live} < minValue {low}"
    if high is not None and live > high:
        return Verdict.FAIL, f"{what} {live} > maxValue {high}"
    return Verdict.PASS, f"{what} {live} within bounds"


def observe(settings: Settings, state: State, m: Measurement) -> Outcome:
    """Fold one measurement into the analysis of the serving version."""
    if m.time < state.since + settings.bake:
        baking = replace(state, phase=Phase.BAKING, last=m)
        return Outcome(baking, Action.NONE, f"baking until {state.since + settings.bake}")
    counted = replace(state, measurements=state.measurements + 1, last=m)
    if m.verdict is Verdict.PASS:
        healthy = replace(
            counted, consecutive_failures=0, consecutive_errors=0, phase=Phase.HEALTHY
        )
        return Outcome(healthy, Action.NONE, m.message)
    if m.verdict is Verdict.INCONCLUSIVE:
        held = replace(counted, consecutive_errors=0, phase=Phase.INCONCLUSIVE)
        return Outcome(held, Action.NONE, m.message)
    if m.verdict is Verdict.ERROR:
        errors = counted.consecutive_errors + 1
        phase = Phase.ERROR if errors > settings.consecutive_error_limit else state.phase
        erred = replace(counted, consecutive_errors=errors, phase=phase)
        return Outcome(
            erred,
            Action.NONE,
            f"{m.message} ({errors} error(s) in a row, limit {settings.consecutive_error_limit})",
        )
    failures = counted.consecutive_failures + 1
    failing = replace(counted, consecutive_failures=failures, consecutive_errors=0)
    if failures > settings.failure_limit:
        return Outcome(
            replace(failing, phase=Phase.ROLLED_BACK),
            Action.ROLLBACK,
            f"{failures} failed measurement(s) in a row (failureLimit {settings.failure_limit}):"
            f" {m.message}",
        )
    return Outcome(
        replace(failing, phase=Phase.FAILING),
        Action.NONE,
        f"{failures} of {settings.failure_limit + 1} failures before rollback: {m.message}",
    )


def next_measurement(settings: Settings, state: State, now: datetime) -> datetime:
    """When the next interval-driven measurement is due (the end of the bake, at the earliest)."""
    start = state.since + settings.bake
    if state.last is None or state.last.time < start:
        return max(start, now) if start > now else now
    return state.last.time + settings.interval
