"""Measurements of the live model, from run results (prequential) or from Prometheus.

The analysis itself is pure (`decisions.analysis`); this module turns a policy's
monitoring settings and the outside world into `Measurement`s, and converts
the analysis state to and from its durable form in the ledger.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from freshet_contract.result import LiveEvaluation

from freshet.decisions import analysis
from freshet.decisions.analysis import Measurement, Verdict
from freshet.ledger import AnalysisRecord, MeasurementRecord
from freshet.spec import Metric, MonitoringSpec, PolicySpec, PrometheusCheck

QUERY_TIMEOUT = aiohttp.ClientTimeout(total=10)


def settings(spec: MonitoringSpec) -> analysis.Settings:
    return analysis.Settings(
        interval=timedelta(seconds=spec.interval_seconds),
        bake=timedelta(seconds=spec.bake_seconds),
        failure_limit=spec.failure_limit,
        consecutive_error_limit=spec.consecutive_error_limit,
    )


def fresh(version: str, since: datetime) -> AnalysisRecord:
    """A new analysis: every promotion or rollback starts counting from zero."""
    return AnalysisRecord(version=version, since=since)


def to_state(record: AnalysisRecord) -> analysis.State:
    last = record.last
    return analysis.State(
        version=record.version,
        since=record.since,
        consecutive_failures=record.consecutive_failures,
        consecutive_errors=record.consecutive_errors,
        measurements=record.measurements,
        phase=analysis.Phase(record.phase),
        last=None
        if last is None
        else Measurement(
            time=last.time,
            verdict=Verdict(last.verdict),
            message=last.message,
            value=last.value,
            reference=last.reference,
        ),
    )


def to_record(state: analysis.State) -> AnalysisRecord:
    last = state.last
    return AnalysisRecord(
        version=state.version,
        since=state.since,
        consecutive_failures=state.consecutive_failures,
        consecutive_errors=state.consecutive_errors,
        measurements=state.measurements,
        phase=state.phase.value,
        last=None
        if last is None
        else MeasurementRecord(
            time=last.time,
            verdict=last.verdict.value,
            message=last.message,
            value=last.value,
            reference=last.reference,
        ),
    )


def watched_metric(spec: PolicySpec) -> Metric:
    assert spec.monitoring is not None
    return spec.monitoring.metric or spec.gate.metric


def prequential(spec: PolicySpec, live: LiveEvaluation, now: datetime) -> Measurement:
    """Judge the serving model on a fresh batch against the previous good model."""
    monitoring = spec.monitoring
    assert monitoring is not None
    metric = watched_metric(spec)
    value = live.serving.get(metric.value)
    reference = (live.previous or {}).get(metric.value)
    if live.rows < monitoring.min_rows:
        return Measurement(
            now,
            Verdict.INCONCLUSIVE,
            f"{live.rows} labelled rows, fewer than minRows {monitoring.min_rows}",
            value,
            reference,
        )
    verdict, message = analysis.judge(
        value=value,
        reference=reference,
        higher_is_better=metric.higher_is_better,
        max_regression=monitoring.max_regression,
        min_value=monitoring.min_value,
        what=f"live {metric.value} on {live.rows} new rows",
    )
    return Measurement(now, verdict, message, value, reference)


def render_query(check: PrometheusCheck, version: str, namespace: str, policy: str) -> str:
    return (
        check.query.replace("$version", version)
        .replace("$namespace", namespace)
        .replace("$policy", policy)
    )


async def prometheus(
    check: PrometheusCheck, query: str, now: datetime, session: aiohttp.ClientSession
) -> Measurement:
    """Evaluate the PromQL check once: one number in bounds passes, none is inconclusive."""
    url = check.url.rstrip("/") + "/api/v1/query"
    try:
        async with session.get(url, params={"query": query}, timeout=QUERY_TIMEOUT) as resp:
            body = await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as e:
        return Measurement(now, Verdict.ERROR, f"querying {url}: {type(e).__name__}: {e}")
    if not isinstance(body, dict) or body.get("status") != "success":
        error = body.get("error") if isinstance(body, dict) else body
        return Measurement(now, Verdict.ERROR, f"Prometheus refused the query: {error}")
    data = body.get("data") or {}
    result = data.get("result")
    samples: list[Any]
    if data.get("resultType") == "scalar":
        samples = [result]
    elif data.get("resultType") == "vector" and isinstance(result, list):
        samples = [r.get("value") for r in result]
    else:
        return Measurement(now, Verdict.ERROR, f"unexpected result type {data.get('resultType')}")
    if not samples:
        return Measurement(now, Verdict.INCONCLUSIVE, "the query returned no sample (no traffic?)")
    if len(samples) > 1:
        return Measurement(
            now, Verdict.ERROR, f"the query returned {len(samples)} series; it must return one"
        )
    try:
        value = float(samples[0][1])
    except (TypeError, ValueError, IndexError):
        return Measurement(now, Verdict.ERROR, f"unreadable sample {samples[0]!r}")
    if not math.isfinite(value):
        return Measurement(now, Verdict.INCONCLUSIVE, f"the query returned {value}", value)
    verdict, message = analysis.within_bounds(value, check.min_value, check.max_value, "query")
    return Measurement(now, verdict, message, value)
