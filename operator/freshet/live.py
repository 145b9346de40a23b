"""Measuring the live model: one Prometheus query or one scrape of the serving pods.

Reads only; what a measurement means is `decisions.analysis`, and what the
step does about it is in `controller`.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime

import aiohttp

from freshet import monitoring, serverscrape, serving
from freshet.decisions import analysis
from freshet.kube import Kube
from freshet.spec import MonitoringSpec, PolicySpec


async def measure(
    *,
    kube: Kube,
    http: aiohttp.ClientSession,
    namespace: str,
    name: str,
    spec: PolicySpec,
    version: str,
    now: datetime,
    last_scrape: serverscrape.Scrape | None,
) -> tuple[analysis.Measurement, serverscrape.Scrape | None]:
    """Measure `version`; return the measurement and the scrape to diff the next one against."""
    mon: MonitoringSpec | None = spec.monitoring
    assert mon is not None
    if mon.prometheus is not None:
        query = monitoring.render_query(mon.prometheus, version, namespace, name)
        return await monitoring.prometheus(mon.prometheus, query, now, http), last_scrape
    check = mon.model_server
    assert check is not None and spec.serving is not None
    deployment = spec.serving.deployment_ref.name
    dep = await asyncio.to_thread(kube.deployment, namespace, deployment)
    if dep is None:
        error = f"Deployment {deployment!r} not found"
        return analysis.Measurement(now, analysis.Verdict.ERROR, error), last_scrape
    try:
        container = serving.container_name(dep, spec.serving.container)
    except serving.ServingError as e:
        return analysis.Measurement(now, analysis.Verdict.ERROR, str(e)), last_scrape
    labels = ((dep.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    pods = await asyncio.to_thread(kube.pods, namespace, labels)
    found, problems = serverscrape.targets(pods, container, check, version)
    scraped = await serverscrape.scrape(http, found, check, version, now)
    if problems:
        scraped = replace(scraped, errors=(*scraped.errors, *problems))
    measurement = serverscrape.measure(check, last_scrape, scraped)
    return measurement, (scraped if scraped.pods else last_scrape)
