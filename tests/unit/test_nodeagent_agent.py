"""Node agent plumbing without a cluster: the watch loop's relist on 410 Gone, the
killing of process groups a previous agent left behind, and the pod network's
addresses and forwarders."""

from __future__ import annotations

import os
import random
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from devstack.nodeagent import (
    AgentConfig,
    KubeError,
    NodeAgent,
    PodNetwork,
    ProcessRecord,
    group_members,
)


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


# --------------------------------------------------------------------------- pod network


class _Echo(socketserver.BaseRequestHandler):
    """Echoes everything until EOF, then closes: a stand-in for a pod's process."""

    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


@pytest.fixture
def network() -> Iterator[PodNetwork]:
    net = PodNetwork()
    yield net
    net.close()


def _random_ip() -> str:
    # Far from the addresses an agent hands out first (127.1.0.x), to run beside one.
    return f"127.{random.randint(200, 250)}.{random.randint(0, 254)}.{random.randint(1, 254)}"


def _listen(net: PodNetwork, owner: str, host_port: int) -> tuple[str, int]:
    ip = _random_ip()
    sock = PodNetwork.bind(ip, 0)
    port = int(sock.getsockname()[1])
    net.attach(owner, {port: (sock, host_port)})
    return ip, port


def _roundtrip(addr: tuple[str, int], payload: bytes) -> bytes:
    with socket.create_connection(addr, timeout=10) as c:
        c.settimeout(10)
        sender = threading.Thread(target=lambda: (c.sendall(payload), c.shutdown(socket.SHUT_WR)))
        sender.start()
        chunks = []
        while data := c.recv(65536):
            chunks.append(data)
        sender.join()
    return b"".join(chunks)


def _refused_or_closed(addr: tuple[str, int]) -> bool:
    """Connecting is refused, or the connection is closed without an answer."""
    try:
        with socket.create_connection(addr, timeout=5) as c:
            c.settimeout(5)
            c.sendall(b"hello")
            return c.recv(10) == b""
    except (ConnectionRefusedError, ConnectionResetError, BrokenPipeError):
        return True


def _network_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "pod-network"]


def test_forwarder_relays_both_ways(network: PodNetwork, echo_port: int) -> None:
    addr = _listen(network, "pod-a", echo_port)
    assert _roundtrip(addr, b"ping") == b"ping"
    # Bigger than the relay's buffers, on several connections at once: back-pressure works.
    payloads = [os.urandom(3 * 1024 * 1024 + i) for i in range(4)]
    results: list[bytes] = [b""] * len(payloads)

    def run(i: int) -> None:
        results[i] = _roundtrip(addr, payloads[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(payloads))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == payloads
    assert len(_network_threads()) == 1


def test_forwarder_closes_the_client_when_the_process_does_not_listen(
    network: PodNetwork,
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = int(s.getsockname()[1])
    addr = _listen(network, "pod-a", dead_port)
    assert _refused_or_closed(addr)
    assert network.owners() == {"pod-a"}  # still listening: the process may come up later


def test_detach_closes_listeners_and_open_relays(network: PodNetwork, echo_port: int) -> None:
    addr_a = _listen(network, "pod-a", echo_port)
    addr_b = _listen(network, "pod-b", echo_port)
    open_conn = socket.create_connection(addr_a, timeout=10)
    open_conn.settimeout(10)
    open_conn.sendall(b"x")
    assert open_conn.recv(1) == b"x"

    network.detach("pod-a")
    assert network.owners() == {"pod-b"}
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(addr_a, timeout=5)
    assert open_conn.recv(1) == b""  # the relay was closed too
    open_conn.close()
    assert _roundtrip(addr_b, b"still here") == b"still here"

    network.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(addr_b, timeout=5)
    deadline = time.monotonic() + 5
    while _network_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _network_threads()


class _NoKube:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        self.calls.append((method, path))
        return {}


def _net_pod(uid: str, ip: str | None = None) -> dict[str, Any]:
    pod: dict[str, Any] = {"metadata": {"uid": uid, "namespace": "ns", "name": uid}}
    if ip is not None:
        pod["status"] = {"podIP": ip}
    return pod


def test_agent_gives_each_pod_its_own_address_and_forwards(tmp_path: Path, echo_port: int) -> None:
    kube = _NoKube()
    agent = NodeAgent(kube, AgentConfig(state_dir=tmp_path))  # type: ignore[arg-type]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        cport = int(s.getsockname()[1])  # a container port nobody on 127.0.0.0/8 should use
    try:
        # An address whose port someone already holds (another agent) is skipped.
        busy = PodNetwork.bind("127.1.0.1", cport)
        ip_a = agent.open_pod_network(_net_pod("a"), {cport: echo_port})
        ip_b = agent.open_pod_network(_net_pod("b"), {cport: echo_port})
        busy.close()
        assert ip_a != ip_b
        assert "127.1.0.1" not in (ip_a, ip_b)
        assert agent.pod_ips == {"a": ip_a, "b": ip_b}
        for ip in (ip_a, ip_b):
            assert _roundtrip((ip, cport), b"hi " + ip.encode()) == b"hi " + ip.encode()

        # Deleted: refused there, and the address goes back to the pool.
        agent.close_pod_network("a")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((ip_a, cport), timeout=5)
        assert agent.pod_ips == {"b": ip_b}

        # After a restart a pod keeps the address it has, unless someone else has it.
        assert agent.reserve_pod_ip("c", ip_a) == ip_a
        assert agent.reserve_pod_ip("d", ip_b) is None
        assert agent.reserve_pod_ip("e", "127.0.0.1") is None
        assert agent.open_pod_network(_net_pod("c", ip_a), {cport: echo_port}) == ip_a
        ip_d = agent.open_pod_network(_net_pod("d", ip_b), {})
        assert ip_d not in (ip_a, ip_b)
        assert _roundtrip((ip_a, cport), b"back") == b"back"
        assert kube.calls == []  # no event: every port could be forwarded
    finally:
        agent.network.close()
    assert not _network_threads()
