"""Runtime.policy_event: one loop per policy, started by its first event, handed the
newest object, woken only by spec or annotation changes, cancelled on deletion."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from freshet.config import OperatorConfig
from freshet.controller import PolicyController, Runtime


def policy(generation: int = 1, annotations: dict[str, str] | None = None) -> Any:
    return {
        "metadata": {
            "uid": "u1",
            "namespace": "ns",
            "name": "p",
            "generation": generation,
            "annotations": annotations or {},
        }
    }


def test_a_loop_per_policy_from_first_event_to_deletion(monkeypatch: pytest.MonkeyPatch) -> None:
    steps: list[Any] = []

    async def run(self: PolicyController) -> None:
        try:
            while True:
                self.wake.clear()
                assert self.kept is not None
                body = self.kept.body()
                steps.append(body)
                self.observed = (body["metadata"]["generation"], "{}")
                await self.wake.wait()
        finally:
            del self.rt.controllers[self.uid]

    monkeypatch.setattr(PolicyController, "run", run)

    async def scenario() -> None:
        rt = Runtime(kube=None, config=OperatorConfig())  # type: ignore[arg-type]
        rt.policy_event("ADDED", policy())
        await asyncio.sleep(0)
        (task,) = rt.tasks.values()
        assert len(steps) == 1

        status_only = {**policy(), "status": {"observedGeneration": 1}}
        status_only["metadata"] = {**status_only["metadata"], "managedFields": [{"manager": "x"}]}
        rt.policy_event("MODIFIED", status_only)
        await asyncio.sleep(0)
        assert len(steps) == 1  # not woken
        held = rt.controllers["u1"].kept  # but handed the newest object,
        assert held is not None
        kept = held.body()
        assert kept["status"] == status_only["status"]
        assert "managedFields" not in kept["metadata"]  # less what nothing reads

        rt.policy_event("MODIFIED", policy(generation=2))
        await asyncio.sleep(0)
        assert len(steps) == 2 and steps[-1]["metadata"]["generation"] == 2

        rt.policy_event("DELETED", policy(generation=2))
        await asyncio.sleep(0)
        assert task.cancelled() and rt.tasks == {} and rt.controllers == {}

    asyncio.run(scenario())


def test_a_crashed_loop_starts_again_on_the_next_event(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[str] = []

    async def run(self: PolicyController) -> None:
        started.append(self.uid)
        del self.rt.controllers[self.uid]
        raise RuntimeError("a bug")

    monkeypatch.setattr(PolicyController, "run", run)

    async def scenario() -> None:
        rt = Runtime(kube=None, config=OperatorConfig())  # type: ignore[arg-type]
        rt.policy_event("ADDED", policy())
        await asyncio.sleep(0.01)
        assert rt.tasks == {}
        rt.policy_event("MODIFIED", policy())
        await asyncio.sleep(0.01)
        assert started == ["u1", "u1"]

    asyncio.run(scenario())
