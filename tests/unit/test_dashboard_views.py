"""What the dashboard's pages show, from a ledger and a policy: the charts' points and
marks, the runs table, the list's rows. Pure functions; no cluster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from freshet.dashboard import charts, views
from freshet.dashboard.app import fmt_duration, fmt_message, fmt_number, fmt_when
from freshet.ledger import Ledger, RunIntent, RunRecord
from freshet.quarantine import Held
from freshet_contract.result import RunMetrics, RunResult

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def record(version: str, outcome: str, value: float, **extra: Any) -> RunRecord:
    n = int(version[1:])
    return RunRecord(
        run_id=f"churn-{n}",
        version=version,
        outcome=outcome,  # type: ignore[arg-type]
        reason={"Promoted": "Improved", "Rejected": "Regressed"}.get(outcome, "Failed"),
        message="",
        trigger="NewData",
        started_time=T0 + timedelta(hours=n),
        finished_time=T0 + timedelta(hours=n, seconds=42),
        metrics={"accuracy": value},
        **extra,
    )


def ledger() -> Ledger:
    runs = [
        record("v1", "Promoted", 0.81, dummyMetrics={"accuracy": 0.6}),
        record("v2", "Rejected", 0.70, baselineMetrics={"accuracy": 0.80}),
        record(
            "v3",
            "Promoted",
            0.84,
            baselineMetrics={"accuracy": 0.79},
            liveMetrics={"accuracy": 0.77},
            trainRows=900,
        ),
        record("v4", "Promoted", 0.86, liveMetrics={"accuracy": 0.83}),
    ]
    return Ledger(runs=list(reversed(runs)), rejected=["v4"])


def test_the_version_chart_marks_what_happened_to_each_candidate() -> None:
    chart = views.version_chart(ledger(), "accuracy")
    dummy, baseline, candidate = chart.series
    assert [(p.y, p.mark) for p in candidate.points] == [
        (0.81, "promoted"),
        (0.70, "rejected"),
        (0.84, "promoted"),
        (0.86, "rolledback"),
    ]
    assert [label for _, label in chart.x_labels] == ["v1", "v2", "v3", "v4"]
    assert [p.y for p in baseline.points] == [0.80, 0.79]
    assert [p.y for p in dummy.points] == [0.6]
    assert "rejected (Regressed)" in candidate.points[1].title
    assert "higher is better" in chart.caption
    assert "lower is better" in views.version_chart(ledger(), "rmse").caption


def test_the_monitoring_chart_is_the_prequential_series_in_time() -> None:
    chart = views.monitoring_chart(ledger(), "accuracy")
    (live,) = chart.series
    assert [p.y for p in live.points] == [0.77, 0.83]
    assert [p.x for p in live.points] == [0.0, 1.0]  # hours since the first


def test_the_run_in_flight_comes_first_then_newest_first() -> None:
    book = ledger()
    book.intent = RunIntent(
        runId="churn-5",
        version="v5",
        reason="NewData",
        batches=[],
        newBatches=[],
        specKey="k",
        resultKey="r",
        specHash="h",
        trigger="RetrainRequested",
        createdTime=T0 + timedelta(hours=5),
    )
    rows = views.run_rows(book, "accuracy")
    assert [(r.version, r.outcome) for r in rows] == [
        ("v5", "Running"),
        ("v4", "Promoted"),
        ("v3", "Promoted"),
        ("v2", "Rejected"),
        ("v1", "Promoted"),
    ]
    assert rows[1].rolled_back and not rows[2].rolled_back
    assert rows[2].rows == 900 and rows[2].seconds == 42
    assert rows[0].seconds is None


def policy(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "team-a", "name": "churn"},
        "spec": {"mode": "Dynamic", "gate": {"metric": "roc_auc"}, "data": {}},
        "status": status,
    }


def test_a_policy_row_says_its_health() -> None:
    degraded = policy(
        conditions=[
            {"type": "Ready", "status": "True"},
            {"type": "Degraded", "status": "True"},
        ],
        serving={"version": "v3"},
        lastRun={"phase": "Rejected", "reason": "Regressed"},
        data={"pending": 2, "quarantined": 1},
    )
    row = views.policy_row(degraded)
    assert (row.health, row.serving, row.last, row.last_reason) == (
        "degraded",
        "v3",
        "Rejected",
        "Regressed",
    )
    assert (row.pending, row.quarantined) == (2, 1)
    assert views.policy_row(policy()).health == "waiting"
    ready = policy(conditions=[{"type": "Ready", "status": "True"}])
    assert views.policy_row(ready).health == "ready"
    assert views.gate_metric(degraded) == "roc_auc"
    assert views.monitored_metric(degraded) == "roc_auc"


def test_label_maturity_only_for_policies_with_late_labels() -> None:
    assert views.label_maturity(policy(), None) is None
    p = policy(data={"labels": {"watermark": "2026-11-30T12:00:00Z", "awaitingBackfill": 3}})
    p["spec"]["data"]["labels"] = {"delaySeconds": 3600}
    maturity = views.label_maturity(p, None)
    assert maturity is not None
    assert (maturity.delay_seconds, maturity.awaiting_backfill) == (3600, 3)


def test_metric_rows_put_candidate_serving_and_dummy_side_by_side() -> None:
    result = RunResult(
        run_id="r",
        status="Succeeded",
        model={"version": "v2", "model_key": "m", "sha256": "0" * 64, "manifest_key": "k"},
        metrics=RunMetrics(
            candidate={"accuracy": 0.7, "f1": 0.5},
            baseline={"accuracy": 0.8},
            dummy={"accuracy": 0.6, "f1": 0.0},
        ),
    )
    assert views.metric_rows(result) == [("accuracy", 0.7, 0.8, 0.6), ("f1", 0.5, None, 0.0)]


def test_reason_checks_skip_what_this_version_cannot_read() -> None:
    held = Held(
        "in/a.csv",
        {
            "reason": "SchemaMismatch",
            "checks": [
                {"name": "schema", "code": "SchemaMismatch", "passed": False, "message": "no y"},
                {"unexpected": True},
            ],
        },
    )
    (check,) = views.reason_checks(held)
    assert (check.name, check.passed) == ("schema", False)


def test_svg_escapes_what_it_is_given_and_marks_points() -> None:
    chart = charts.Chart(
        series=[
            charts.Series(
                "c",
                "candidate",
                [
                    charts.Point(0, 0.5, "<script>x</script>", "promoted"),
                    charts.Point(1, 0.7, "b", "rejected"),
                    charts.Point(2, 0.6, "c", "rolledback"),
                ],
            )
        ],
        x_labels=[(0, "v1"), (1, "v<2>"), (2, "v3")],
        y_label="accuracy",
        caption="cap",
    )
    svg = str(charts.render(chart))
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "v&lt;2&gt;" in svg
    assert svg.count("<polyline") == 1
    assert 'class="mark candidate promoted"' in svg and "mark candidate rejected" in svg
    assert "mark candidate rolledback" in svg
    assert "Nothing to chart" in str(charts.render(charts.Chart([], [], "m", "c")))


def test_ticks_are_round_and_cover_the_range() -> None:
    assert charts.nice_ticks(0.61, 0.87) == [0.6, 0.7, 0.8, 0.9]
    assert charts.nice_ticks(0.81, 0.84) == [0.81, 0.82, 0.83, 0.84]
    assert charts.nice_ticks(3, 3)[0] <= 3 <= charts.nice_ticks(3, 3)[-1]
    ticks = charts.nice_ticks(-12.0, 130.0)
    assert ticks[0] <= -12 and ticks[-1] >= 130 and len(ticks) <= 9


def test_numbers_and_times_for_people() -> None:
    assert fmt_number(-0.0000029761461884) == "-2.976e-06"
    assert fmt_number(0.8123456) == "0.8123"
    assert fmt_number(12000) == "12000"
    assert fmt_number(None) == "\u2013"
    assert fmt_duration(42.4) == "42 s"
    assert fmt_duration(75) == "1 min 15 s"
    assert fmt_duration(3 * 3600 + 120) == "3 h 2 min"
    assert fmt_when("2026-11-30T12:00:05+00:00") == "2026-11-30 12:00:05Z"
    assert fmt_when(T0) == "2026-11-30 12:00:00Z"
    assert fmt_when("2026-12-01T19:11:20.123456Z") == "2026-12-01 19:11:20Z"
    assert fmt_message("accuracy 0.9438202247191011 vs 0.5 (regression 0E-16)") == (
        "accuracy 0.9438 vs 0.5 (regression 0E-16)"
    )


def test_pinnable_versions_are_the_gated_models_newest_first() -> None:
    book = Ledger.model_validate(
        {
            "models": {
                v: {"version": v, "runId": "r", "modelKey": "k", "sha256": "0" * 64}
                for v in ("v2", "v10", "v9")
            }
        }
    )
    assert views.pinnable(book) == ["v10", "v9", "v2"]


def test_condition_badges_follow_each_conditions_polarity() -> None:
    assert views.condition_tone({"type": "Ready", "status": "True"}) == "true"
    assert views.condition_tone({"type": "Degraded", "status": "True"}) == "degraded"
    assert views.condition_tone({"type": "Degraded", "status": "False"}) == "false"
    assert views.condition_tone({"type": "Ready", "status": "Unknown"}) == "unknown"


def test_the_policy_page_shows_batch_scoring() -> None:
    from freshet.dashboard.app import policy_context, templates

    p = policy(
        scoring={
            "version": "v2",
            "scored": 3,
            "pending": 1,
            "lastRun": {
                "runId": "r",
                "version": "v2",
                "outcome": "Succeeded",
                "message": "3 input(s) scored",
                "manifestKey": "s/out/v2/_manifests/r.json",
                "finishedTime": "2026-12-01T19:00:00Z",
            },
        }
    )
    p["spec"]["scoring"] = {"prefix": "s/in/", "outputPrefix": "s/out/"}
    context = policy_context(
        p,
        book=None,
        newest=None,
        events=[],
        store_error="",
        may=views.Permissions(patch=False, can_pin=False),
    )
    html = (
        templates()
        .get_template("policy.html")
        .render(**context, viewer=None, csrf_token="", notice="", login_required=False)
    )
    assert "Batch scoring" in html and "s/out/v2/_manifests/r.json" in html
    assert "<strong>3</strong> scored with v2" in html
