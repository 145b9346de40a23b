"""A policy's status is written once per change, even while the watch has not yet
brought the last write back (at a thousand policies it lags the Job events that
wake the next step); once it has, the object as watched is what a write diffs
against again."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf
from freshet.config import OperatorConfig
from freshet.controller import PolicyController, Runtime
from freshet.snapshot import PolicyFacts


class Kube:
    def __init__(self) -> None:
        self.patches: list[dict[str, Any]] = []

    def patch_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.patches.append(patch)


def policy(version: str, status: dict[str, Any]) -> kopf.Body:
    meta = {"uid": "u1", "namespace": "ns", "name": "p", "generation": 1}
    return kopf.Body(
        {"metadata": {**meta, "resourceVersion": version}, "spec": {}, "status": status}
    )  # type: ignore[typeddict-item]


def test_a_write_the_watch_has_not_brought_back_is_not_sent_again() -> None:
    async def scenario() -> None:
        kube = Kube()
        controller = PolicyController(Runtime(kube=kube, config=OperatorConfig()), "ns", "p", "u1")  # type: ignore[arg-type]

        async def write() -> None:
            assert controller.kept is not None
            body = controller.kept.body()
            await controller._write_status(body, PolicyFacts.of(body, "ns", "p", "u1"), None)

        controller.keep(policy("10", {}))
        await write()
        await write()  # a step woken before the write's own event arrived
        assert len(kube.patches) == 1
        written = kube.patches[0]

        controller.keep(policy("11", written))  # the write, as the watch brings it
        await write()
        assert len(kube.patches) == 1

        controller.keep(policy("12", {}))  # someone cleared the status since
        await write()
        assert len(kube.patches) == 2
        assert kube.patches[1]["conditions"] == written["conditions"]

    asyncio.run(scenario())
