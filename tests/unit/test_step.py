"""decisions.step and transitions: the "what now" rules of a step, and the ledgers they lead to."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from freshet import transitions
from freshet.batches import Batch
from freshet.decisions import step
from freshet.ledger import BatchRef, Ledger, ModelRef, RefusedSpec
from freshet.snapshot import JobView, Slots, Snapshot
from freshet.spec import PolicySpec
from freshet.transitions import Judged
from policies import a_snapshot, minimal_spec

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
B0 = Batch("spam/incoming/b0.csv", "e0", 100, NOW - timedelta(minutes=5))


def spec(**changes: Any) -> PolicySpec:
    doc = minimal_spec("Dynamic")
    doc["trigger"] = {"onArrival": {"minBatches": 1, "quietSeconds": 1}}
    for key, value in changes.items():
        doc[key] = value
    return PolicySpec.model_validate(doc)


def snapshot(**changes: Any) -> Snapshot:
    snap: Snapshot = a_snapshot(NOW, spec(), batches=(B0,))
    return replace(snap, **changes)


def test_new_data_starts_a_run_whose_intent_names_the_run_spec() -> None:
    planned = step.plan(snapshot())
    assert isinstance(planned, step.Start)
    assert planned.intent.version == "v1"
    assert planned.intent.run_id == planned.run_spec.run_id
    assert planned.intent.spec_key.endswith(f"runs/{planned.intent.run_id}/spec.json")
    assert [b.key for b in planned.intent.batches] == [B0.key]


@pytest.mark.parametrize(
    ("case", "changes", "reason"),
    [
        ("pinned", {"spec": spec(serving={"deploymentRef": {"name": "d"}, "pinnedVersion": "v1"})},
         "Pinned"),
        ("no data", {"batches": ()}, "NoData"),
        ("slots taken", {"slots": Slots(2, 0, 2, 1)}, "ConcurrencyLimit"),
        ("refused spec", {"ledger": Ledger(refused=RefusedSpec(
            fingerprint=step.spec_fingerprint(spec()), reason="JobRejected", message="no"))},
         "JobRejected"),
    ],
)  # fmt: skip
def test_plan_waits(case: str, changes: dict[str, Any], reason: str) -> None:
    planned = step.plan(snapshot(**changes))
    assert isinstance(planned, step.Wait), case
    assert planned.reason == reason


def test_a_refused_spec_is_tried_again_once_the_spec_changes() -> None:
    refused = RefusedSpec(
        fingerprint=step.spec_fingerprint(spec()), reason="JobRejected", message=""
    )
    changed = spec(training={**minimal_spec()["training"], "seed": 7})
    assert isinstance(step.plan(snapshot(spec=changed, ledger=Ledger(refused=refused))), step.Start)


def test_backoff_holds_the_same_inputs_back() -> None:
    first = step.plan(snapshot())
    assert isinstance(first, step.Start)
    failed = transitions.finished(
        transitions.started(Ledger(), first.intent, NOW),
        Judged("Failed", "TrainerFailed", "boom"),
        None,
        set(),
        NOW,
    )
    planned = step.plan(snapshot(ledger=failed, now=NOW + timedelta(seconds=5)))
    assert isinstance(planned, step.Wait)
    assert planned.reason == "Backoff"


def in_flight(**job: Any) -> Snapshot:
    planned = step.plan(snapshot())
    assert isinstance(planned, step.Start)
    book = transitions.started(Ledger(), planned.intent, NOW)
    return snapshot(ledger=book, job=JobView(**job) if job else None)


def test_track_replays_a_missing_job_and_reports_pods_that_cannot_be_created() -> None:
    planned = step.plan(snapshot())
    assert isinstance(planned, step.Start)
    replay = step.track(replace(in_flight(), run_spec=planned.run_spec))
    assert replay == step.Replay(planned.run_spec)
    assert isinstance(step.track(in_flight()), step.Lost)
    running = step.track(in_flight(finished=None, message="quota", pods_not_created=True))
    assert running == step.Running("PodsNotCreated", running.message)  # type: ignore[union-attr]
    assert "quota" in running.message  # type: ignore[union-attr]
    assert isinstance(step.track(in_flight(finished="failed", message="x")), step.Finished)


def test_transitions_do_not_modify_their_input() -> None:
    planned = step.plan(snapshot())
    assert isinstance(planned, step.Start)
    empty = Ledger()
    started = transitions.started(empty, planned.intent, NOW)
    assert empty == Ledger()
    assert started.intent == planned.intent and started.next_version == 2
    dumped = started.model_dump()
    transitions.finished(started, Judged("Rejected", "Regressed", "worse"), None, set(), NOW)
    assert started.model_dump() == dumped


def test_a_permanent_failure_gives_the_version_back_and_records_the_refused_spec() -> None:
    planned = step.plan(snapshot())
    assert isinstance(planned, step.Start)
    started = transitions.started(Ledger(), planned.intent, NOW)
    fingerprint = step.spec_fingerprint(spec())
    judged = Judged("Failed", "JobRejected", "cpu", permanent=True, refused_fingerprint=fingerprint)
    done = transitions.finished(started, judged, None, set(), NOW)
    assert done.intent is None and done.next_version == 1
    assert done.refused == RefusedSpec(fingerprint=fingerprint, reason="JobRejected", message="cpu")
    assert done.retry_not_before is None
    assert done.runs[0].outcome == "Failed"
    assert "until the spec changes" in done.runs[0].message


def test_a_rollback_rejects_the_failing_version() -> None:
    v1 = ModelRef(version="v1", run_id="r1", model_key="k1", sha256="a" * 64)
    v2 = ModelRef(version="v2", run_id="r2", model_key="k2", sha256="b" * 64)
    book = Ledger(serving=v2, previous=[v1], consumed=[BatchRef.of(B0)])
    after = transitions.rolled_back(book, v1, reason="AnalysisFailed", message="m", now=NOW)
    assert book.serving == v2
    assert after.serving == v1 and after.rejected == ["v2"]
    assert after.last_rollback is not None and after.last_rollback.from_version == "v2"


def test_a_segment_without_its_own_model_is_judged_against_the_global_one() -> None:
    """spec.baselineFrom: the other policy's model is the baseline of the first run, and
    labels that contradict it are not held as a label fault (that is the segment)."""
    glob = ModelRef(version="v4", runId="g-4", modelKey="freshet/ml/g/models/v4/m", sha256="a" * 64)
    planned = step.plan(snapshot(foreign_baseline=glob))
    assert isinstance(planned, step.Start)
    baseline = planned.run_spec.baseline
    assert baseline is not None and (baseline.version, baseline.model_key) == ("v4", glob.model_key)
    assert planned.run_spec.validation.label_contradiction.action == "Allow"
    # Once it has its own model, that is the baseline, with every check as configured.
    own = ModelRef(
        version="v1", runId="s-1", modelKey="freshet/ml/spam/models/v1/m", sha256="b" * 64
    )
    later = step.plan(snapshot(foreign_baseline=glob, ledger=Ledger(serving=own, nextVersion=2)))
    assert isinstance(later, step.Start) and later.run_spec.baseline is not None
    assert later.run_spec.baseline.version == "v1"
    assert later.run_spec.validation.label_contradiction.action == "Hold"
