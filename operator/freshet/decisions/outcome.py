"""What becomes of a finished run: promoted, rejected, or failed. A pure function.

The controller gathers the facts (the run's result, the Job's verdict, the
prequential measurement of the serving model, a user's pin) and acts on the
answer: only a Promoted run touches the Deployment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from freshet_contract.result import RunResult

from freshet.decisions import gate
from freshet.decisions.analysis import Measurement, Verdict
from freshet.spec import GateSpec

Outcome = Literal["Promoted", "Rejected", "Failed", "Skipped"]


@dataclass(frozen=True, slots=True)
class RunOutcome:
    outcome: Outcome
    reason: str
    message: str


def judge_run(
    *,
    result: RunResult | None,
    job_summary: str,
    gate_spec: GateSpec,
    live: Measurement | None,
    rolled_back: bool,
    pinned: str | None,
) -> RunOutcome:
    """Decide a finished run's fate, in order of precedence.

    1. No usable result (the Job died, or the trainer reported a failure): Failed;
       the trainer refused every new batch of a run that needed new data: Skipped.
    2. The serving model failed this run's prequential check: the candidate was
       gated against a suspect model, so it is held back (ServingUnderSuspicion),
       or, if that check rolled the model back, gated again by the next run
       (BaselineRolledBack). Promoting it would reset the analysis before
       failureLimit could act.
    3. The gate refuses it: Rejected with the gate's reason and numbers.
    4. A pin holds the Deployment: Rejected (Pinned), though it passed the gate.
    5. Otherwise: Promoted.
    """
    if result is not None and result.status == "Skipped":
        return RunOutcome("Skipped", result.reason, result.message)
    if result is None or result.status == "Failed" or result.model is None:
        reason = result.reason if result is not None and result.reason else "JobFailed"
        message = result.message if result is not None and result.message else job_summary
        return RunOutcome("Failed", reason, message)
    if live is not None and live.verdict is Verdict.FAIL:
        if rolled_back:
            return RunOutcome(
                "Rejected",
                "BaselineRolledBack",
                "the serving model it was gated against was rolled back; the next run is"
                " gated against the restored model",
            )
        return RunOutcome(
            "Rejected",
            "ServingUnderSuspicion",
            f"the serving model failed on this run's new data ({live.message});"
            " no promotion until it passes again or is rolled back",
        )
    verdict = gate.judge(
        gate_spec, result.metrics.candidate, result.metrics.baseline, result.metrics.dummy
    )
    if not verdict.promote:
        return RunOutcome("Rejected", str(verdict.reason), verdict.message)
    if pinned is not None:
        return RunOutcome(
            "Rejected",
            "Pinned",
            f"passed the gate ({verdict.message}) but the Deployment is pinned to {pinned}",
        )
    return RunOutcome("Promoted", str(verdict.reason), verdict.message)
