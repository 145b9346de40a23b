"""Start and stop the stack's long-running processes by PID file.

Every process is started in its own session (process group) with its output in
a log file, and its PID written next to it, so `devstack down` can stop exactly
what `devstack up` started, even from another shell, and leave nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago; good enough for a single-user machine."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def start(
    name: str,
    argv: Sequence[str],
    state: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start `argv` detached, logging to `state/logs/<name>.log`; return its PID."""
    (state / "logs").mkdir(parents=True, exist_ok=True)
    (state / "pids").mkdir(parents=True, exist_ok=True)
    log = open(state / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        list(argv),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        start_new_session=True,
    )
    log.close()
    (state / "pids" / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def pid_of(name: str, state: Path) -> int | None:
    """The PID recorded for `name` if that process is still alive."""
    path = state / "pids" / f"{name}.pid"
    try:
        pid = int(path.read_text())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0); reap it if it is ours.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def stop(name: str, state: Path, grace: float = 10.0) -> bool:
    """SIGTERM the process group of `name`, SIGKILL after `grace` seconds.

    Returns whether a live process was found.
    """
    pid = pid_of(name, state)
    pidfile = state / "pids" / f"{name}.pid"
    if pid is None:
        pidfile.unlink(missing_ok=True)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    while _alive(pid):
        time.sleep(0.02)
    pidfile.unlink(missing_ok=True)
    return True


def wait_until(
    check: Callable[[], bool],
    what: str,
    timeout: float,
    log: Path | None = None,
    pid_name: tuple[str, Path] | None = None,
) -> None:
    """Poll `check` until it is true; fail with the log tail if it never is."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if pid_name is not None and pid_of(*pid_name) is None:
            break
        time.sleep(0.1)
    tail = ""
    if log is not None and log.exists():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
    raise RuntimeError(f"{what} did not become ready in {timeout:.0f}s\n{tail}")


def http_ok(url: str, context: ssl.SSLContext | None = None) -> Callable[[], bool]:
    """A readiness check that a GET on `url` answers 200."""

    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError, ValueError):
            return False

    return check
