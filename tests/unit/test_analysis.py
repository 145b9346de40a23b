"""The analysis state machine: pass, fail, inconclusive, error, bake; and rollback targets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from freshet.decisions.analysis import (
    Action,
    Measurement,
    Phase,
    Settings,
    State,
    Verdict,
    judge,
    next_measurement,
    observe,
)
from freshet.decisions.rollback import pinned_target, rollback_target

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
SETTINGS = Settings(
    interval=timedelta(seconds=60),
    bake=timedelta(seconds=120),
    failure_limit=1,
    consecutive_error_limit=2,
)


def run(verdicts: str, settings: Settings = SETTINGS) -> list[tuple[Phase, Action]]:
    """Feed one measurement per letter (P, F, I, E) after the bake; collect phase and action."""
    codes = {"P": Verdict.PASS, "F": Verdict.FAIL, "I": Verdict.INCONCLUSIVE, "E": Verdict.ERROR}
    state = State(version="v2", since=T0)
    out = []
    for i, code in enumerate(verdicts):
        m = Measurement(
            time=T0 + settings.bake + timedelta(minutes=i), verdict=codes[code], message=code
        )
        outcome = observe(settings, state, m)
        state = outcome.state
        out.append((state.phase, outcome.action))
    return out


@pytest.mark.parametrize(
    ("verdicts", "phases", "rolls_back_at"),
    [
        ("PPPP", "HHHH", None),
        ("F", "F", None),  # failureLimit 1 tolerates one failure
        ("FF", "FR", 1),  # the second in a row rolls back
        ("FPF", "FHF", None),  # a pass resets the count
        ("FIF", "FIR", 2),  # inconclusive holds: it does not reset the count
        ("IIII", "IIII", None),  # no traffic, no labels: never a rollback
        # Errors never roll back and keep the phase (still Baking: no verdict has
        # counted yet); past the limit they put the analysis in Error.
        ("EEE", "BBE", None),
        ("EEEP", "BBEH", None),  # a pass clears an error state
        ("FEF", "FFR", 2),  # an error neither passes nor resets failures
    ],
)
def test_state_machine(verdicts: str, phases: str, rolls_back_at: int | None) -> None:
    letters = {
        Phase.HEALTHY: "H",
        Phase.FAILING: "F",
        Phase.INCONCLUSIVE: "I",
        Phase.ERROR: "E",
        Phase.ROLLED_BACK: "R",
        Phase.BAKING: "B",
    }
    result = run(verdicts)
    got = "".join(letters[p] for p, _ in result)
    assert got == phases
    actions = [i for i, (_, a) in enumerate(result) if a is Action.ROLLBACK]
    assert actions == ([] if rolls_back_at is None else [rolls_back_at])


def test_failure_limit_zero_rolls_back_on_the_first_failure() -> None:
    settings = Settings(
        timedelta(seconds=60), timedelta(0), failure_limit=0, consecutive_error_limit=4
    )
    assert run("F", settings)[0][1] is Action.ROLLBACK


def test_measurements_during_the_bake_do_not_count() -> None:
    state = State(version="v2", since=T0)
    for seconds in (0, 60, 119):
        m = Measurement(T0 + timedelta(seconds=seconds), Verdict.FAIL, "bad")
        outcome = observe(SETTINGS, state, m)
        assert outcome.action is Action.NONE
        assert outcome.state.phase is Phase.BAKING
        assert outcome.state.consecutive_failures == 0
        state = outcome.state
    assert state.measurements == 0


def test_next_measurement_waits_for_the_bake_then_follows_the_interval() -> None:
    state = State(version="v2", since=T0)
    assert next_measurement(SETTINGS, state, T0) == T0 + timedelta(seconds=120)
    m = Measurement(T0 + timedelta(seconds=130), Verdict.PASS, "ok")
    state = observe(SETTINGS, state, m).state
    assert next_measurement(SETTINGS, state, T0 + timedelta(seconds=131)) == T0 + timedelta(
        seconds=190
    )


@pytest.mark.parametrize(
    ("value", "reference", "higher", "max_reg", "min_value", "verdict"),
    [
        (None, 0.9, True, "0.05", None, Verdict.INCONCLUSIVE),
        (float("nan"), 0.9, True, "0.05", None, Verdict.ERROR),
        (0.90, 0.90, True, "0", None, Verdict.PASS),  # a tie passes
        (0.85, 0.90, True, "0.05", None, Verdict.PASS),  # exactly at the allowed regression
        (0.84, 0.90, True, "0.05", None, Verdict.FAIL),
        (0.95, None, True, "0.05", "0.8", Verdict.PASS),
        (0.75, None, True, "0.05", "0.8", Verdict.FAIL),
        (0.30, 0.20, False, "0.05", None, Verdict.FAIL),  # a loss that grew
        (0.24, 0.20, False, "0.05", None, Verdict.PASS),
        (0.6, 0.2, False, "1", "0.5", Verdict.FAIL),  # a loss above its ceiling
    ],
)
def test_judge(
    value: float | None,
    reference: float | None,
    higher: bool,
    max_reg: str,
    min_value: str | None,
    verdict: Verdict,
) -> None:
    got, message = judge(
        value=value,
        reference=reference,
        higher_is_better=higher,
        max_regression=Decimal(max_reg),
        min_value=Decimal(min_value) if min_value else None,
        what="accuracy",
    )
    assert got is verdict, message
    assert message


@pytest.mark.parametrize(
    ("serving", "previous", "rejected", "expected"),
    [
        ("v3", ["v2", "v1"], set(), "v2"),
        ("v3", ["v2", "v1"], {"v2"}, "v1"),
        ("v3", ["v3", "v2"], set(), "v2"),
        ("v3", [], set(), None),
        ("v3", ["v2"], {"v2"}, None),
    ],
)
def test_rollback_target(
    serving: str, previous: list[str], rejected: set[str], expected: str | None
) -> None:
    target = rollback_target(serving, previous, rejected)
    assert target.version == expected
    assert target.reason == ("RolledBack" if expected else "NoRollbackTarget")


def test_a_pin_must_name_a_known_version_but_may_override_a_rejection() -> None:
    assert pinned_target("v9", ["v1", "v2"], set()).version is None
    assert pinned_target("v9", ["v1", "v2"], set()).reason == "PinnedVersionUnknown"
    target = pinned_target("v1", ["v1", "v2"], {"v1"})
    assert target.version == "v1"
    assert "rejected" in target.message
