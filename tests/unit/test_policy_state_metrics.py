"""Per-policy state gauges follow the status document, and go with the policy."""

from __future__ import annotations

from freshet import metrics
from prometheus_client import REGISTRY

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
