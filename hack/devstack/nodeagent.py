"""A local node agent that plays the kubelet: it runs pods as local processes.

Development tooling only, never shipped. There is no container runtime on the
development machine, so the agent registers a Node (Ready, with generous
allocatable cpu/memory/pods), keeps its Lease in `kube-node-lease` fresh, watches
the pods bound to it (`spec.nodeName`) and runs each container's `command` +
`args` as a local process in its own process group:

    python -m devstack.nodeagent run --kubeconfig PATH --node-name local --state-dir DIR
    python -m devstack.nodeagent logs NAMESPACE/POD [--container C] --state-dir DIR

What it does, like the kubelet:

* init containers run one after another, then all containers; exit codes become
  `terminated` states (Completed/Error), the pod phase follows `restartPolicy`
  (Never/OnFailure/Always, restarts in place with exponential back-off and
  `restartCount`); conditions PodScheduled, PodReadyToStartContainers,
  Initialized, ContainersReady and Ready; hostIP 127.0.0.1 and a podIP of the
  pod's own; all through the pods/status subresource.
* env: literal values with `$(VAR)` expansion, `secretKeyRef`, `configMapKeyRef`,
  `fieldRef`, `resourceFieldRef`, `envFrom`; `$(VAR)` in command and args.
* volumes: emptyDir, secret, configMap, downwardAPI and projected (including a
  bound service-account token) are directories under `<state-dir>/pods/<uid>/`.
* readiness, liveness and startup probes (httpGet, tcpSocket, exec; grpc is
  approximated by a TCP connect); liveness/startup failures restart the container.
* graceful deletion: preStop hook (exec/httpGet/sleep), SIGTERM to the process
  group, SIGKILL after the grace period, final status, then the pod is deleted
  with gracePeriodSeconds=0 (which is how the kubelet finishes a deletion).
* the termination message (`terminationMessagePath`, FallbackToLogsOnError).

What differs (the limitations of running without containers):

* The image is ignored: the executable must exist on the machine. The venv of
  the agent's interpreter (`sys.executable`'s directory) comes first on PATH. A
  container without `command` runs its `args`, or the entrypoint given for its
  image with `--entrypoint IMAGE=COMMAND`.
* No filesystem isolation. Mount paths cannot be created (the agent must not
  write outside its state directory), so every occurrence of a `mountPath` (and
  of the `terminationMessagePath`) as a path, or a path prefix, inside command,
  args and env values is rewritten to the host directory. A program that uses a
  hard-coded mount path it was not given in its command line or environment will
  not find it. The mapping is exported as JSON in `DEVSTACK_MOUNTS`, the host
  termination-log file in `DEVSTACK_TERMINATION_LOG` and `FRESHET_TERMINATION_LOG`.
  `workingDir` is the host directory if it is under a mount or exists on the
  host, else a directory under the pod's state directory. Volume contents are
  written once when the pod starts (Secret/ConfigMap changes are not propagated,
  service-account tokens are not refreshed). hostPath and persistentVolumeClaim
  volumes are directories under the state directory too (a PVC's survives its pods).
* No network isolation, but a pod network on loopback. Processes share the
  host's network: each declared containerPort is mapped to a free port on
  127.0.0.1, told to the process as `PORT_<containerPort>` (and `PORT` when the
  container declares exactly one port), and published on the pod as the
  annotation `devstack.freshet.dev/ports` (`{"<container>/<containerPort>":
  hostPort}`). Probes use the mapped ports. Each pod also gets an address of its
  own from 127.0.0.0/8 (127.1.0.1 upward, round-robin, never 127.0.x.x, no .255
  octet or .0 last octet), unique among the agent's pods and reported as
  `status.podIP`/`podIPs` (hostIP stays 127.0.0.1); Linux routes all of
  127.0.0.0/8 to loopback, so nothing needs to be set up. For every TCP
  containerPort the agent listens on `<podIP>:<containerPort>` and relays each
  connection, both ways, to `127.0.0.1:<hostPort>`, so `http://<podIP>:<port>/`
  works from any process on the machine as in a cluster network (a connection
  made before the process listens is closed at once). The forwarders start when
  the ports are allocated and stop (listeners and open connections closed, the
  address released) when the pod's worker ends: pod deleted or completed, agent
  stopped. Limits: TCP only (UDP/SCTP ports are mapped, not forwarded); a
  process that binds its containerPort itself, rather than `$(PORT)`, is not
  reached through the pod address and may collide with the forwarders (on
  wildcard addresses); an address or port another program already holds is
  skipped or not forwarded (event PortForwardFailed); the peer address a process
  sees is 127.0.0.1, not the client's pod IP; only this machine can reach pod
  addresses. Services, kube-proxy and in-cluster DNS do not exist;
  in-cluster API config does not work either (the token file is not at its
  well-known path).
* The host environment is not inherited, except PATH, LANG, LC_ALL and TZ.
  HOME and TMPDIR point into the pod's state directory, PYTHONUNBUFFERED=1 so
  logs arrive while the process runs.
* Resource limits, security contexts, image pulls and a pod's own
  activeDeadlineSeconds are ignored (a Job's activeDeadlineSeconds works: the Job
  controller enforces it). A process that leaves its process group (setsid)
  escapes the agent's kill.
* There is no kubelet HTTP API: `kubectl logs/exec/port-forward` do not work.
  Use `python -m devstack.nodeagent logs` and the published ports instead.
* Logs are in `<state-dir>/logs/<namespace>_<pod>_<container>.log`
  (stdout+stderr of every run appended).

Restarting the agent: the process groups it started are recorded in
`<state-dir>/pids.json`. A new agent kills whatever survives of them (it cannot
wait for processes it did not start), then treats each pod bound to the node
like a kubelet after a node reboot: containers of Always/OnFailure pods are
started again (restartCount + 1), keeping their podIP (new host ports are
mapped and published); a Never pod whose containers had started is
marked Failed (exitCode 137, reason ContainerStatusUnknown). On SIGTERM/SIGINT
the agent stops all its processes gracefully (each pod's grace period, capped
by `--shutdown-grace`) and exits without changing pod statuses, as a kubelet
that stops does. Only one agent may use a state directory at a time.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import json
import logging
import os
import platform
import selectors
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from devstack.nodeagent_lib import (
    JSON,
    TERMINATION_LOG_DEFAULT,
    ConfigError,
    PathRewriter,
    allocate_pod_ip,
    compute_phase,
    condition,
    decode_secret,
    exit_code_of,
    expand,
    field_ref_value,
    free_port,
    in_pod_range,
    log_file_name,
    now_micro,
    now_rfc3339,
    pod_key,
    port_env,
    read_termination_message,
    resolve_env,
    resolve_port,
    safe_join,
    select_items,
    terminated_state,
    volume_files,
)

log = logging.getLogger("devstack.nodeagent")

PORTS_ANNOTATION = "devstack.freshet.dev/ports"
SMP = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"
TICK = 0.2
LEASE_DURATION = 40
VENV_BIN = str(Path(sys.executable).parent)
PASSTHROUGH_ENV = ("LANG", "LC_ALL", "TZ")
LOST_MESSAGE = "node agent restarted: the process was lost"


def emit(level: int, name: str, pod: JSON | None = None, **fields: Any) -> None:
    """One structured (JSON) log line per event."""
    rec: dict[str, Any] = {"ts": now_micro(), "level": logging.getLevelName(level), "event": name}
    if pod is not None:
        rec["pod"] = pod_key(pod)
    rec.update({k: v for k, v in fields.items() if v is not None})
    log.log(level, json.dumps(rec, default=str))


# --------------------------------------------------------------------------- API access


class KubeError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:500]}")
        self.status = status
        self.body = body


class Kube:
    """Raw-JSON access to the API server through a `kubernetes.client.ApiClient`.

    Bodies and results are plain dicts; patches say their type explicitly.
    """

    def __init__(self, api: Any) -> None:
        self.api = api

    def _send(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None,
        body: Any,
        content_type: str,
        timeout: float | tuple[float, float],
    ) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        params = self.api.param_serialize(
            method=method,
            resource_path=path,
            query_params=list(query.items()) if query else None,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        return self.api.call_api(*params, _request_timeout=timeout)

    def call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> JSON:
        resp = self._send(
            method, path, query=query, body=body, content_type=content_type, timeout=timeout
        )
        data = resp.read()
        if not 200 <= resp.status < 300:
            raise KubeError(resp.status, data.decode("utf-8", errors="replace"))
        return json.loads(data) if data else {}

    def get(self, path: str) -> JSON | None:
        """GET, or None on 404."""
        try:
            return self.call("GET", path)
        except KubeError as e:
            if e.status == 404:
                return None
            raise

    def watch(self, path: str, query: Mapping[str, str], read_timeout: float) -> Iterator[JSON]:
        resp = self._send(
            "GET",
            path,
            query={**query, "watch": "true"},
            body=None,
            content_type="",
            timeout=(10.0, read_timeout),
        )
        raw = resp.response
        try:
            if not 200 <= resp.status < 300:
                raise KubeError(resp.status, raw.read().decode("utf-8", errors="replace"))
            buf = b""
            for chunk in raw.stream(amt=None, decode_content=True):
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        finally:
            with contextlib.suppress(Exception):
                raw.release_conn()
            with contextlib.suppress(Exception):
                raw.close()


def pod_path(ns: str, name: str) -> str:
    return f"/api/v1/namespaces/{quote(ns)}/pods/{quote(name)}"


# --------------------------------------------------------------------------- process records


def proc_start_ticks(pid: int) -> int | None:
    """A process's start time (clock ticks since boot), to tell it from a reused PID."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[19])


def group_members(pgid: int, min_start: int) -> list[int]:
    """Live processes in process group `pgid` started no earlier than `min_start`."""
    out: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            continue
        if int(fields[2]) == pgid and int(fields[19]) >= min_start:
            out.append(int(entry))
    return out


class ProcessRecord:
    """`<state-dir>/pids.json`: every process group the agent started and has not reaped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.groups: dict[int, JSON] = {}

    def add(self, pid: int, pod: str, container: str) -> None:
        with self.lock:
            self.groups[pid] = {"start": proc_start_ticks(pid), "pod": pod, "container": container}
            self._save()

    def remove(self, pid: int) -> None:
        with self.lock:
            if self.groups.pop(pid, None) is not None:
                self._save()

    def _save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({str(k): v for k, v in self.groups.items()}))
        tmp.replace(self.path)

    def kill_leftovers(self, grace: float) -> int:
        """Kill the groups a previous agent recorded; returns how many were alive."""
        try:
            old = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return 0
        alive: list[int] = []
        for pid_s, rec in old.items():
            pid, start = int(pid_s), rec.get("start")
            if start is None:
                continue
            if group_members(pid, int(start)):
                emit(logging.WARNING, "leftover.kill", group=pid, owner=rec.get("pod"))
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGTERM)
                alive.append(pid)
        deadline = time.monotonic() + grace
        while alive and time.monotonic() < deadline:
            if not any(group_members(p, int(old[str(p)]["start"])) for p in alive):
                break
            time.sleep(0.1)
        for pid in alive:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
        with self.lock:
            self.groups = {}
            self._save()
        return len(alive)

    def kill_all(self) -> None:
        with self.lock:
            pids = list(self.groups)
        for pid in pids:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)


# --------------------------------------------------------------------------- pod network

RELAY_CHUNK = 64 * 1024
RELAY_BUFFER = 256 * 1024  # per direction: stop reading from a side while this much waits


class _Listener:
    """A forwarder's listening socket on `<podIP>:<containerPort>`."""

    def __init__(self, owner: str, sock: socket.socket, host_port: int) -> None:
        self.owner = owner
        self.sock = sock
        self.host_port = host_port


class _Relay:
    """One forwarded connection: the client and the upstream socket to `127.0.0.1:<hostPort>`."""

    def __init__(self, owner: str, client: socket.socket, upstream: socket.socket) -> None:
        self.owner = owner
        self.client = client
        self.upstream = upstream
        self.connecting = True
        # Bytes waiting to be written to a socket, and whether a socket has sent EOF.
        self.pending: dict[socket.socket, bytearray] = {client: bytearray(), upstream: bytearray()}
        self.eof: dict[socket.socket, bool] = {client: False, upstream: False}
        self.closed = False

    def peer(self, sock: socket.socket) -> socket.socket:
        return self.upstream if sock is self.client else self.client

    def interest(self, sock: socket.socket) -> int:
        if self.closed:
            return 0
        if self.connecting:
            return selectors.EVENT_WRITE if sock is self.upstream else 0
        events = 0
        if not self.eof[sock] and len(self.pending[self.peer(sock)]) < RELAY_BUFFER:
            events |= selectors.EVENT_READ
        if self.pending[sock]:
            events |= selectors.EVENT_WRITE
        return events

    @property
    def done(self) -> bool:
        return all(self.eof.values()) and not any(self.pending.values())


class PodNetwork:
    """The forwarders of the pod network: `<podIP>:<containerPort>` -> `127.0.0.1:<hostPort>`.

    One thread for the whole agent runs a selector over every listening socket
    and every relayed connection (non-blocking sockets, so a slow peer blocks
    nobody). Listening sockets are bound by the caller (`bind`), so an address
    already in use is known at allocation time, then handed over with `attach`;
    `detach` closes a pod's listeners and open relays and returns once they are
    closed. The thread starts with the first `attach` and ends with `close`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._commands: list[tuple[str, Any, threading.Event]] = []
        self._thread: threading.Thread | None = None
        self._closed = False
        self._listeners: dict[str, list[_Listener]] = {}
        self._relays: set[_Relay] = set()

    # ------------------------------------------------------------ any thread

    @staticmethod
    def bind(ip: str, port: int) -> socket.socket:
        """A non-blocking socket listening on `ip:port`; raises OSError (EADDRINUSE ...)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((ip, port))
            sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    def attach(self, owner: str, listeners: Mapping[int, tuple[socket.socket, int]]) -> None:
        """Start forwarding: containerPort -> (listening socket from `bind`, host port)."""
        items = [_Listener(owner, sock, hp) for sock, hp in listeners.values()]
        with self._lock:
            if self._closed:
                for item in items:
                    item.sock.close()
                return
            if self._thread is None:
                self._sel = selectors.DefaultSelector()
                self._wake_r, self._wake_w = socket.socketpair()
                self._wake_r.setblocking(False)
                self._wake_w.setblocking(False)
                self._sel.register(self._wake_r, selectors.EVENT_READ, None)
                self._thread = threading.Thread(target=self._loop, name="pod-network", daemon=True)
                self._thread.start()
        if not self._command("attach", (owner, items)):  # closed in the meantime
            for item in items:
                item.sock.close()

    def detach(self, owner: str) -> None:
        """Stop forwarding for `owner`: close its listeners and open relays."""
        self._command("detach", owner)

    def close(self) -> None:
        """Close every listener and relay and end the thread."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            self._command("close", None)
            thread.join(5.0)
            for sock in (self._wake_r, self._wake_w):
                sock.close()
        with self._lock:
            self._closed = True

    def owners(self) -> set[str]:
        with self._lock:
            return set(self._listeners)

    def _command(self, name: str, arg: Any, timeout: float = 5.0) -> bool:
        """Have the network thread run a command and wait for it; False if it has ended."""
        done = threading.Event()
        with self._lock:
            if self._closed or self._thread is None:
                return False
            self._commands.append((name, arg, done))
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        done.wait(timeout)
        return True

    # ------------------------------------------------------------ the network thread

    def _loop(self) -> None:
        running = True
        while running:
            try:
                ready = self._sel.select()
            except OSError as e:
                emit(logging.ERROR, "network.select_failed", error=repr(e))
                time.sleep(0.1)
                continue
            for key, events in ready:
                data = key.data
                try:
                    if data is None:
                        with contextlib.suppress(OSError):
                            self._wake_r.recv(4096)
                    elif isinstance(data, _Listener):
                        self._accept(data)
                    elif not data[0].closed:  # not closed by an earlier event of this round
                        self._service(data[0], data[1], events)
                except Exception as e:  # keep the network up whatever one connection does
                    emit(logging.ERROR, "network.event_failed", error=repr(e))
                    if isinstance(data, tuple):
                        self._close_relay(data[0])
            with self._lock:
                commands, self._commands = self._commands, []
            for name, arg, done in commands:
                try:
                    if name == "attach":
                        owner, items = arg
                        for item in items:
                            self._sel.register(item.sock, selectors.EVENT_READ, item)
                            with self._lock:
                                self._listeners.setdefault(owner, []).append(item)
                    elif name == "detach":
                        self._drop(arg)
                    elif name == "close":
                        for owner in list(self._listeners):
                            self._drop(owner)
                        for relay in list(self._relays):
                            self._close_relay(relay)
                        running = False
                except Exception as e:
                    emit(logging.ERROR, "network.command_failed", command=name, error=repr(e))
                finally:
                    done.set()
        with self._lock:
            self._closed = True
            leftovers, self._commands = self._commands, []
        for name, arg, done in leftovers:
            if name == "attach":
                for item in arg[1]:
                    item.sock.close()
            done.set()
        self._sel.close()

    def _drop(self, owner: str) -> None:
        with self._lock:
            items = self._listeners.pop(owner, [])
        for item in items:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(item.sock)
            item.sock.close()
        for relay in [r for r in self._relays if r.owner == owner]:
            self._close_relay(relay)

    def _accept(self, listener: _Listener) -> None:
        for _ in range(64):
            try:
                client, _addr = listener.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # EMFILE and the like: try again on the next event
                emit(logging.WARNING, "network.accept_failed", owner=listener.owner, error=repr(e))
                return
            client.setblocking(False)
            upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            upstream.setblocking(False)
            err = upstream.connect_ex(("127.0.0.1", listener.host_port))
            if err not in (0, errno.EINPROGRESS):
                client.close()  # the process is not listening (yet): refuse by closing
                upstream.close()
                continue
            relay = _Relay(listener.owner, client, upstream)
            relay.connecting = err != 0
            self._relays.add(relay)
            self._update(relay)

    def _service(self, relay: _Relay, sock: socket.socket, events: int) -> None:
        try:
            if relay.connecting:
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    raise OSError(err, os.strerror(err))
                relay.connecting = False
            else:
                if events & selectors.EVENT_WRITE:
                    self._flush(relay, sock)
                if events & selectors.EVENT_READ and not relay.eof[sock]:
                    data = sock.recv(RELAY_CHUNK)
                    dest = relay.peer(sock)
                    if data:
                        relay.pending[dest] += data
                    else:
                        relay.eof[sock] = True
                    self._flush(relay, dest)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self._close_relay(relay)
            return
        if relay.done:
            self._close_relay(relay)
        else:
            self._update(relay)

    @staticmethod
    def _flush(relay: _Relay, dest: socket.socket) -> None:
        """Write what waits for `dest`; pass EOF on once everything is written."""
        buf = relay.pending[dest]
        while buf:
            try:
                sent = dest.send(buf)
            except (BlockingIOError, InterruptedError):
                return
            del buf[:sent]
        if relay.eof[relay.peer(dest)]:
            with contextlib.suppress(OSError):
                dest.shutdown(socket.SHUT_WR)

    def _update(self, relay: _Relay) -> None:
        for sock in (relay.client, relay.upstream):
            events = relay.interest(sock)
            try:
                current = self._sel.get_key(sock).events
            except KeyError:
                current = 0
            if events == current:
                continue
            if not events:
                self._sel.unregister(sock)
            elif not current:
                self._sel.register(sock, events, (relay, sock))
            else:
                self._sel.modify(sock, events, (relay, sock))

    def _close_relay(self, relay: _Relay) -> None:
        relay.closed = True
        self._relays.discard(relay)
        for sock in (relay.client, relay.upstream):
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(sock)
            sock.close()


# --------------------------------------------------------------------------- pod worker


@dataclass
class Probe:
    kind: str  # readiness | liveness | startup
    spec: JSON
    next_at: float = 0.0
    successes: int = 0
    failures: int = 0
    result: bool | None = None

    @property
    def period(self) -> float:
        return float(self.spec.get("periodSeconds") or 10)

    @property
    def timeout(self) -> float:
        return float(self.spec.get("timeoutSeconds") or 1)

    def record(self, ok: bool) -> bool | None:
        """Count one result; return the new verdict when a threshold is crossed."""
        if ok:
            self.successes, self.failures = self.successes + 1, 0
            needed = int(self.spec.get("successThreshold") or 1)
            if self.successes >= needed and self.result is not True:
                self.result = True
                return True
        else:
            self.failures, self.successes = self.failures + 1, 0
            needed = int(self.spec.get("failureThreshold") or 3)
            if self.failures >= needed and self.result is not False:
                self.result = False
                return False
        return None


@dataclass
class Container:
    spec: JSON
    init: bool = False
    sidecar: bool = False  # an init container with restartPolicy Always
    proc: subprocess.Popen[bytes] | None = None
    restart_count: int = 0
    runs: int = 0
    state: JSON = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: JSON = field(default_factory=dict)
    ready: bool = False
    started: bool = False  # running and past its startup probe
    started_at: str | None = None
    started_mono: float = 0.0
    next_start: float = 0.0
    backoff: float = 0.0
    done: bool = False  # terminated for good
    log_offset: int = 0
    stop_deadline: float | None = None
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = ""
    rewriter: PathRewriter = field(default_factory=lambda: PathRewriter({}))
    probes: dict[str, Probe] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    def status(self) -> JSON:
        st: JSON = {
            "name": self.name,
            "image": str(self.spec.get("image") or "devstack"),
            "imageID": f"devstack://{self.spec.get('image') or 'none'}",
            "ready": self.ready,
            "restartCount": self.restart_count,
            "started": self.started,
            "state": self.state,
            "lastState": self.last_state,
        }
        if self.runs:
            st["containerID"] = f"devstack://{self.name}-{self.runs}"
        return st


class PodWorker:
    """Runs one pod: its own thread, which owns every piece of the pod's state."""

    def __init__(self, agent: NodeAgent, pod: JSON) -> None:
        meta = pod["metadata"]
        self.thread = threading.Thread(
            target=self.run, name=f"pod-{meta['namespace']}/{meta['name']}", daemon=True
        )
        self.agent = agent
        self.kube = agent.kube
        self.uid: str = meta["uid"]
        self.ns: str = meta["namespace"]
        self.pod_name: str = meta["name"]
        self._pod = pod
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self.gone = False  # deleted from the API
        self.shutdown = False  # the agent is stopping
        self.finished = False
        self.dir = agent.cfg.state_dir / "pods" / self.uid
        spec = pod.get("spec") or {}
        self.restart_policy: str = spec.get("restartPolicy") or "Always"
        self.init = [
            Container(c, init=True, sidecar=c.get("restartPolicy") == "Always")
            for c in spec.get("initContainers") or []
        ]
        self.containers = [Container(c) for c in spec.get("containers") or []]
        status = pod.get("status") or {}
        self.start_time: str = status.get("startTime") or now_rfc3339()
        self.prev_conditions: dict[str, JSON] = {
            c["type"]: c for c in status.get("conditions") or [] if "type" in c
        }
        self.host_ports: dict[str, dict[int, int]] = {}
        self._ports_published = False
        # The pod's address: kept from a previous agent (restart), else given with its ports.
        self.pod_ip: str | None = agent.reserve_pod_ip(self.uid, status.get("podIP"))
        self.ready_to_start = False
        self.terminating = False
        self.completing = False  # the pod reached its phase; only sidecars are left to stop
        self.silent_stop = False  # stopping without reporting (agent exit, pod gone)
        self.phase = status.get("phase") or "Pending"
        self.pod_message: str | None = None
        self._sent: str | None = None
        self._next_send = 0.0

    # ------------------------------------------------------------ called by the agent

    def start(self) -> None:
        self.thread.start()

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)

    def update(self, pod: JSON) -> None:
        with self._lock:
            self._pod = pod
        self._wake.set()

    def pod_gone(self) -> None:
        self.gone = True
        self._wake.set()

    def stop_for_shutdown(self) -> None:
        self.shutdown = True
        self._wake.set()

    @property
    def pod(self) -> JSON:
        with self._lock:
            return self._pod

    # ------------------------------------------------------------ main loop

    def run(self) -> None:
        try:
            self._run()
        except Exception as e:
            emit(
                logging.ERROR,
                "pod.worker_error",
                self.pod,
                error=repr(e),
                tb=traceback.format_exc(),
            )
            self._kill_everything()
            if not (self.gone or self.shutdown):
                with contextlib.suppress(Exception):
                    self.phase = "Failed"
                    self.pod_message = f"node agent error: {e!r}"
                    self._send_status(force=True)
        finally:
            try:
                self.agent.close_pod_network(self.uid)
            except Exception as e:
                emit(logging.ERROR, "pod.network_close_failed", self.pod, error=repr(e))
            self.finished = True
            if self.gone:
                shutil.rmtree(self.dir, ignore_errors=True)

    def _all(self) -> list[Container]:
        return [*self.init, *self.containers]

    def _running(self) -> list[Container]:
        return [c for c in self._all() if c.proc is not None]

    def _stopping_now(self) -> bool:
        return self.gone or self.shutdown

    def _run(self) -> None:
        emit(logging.INFO, "pod.accepted", self.pod, uid=self.uid)
        if self._recover():
            self._send_status(force=True)
            return
        while not self._setup():
            if self._stopping_now() or self.pod["metadata"].get("deletionTimestamp"):
                break
            self._wake.wait(2.0)
            self._wake.clear()
        while True:
            pod = self.pod
            if self._stopping_now() and not self.silent_stop:
                self._stop_silently()
            elif pod["metadata"].get("deletionTimestamp") and not self.terminating:
                self._begin_termination(pod)
            self._poll_processes()
            if self.ready_to_start and not (
                self.terminating or self.silent_stop or self.completing
            ):
                self._start_due()
                self._run_probes()
            self._enforce_deadlines()
            if self.silent_stop:
                if not self._running():
                    emit(logging.INFO, "pod.stopped", pod, reason="agent stop or pod gone")
                    return
            elif self.terminating:
                if not self._running():
                    self._finish_termination()
                    return
            else:
                self.phase = self._phase()
                if self.phase in ("Succeeded", "Failed"):
                    self.completing = True
                    sidecars = [c for c in self._running() if c.sidecar]
                    for c in sidecars:
                        self._stop_container(c, self._grace(pod), "pod completed")
                    if not sidecars and not self._running():
                        self._send_status(force=True)
                        emit(logging.INFO, "pod.completed", pod, phase=self.phase)
                        return
                self._send_status()
            self._wake.wait(TICK)
            self._wake.clear()

    # ------------------------------------------------------------ recovery

    def _recover(self) -> bool:
        """Take over a pod a previous agent ran (its processes are dead by now).

        Returns True when the pod is thereby finished (a Never pod that had started).
        """
        status = self.pod.get("status") or {}
        old = {s["name"]: s for s in status.get("initContainerStatuses") or []}
        old.update({s["name"]: s for s in status.get("containerStatuses") or []})
        if not any(
            "running" in (s.get("state") or {})
            or "terminated" in (s.get("state") or {})
            or "terminated" in (s.get("lastState") or {})
            for s in old.values()
        ):
            return False
        emit(logging.WARNING, "pod.recover", self.pod, restartPolicy=self.restart_policy)
        lost_any = False
        for c in self._all():
            s = old.get(c.name)
            if s is None:
                continue
            c.restart_count = int(s.get("restartCount") or 0)
            state = s.get("state") or {}
            last = s.get("lastState") or {}
            term = state.get("terminated")
            if "running" in state:
                term = {
                    "exitCode": 137,
                    "reason": "ContainerStatusUnknown",
                    "message": LOST_MESSAGE,
                    "finishedAt": now_rfc3339(),
                    "startedAt": state["running"].get("startedAt"),
                }
                lost_any = True
                if c.sidecar or self._restarts(c, 137):
                    c.last_state = {"terminated": term}
                    c.runs = 1
                else:
                    c.state, c.done = {"terminated": term}, True
            elif term is not None:
                if self._restarts(c, int(term.get("exitCode", 1))) or c.sidecar:
                    c.last_state, c.runs = {"terminated": term}, 1
                else:
                    c.state, c.done = {"terminated": term}, True
            elif "terminated" in last:
                c.last_state, c.runs = last, 1
        if self.restart_policy == "Never" and lost_any:
            for c in self._all():
                if not c.done and "terminated" not in c.state:
                    c.state = {
                        "terminated": {
                            "exitCode": 137,
                            "reason": "ContainerStatusUnknown",
                            "message": LOST_MESSAGE,
                            "finishedAt": now_rfc3339(),
                        }
                    }
                    c.done = True
            self.phase = "Failed"
            self.pod_message = LOST_MESSAGE
            return True
        return False

    # ------------------------------------------------------------ setup

    def _setup(self) -> bool:
        """Ports, directories and volumes; False (and a status saying why) to retry later."""
        pod = self.pod
        try:
            self._allocate_ports(pod)
            for sub in ("volumes", "termination", "work", "home", "tmp"):
                (self.dir / sub).mkdir(parents=True, exist_ok=True)
            for vol in (pod.get("spec") or {}).get("volumes") or []:
                self._make_volume(pod, vol)
        except (ConfigError, KubeError, OSError) as e:
            msg = f"{type(e).__name__}: {e}"
            emit(logging.WARNING, "pod.setup_failed", pod, error=msg)
            self.agent.record_event(pod, "FailedMount", msg, "Warning")
            for c in self._all():
                c.state = {"waiting": {"reason": "ContainerCreating", "message": msg[:1000]}}
            with contextlib.suppress(Exception):
                self._send_status()
            return False
        self.ready_to_start = True
        return True

    def _allocate_ports(self, pod: JSON) -> None:
        """Host ports, the pod's address and its forwarders (once), then the ports annotation."""
        published: dict[str, int] = {}
        if not self.host_ports:
            forwarded: dict[int, int] = {}  # TCP containerPort -> host port; the first one wins
            for c in self._all():
                ports: dict[int, int] = {}
                for p in c.spec.get("ports") or []:
                    cp = int(p["containerPort"])
                    if cp not in ports:
                        ports[cp] = free_port(self.agent.taken_ports)
                        published[f"{c.name}/{cp}"] = ports[cp]
                        if str(p.get("protocol") or "TCP") == "TCP":
                            forwarded.setdefault(cp, ports[cp])
                self.host_ports[c.name] = ports
            self.pod_ip = self.agent.open_pod_network(pod, forwarded)
        else:
            published = {
                f"{c}/{cp}": hp for c, ports in self.host_ports.items() for cp, hp in ports.items()
            }
        if published and not self._ports_published:
            self.kube.call(
                "PATCH",
                pod_path(self.ns, self.pod_name),
                body={
                    "metadata": {
                        "uid": self.uid,
                        "annotations": {PORTS_ANNOTATION: json.dumps(published, sort_keys=True)},
                    }
                },
                content_type=MERGE,
            )
            self._ports_published = True
            emit(logging.INFO, "pod.ports", pod, ports=published)

    def _make_volume(self, pod: JSON, vol: JSON) -> None:
        name = str(vol["name"])
        root = self.dir / "volumes" / name
        if "persistentVolumeClaim" in vol:
            claim = vol["persistentVolumeClaim"].get("claimName", name)
            target = self.agent.cfg.state_dir / "pvc" / self.ns / claim
            target.mkdir(parents=True, exist_ok=True)
            if not root.exists():
                root.symlink_to(target, target_is_directory=True)
            return
        root.mkdir(parents=True, exist_ok=True)
        files: dict[str, bytes] = {}
        mode = 0o644
        if "secret" in vol:
            src = vol["secret"]
            files, mode = self._source_files("secret", src.get("secretName", ""), src)
        elif "configMap" in vol:
            src = vol["configMap"]
            files, mode = self._source_files("configmap", src.get("name", ""), src)
        elif "downwardAPI" in vol:
            files = self._downward_files(pod, vol["downwardAPI"].get("items") or [])
            mode = int(vol["downwardAPI"].get("defaultMode") or mode)
        elif "projected" in vol:
            mode = int(vol["projected"].get("defaultMode") or mode)
            for source in vol["projected"].get("sources") or []:
                files.update(self._projected_files(pod, source))
        elif not {"emptyDir", "hostPath"} & set(vol):
            emit(logging.WARNING, "volume.unsupported", pod, volume=name, kinds=sorted(vol))
        for rel, content in files.items():
            path = safe_join(root, rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            path.chmod(mode & 0o777)

    def _source_files(self, kind: str, name: str, src: JSON) -> tuple[dict[str, bytes], int]:
        obj = self.agent.get_object(kind, self.ns, name)
        mode = int(src.get("defaultMode") or 0o644)
        if obj is None:
            if src.get("optional"):
                return {}, mode
            raise ConfigError(f"{kind} {name!r} not found")
        return select_items(volume_files(kind, obj), src.get("items")), mode

    def _downward_files(self, pod: JSON, items: list[JSON]) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for item in items:
            if "fieldRef" in item:
                path = str(item["fieldRef"].get("fieldPath", ""))
                value = field_ref_value(self._with_ips(pod), path)
                out[str(item["path"])] = value.encode()
        return out

    def _projected_files(self, pod: JSON, source: JSON) -> dict[str, bytes]:
        if "secret" in source:
            return self._source_files("secret", source["secret"].get("name", ""), source["secret"])[
                0
            ]
        if "configMap" in source:
            cm = source["configMap"]
            return self._source_files("configmap", cm.get("name", ""), cm)[0]
        if "downwardAPI" in source:
            return self._downward_files(pod, source["downwardAPI"].get("items") or [])
        if "serviceAccountToken" in source:
            sat = source["serviceAccountToken"]
            sa = (pod.get("spec") or {}).get("serviceAccountName") or "default"
            spec: JSON = {
                "expirationSeconds": int(sat.get("expirationSeconds") or 3600),
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": self.pod_name,
                    "uid": self.uid,
                },
            }
            if sat.get("audience"):
                spec["audiences"] = [sat["audience"]]
            tr = self.kube.call(
                "POST",
                f"/api/v1/namespaces/{self.ns}/serviceaccounts/{sa}/token",
                body={
                    "apiVersion": "authentication.k8s.io/v1",
                    "kind": "TokenRequest",
                    "spec": spec,
                },
            )
            return {str(sat.get("path") or "token"): str(tr["status"]["token"]).encode()}
        return {}

    # ------------------------------------------------------------ starting containers

    def _restarts(self, c: Container, exit_code: int) -> bool:
        if c.sidecar:
            return True
        if self.restart_policy == "Never":
            return False
        if c.init:
            return exit_code != 0
        return self.restart_policy == "Always" or exit_code != 0

    def _initialized(self) -> bool:
        for c in self.init:
            if c.sidecar:
                if not c.started:
                    return False
            elif not (c.done and "terminated" in c.state):
                return False
        return True

    def _start_due(self) -> None:
        now = time.monotonic()
        for c in self.init:
            if c.sidecar:
                if c.proc is None and not c.done and now >= c.next_start:
                    self._start(c)
                if not c.started:
                    return
                continue
            if c.done:
                if c.state["terminated"].get("exitCode") != 0:
                    return
                continue
            if c.proc is None and now >= c.next_start:
                self._start(c)
            return
        for c in self.containers:
            if c.proc is None and not c.done and now >= c.next_start:
                self._start(c)

    def _command(self, c: Container) -> list[str]:
        command = list(c.spec.get("command") or [])
        if not command:
            image = str(c.spec.get("image") or "")
            command = list(self.agent.entrypoint_for(image))
        return [*command, *(c.spec.get("args") or [])]

    def _prepare(self, c: Container) -> None:
        """Env, paths and argv of a container run; raises ConfigError."""
        pod = self.pod
        term_file = self.dir / "termination" / c.name
        mounts: dict[str, str] = {}
        for m in c.spec.get("volumeMounts") or []:
            host = safe_join(self.dir / "volumes", str(m["name"]))
            if m.get("subPath"):
                host = safe_join(host, str(m["subPath"]))
            mounts[str(m["mountPath"])] = str(host)
        term_path = str(c.spec.get("terminationMessagePath") or TERMINATION_LOG_DEFAULT)
        c.rewriter = PathRewriter({**mounts, term_path: str(term_file)})
        status_view = self._with_ips(pod)
        preset = port_env(self.host_ports.get(c.name, {}))
        resolved = resolve_env(
            status_view,
            c.spec,
            secrets=lambda ns, n: self._data("secret", ns, n),
            configmaps=lambda ns, n: self._data("configmap", ns, n),
            preset=preset,
            allocatable=self.agent.cfg.allocatable,
        )
        home = self.dir / "home" / c.name
        home.mkdir(parents=True, exist_ok=True)
        base = {
            "PATH": VENV_BIN + os.pathsep + os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": str(home),
            "TMPDIR": str(self.dir / "tmp"),
            "HOSTNAME": str((pod.get("spec") or {}).get("hostname") or self.pod_name),
            "PYTHONUNBUFFERED": "1",
            "LANG": "C.UTF-8",
        }
        base.update({k: os.environ[k] for k in PASSTHROUGH_ENV if k in os.environ})
        env = {
            **base,
            **{k: c.rewriter.rewrite(v) for k, v in resolved.items()},
            "DEVSTACK_MOUNTS": json.dumps(mounts, sort_keys=True),
            "DEVSTACK_TERMINATION_LOG": str(term_file),
            "FRESHET_TERMINATION_LOG": str(term_file),
            "DEVSTACK_POD_DIR": str(self.dir),
        }
        c.env = env
        wd = c.spec.get("workingDir")
        if wd:
            translated = c.rewriter.rewrite(str(wd))
            if translated != wd or Path(wd).is_dir():
                c.cwd = translated
            else:
                c.cwd = str(safe_join(self.dir / "work" / c.name, str(wd)))
        else:
            c.cwd = str(self.dir / "work" / c.name)
        Path(c.cwd).mkdir(parents=True, exist_ok=True)

    def _with_ips(self, pod: JSON) -> JSON:
        """The pod with the addresses we report, for the downward API."""
        ips = {"podIP": self.pod_ip or "", "hostIP": "127.0.0.1"}
        return {**pod, "status": {**(pod.get("status") or {}), **ips}}

    def _data(self, kind: str, ns: str, name: str) -> dict[str, str] | None:
        obj = self.agent.get_object(kind, ns, name)
        if obj is None:
            return None
        if kind == "secret":
            return decode_secret(obj)
        return {k: str(v) for k, v in (obj.get("data") or {}).items()}

    def _start(self, c: Container) -> None:
        pod = self.pod
        now = time.monotonic()
        try:
            self._prepare(c)
            argv = [c.rewriter.rewrite(_expand_with(a, c.env)) for a in self._command(c)]
            if not argv:
                raise ConfigError("no command: set command/args or --entrypoint for the image")
        except (ConfigError, KubeError, OSError) as e:
            msg = str(e)
            c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": msg[:1000]}}
            c.next_start = now + 2.0
            emit(logging.WARNING, "container.config_error", pod, container=c.name, error=msg)
            self.agent.record_event(pod, "Failed", f"Error: {msg}", "Warning", c.name)
            return
        term_file = Path(c.env["DEVSTACK_TERMINATION_LOG"])
        term_file.write_bytes(b"")
        log_path = self.agent.log_path(self.ns, self.pod_name, c.name)
        if c.runs:
            c.restart_count += 1
        c.runs += 1
        c.stop_deadline = None
        started_at = now_rfc3339()
        logf: IO[bytes]
        with open(log_path, "ab") as logf:
            c.log_offset = logf.tell()
            try:
                proc = subprocess.Popen(
                    argv,
                    cwd=c.cwd,
                    env=c.env,
                    stdin=subprocess.DEVNULL,
                    stdout=logf,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as e:
                logf.write(f"devstack: cannot start {argv[0]!r}: {e}\n".encode())
                term = terminated_state(
                    128, started_at, now_rfc3339(), message=str(e), reason="StartError"
                )
                emit(logging.WARNING, "container.start_error", pod, container=c.name, error=str(e))
                self.agent.record_event(pod, "Failed", f"Error: {e}", "Warning", c.name)
                self._after_exit(c, term, 128)
                return
        self.agent.procs.add(proc.pid, pod_key(pod), c.name)
        c.proc = proc
        c.started_at = started_at
        c.started_mono = now
        c.state = {"running": {"startedAt": started_at}}
        c.ready = False
        c.probes = {}
        for kind in ("startup", "liveness", "readiness"):
            spec = c.spec.get(f"{kind}Probe")
            if spec:
                delay = float(spec.get("initialDelaySeconds") or 0)
                c.probes[kind] = Probe(kind, spec, next_at=now + delay)
        c.started = "startup" not in c.probes
        if c.started and "readiness" not in c.probes:
            c.ready = True
        emit(logging.INFO, "container.started", pod, container=c.name, pid=proc.pid, argv=argv)
        self.agent.record_event(pod, "Started", f"Started container {c.name}", "Normal", c.name)

    # ------------------------------------------------------------ exits and restarts

    def _poll_processes(self) -> None:
        for c in self._running():
            proc = c.proc
            assert proc is not None
            try:
                info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                info = None
                if proc.poll() is None:
                    continue
            else:
                if info is None:
                    continue
            # The main process exited: like a container's PID 1, it takes the group with it.
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            rc = proc.wait()
            self.agent.procs.remove(proc.pid)
            c.proc = None
            exit_code, sig = exit_code_of(rc)
            log_path = self.agent.log_path(self.ns, self.pod_name, c.name)
            message = read_termination_message(
                Path(c.env["DEVSTACK_TERMINATION_LOG"]),
                log_path,
                c.log_offset,
                c.spec.get("terminationMessagePolicy"),
                exit_code,
            )
            term = terminated_state(
                exit_code,
                c.started_at,
                now_rfc3339(),
                message=message,
                signal=sig,
                container_id=f"devstack://{c.name}-{c.runs}",
            )
            emit(logging.INFO, "container.exited", self.pod, container=c.name, exitCode=exit_code)
            self._after_exit(c, term, exit_code)

    def _after_exit(self, c: Container, term: JSON, exit_code: int) -> None:
        c.ready = False
        c.started = False
        c.proc = None
        stopping = self.terminating or self.silent_stop or self.completing
        if stopping or not self._restarts(c, exit_code):
            c.state, c.done = term, True
            return
        now = time.monotonic()
        if c.started_mono and now - c.started_mono > 600:
            c.backoff = 0.0
        cfg = self.agent.cfg
        delay = c.backoff
        c.backoff = min(max(c.backoff * 2, cfg.backoff_initial), cfg.backoff_max)
        c.next_start = now + delay
        c.last_state = term
        reason = "CrashLoopBackOff" if delay > 0 else "ContainerCreating"
        c.state = {
            "waiting": {
                "reason": reason,
                "message": f"back-off {delay:g}s restarting failed container={c.name} "
                f"pod={self.pod_name}_{self.ns}({self.uid})",
            }
        }
        if delay > 0:
            self.agent.record_event(
                self.pod, "BackOff", "Back-off restarting failed container", "Warning", c.name
            )

    # ------------------------------------------------------------ probes

    def _run_probes(self) -> None:
        now = time.monotonic()
        for c in self._running():
            for kind in ("startup", "liveness", "readiness"):
                p = c.probes.get(kind)
                if p is None or now < p.next_at or c.stop_deadline is not None:
                    continue
                if (kind == "startup") == c.started:
                    continue
                ok = self._probe(c, p)
                p.next_at = time.monotonic() + p.period
                verdict = p.record(ok)
                if kind == "readiness":
                    c.ready = p.result is True
                    if verdict is not None:
                        emit(
                            logging.INFO,
                            "container.readiness",
                            self.pod,
                            container=c.name,
                            ready=ok,
                        )
                elif kind == "startup" and verdict is True:
                    c.started = True
                    c.ready = "readiness" not in c.probes
                elif verdict is False:
                    msg = f"{kind.capitalize()} probe failed"
                    emit(
                        logging.WARNING,
                        "container.unhealthy",
                        self.pod,
                        container=c.name,
                        probe=kind,
                    )
                    self.agent.record_event(self.pod, "Unhealthy", msg, "Warning", c.name)
                    grace = p.spec.get("terminationGracePeriodSeconds")
                    self._stop_container(
                        c, float(grace if grace is not None else self._grace(self.pod)), msg
                    )

    def _probe(self, c: Container, p: Probe) -> bool:
        return run_handler(p.spec, c, self.host_ports.get(c.name, {}), p.timeout)

    # ------------------------------------------------------------ stopping

    def _grace(self, pod: JSON) -> float:
        meta = pod.get("metadata") or {}
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
        return float(30 if grace is None else grace)

    def _stop_container(self, c: Container, grace: float, reason: str) -> None:
        if c.proc is None or c.stop_deadline is not None:
            return
        emit(logging.INFO, "container.stop", self.pod, container=c.name, grace=grace, reason=reason)
        self.agent.record_event(
            self.pod, "Killing", f"Stopping container {c.name}: {reason}", "Normal", c.name
        )
        with contextlib.suppress(OSError):
            os.killpg(c.proc.pid, signal.SIGTERM)
        c.stop_deadline = time.monotonic() + max(grace, 0.0)

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for c in self._running():
            if c.stop_deadline is not None and now >= c.stop_deadline and c.proc is not None:
                with contextlib.suppress(OSError):
                    os.killpg(c.proc.pid, signal.SIGKILL)

    def _begin_termination(self, pod: JSON) -> None:
        self.terminating = True
        grace = self._grace(pod)
        emit(logging.INFO, "pod.terminating", pod, grace=grace)
        deadline = time.monotonic() + grace
        for c in self._running():
            hook = (c.spec.get("lifecycle") or {}).get("preStop")
            if hook and c.stop_deadline is None:
                remaining = deadline - time.monotonic()
                if remaining > 0:
                    ok = run_handler(hook, c, self.host_ports.get(c.name, {}), remaining)
                    emit(logging.INFO, "container.prestop", pod, container=c.name, ok=ok)
        remaining = max(deadline - time.monotonic(), min(2.0, grace))
        for c in self._running():
            self._stop_container(c, remaining, "pod deleted")
        for c in self._all():
            if c.proc is None and not c.done:
                c.done = True

    def _stop_silently(self) -> None:
        self.silent_stop = True
        grace = min(self._grace(self.pod), self.agent.cfg.shutdown_grace)
        for c in self._running():
            self._stop_container(c, grace, "node agent stopping" if self.shutdown else "pod gone")

    def _finish_termination(self) -> None:
        self.phase = compute_phase(
            self.restart_policy,
            [c.status() for c in self.init],
            [c.status() for c in self.containers],
            sidecars=frozenset(c.name for c in self.init if c.sidecar),
            terminal=True,
        )
        with contextlib.suppress(Exception):
            self._send_status(force=True)
        self.agent.force_delete(self.pod)
        emit(logging.INFO, "pod.terminated", self.pod, phase=self.phase)

    def _kill_everything(self) -> None:
        for c in self._running():
            assert c.proc is not None
            with contextlib.suppress(OSError):
                os.killpg(c.proc.pid, signal.SIGKILL)
            c.proc.wait()
            self.agent.procs.remove(c.proc.pid)
            c.proc = None

    # ------------------------------------------------------------ status

    def _phase(self) -> str:
        return compute_phase(
            self.restart_policy,
            [c.status() for c in self.init],
            [c.status() for c in self.containers],
            sidecars=frozenset(c.name for c in self.init if c.sidecar),
        )

    def _status(self) -> JSON:
        pod = self.pod
        prev = {**self.prev_conditions}
        for cnd in (pod.get("status") or {}).get("conditions") or []:
            prev.setdefault(cnd.get("type", ""), cnd)
        terminal = self.phase in ("Succeeded", "Failed")
        initialized = self._initialized() or (terminal and all(c.done for c in self.init))
        pending_init = [c.name for c in self.init if not (c.started if c.sidecar else c.done)]
        unready = [c.name for c in self.containers if not c.ready]
        unready += [c.name for c in self.init if c.sidecar and not c.ready]
        containers_ready = not unready and not terminal
        gates_ok = all(
            (prev.get(g.get("conditionType", "")) or {}).get("status") == "True"
            for g in (pod.get("spec") or {}).get("readinessGates") or []
        )
        reason = "PodCompleted" if terminal else None
        not_ready_msg = f"containers with unready status: [{' '.join(unready)}]"
        sched = prev.get("PodScheduled") or condition("PodScheduled", True, prev)
        conditions = [
            condition("PodReadyToStartContainers", self.ready_to_start, prev),
            condition(
                "Initialized",
                initialized,
                prev,
                "ContainersNotInitialized",
                f"containers with incomplete status: [{' '.join(pending_init)}]",
            ),
            condition(
                "ContainersReady",
                containers_ready,
                prev,
                reason or "ContainersNotReady",
                not_ready_msg,
            ),
            condition(
                "Ready",
                containers_ready and gates_ok,
                prev,
                reason
                or ("ContainersNotReady" if not containers_ready else "ReadinessGatesNotReady"),
                not_ready_msg,
            ),
            sched,
        ]
        self.prev_conditions = {c["type"]: c for c in conditions}
        status: JSON = {
            "phase": self.phase,
            "conditions": conditions,
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "startTime": self.start_time,
            "containerStatuses": [c.status() for c in self.containers],
        }
        if self.pod_ip:
            status["podIP"] = self.pod_ip
            status["podIPs"] = [{"ip": self.pod_ip}]
        if self.init:
            status["initContainerStatuses"] = [c.status() for c in self.init]
        if self.pod_message:
            status["message"] = self.pod_message
        generation = (pod.get("metadata") or {}).get("generation")
        if generation is not None:
            status["observedGeneration"] = generation
        return status

    def _send_status(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self._next_send:
            return
        status = self._status()
        text = json.dumps(status, sort_keys=True)
        if text == self._sent and not force:
            return
        body_status = dict(status)
        if "podIPs" in status:
            # Replace the list: merged by IP, an address given before (an agent that
            # gave every pod 127.0.0.1) would be kept beside the new one (invalid).
            body_status["podIPs"] = [{"$patch": "replace"}, *status["podIPs"]]
        try:
            self.kube.call(
                "PATCH",
                pod_path(self.ns, self.pod_name) + "/status",
                body={"metadata": {"uid": self.uid}, "status": body_status},
                content_type=SMP,
            )
        except KubeError as e:
            if e.status == 404:
                self.gone = True
            self._next_send = now + 1.0
            emit(logging.WARNING, "pod.status_failed", self.pod, error=str(e)[:300])
            if force:
                raise
            return
        except Exception as e:
            self._next_send = now + 1.0
            emit(logging.WARNING, "pod.status_failed", self.pod, error=repr(e)[:300])
            if force:
                raise
            return
        if text != self._sent:
            emit(
                logging.INFO,
                "pod.status",
                self.pod,
                phase=self.phase,
                ready=next(c["status"] for c in status["conditions"] if c["type"] == "Ready"),
                containers={
                    s["name"]: next(iter(s["state"]), "?") for s in status["containerStatuses"]
                },
            )
        self._sent = text


def _expand_with(value: str, env: Mapping[str, str]) -> str:
    return expand(value, env.get)


def run_handler(spec: JSON, c: Container, host_ports: Mapping[int, int], timeout: float) -> bool:
    """Run a probe or lifecycle handler (httpGet, tcpSocket, exec, grpc, sleep): did it pass?."""
    try:
        if "exec" in spec:
            cmd = [
                c.rewriter.rewrite(_expand_with(a, c.env))
                for a in spec["exec"].get("command") or []
            ]
            r = subprocess.run(
                cmd,
                env=c.env,
                cwd=c.cwd or None,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=timeout,
                start_new_session=True,
                check=False,
            )
            return r.returncode == 0
        if "httpGet" in spec:
            h = spec["httpGet"]
            port = resolve_port(h.get("port"), c.spec, host_ports)
            if port is None:
                return False
            scheme = str(h.get("scheme") or "HTTP").lower()
            path = str(h.get("path") or "/")
            if not path.startswith("/"):
                path = "/" + path
            req = urllib.request.Request(f"{scheme}://127.0.0.1:{port}{path}")
            for header in h.get("httpHeaders") or []:
                req.add_header(str(header["name"]), str(header["value"]))
            ctx = None
            if scheme == "https":
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            try:
                with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
                    return 200 <= int(resp.status) < 400
            except urllib.error.HTTPError as e:
                return 200 <= int(e.code) < 400
        if "tcpSocket" in spec or "grpc" in spec:
            port = resolve_port(
                (spec.get("tcpSocket") or spec.get("grpc") or {}).get("port"), c.spec, host_ports
            )
            if port is None:
                return False
            with socket.create_connection(("127.0.0.1", port), timeout=timeout):
                return True
        if "sleep" in spec:
            time.sleep(min(float(spec["sleep"].get("seconds") or 0), timeout))
            return True
    except Exception:
        return False
    return False


# --------------------------------------------------------------------------- the agent


@dataclass
class AgentConfig:
    state_dir: Path
    node_name: str = "local"
    cpu: str = "16"
    memory: str = "64Gi"
    pods: str = "250"
    heartbeat: float = 10.0
    backoff_initial: float = 1.0
    backoff_max: float = 30.0
    shutdown_grace: float = 10.0
    entrypoints: dict[str, list[str]] = field(default_factory=dict)

    @property
    def allocatable(self) -> dict[str, str]:
        return {
            "cpu": self.cpu,
            "memory": self.memory,
            "pods": self.pods,
            "ephemeral-storage": "100Gi",
        }


class NodeAgent:
    def __init__(self, kube: Kube, cfg: AgentConfig) -> None:
        self.kube = kube
        self.cfg = cfg
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        (cfg.state_dir / "logs").mkdir(exist_ok=True)
        (cfg.state_dir / "pods").mkdir(exist_ok=True)
        self.procs = ProcessRecord(cfg.state_dir / "pids.json")
        self.workers: dict[str, PodWorker] = {}
        self.taken_ports: set[int] = set()
        self.network = PodNetwork()
        self.pod_ips: dict[str, str] = {}  # pod uid -> address, for the pods with a worker
        self._last_pod_ip: str | None = None
        self._net_lock = threading.Lock()
        self._deleted: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready_since = now_rfc3339()
        self._lockfile: IO[str] | None = None
        self._server_version = "v0.0.0"

    # ------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        self._lockfile = open(self.cfg.state_dir / "agent.lock", "w")  # noqa: SIM115
        try:
            fcntl.flock(self._lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            raise SystemExit(f"another node agent uses {self.cfg.state_dir}") from e
        killed = self.procs.kill_leftovers(self.cfg.shutdown_grace)
        emit(logging.INFO, "agent.start", node=self.cfg.node_name, leftovers_killed=killed)
        while not self._stop.is_set():
            try:
                self._register_node()
                break
            except Exception as e:
                emit(logging.WARNING, "node.register_failed", error=repr(e)[:300])
                self._stop.wait(2.0)
        threads = [
            threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True),
            threading.Thread(target=self._watch_loop, name="watch", daemon=True),
        ]
        for t in threads:
            t.start()
        while not self._stop.wait(1.0):
            pass
        self._shutdown()

    def _shutdown(self) -> None:
        emit(logging.INFO, "agent.stopping", pods=len(self.workers))
        with self._lock:
            workers = list(self.workers.values())
        for w in workers:
            w.stop_for_shutdown()
        deadline = time.monotonic() + self.cfg.shutdown_grace + 5
        for w in workers:
            w.join(max(deadline - time.monotonic(), 0.1))
        self.procs.kill_all()
        self.network.close()
        emit(logging.INFO, "agent.stopped")

    # ------------------------------------------------------------ node and lease

    def _node_status(self) -> JSON:
        now = now_rfc3339()

        def cond(ctype: str, status: str, reason: str, message: str) -> JSON:
            return {
                "type": ctype,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": self._ready_since,
            }

        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
        return {
            "capacity": self.cfg.allocatable,
            "allocatable": self.cfg.allocatable,
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "ok"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "ok"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "ok"),
                cond(
                    "Ready", "True", "KubeletReady", "devstack node agent is posting ready status"
                ),
            ],
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": self.cfg.node_name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": "devstack",
                "systemUUID": "devstack",
                "bootID": "devstack",
                "kernelVersion": platform.release(),
                "osImage": "devstack node agent",
                "containerRuntimeVersion": "devstack://0.1.0",
                "kubeletVersion": self._server_version,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": arch,
            },
        }

    def _register_node(self) -> None:
        version = self.kube.call("GET", "/version")
        self._server_version = str(version.get("gitVersion", "v0.0.0"))
        name = self.cfg.node_name
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
        labels = {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": arch,
            "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": arch,
            "node.kubernetes.io/instance-type": "devstack",
        }
        node = self.kube.get(f"/api/v1/nodes/{name}")
        if node is None:
            node = self.kube.call(
                "POST",
                "/api/v1/nodes",
                body={
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {"name": name, "labels": labels},
                    "spec": {},
                    "status": self._node_status(),
                },
            )
            emit(logging.INFO, "node.registered", node=name)
        else:
            self.kube.call(
                "PATCH",
                f"/api/v1/nodes/{name}",
                body={"metadata": {"labels": labels}},
                content_type=SMP,
            )
            emit(logging.INFO, "node.exists", node=name)
        self._heartbeat()

    def _heartbeat(self) -> None:
        name = self.cfg.node_name
        self.kube.call(
            "PATCH",
            f"/api/v1/nodes/{name}/status",
            body={"status": self._node_status()},
            content_type=SMP,
        )
        lease_path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}"
        spec = {
            "holderIdentity": name,
            "leaseDurationSeconds": LEASE_DURATION,
            "renewTime": now_micro(),
        }
        try:
            self.kube.call("PATCH", lease_path, body={"spec": spec}, content_type=MERGE)
        except KubeError as e:
            if e.status != 404:
                raise
            node = self.kube.call("GET", f"/api/v1/nodes/{name}")
            self.kube.call(
                "POST",
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                body={
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {
                        "name": name,
                        "namespace": "kube-node-lease",
                        "ownerReferences": [
                            {
                                "apiVersion": "v1",
                                "kind": "Node",
                                "name": name,
                                "uid": node["metadata"]["uid"],
                            }
                        ],
                    },
                    "spec": spec,
                },
            )

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(self.cfg.heartbeat):
            try:
                self._heartbeat()
            except Exception as e:
                emit(logging.WARNING, "node.heartbeat_failed", error=repr(e)[:300])

    # ------------------------------------------------------------ pods

    def _watch_loop(self) -> None:
        path = "/api/v1/pods"
        selector = {"fieldSelector": f"spec.nodeName={self.cfg.node_name}"}
        rv: str | None = None
        while not self._stop.is_set():
            try:
                if rv is None:
                    rv = self._relist(path, selector)
                query = {
                    **selector,
                    "resourceVersion": rv,
                    "allowWatchBookmarks": "true",
                    "timeoutSeconds": "240",
                }
                for ev in self.kube.watch(path, query, read_timeout=300):
                    if self._stop.is_set():
                        return
                    etype, obj = ev.get("type"), ev.get("object") or {}
                    if etype == "ERROR":
                        if obj.get("code") == 410:
                            emit(logging.INFO, "watch.expired")
                            rv = None
                            break
                        raise KubeError(int(obj.get("code") or 500), json.dumps(obj))
                    rv = obj.get("metadata", {}).get("resourceVersion", rv)
                    if etype != "BOOKMARK":
                        self.dispatch(str(etype), obj)
            except KubeError as e:
                if e.status == 410:
                    rv = None
                emit(logging.WARNING, "watch.error", error=str(e)[:300])
                self._stop.wait(1.0)
            except Exception as e:
                emit(logging.WARNING, "watch.error", error=repr(e)[:300])
                self._stop.wait(1.0)

    def _relist(self, path: str, selector: Mapping[str, str]) -> str:
        listed = self.kube.call("GET", path, query=selector)
        seen: set[str] = set()
        # Pods that have an address already first: they keep it (agent restart).
        items = sorted(
            listed.get("items") or [],
            key=lambda p: not in_pod_range((p.get("status") or {}).get("podIP")),
        )
        for pod in items:
            seen.add(pod["metadata"]["uid"])
            self.dispatch("ADDED", pod)
        with self._lock:
            gone = [uid for uid in self.workers if uid not in seen]
        for uid in gone:
            w = self.workers.get(uid)
            if w is not None:
                self.dispatch("DELETED", w.pod)
        return str(listed["metadata"]["resourceVersion"])

    def dispatch(self, etype: str, pod: JSON) -> None:
        """Handle one pod event; never raises."""
        try:
            self._dispatch(etype, pod)
        except Exception as e:
            emit(logging.ERROR, "pod.dispatch_error", pod, error=repr(e), tb=traceback.format_exc())

    def _dispatch(self, etype: str, pod: JSON) -> None:
        uid = pod["metadata"]["uid"]
        deleting = bool(pod["metadata"].get("deletionTimestamp"))
        with self._lock:
            w = self.workers.get(uid)
            if etype == "DELETED":
                self.workers.pop(uid, None)
        if etype == "DELETED":
            if w is not None:
                w.pod_gone()
                emit(logging.INFO, "pod.gone", pod)
            if w is None or w.finished:
                shutil.rmtree(self.cfg.state_dir / "pods" / uid, ignore_errors=True)
            self._deleted.discard(uid)
            return
        if w is not None:
            w.update(pod)
            if w.finished and deleting:
                self.force_delete(pod)
            return
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed") or deleting:
            if deleting:
                self.force_delete(pod)
            return
        with self._lock:
            if self._stop.is_set() or uid in self.workers:
                return
            w = PodWorker(self, pod)
            self.workers[uid] = w
        w.start()

    def force_delete(self, pod: JSON) -> None:
        """Finish a deletion the way the kubelet does: delete with gracePeriodSeconds=0."""
        uid = pod["metadata"]["uid"]
        if uid in self._deleted:
            return
        try:
            self.kube.call(
                "DELETE",
                pod_path(pod["metadata"]["namespace"], pod["metadata"]["name"]),
                body={
                    "apiVersion": "v1",
                    "kind": "DeleteOptions",
                    "gracePeriodSeconds": 0,
                    "preconditions": {"uid": uid},
                },
            )
        except KubeError as e:
            if e.status not in (404, 409):
                emit(logging.WARNING, "pod.delete_failed", pod, error=str(e)[:300])
                return
        self._deleted.add(uid)
        emit(logging.INFO, "pod.deleted", pod)

    # ------------------------------------------------------------ pod network

    def reserve_pod_ip(self, uid: str, ip: object) -> str | None:
        """Keep the address a pod got from a previous agent, if it is ours and still free."""
        with self._net_lock:
            if not in_pod_range(ip) or any(v == ip for u, v in self.pod_ips.items() if u != uid):
                return None
            self.pod_ips[uid] = str(ip)
            return str(ip)

    def open_pod_network(self, pod: JSON, ports: Mapping[int, int]) -> str:
        """Give the pod its address and forward `<address>:<containerPort>` to its host ports.

        An address where one of the ports is already bound (another agent on the
        machine, a program listening on a wildcard address) is skipped. Ports that
        cannot be bound (even on a fresh address) are not forwarded.
        """
        uid = str(pod["metadata"]["uid"])
        bound: dict[str, dict[int, socket.socket]] = {}

        def usable(ip: str) -> bool:
            socks: dict[int, socket.socket] = {}
            for cp in ports:
                try:
                    socks[cp] = PodNetwork.bind(ip, cp)
                except OSError as e:
                    if e.errno == errno.EADDRINUSE:
                        for sock in socks.values():
                            sock.close()
                        return False
            bound[ip] = socks
            return True

        with self._net_lock:
            taken = {ip for u, ip in self.pod_ips.items() if u != uid}
            ip = allocate_pod_ip(
                taken, preferred=self.pod_ips.get(uid), after=self._last_pod_ip, usable=usable
            )
            self.pod_ips[uid] = ip
            self._last_pod_ip = ip
        socks = bound.pop(ip, None)
        for other in bound.values():
            for sock in other.values():
                sock.close()
        if socks is None:  # no usable address: forward what can be bound on this one
            socks = {}
            for cp in ports:
                with contextlib.suppress(OSError):
                    socks[cp] = PodNetwork.bind(ip, cp)
        self.network.attach(uid, {cp: (sock, ports[cp]) for cp, sock in socks.items()})
        emit(
            logging.INFO,
            "pod.network",
            pod,
            ip=ip,
            forwarded={str(cp): ports[cp] for cp in sorted(socks)},
            unforwarded=sorted(set(ports) - set(socks)) or None,
        )
        if set(ports) - set(socks):
            self.record_event(
                pod,
                "PortForwardFailed",
                f"cannot listen on {ip} port(s) {sorted(set(ports) - set(socks))}",
                "Warning",
            )
        return ip

    def close_pod_network(self, uid: str) -> None:
        """Stop the pod's forwarders (listeners and open connections), release its address."""
        self.network.detach(uid)
        with self._net_lock:
            self.pod_ips.pop(uid, None)

    # ------------------------------------------------------------ helpers for workers

    def get_object(self, kind: str, ns: str, name: str) -> JSON | None:
        plural = "secrets" if kind == "secret" else "configmaps"
        return self.kube.get(f"/api/v1/namespaces/{quote(ns)}/{plural}/{quote(name)}")

    def log_path(self, ns: str, pod: str, container: str) -> Path:
        return self.cfg.state_dir / "logs" / log_file_name(ns, pod, container)

    def entrypoint_for(self, image: str) -> list[str]:
        eps = self.cfg.entrypoints
        if image in eps:
            return eps[image]
        repo = image.split("@", 1)[0]
        head, _, tail = repo.rpartition("/")
        if ":" in tail:
            repo = (head + "/" if head else "") + tail.split(":", 1)[0]
        return eps.get(repo, [])

    def record_event(
        self, pod: JSON, reason: str, message: str, etype: str, container: str | None = None
    ) -> None:
        """A core/v1 Event about the pod, as the kubelet writes them; best effort."""
        meta = pod.get("metadata") or {}
        now = now_rfc3339()
        involved: JSON = {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
        }
        if container:
            involved["fieldPath"] = f"spec.containers{{{container}}}"
        try:
            self.kube.call(
                "POST",
                f"/api/v1/namespaces/{quote(str(meta.get('namespace')))}/events",
                body={
                    "apiVersion": "v1",
                    "kind": "Event",
                    "metadata": {
                        "generateName": f"{meta.get('name')}.",
                        "namespace": meta.get("namespace"),
                    },
                    "involvedObject": involved,
                    "reason": reason,
                    "message": message[:1000],
                    "type": etype,
                    "source": {"component": "kubelet", "host": self.cfg.node_name},
                    "firstTimestamp": now,
                    "lastTimestamp": now,
                    "count": 1,
                    "reportingComponent": "devstack-nodeagent",
                    "reportingInstance": self.cfg.node_name,
                },
                timeout=5.0,
            )
        except Exception as e:
            emit(logging.DEBUG, "event.failed", pod, error=repr(e)[:200])


# --------------------------------------------------------------------------- CLI


def make_api_client(kubeconfig: str) -> Any:
    from kubernetes import client, config

    cfg = client.Configuration()
    config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=kubeconfig, client_configuration=cfg
    )
    cfg.connection_pool_maxsize = 64
    return client.ApiClient(cfg)


def _print_logs(state_dir: Path, target: str, container: str | None) -> int:
    ns, _, pod = target.partition("/")
    if not pod:
        ns, pod = "default", ns
    logs = state_dir / "logs"
    if container:
        files = [logs / log_file_name(ns, pod, container)]
    else:
        files = sorted(logs.glob(log_file_name(ns, pod, "*")))
    files = [f for f in files if f.exists()]
    if not files:
        print(
            f"no logs for {ns}/{pod}" + (f" container {container}" if container else ""),
            file=sys.stderr,
        )
        return 1
    for f in files:
        if len(files) > 1:
            print(f"==> {f.name} <==", flush=True)
        sys.stdout.write(f.read_text(errors="replace"))
        sys.stdout.flush()
    return 0


def _parse_entrypoints(values: Sequence[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for v in values:
        image, sep, command = v.partition("=")
        if not sep or not image or not command:
            raise SystemExit(f"--entrypoint wants IMAGE=COMMAND, got {v!r}")
        out[image] = shlex.split(command)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.nodeagent", description="local node agent"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="register the node and run its pods")
    p_run.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    p_run.add_argument("--node-name", default="local")
    p_run.add_argument("--state-dir", type=Path, required=True)
    p_run.add_argument("--cpu", default="16")
    p_run.add_argument("--memory", default="64Gi")
    p_run.add_argument("--pods", default="250")
    p_run.add_argument("--heartbeat", type=float, default=10.0, help="lease/status renew interval")
    p_run.add_argument("--backoff-initial", type=float, default=1.0)
    p_run.add_argument("--backoff-max", type=float, default=30.0)
    p_run.add_argument("--shutdown-grace", type=float, default=10.0)
    p_run.add_argument(
        "--entrypoint",
        action="append",
        default=[],
        metavar="IMAGE=COMMAND",
        help="command for containers of IMAGE that set no command (repeatable)",
    )
    p_run.add_argument("--log-level", default="INFO")
    p_logs = sub.add_parser("logs", help="print a pod's container logs")
    p_logs.add_argument("pod", help="NAMESPACE/POD")
    p_logs.add_argument("--container", "-c")
    p_logs.add_argument("--state-dir", type=Path, required=True)
    args = parser.parse_args(argv)

    if args.command == "logs":
        return _print_logs(args.state_dir, args.pod, args.container)

    if not args.kubeconfig:
        parser.error("--kubeconfig (or KUBECONFIG) is required")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(args.log_level.upper())
    log.propagate = False
    cfg = AgentConfig(
        state_dir=args.state_dir.resolve(),
        node_name=args.node_name,
        cpu=args.cpu,
        memory=args.memory,
        pods=args.pods,
        heartbeat=args.heartbeat,
        backoff_initial=args.backoff_initial,
        backoff_max=args.backoff_max,
        shutdown_grace=args.shutdown_grace,
        entrypoints=_parse_entrypoints(args.entrypoint),
    )
    agent = NodeAgent(Kube(make_api_client(args.kubeconfig)), cfg)

    def on_signal(signum: int, _frame: object) -> None:
        emit(logging.INFO, "agent.signal", signal=signal.Signals(signum).name)
        agent.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    agent.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
