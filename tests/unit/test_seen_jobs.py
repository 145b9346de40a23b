"""A step reads a Job the watch just saw from memory, anything else from the API
server; it asks why pods are missing only once the Job is past its start grace."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from freshet import gather
from freshet.seen_jobs import SeenJobs

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def job(name: str = "r1", age: float = 1.0, **status: Any) -> dict[str, Any]:
    created = (NOW - timedelta(seconds=age)).isoformat().replace("+00:00", "Z")
    return {
        "metadata": {"namespace": "ns", "name": name, "creationTimestamp": created},
        "status": status,
    }


class Kube:
    """The two reads job_view makes, counted."""

    def __init__(self, jobs: dict[str, dict[str, Any]]) -> None:
        self.jobs = jobs
        self.calls: list[str] = []

    def job(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append(f"GET {name}")
        return self.jobs.get(name)

    def pods_not_created(self, namespace: str, name: str) -> str | None:
        self.calls.append(f"events {name}")
        return "exceeded quota: pods=0"


def view(kube: Kube, seen: SeenJobs, name: str = "r1") -> Any:
    return asyncio.run(gather.job_view(kube, seen, "ns", name, NOW))  # type: ignore[arg-type]


def test_a_job_the_watch_just_saw_is_not_read_again() -> None:
    clock = Clock()
    seen = SeenJobs(max_age=10.0, clock=clock)
    done = job(conditions=[{"type": "Complete", "status": "True"}])
    seen.seen("MODIFIED", done)
    kube = Kube({"r1": job(active=1)})  # the API server would say otherwise
    assert view(kube, seen).finished == "succeeded"
    assert kube.calls == []

    clock.now += 10.0  # too old to trust: a watch gap sends no DELETED
    assert view(kube, seen).finished is None
    assert kube.calls == ["GET r1"]


def test_a_deleted_or_unseen_job_is_read_from_the_api_server() -> None:
    seen = SeenJobs()
    seen.seen("ADDED", job(active=1))
    seen.seen("DELETED", job(active=1))
    kube = Kube({})
    assert view(kube, seen) is None
    assert kube.calls == ["GET r1"]


def test_refused_pods_are_looked_for_only_after_the_start_grace() -> None:
    seen = SeenJobs()
    seen.seen("ADDED", job("young", age=gather.POD_CREATION_GRACE_SECONDS - 1))
    seen.seen("ADDED", job("old", age=gather.POD_CREATION_GRACE_SECONDS + 1))
    seen.seen("ADDED", job("running", age=600, active=1))
    kube = Kube({})

    young = view(kube, seen, "young")
    assert (young.finished, young.pods_not_created) == (None, False)
    assert kube.calls == []

    old = view(kube, seen, "old")
    assert (old.pods_not_created, old.message) == (True, "exceeded quota: pods=0")
    assert kube.calls == ["events old"]

    assert not view(kube, seen, "running").pods_not_created
    assert kube.calls == ["events old"]


def test_old_entries_are_dropped_as_new_events_come() -> None:
    clock = Clock()
    seen = SeenJobs(max_age=10.0, clock=clock)
    seen.seen("ADDED", job("finished-long-ago"))
    clock.now += 11.0
    seen.seen("ADDED", job("new"))
    assert set(seen._jobs) == {("ns", "new")}
