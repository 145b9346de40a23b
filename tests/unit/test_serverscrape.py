"""Monitoring from the serving pods' /metrics: which pods, which numbers, which verdict."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from freshet.decisions.analysis import Verdict
from freshet.serverscrape import Scrape, Totals, container_port, measure, targets, totals
from freshet.spec import ModelServerCheck, SeriesSelector

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

SHARE = ModelServerCheck(
    numerator=SeriesSelector(
        metric="freshet_server_predictions_total", labels={"version": "$version", "class": "1"}
    ),
    denominator=SeriesSelector(
        metric="freshet_server_predictions_total", labels={"version": "$version"}
    ),
    min_count=20,
    min_value=Decimal("0.5"),
)
RATE = ModelServerCheck(
    numerator=SeriesSelector(metric="freshet_server_requests_total", labels={"code": "500"}),
    max_value=Decimal("0.1"),
)

EXPOSITION = """\
# HELP freshet_server_predictions_total Rows predicted.
# TYPE freshet_server_predictions_total counter
freshet_server_predictions_total{version="v2",class="1"} 30.0
freshet_server_predictions_total{version="v2",class="0"} 10.0
freshet_server_predictions_total{version="v1",class="1"} 500.0
freshet_server_predictions_created{version="v2",class="1"} 1.7e9
# HELP freshet_server_requests_total HTTP requests.
# TYPE freshet_server_requests_total counter
freshet_server_requests_total{path="/predict",code="200"} 40.0
freshet_server_requests_total{path="/predict",code="500"} 2.0
"""


def test_totals_sum_the_matching_series_of_the_serving_version() -> None:
    assert totals(EXPOSITION, SHARE, "v2") == Totals(numerator=30.0, denominator=40.0)
    assert totals(EXPOSITION, SHARE, "v1") == Totals(numerator=500.0, denominator=500.0)
    assert totals(EXPOSITION, RATE, "v2") == Totals(numerator=2.0, denominator=None)


def test_an_exposition_that_is_not_prometheus_text_is_refused() -> None:
    with pytest.raises(ValueError):
        totals("<html>not metrics</html>\n{", SHARE, "v2")


def pod(
    name: str,
    *,
    version: str = "v2",
    ready: bool = True,
    ip: str | None = "10.0.0.1",
    deleting: bool = False,
    ports: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "uid": f"uid-{name}",
        "annotations": {"freshet.dev/model-version": version},
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-11-27T12:00:00Z"
    return {
        "metadata": meta,
        "spec": {
            "containers": [
                {"name": "sidecar", "ports": [{"containerPort": 9999}]},
                {
                    "name": "server",
                    "ports": ports
                    if ports is not None
                    else [{"name": "http", "containerPort": 8080}],
                },
            ]
        },
        "status": {
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def test_only_ready_pods_running_the_serving_version_are_scraped() -> None:
    pods = [
        pod("a"),
        pod("old", version="v1"),
        pod("starting", ready=False),
        pod("leaving", deleting=True),
        pod("no-ip", ip=None),
        pod("v6", ip="fd00::7"),
    ]
    found, problems = targets(pods, "server", SHARE, "v2")
    assert [(t.pod, t.url) for t in found] == [
        ("uid-a", "http://10.0.0.1:8080/metrics"),
        ("uid-v6", "http://[fd00::7]:8080/metrics"),
    ]
    assert problems == []


def test_a_missing_port_is_reported_per_pod() -> None:
    named = ModelServerCheck.model_validate(SHARE.model_dump() | {"port": "metrics"})
    found, problems = targets([pod("a")], "server", named, "v2")
    assert found == []
    assert problems == ["pod a: container 'server' has no port 'metrics'"]


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [(None, 8080), ("http", 8080), ("admin", 9090), (7000, 7000), ("nope", None)],
)
def test_container_port(wanted: int | str | None, expected: int | None) -> None:
    container = {
        "ports": [{"name": "http", "containerPort": 8080}, {"name": "admin", "containerPort": 9090}]
    }
    assert container_port(container, wanted) == expected


def scrape(at: float, version: str = "v2", **pods: tuple[float, float | None]) -> Scrape:
    return Scrape(
        NOW + timedelta(seconds=at),
        version,
        {f"uid-{name}": Totals(*values) for name, values in pods.items()},
    )


CASES = [
    ("the first scrape only baselines", SHARE, None, scrape(0, a=(5, 10)), Verdict.INCONCLUSIVE),
    (
        "a promotion starts a new baseline",
        SHARE,
        scrape(0, "v1", a=(5, 10)),
        scrape(1, a=(50, 100)),
        Verdict.INCONCLUSIVE,
    ),
    (
        "a healthy class share passes",
        SHARE,
        scrape(0, a=(10, 20), b=(0, 0)),
        scrape(1, a=(30, 40), b=(20, 30)),
        Verdict.PASS,
    ),
    (
        "a collapsed class share fails",
        SHARE,
        scrape(0, a=(10, 20)),
        scrape(1, a=(12, 60)),
        Verdict.FAIL,
    ),
    (
        "too little traffic holds",
        SHARE,
        scrape(0, a=(10, 20)),
        scrape(1, a=(11, 30)),
        Verdict.INCONCLUSIVE,
    ),
    (
        "a restarted pod's counters start again from zero",
        SHARE,
        scrape(0, a=(900, 1000)),
        scrape(1, a=(25, 30)),
        Verdict.PASS,
    ),
    (
        "a pod seen once does not count yet",
        SHARE,
        scrape(0, a=(10, 20)),
        scrape(1, b=(0, 100)),
        Verdict.INCONCLUSIVE,
    ),
    (
        "a counter rate within bounds",
        RATE,
        scrape(0, a=(2, None)),
        scrape(10, a=(2.5, None)),
        Verdict.PASS,
    ),
    (
        "a counter rate above maxValue",
        RATE,
        scrape(0, a=(2, None)),
        scrape(10, a=(4, None)),
        Verdict.FAIL,
    ),
    ("no pod runs the version", SHARE, scrape(0, a=(1, 2)), scrape(1), Verdict.INCONCLUSIVE),
]


@pytest.mark.parametrize(
    ("case", "check", "previous", "current", "verdict"), CASES, ids=[c[0] for c in CASES]
)
def test_measure(
    case: str,
    check: ModelServerCheck,
    previous: Scrape | None,
    current: Scrape,
    verdict: Verdict,
) -> None:
    assert measure(check, previous, current).verdict is verdict, case


def test_a_failure_says_what_was_measured_with_the_numbers() -> None:
    m = measure(SHARE, scrape(0, a=(10, 20)), scrape(1, a=(12, 60)))
    assert m.value == pytest.approx(0.05)
    assert m.message == (
        "freshet_server_predictions_total / freshet_server_predictions_total over 1 pod(s)"
        " 0.05 < minValue 0.5"
    )


def test_only_unreachable_pods_is_an_error_not_a_verdict() -> None:
    current = Scrape(NOW, "v2", {}, ("http://10.0.0.1:8080/metrics: ClientConnectorError",))
    m = measure(SHARE, None, current)
    assert m.verdict is Verdict.ERROR
    assert "ClientConnectorError" in m.message
