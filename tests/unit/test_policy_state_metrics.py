"""Per-policy state gauges follow the status document, go with the policy, and are
formatted again only when a state changed."""

from __future__ import annotations

import urllib.request

from freshet import metrics

REGISTRY = metrics.POLICY_STATES.registry

STATUS = {
    "conditions": [
        {"type": "Ready", "status": "True", "reason": "Serving"},
        {"type": "Degraded", "status": "False", "reason": "AsExpected"},
        {"type": "Stale", "status": "True", "reason": "DriftDetected"},
    ],
    "data": {"pending": 3, "quarantined": 2, "seen": 9},
    "serving": {"version": "v12", "promotedTime": "2026-12-01T10:00:00Z"},
}


def value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"namespace": "ns", "policy": "p", **labels})


def test_gauges_follow_the_status() -> None:
    metrics.report_state("ns", "p", STATUS)
    assert value("freshet_policy_condition", type="Ready") == 1.0
    assert value("freshet_policy_condition", type="Degraded") == 0.0
    assert value("freshet_policy_condition", type="Stale") == 1.0
    assert value("freshet_policy_pending_batches") == 3.0
    assert value("freshet_policy_quarantined_batches") == 2.0
    assert value("freshet_policy_serving_version") == 12.0
    assert value("freshet_policy_last_promotion_timestamp_seconds") == 1796119200.0

    degraded = {
        **STATUS,
        "conditions": [{"type": "Degraded", "status": "True", "reason": "RolledBack"}],
        "data": {"pending": 0, "quarantined": 0},
    }
    metrics.report_state("ns", "p", degraded)
    assert value("freshet_policy_condition", type="Degraded") == 1.0
    assert value("freshet_policy_pending_batches") == 0.0


def test_forget_removes_only_that_policy() -> None:
    metrics.report_state("ns", "p", STATUS)
    metrics.report_state("ns", "other", STATUS)
    metrics.forget("ns", "p")
    assert value("freshet_policy_condition", type="Ready") is None
    assert value("freshet_policy_serving_version") is None
    assert (
        REGISTRY.get_sample_value(
            "freshet_policy_serving_version", {"namespace": "ns", "policy": "other"}
        )
        == 12.0
    )
    metrics.forget("ns", "p")  # twice is fine


def test_no_serving_model_no_version() -> None:
    metrics.report_state("ns", "fresh", {"conditions": [], "data": {"pending": 1}})
    assert (
        REGISTRY.get_sample_value(
            "freshet_policy_serving_version", {"namespace": "ns", "policy": "fresh"}
        )
        is None
    )


def test_the_text_is_formatted_again_only_after_a_change() -> None:
    metrics.report_state("ns", "p", STATUS)
    first = metrics.POLICY_STATES.text()
    assert b'freshet_policy_pending_batches{namespace="ns",policy="p"} 3.0' in first
    metrics.report_state("ns", "p", STATUS)  # the same state: not a change
    assert metrics.POLICY_STATES.text() is first
    metrics.report_state("ns", "p", {**STATUS, "data": {"pending": 4, "quarantined": 2}})
    again = metrics.POLICY_STATES.text()
    assert b'freshet_policy_pending_batches{namespace="ns",policy="p"} 4.0' in again
    metrics.forget("ns", "p")
    assert b'policy="p"' not in metrics.POLICY_STATES.text()


def test_a_scrape_gets_the_counters_and_the_states() -> None:
    metrics.report_state("ns", "scraped", STATUS)
    metrics.BATCHES_SEEN.labels("ns", "scraped").inc(2)
    server = metrics.serve(0)
    try:
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            body = r.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert 'freshet_batches_seen_total{namespace="ns",policy="scraped"} 2.0' in body
    assert 'freshet_policy_condition{namespace="ns",policy="scraped",type="Ready"} 1.0' in body
    assert body.count("# TYPE freshet_policy_condition gauge") == 1
    assert "freshet_batches_seen_created" not in body  # one series per policy nobody reads
