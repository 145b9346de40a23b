"""Batch scoring decisions (decisions.scoring) and what they do to the ledger: what
is pending for which version, when a run starts, how it ends, and the spec's rules."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from freshet import transitions
from freshet.batches import Batch
from freshet.decisions import scoring
from freshet.ledger import Ledger, ModelRef
from freshet.snapshot import JobView, Snapshot
from freshet.spec import PolicySpec
from freshet_contract.result import Check, QuarantinedBatch
from freshet_contract.scoring import ScoredInput, ShardReport
from policies import a_snapshot, minimal_spec
from pydantic import ValidationError

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
A = Batch("score/in/a.csv", "ea", 10, NOW - timedelta(minutes=5))
B = Batch("score/in/b.csv", "eb", 10, NOW - timedelta(minutes=4))
V1 = ModelRef(version="v1", runId="r1", modelKey="m/v1", sha256="1" * 64)
V2 = ModelRef(version="v2", runId="r2", modelKey="m/v2", sha256="2" * 64)
SCORING = {"prefix": "score/in/", "outputPrefix": "score/out/", "idColumns": ["id"]}


def spec(**scoring_changes: Any) -> PolicySpec:
    doc = minimal_spec("Dynamic")
    doc["scoring"] = {**SCORING, **scoring_changes}
    return PolicySpec.model_validate(doc)


def snapshot(book: Ledger, **changes: Any) -> Snapshot:
    snap: Snapshot = a_snapshot(NOW, spec(), ledger=book, scoring_inputs=(A, B))
    return replace(snap, **changes)


def finish(
    book: Ledger, intent_run: str, version: ModelRef, refused: tuple[Batch, ...] = ()
) -> Ledger:
    assert book.scoring is not None
    report = ShardReport(
        run_id=intent_run,
        index=0,
        scored=[
            ScoredInput(key=b.key, etag=b.etag, rows=10, output_key=f"o/{b.key}", output_etag="x")
            for b in book.scoring.inputs
            if b.key not in {r.key for r in refused}
        ],
        refused=[
            QuarantinedBatch(
                key=b.key,
                etag=b.etag,
                reason="MissingColumns",
                checks=[Check(name="scoringColumns", passed=False)],
            )
            for b in refused
        ],
    )
    tracked = scoring.track(book.scoring, JobView("succeeded", ""), [report], 1, version)
    assert isinstance(tracked, scoring.Finished)
    return transitions.scoring_finished(book, tracked.manifest, "score/out/v1/_manifests/x", NOW)


def test_inputs_are_scored_once_per_version_and_again_after_a_promotion() -> None:
    book = Ledger()
    assert isinstance(scoring.plan(snapshot(book), None), scoring.Wait)
    planned = scoring.plan(snapshot(book), V1)
    assert isinstance(planned, scoring.Start)
    assert [b.key for b in planned.intent.inputs] == [A.key, B.key]
    assert planned.intent.run_id.startswith("spam-s")
    again = scoring.plan(snapshot(book), V1)
    assert isinstance(again, scoring.Start) and again.intent.run_id == planned.intent.run_id
    book = transitions.scoring_started(book, planned.intent, NOW, scheduled=False)
    book = finish(book, planned.intent.run_id, V1, refused=(B,))
    assert book.scored == {"v1": {A.key: "ea"}} and book.quarantined == {B.key: "eb"}
    assert book.last_scoring is not None and book.last_scoring.refused == 1
    done = scoring.plan(snapshot(book), V1)
    assert isinstance(done, scoring.Wait) and done.reason == "UpToDate"
    # An overwritten input is new content; a new version scores everything it may.
    changed = Batch(A.key, "ea2", 10, NOW)
    assert [b.etag for b in scoring.pending(snapshot(book, scoring_inputs=(changed, B)), V1)] == [
        "ea2"
    ]
    assert [b.key for b in scoring.pending(snapshot(book), V2)] == [A.key]  # B is quarantined
    keep = snapshot(book, spec=spec(rescoreOnPromotion=False))
    assert scoring.pending(keep, V2) == []


def test_a_failed_run_backs_off_and_a_missing_report_fails_it() -> None:
    planned = scoring.plan(snapshot(Ledger()), V1)
    assert isinstance(planned, scoring.Start)
    book = transitions.scoring_started(Ledger(), planned.intent, NOW, scheduled=False)
    intent = planned.intent
    assert scoring.track(intent, None, None, 1, V1) == scoring.Replay()
    assert isinstance(scoring.track(intent, JobView(None, ""), None, 1, V1), scoring.Running)
    failed = scoring.track(intent, JobView("failed", "BackoffLimitExceeded"), None, 1, V1)
    assert isinstance(failed, scoring.Failed)
    assert isinstance(scoring.track(intent, JobView("succeeded", ""), None, 2, V1), scoring.Failed)
    book = transitions.scoring_failed(book, failed.message, NOW)
    assert book.scoring is None and book.scoring_failures == 1
    wait = scoring.plan(snapshot(book), V1)
    assert isinstance(wait, scoring.Wait) and wait.reason == "Backoff"
    later = scoring.plan(snapshot(book, now=NOW + timedelta(minutes=5)), V1)
    assert isinstance(later, scoring.Start) and later.intent.run_id != intent.run_id  # attempt 1


def test_a_schedule_holds_inputs_until_it_fires() -> None:
    hourly = snapshot(Ledger(), spec=spec(schedule="0 * * * *"))
    held = scoring.plan(replace(hourly, now=NOW + timedelta(minutes=-45)), V1)
    assert isinstance(held, scoring.Wait) and held.reason == "Scheduled"
    assert isinstance(scoring.plan(hourly, V1), scoring.Start)  # 09:00 has passed since 08:00


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"outputPrefix": "score/in/out/"}, "must not contain each other"),
        ({"prefix": "spam/incoming/x/"}, "data prefixes must not contain"),
        ({"schedule": "every hour"}, "scoring.schedule"),
        ({"shards": 0}, "shards"),
    ],
)
def test_the_spec_refuses_scoring_that_would_feed_itself(
    changes: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem):
        spec(**changes)
