"""A policy's status is written once per change, even while the watch has not yet
brought the last write back (at a thousand policies it lags the Job events that
wake the next step); once it has, the object as watched is what a write diffs
against again. Versions are compared as KEP-5504 allows, and where they are not
comparable the object as watched is used."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf
import pytest
from freshet.config import OperatorConfig
from freshet.controller import PolicyController, Runtime
from freshet.kube import older
from freshet.snapshot import PolicyFacts


class Kube:
    """patch_status, answering with the next resourceVersion (or `versions`' next)."""

    def __init__(self, versions: list[str]) -> None:
        self.patches: list[dict[str, Any]] = []
        self.versions = versions

    def patch_status(self, namespace: str, name: str, patch: dict[str, Any]) -> str:
        self.patches.append(patch)
        return self.versions.pop(0)


def policy(version: str, status: dict[str, Any]) -> kopf.Body:
    meta = {"uid": "u1", "namespace": "ns", "name": "p", "generation": 1}
    raw = {"metadata": {**meta, "resourceVersion": version}, "spec": {}, "status": status}
    return kopf.Body(raw)  # type: ignore[arg-type]


def controller(kube: Kube) -> PolicyController:
    return PolicyController(Runtime(kube=kube, config=OperatorConfig()), "ns", "p", "u1")  # type: ignore[arg-type]


async def write(c: PolicyController) -> None:
    assert c.kept is not None
    body = c.kept.body()
    await c._write_status(body, PolicyFacts.of(body, "ns", "p", "u1"), None)


def test_a_write_the_watch_has_not_brought_back_is_not_sent_again() -> None:
    async def scenario() -> None:
        kube = Kube(["12", "14"])
        c = controller(kube)
        c.keep(policy("10", {}))
        await write(c)
        await write(c)  # a step woken before the write's own event arrived
        assert len(kube.patches) == 1
        written = kube.patches[0]

        c.keep(policy("11", {}))  # a late event from before the write
        await write(c)
        assert len(kube.patches) == 1

        c.keep(policy("12", written))  # the write, as the watch brings it
        await write(c)
        assert len(kube.patches) == 1

        c.keep(policy("13", {}))  # someone cleared the status since
        await write(c)
        assert len(kube.patches) == 2
        assert kube.patches[1]["conditions"] == written["conditions"]

    asyncio.run(scenario())


def test_versions_that_are_not_comparable_leave_the_watched_object_in_charge() -> None:
    async def scenario() -> None:
        kube = Kube(["b", "c"])
        c = controller(kube)
        c.keep(policy("a", {}))
        await write(c)
        await write(c)
        assert len(kube.patches) == 2  # as before: one patch too many, never one too few

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("9", "10", True),
        ("10", "9", False),
        ("10", "10", False),
        ("123", "124", True),
        ("010", "11", None),  # a leading zero: not a version KEP-5504 promises
        ("0", "1", None),
        ("a1", "2", None),
        ("١٢", "13", None),  # digits, but not ASCII ones
        (None, "1", None),
    ],
)
def test_resource_versions_compare_as_kep_5504_says(
    a: str | None, b: str | None, expected: bool | None
) -> None:
    assert older(a, b) is expected


def test_a_step_that_waited_for_its_turn_starts_from_the_newest_object() -> None:
    """Steps wait for `Runtime.stepping`; meanwhile the watch can bring the last
    write back (and that write's copy goes): the step must see what it brought."""

    async def scenario() -> None:
        c = controller(Kube([]))
        seen: list[str] = []

        async def step(body: kopf.Body) -> float:
            seen.append(body["metadata"]["resourceVersion"])
            raise asyncio.CancelledError

        c.step = step  # type: ignore[method-assign]
        c.keep(policy("10", {}))
        taken = 0
        while not c.rt.stepping.locked():  # every turn taken
            await c.rt.stepping.acquire()
            taken += 1
        loop = asyncio.create_task(c.run())
        await asyncio.sleep(0.01)
        assert seen == []  # waiting for its turn
        c.keep(policy("11", {}))
        for _ in range(taken):
            c.rt.stepping.release()
        with pytest.raises(asyncio.CancelledError):
            await loop
        assert seen == ["11"]

    asyncio.run(scenario())
