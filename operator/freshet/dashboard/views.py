"""What each page shows, computed from what `gather` read: pure functions, so the
pages' content is tested without a cluster and the templates only lay it out."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from freshet_contract.result import Check, RunResult
from freshet_contract.vocabulary import Metric
from pydantic import ValidationError

from freshet.dashboard.charts import Chart, Point, Series
from freshet.ledger import Ledger, RunRecord
from freshet.quarantine import Held

ACTIVE_PHASES = frozenset({"Pending", "Running"})


def condition(p: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for c in (p.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return dict(c)
    return None


NEGATIVE_CONDITIONS = frozenset({"Degraded", "Stalled", "Stale"})
"""Conditions whose True is bad news (kstatus' abnormal-true polarity)."""


def condition_tone(c: dict[str, Any]) -> str:
    """The badge colour of a condition: good, bad or neutral news."""
    status = c.get("status")
    if status not in ("True", "False"):
        return "unknown"
    if c.get("type") in NEGATIVE_CONDITIONS:
        return "degraded" if status == "True" else "false"
    return "true" if status == "True" else "false"


def gate_metric(p: dict[str, Any]) -> str:
    return str((p["spec"].get("gate") or {}).get("metric") or Metric.ACCURACY.value)


def monitored_metric(p: dict[str, Any]) -> str:
    return str((p["spec"].get("monitoring") or {}).get("metric") or gate_metric(p))


def higher_is_better(metric: str) -> bool:
    try:
        return Metric(metric).higher_is_better
    except ValueError:
        return True


@dataclass(frozen=True)
class PolicyRow:
    namespace: str
    name: str
    mode: str
    serving: str
    pinned: str
    ready: str
    degraded: str
    training: bool
    last: str
    """The last run's phase, and its reason when it has one."""
    last_reason: str
    pending: int
    quarantined: int

    @property
    def health(self) -> str:
        """One word for the row's colour: degraded, ready, waiting."""
        if self.degraded == "True":
            return "degraded"
        return "ready" if self.ready == "True" else "waiting"


def policy_row(p: dict[str, Any]) -> PolicyRow:
    st = p.get("status") or {}
    last = st.get("lastRun") or {}
    data = st.get("data") or {}
    ready, degraded, training = (condition(p, k) for k in ("Ready", "Degraded", "Training"))
    return PolicyRow(
        namespace=p["metadata"]["namespace"],
        name=p["metadata"]["name"],
        mode=str(p["spec"].get("mode", "")),
        serving=str((st.get("serving") or {}).get("version") or ""),
        pinned=str((p["spec"].get("serving") or {}).get("pinnedVersion") or ""),
        ready=(ready or {}).get("status", "Unknown"),
        degraded=(degraded or {}).get("status", "Unknown"),
        training=(training or {}).get("status") == "True",
        last=str(last.get("phase") or ""),
        last_reason=str(last.get("reason") or ""),
        pending=int(data.get("pending") or 0),
        quarantined=int(data.get("quarantined") or 0),
    )


@dataclass(frozen=True)
class RunRow:
    run_id: str
    version: str
    trigger: str
    batches: int
    rows: int | None
    started: datetime | None
    finished: datetime | None
    outcome: str
    """Promoted, Rejected, Failed, Skipped, or Running while it runs."""
    reason: str
    metric: float | None
    rolled_back: bool = False

    @property
    def seconds(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return (self.finished - self.started).total_seconds()


def _record_row(r: RunRecord, metric: str, rejected: set[str]) -> RunRow:
    return RunRow(
        run_id=r.run_id,
        version=r.version,
        trigger=r.trigger,
        batches=r.batches,
        rows=r.train_rows,
        started=r.started_time,
        finished=r.finished_time,
        outcome=r.outcome,
        reason=r.reason,
        metric=r.metrics.get(metric),
        rolled_back=r.outcome == "Promoted" and r.version in rejected,
    )


def run_rows(book: Ledger, metric: str) -> list[RunRow]:
    """The run in flight first, then every recorded run, newest first."""
    rows = []
    if book.intent is not None:
        i = book.intent
        rows.append(
            RunRow(
                i.run_id,
                i.version,
                i.trigger,
                len(i.batches),
                None,
                i.created_time,
                None,
                "Running",
                "",
                None,
            )
        )
    rejected = set(book.rejected)
    rows.extend(_record_row(r, metric, rejected) for r in book.runs)
    return rows


def _mark(r: RunRecord, rejected: set[str]) -> str:
    if r.outcome == "Promoted":
        return "rolledback" if r.version in rejected else "promoted"
    return "rejected" if r.outcome == "Rejected" else ""


def version_chart(book: Ledger, metric: str) -> Chart:
    """The gate metric of every evaluated candidate, against the serving model and the
    dummy on the same holdout, oldest first, marked with what happened to it."""
    runs = [r for r in reversed(book.runs) if metric in r.metrics]
    rejected = set(book.rejected)
    candidate, baseline, dummy = [], [], []
    for x, r in enumerate(runs):
        value = r.metrics[metric]
        mark = _mark(r, rejected)
        what = {
            "promoted": "promoted",
            "rolledback": "promoted, later rolled back",
            "rejected": f"rejected ({r.reason})",
        }.get(mark, r.outcome.lower())
        candidate.append(Point(x, value, f"{r.version}: {metric} {value:.4g}, {what}", mark))
        if r.baseline_metrics and metric in r.baseline_metrics:
            b = r.baseline_metrics[metric]
            baseline.append(Point(x, b, f"{r.version}: serving model {b:.4g} on the same rows"))
        if r.dummy_metrics and metric in r.dummy_metrics:
            d = r.dummy_metrics[metric]
            dummy.append(Point(x, d, f"{r.version}: dummy {d:.4g}"))
    direction = "higher is better" if higher_is_better(metric) else "lower is better"
    return Chart(
        # Drawn in this order: the candidate's marks on top.
        series=[
            Series("dummy", "dummy", dummy),
            Series("serving model, same holdout", "baseline", baseline),
            Series("candidate", "candidate", candidate),
        ],
        x_labels=[(x, r.version) for x, r in enumerate(runs)],
        y_label=metric,
        caption=f"Holdout {metric} per version ({direction})",
        legend=[
            ("promoted", "promoted"),
            ("rejected", "rejected by the gate"),
            ("rolledback", "rolled back"),
        ],
    )


def monitoring_chart(book: Ledger, metric: str) -> Chart:
    """Prequential monitoring: the serving model scored on each run's new labelled rows
    before it trained on them (test, then train), over time."""
    runs = [r for r in reversed(book.runs) if r.live_metrics and metric in r.live_metrics]
    start = runs[0].finished_time.timestamp() if runs else 0.0
    points = []
    for r in runs:
        assert r.live_metrics is not None
        value = r.live_metrics[metric]
        x = (r.finished_time.timestamp() - start) / 3600
        points.append(
            Point(
                x,
                value,
                f"{r.finished_time:%Y-%m-%d %H:%M} ({r.version} run):"
                f" serving {metric} {value:.4g} on new rows",
            )
        )
    labels = [
        ((r.finished_time.timestamp() - start) / 3600, f"{r.finished_time:%m-%d %H:%M}")
        for r in runs
    ]
    return Chart(
        series=[Series("serving model on new rows", "live", points)],
        x_labels=labels,
        y_label=metric,
        caption=f"Prequential {metric} of the serving model on arriving data",
        empty="No prequential measurement yet: a run scores the serving model on new"
        " labelled rows before it trains on them.",
    )


@dataclass(frozen=True)
class LabelMaturity:
    delay_seconds: int
    watermark: str
    cutoff: str
    awaiting_backfill: int
    last_backfill: str
    rows: dict[str, int] = field(default_factory=dict)
    """Of the newest run: matured, immature, labeled, defaulted, fake negatives."""


def label_maturity(p: dict[str, Any], newest: RunResult | None) -> LabelMaturity | None:
    spec = (p["spec"].get("data") or {}).get("labels")
    if not spec:
        return None
    labels = ((p.get("status") or {}).get("data") or {}).get("labels") or {}
    rows = {}
    if newest is not None and newest.labels is not None:
        rows = newest.labels.rows.model_dump(by_alias=True)
    return LabelMaturity(
        delay_seconds=int(spec.get("delaySeconds") or 0),
        watermark=str(labels.get("watermark") or ""),
        cutoff=str(labels.get("cutoff") or ""),
        awaiting_backfill=int(labels.get("awaitingBackfill") or 0),
        last_backfill=str(labels.get("lastBackfillTime") or ""),
        rows=rows,
    )


@dataclass(frozen=True)
class Permissions:
    """What the viewer's buttons may do; a viewer without patch sees none."""

    patch: bool
    can_pin: bool


def find_run(book: Ledger, run_id: str) -> RunRecord | None:
    return next((r for r in book.runs if r.run_id == run_id), None)


def is_active(p: dict[str, Any], run_id: str) -> bool:
    last = (p.get("status") or {}).get("lastRun") or {}
    return last.get("runId") == run_id and last.get("phase") in ACTIVE_PHASES


def metric_rows(result: RunResult) -> list[tuple[str, float | None, float | None, float | None]]:
    """Every metric the run computed: candidate, serving model and dummy side by side."""
    m = result.metrics
    named = sorted({*m.candidate, *(m.baseline or {}), *(m.dummy or {})})
    return [
        (name, m.candidate.get(name), (m.baseline or {}).get(name), (m.dummy or {}).get(name))
        for name in named
    ]


def reason_checks(held: Held) -> list[Check]:
    """The failed (and passed) checks of a quarantined batch's reason document."""
    checks = []
    for raw in held.reason.get("checks") or []:
        try:
            checks.append(Check.model_validate(raw))
        except ValidationError:
            continue  # a reason written by another version: the summary still shows
    return checks


@dataclass(frozen=True)
class Phase:
    name: str
    state: str
    """done, now (in progress) or todo."""


def run_phases(progress: Any, result: RunResult | None, record: RunRecord | None) -> list[Phase]:
    """Where a run stands, from the intent to the decision, as the page shows it."""
    pods = progress.pods if progress is not None else []
    started = any(p["phase"] in ("Running", "Succeeded", "Failed") for p in pods)
    reached = [
        ("Recorded", True),
        ("Job created", progress is not None and progress.job is not None),
        ("Pod running", started or result is not None),
        ("Trained and evaluated", result is not None),
        ("Decided", record is not None),
    ]
    phases, current_set = [], False
    for name, done in reached:
        if done:
            phases.append(Phase(name, "done"))
        elif not current_set:
            phases.append(Phase(name, "now"))
            current_set = True
        else:
            phases.append(Phase(name, "todo"))
    return phases


@dataclass(frozen=True)
class Summary:
    policies: int
    ready: int
    degraded: int
    training: int
    quarantined: int


def summary(rows: list[PolicyRow]) -> Summary:
    return Summary(
        policies=len(rows),
        ready=sum(r.ready == "True" for r in rows),
        degraded=sum(r.degraded == "True" for r in rows),
        training=sum(r.training for r in rows),
        quarantined=sum(r.quarantined for r in rows),
    )


def pinnable(book: Ledger) -> list[str]:
    """Versions a pin can point at (every model that passed the gate), newest first:
    what `kubectl freshet rollback --to` accepts. A version monitoring rolled back
    is listed too: pinning it is a person's decision."""
    return sorted(book.models, key=lambda v: int(v[1:]) if v[1:].isdigit() else 0, reverse=True)
