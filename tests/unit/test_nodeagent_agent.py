"""Node agent plumbing without a cluster: the watch loop's relist on 410 Gone, and
the killing of process groups a previous agent left behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from devstack.nodeagent import AgentConfig, KubeError, NodeAgent, ProcessRecord, group_members


def _pod(uid: str, rv: str) -> dict[str, Any]:
    return {"metadata": {"uid": uid, "namespace": "ns", "name": uid, "resourceVersion": rv}}


class FakeKube:
    """Lists and watch streams scripted in advance."""

    def __init__(self, lists: list[list[dict[str, Any]]], watches: list[list[Any]]) -> None:
        self.lists = lists
        self.watches = watches
        self.watch_rvs: list[str] = []

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        assert (method, path) == ("GET", "/api/v1/pods")
        assert kwargs["query"] == {"fieldSelector": "spec.nodeName=local"}
        items = self.lists.pop(0)
        return {"metadata": {"resourceVersion": f"list-{len(self.lists)}"}, "items": items}

    def watch(self, path: str, query: Mapping[str, str], read_timeout: float) -> Iterator[Any]:
        self.watch_rvs.append(query["resourceVersion"])
        if not self.watches:
            raise KubeError(503, "no more scripted watches")
        for ev in self.watches.pop(0):
            if isinstance(ev, Exception):
                raise ev
            yield ev


def _run_watch(agent: NodeAgent, until: int) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []

    def record(etype: str, pod: dict[str, Any]) -> None:
        seen.append((etype, pod["metadata"]["uid"]))
        if len(seen) >= until:
            agent.stop()

    agent.dispatch = record  # type: ignore[method-assign]
    agent._watch_loop()
    return seen


def test_watch_resumes_and_relists_after_410(tmp_path: Path) -> None:
    kube = FakeKube(
        lists=[[_pod("a", "1")], [_pod("b", "7")]],
        watches=[
            [
                {"type": "ADDED", "object": _pod("c", "3")},
                {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "5"}}},
            ],
            [{"type": "ERROR", "object": {"kind": "Status", "code": 410}}],
            [{"type": "MODIFIED", "object": _pod("b", "8")}],
        ],
    )
    agent = NodeAgent(kube, AgentConfig(state_dir=tmp_path))  # type: ignore[arg-type]
    seen = _run_watch(agent, until=4)
    assert seen == [("ADDED", "a"), ("ADDED", "c"), ("ADDED", "b"), ("MODIFIED", "b")]
    # First watch from the list's version, the second resumes after the bookmark,
    # and after 410 Gone a fresh list's version is used.
    assert kube.watch_rvs == ["list-1", "5", "list-0"]


def test_watch_survives_errors(tmp_path: Path) -> None:
    kube = FakeKube(
        lists=[[]],
        watches=[[KubeError(500, "boom")], [{"type": "ADDED", "object": _pod("x", "2")}]],
    )
    agent = NodeAgent(kube, AgentConfig(state_dir=tmp_path))  # type: ignore[arg-type]
    assert _run_watch(agent, until=1) == [("ADDED", "x")]


def _wait_dead(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return True
        if done == pid:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("leader_alive", [True, False])
def test_leftover_process_groups_are_killed(tmp_path: Path, leader_alive: bool) -> None:
    # A leader that starts a grandchild in its group, then maybe exits.
    code = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen(['sleep', '300'])\n"
        "print(p.pid, flush=True)\n"
        f"time.sleep(300 if {leader_alive} else 0)\n"
    )
    leader = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, start_new_session=True, text=True
    )
    assert leader.stdout is not None
    grandchild = int(leader.stdout.readline())
    old = ProcessRecord(tmp_path / "pids.json")
    old.add(leader.pid, "ns/pod", "main")
    if not leader_alive:
        leader.wait()
    assert grandchild in group_members(leader.pid, 0)

    killed = ProcessRecord(tmp_path / "pids.json").kill_leftovers(grace=2)
    assert killed == 1
    if leader_alive:
        assert _wait_dead(leader.pid)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and grandchild in group_members(leader.pid, 0):
        time.sleep(0.05)
    # Gone, or a zombie waiting for init to reap it (group_members skips zombies).
    assert grandchild not in group_members(leader.pid, 0)
