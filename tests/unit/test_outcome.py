"""The fate of a finished run, decided purely: failed, held back, rejected, pinned, promoted."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from freshet.decisions.analysis import Measurement, Verdict
from freshet.decisions.outcome import judge_run
from freshet.spec import GateSpec
from freshet_contract.result import RunResult

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
GATE = GateSpec.model_validate({"metric": "accuracy", "maxRegression": "0.02"})


def result(candidate: float = 0.9, baseline: float | None = 0.9, **kw: object) -> RunResult:
    doc: dict[str, object] = {
        "runId": "r",
        "status": "Succeeded",
        "model": {"version": "v2", "modelKey": "k", "sha256": "0" * 64, "manifestKey": "m"},
        "metrics": {
            "candidate": {"accuracy": candidate},
            "baseline": None if baseline is None else {"accuracy": baseline},
            "dummy": {"accuracy": 0.5},
        },
    }
    doc.update(kw)
    return RunResult.model_validate(doc)


FAILED = RunResult.model_validate(
    {"runId": "r", "status": "Failed", "reason": "NoTrainingData", "message": "none passed"}
)
FAIL = Measurement(NOW, Verdict.FAIL, "live accuracy 0.5 vs reference 0.9")
PASS = Measurement(NOW, Verdict.PASS, "live accuracy 0.9")


@pytest.mark.parametrize(
    ("res", "live", "rolled_back", "pinned", "expected"),
    [
        (None, None, False, None, ("Failed", "JobFailed")),
        (FAILED, None, False, None, ("Failed", "NoTrainingData")),
        (result(), FAIL, False, None, ("Rejected", "ServingUnderSuspicion")),
        (result(), FAIL, True, None, ("Rejected", "BaselineRolledBack")),
        (result(), PASS, False, None, ("Promoted", "Passed")),
        (result(), None, False, None, ("Promoted", "Passed")),
        (result(baseline=None), None, False, None, ("Promoted", "FirstModel")),
        (result(candidate=0.8), None, False, None, ("Rejected", "Regressed")),
        (result(candidate=0.5), None, False, None, ("Rejected", "NotBetterThanDummy")),
        (result(), None, False, "v1", ("Rejected", "Pinned")),
        # A failed run is failed, whatever the serving model did.
        (FAILED, FAIL, False, None, ("Failed", "NoTrainingData")),
        # The gate refuses before a pin is considered.
        (result(candidate=0.8), None, False, "v1", ("Rejected", "Regressed")),
    ],
)
def test_judge_run(
    res: RunResult | None,
    live: Measurement | None,
    rolled_back: bool,
    pinned: str | None,
    expected: tuple[str, str],
) -> None:
    decided = judge_run(
        result=res,
        job_summary="Job r failed: BackoffLimitExceeded",
        gate_spec=GATE,
        live=live,
        rolled_back=rolled_back,
        pinned=pinned,
    )
    assert (decided.outcome, decided.reason) == expected
    assert decided.message


def test_a_dead_job_reports_what_the_job_controller_said() -> None:
    decided = judge_run(
        result=None,
        job_summary="Job r failed: BackoffLimitExceeded: too many retries",
        gate_spec=GATE,
        live=None,
        rolled_back=False,
        pinned=None,
    )
    assert decided.message == "Job r failed: BackoffLimitExceeded: too many retries"
