"""Monitoring from the serving pods' own /metrics (``monitoring.source: ModelServer``).

For teams without Prometheus: every interval the operator scrapes each Ready
pod of the serving Deployment that runs the serving version, and judges the
increase of a counter (or a ratio of two) since the previous scrape, the way
``increase()`` would. Counters live in the pods, so the previous scrape is
kept in memory only: after an operator restart or a promotion the first
scrape takes the baseline and is Inconclusive, which the analysis holds on.

Which pods and ports to scrape (`targets`) and how to judge two scrapes
(`measure`) are pure; only `scrape` does I/O.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from freshet.decisions.analysis import Measurement, Verdict, within_bounds
from freshet.serving import VERSION_ANNOTATION
from freshet.spec import ModelServerCheck, SeriesSelector

SCRAPE_TIMEOUT = aiohttp.ClientTimeout(total=5)
MAX_METRICS_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Target:
    pod: str
    """The pod's uid: a restarted pod (new counters) is a new target."""
    url: str


@dataclass(frozen=True, slots=True)
class Totals:
    numerator: float
    denominator: float | None


@dataclass(frozen=True, slots=True)
class Scrape:
    time: datetime
    version: str
    pods: dict[str, Totals] = field(default_factory=dict)
    errors: tuple[str, ...] = ()


def _ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def container_port(container: Mapping[str, Any], wanted: int | str | None) -> int | None:
    """The port to scrape: by number, by name, or the container's first declared port."""
    ports = container.get("ports") or []
    if isinstance(wanted, int):
        return wanted
    for port in ports:
        if wanted is None or port.get("name") == wanted:
            number = port.get("containerPort")
            return int(number) if number is not None else None
    return None


def targets(
    pods: Sequence[Mapping[str, Any]], container: str, check: ModelServerCheck, version: str
) -> tuple[list[Target], list[str]]:
    """Ready, not terminating pods running `version`, each with its metrics URL.

    Returns the targets and, for pods that cannot be scraped, why.
    """
    found: list[Target] = []
    problems: list[str] = []
    for pod in pods:
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        annotations = meta.get("annotations") or {}
        ip = (pod.get("status") or {}).get("podIP")
        if (
            annotations.get(VERSION_ANNOTATION) != version
            or meta.get("deletionTimestamp")
            or not _ready(pod)
            or not ip
        ):
            continue
        spec_of = next(
            (c for c in spec.get("containers") or [] if c.get("name") == container), None
        )
        port = container_port(spec_of or {}, check.port)
        if port is None:
            problems.append(
                f"pod {meta.get('name')}: container {container!r} has no port {check.port!r}"
            )
            continue
        host = f"[{ip}]" if ":" in ip else ip
        found.append(Target(pod=str(meta.get("uid")), url=f"http://{host}:{port}{check.path}"))
    return found, problems


def series_total(text: str, selector: SeriesSelector, version: str) -> float:
    """The sum of the samples named `selector.metric` whose labels match."""
    wanted = {k: version if v == "$version" else v for k, v in selector.labels.items()}
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == selector.metric and all(
                sample.labels.get(k) == v for k, v in wanted.items()
            ):
                total += sample.value
    return total


def totals(text: str, check: ModelServerCheck, version: str) -> Totals:
    """One pod's counters; ValueError if its exposition cannot be parsed."""
    denominator = check.denominator
    return Totals(
        numerator=series_total(text, check.numerator, version),
        denominator=None if denominator is None else series_total(text, denominator, version),
    )


async def scrape(
    session: aiohttp.ClientSession,
    found: Sequence[Target],
    check: ModelServerCheck,
    version: str,
    now: datetime,
) -> Scrape:
    """Scrape every target concurrently; a pod that fails is reported, not fatal."""

    async def one(target: Target) -> Totals | str:
        try:
            async with session.get(target.url, timeout=SCRAPE_TIMEOUT) as resp:
                if resp.status != 200:
                    return f"{target.url}: HTTP {resp.status}"
                body = await resp.content.read(MAX_METRICS_BYTES + 1)
            if len(body) > MAX_METRICS_BYTES:
                return f"{target.url}: more than {MAX_METRICS_BYTES} bytes of metrics"
            return totals(body.decode("utf-8", errors="replace"), check, version)
        except (aiohttp.ClientError, TimeoutError) as e:
            return f"{target.url}: {type(e).__name__}: {e}"
        except ValueError as e:  # not the Prometheus text format
            return f"{target.url}: unreadable metrics: {e}"

    results = await asyncio.gather(*(one(t) for t in found))
    pods = {t.pod: r for t, r in zip(found, results, strict=True) if isinstance(r, Totals)}
    errors = tuple(r for r in results if isinstance(r, str))
    return Scrape(now, version, pods, errors)


def _increase(before: float, after: float) -> float:
    """A counter's increase; a counter that went down was reset (the pod restarted)."""
    return after - before if after >= before else after


def measure(check: ModelServerCheck, previous: Scrape | None, current: Scrape) -> Measurement:
    """Judge the counters' increase between two scrapes of the same version."""
    now = current.time
    if not current.pods:
        if current.errors:
            return Measurement(now, Verdict.ERROR, "; ".join(current.errors[:3]))
        return Measurement(now, Verdict.INCONCLUSIVE, f"no Ready pod runs {current.version}")
    if previous is None or previous.version != current.version:
        return Measurement(now, Verdict.INCONCLUSIVE, "first scrape: counters baselined")
    common = current.pods.keys() & previous.pods.keys()
    if not common:
        return Measurement(now, Verdict.INCONCLUSIVE, "no pod was scraped twice yet")
    numerator = sum(
        _increase(previous.pods[p].numerator, current.pods[p].numerator) for p in common
    )
    if check.denominator is None:
        elapsed = (current.time - previous.time).total_seconds()
        if elapsed <= 0:
            return Measurement(now, Verdict.INCONCLUSIVE, "no time passed between scrapes")
        value, what = numerator / elapsed, f"{check.numerator.metric} per second"
    else:
        denominator = sum(
            _increase(previous.pods[p].denominator or 0.0, current.pods[p].denominator or 0.0)
            for p in common
        )
        if denominator < check.min_count:
            return Measurement(
                now,
                Verdict.INCONCLUSIVE,
                f"{denominator:g} new {check.denominator.metric}, fewer than minCount"
                f" {check.min_count}",
            )
        value = numerator / denominator
        what = f"{check.numerator.metric} / {check.denominator.metric}"
    if not math.isfinite(value):
        return Measurement(now, Verdict.INCONCLUSIVE, f"{what} is {value}", value)
    scope = f"{what} over {len(common)} pod(s)"
    verdict, message = within_bounds(value, check.min_value, check.max_value, scope)
    return Measurement(now, verdict, message, value)
