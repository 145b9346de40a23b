"""Pure helpers of the node agent (`devstack.nodeagent`): no I/O on the API, no processes.

Everything here works on plain API dicts (camelCase keys, as the API server
sends them) so it can be unit-tested without a cluster.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import socket
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

JSON = dict[str, Any]

TERMINATION_LOG_DEFAULT = "/dev/termination-log"
FALLBACK_LOG_LINES = 80
FALLBACK_LOG_BYTES = 2048
TERMINATION_MESSAGE_MAX = 4096


def now_rfc3339() -> str:
    """Seconds-precision RFC 3339 UTC timestamp (metav1.Time)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    """Microsecond-precision RFC 3339 UTC timestamp (metav1.MicroTime, e.g. Lease renewTime)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --------------------------------------------------------------------------- $(VAR) expansion


def expand(value: str, lookup: Callable[[str], str | None]) -> str:
    """Expand `$(VAR)` references the way Kubernetes does for command, args and env.

    `$$` is an escaped `$`; a reference to an unknown variable, or an unterminated
    `$(`, is left as written (port of k8s.io/kubernetes third_party/forked/golang/expansion).
    """
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    n = len(value)
    while cursor < n:
        if value[cursor] == "$" and cursor + 1 < n:
            out.append(value[checkpoint:cursor])
            rest = value[cursor + 1 :]
            if rest[0] == "$":
                out.append("$")
                advance = 1
            elif rest[0] == "(":
                close = rest.find(")", 1)
                if close == -1:
                    out.append("$(")
                    advance = 1
                else:
                    name = rest[1:close]
                    found = lookup(name)
                    out.append(found if found is not None else f"$({name})")
                    advance = close + 1
            else:
                out.append("$" + rest[0])
                advance = 1
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + value[checkpoint:]


# --------------------------------------------------------------------------- env resolution


class ConfigError(Exception):
    """A container cannot be configured yet (CreateContainerConfigError): retried later."""


SourceGetter = Callable[[str, str], Mapping[str, str] | None]
"""(namespace, name) -> decoded data of a Secret or ConfigMap, or None when it does not exist."""


_LABEL_RE = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


def field_ref_value(pod: JSON, field_path: str) -> str:
    """Value of a downward-API `fieldRef` against the pod (with its status as we will report it)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    simple: dict[str, Any] = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": status.get("podIP"),
        "status.hostIP": status.get("hostIP"),
        "status.podIPs": status.get("podIP"),
        "status.hostIPs": status.get("hostIP"),
    }
    if field_path in simple:
        return str(simple[field_path] or "")
    m = _LABEL_RE.match(field_path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    if field_path in ("metadata.labels", "metadata.annotations"):
        items = sorted((meta.get(field_path.split(".")[1]) or {}).items())
        return "\n".join(f'{k}="{v}"' for k, v in items)
    raise ConfigError(f"unsupported fieldRef {field_path!r}")


def resource_field_value(container: JSON, ref: JSON, allocatable: Mapping[str, str]) -> str:
    """`resourceFieldRef`: the container's limit (or request), else the node's allocatable.

    Quantities are returned as written unless a divisor is given, which is then
    applied to plain numbers only (enough for development use).
    """
    resource = str(ref.get("resource", ""))
    kind, _, name = resource.partition(".")
    res = container.get("resources") or {}
    value = (res.get(kind) or {}).get(name) or (res.get("limits") or {}).get(name)
    if value is None:
        value = allocatable.get(name, "0")
    divisor = ref.get("divisor")
    if divisor in (None, "1", 1):
        return str(value)
    try:
        return str(int(-(-parse_quantity(str(value)) // parse_quantity(str(divisor)))))
    except ValueError:
        return str(value)


_SUFFIX = {
    "m": 0.001,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 1024.0,
    "Mi": 1024.0**2,
    "Gi": 1024.0**3,
    "Ti": 1024.0**4,
}


def parse_quantity(q: str) -> float:
    """A Kubernetes quantity as a float (`500m` -> 0.5, `1Gi` -> 1073741824)."""
    m = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", q.strip())
    if not m or (m.group(2) and m.group(2) not in _SUFFIX):
        raise ValueError(f"bad quantity {q!r}")
    return float(m.group(1)) * _SUFFIX.get(m.group(2), 1.0)


def resolve_env(
    pod: JSON,
    container: JSON,
    *,
    secrets: SourceGetter,
    configmaps: SourceGetter,
    preset: Iterable[tuple[str, str]] = (),
    allocatable: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The container's environment, in Kubernetes order.

    `preset` (variables the agent provides, such as PORT) comes first, then
    `envFrom` in order, then `env`; later definitions win. Only literal `value`s
    are `$(VAR)`-expanded, against the variables defined before them. Raises
    ConfigError when a required Secret, ConfigMap or key is missing.
    """
    ns = str((pod.get("metadata") or {}).get("namespace", "default"))
    env: dict[str, str] = dict(preset)

    def source(kind: str, ref: JSON) -> Mapping[str, str] | None:
        getter = secrets if kind == "secret" else configmaps
        return getter(ns, str(ref.get("name", "")))

    for item in container.get("envFrom") or []:
        prefix = str(item.get("prefix") or "")
        for kind, key in (("secret", "secretRef"), ("configmap", "configMapRef")):
            ref = item.get(key)
            if ref is None:
                continue
            data = source(kind, ref)
            if data is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f"{kind} {ref.get('name')!r} not found")
            for k, v in data.items():
                env[prefix + k] = v

    for var in container.get("env") or []:
        name = str(var["name"])
        if "valueFrom" not in var or var.get("value") is not None:
            env[name] = expand(str(var.get("value") or ""), env.get)
            continue
        vf = var["valueFrom"] or {}
        if "fieldRef" in vf:
            env[name] = field_ref_value(pod, str(vf["fieldRef"].get("fieldPath", "")))
        elif "resourceFieldRef" in vf:
            env[name] = resource_field_value(container, vf["resourceFieldRef"], allocatable or {})
        else:
            for kind, key in (("secret", "secretKeyRef"), ("configmap", "configMapKeyRef")):
                ref = vf.get(key)
                if ref is None:
                    continue
                data = source(kind, ref)
                wanted = str(ref.get("key", ""))
                if data is None or wanted not in data:
                    if ref.get("optional"):
                        break
                    what = f"{kind} {ref.get('name')!r}"
                    raise ConfigError(
                        f"{what} not found" if data is None else f"key {wanted!r} not in {what}"
                    )
                env[name] = data[wanted]
                break
            else:
                raise ConfigError(f"unsupported valueFrom for {name}: {sorted(vf)}")
    return env


def decode_secret(secret: JSON) -> dict[str, str]:
    """A Secret's data (base64) plus stringData, as text."""
    out = {
        k: base64.b64decode(v).decode("utf-8", errors="replace")
        for k, v in (secret.get("data") or {}).items()
    }
    out.update(secret.get("stringData") or {})
    return out


def volume_files(kind: str, obj: JSON) -> dict[str, bytes]:
    """Key -> file content of a Secret (`kind == "secret"`) or ConfigMap."""
    if kind == "secret":
        return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    out = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
    out.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return out


def select_items(files: Mapping[str, bytes], items: list[JSON] | None) -> dict[str, bytes]:
    """Apply a volume source's `items` (key -> relative path); without items, every key."""
    if not items:
        return dict(files)
    out: dict[str, bytes] = {}
    for item in items:
        key = str(item.get("key", ""))
        if key in files:
            out[str(item.get("path") or key)] = files[key]
    return out


def safe_join(root: Path, rel: str) -> Path:
    """`root / rel`, refusing anything that would escape `root`."""
    target = (root / rel.lstrip("/")).resolve()
    root_r = root.resolve()
    if target != root_r and root_r not in target.parents:
        raise ConfigError(f"path {rel!r} escapes {root}")
    return target


# --------------------------------------------------------------------------- path rewriting


@dataclass(frozen=True)
class PathRewriter:
    """Replace in-container paths (mount paths, the termination log) by host paths.

    A container path is replaced wherever it appears as a whole path or as the
    prefix of a longer path (`/data` in `--out=/data/x`), but not inside another
    word (`/database`, `x/data`). Longer container paths win over shorter ones.
    """

    mapping: Mapping[str, str]
    _re: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        paths = sorted((p.rstrip("/") or "/" for p in self.mapping), key=len, reverse=True)
        paths = [p for p in paths if p != "/"]
        if paths:
            alt = "|".join(re.escape(p) for p in paths)
            pattern = rf"(?<![\w.\-/~])({alt})(?=/|$|[^\w.\-])"
            object.__setattr__(self, "_re", re.compile(pattern))

    def rewrite(self, value: str) -> str:
        if self._re is None:
            return value
        table = {k.rstrip("/"): v for k, v in self.mapping.items()}
        return self._re.sub(lambda m: table[m.group(1)], value)


# --------------------------------------------------------------------------- ports


def free_port(taken: set[int] | None = None) -> int:
    """A loopback TCP port that is free now and not in `taken` (which it is added to)."""
    taken = taken if taken is not None else set()
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in taken:
            taken.add(port)
            return port
    raise RuntimeError("no free port")


def port_env(ports: Mapping[int, int]) -> list[tuple[str, str]]:
    """Env telling a process its host ports: PORT_<containerPort>, and PORT when there is one."""
    out = [(f"PORT_{cp}", str(hp)) for cp, hp in sorted(ports.items())]
    if len(ports) == 1:
        out.insert(0, ("PORT", str(next(iter(ports.values())))))
    return out


def resolve_port(
    port: int | str | None, container: JSON, host_ports: Mapping[int, int]
) -> int | None:
    """A probe's port (number or name) as the host port the process listens on."""
    if port is None:
        return None
    if isinstance(port, str) and not port.isdigit():
        for p in container.get("ports") or []:
            if p.get("name") == port:
                return host_ports.get(int(p["containerPort"]))
        return None
    n = int(port)
    return host_ports.get(n, n)


# --------------------------------------------------------------------------- pod addresses

POD_IP_FIRST = "127.1.0.1"
POD_IP_LAST = "127.254.254.254"


def in_pod_range(ip: object) -> bool:
    """Whether `ip` is an address the agent gives pods: 127.1.0.1 to 127.254.254.254.

    127.0.0.0/16 (127.0.0.1, 127.0.0.53, 127.0.1.1 ...) belongs to the host; no
    octet is 255 and the last one is never 0.
    """
    try:
        a, b, c, d = ipaddress.IPv4Address(str(ip)).packed
    except ValueError:
        return False
    return a == 127 and 1 <= b <= 254 and c <= 254 and 1 <= d <= 254


def next_pod_ip(ip: str) -> str:
    """The address after `ip` in the pod range, wrapping around to the first one."""
    first = int(ipaddress.IPv4Address(POD_IP_FIRST))
    last = int(ipaddress.IPv4Address(POD_IP_LAST))
    n = int(ipaddress.IPv4Address(ip)) if in_pod_range(ip) else last
    while True:
        n = n + 1 if n < last else first
        candidate = str(ipaddress.IPv4Address(n))
        if in_pod_range(candidate):
            return candidate


def allocate_pod_ip(
    taken: Collection[str],
    *,
    preferred: str | None = None,
    after: str | None = None,
    usable: Callable[[str], bool] | None = None,
    attempts: int = 64,
) -> str:
    """A pod address not in `taken`.

    `preferred` (the address the pod already has) wins when it is in the range,
    free and usable. Otherwise addresses are handed out round-robin: the first
    free one after `after` (the last one allocated), from 127.1.0.1 without it,
    so a released address is not reused at once. `usable` (can the pod's ports be
    bound there?) is asked about at most `attempts` free candidates; when none of
    them is usable, the first free candidate is returned anyway.
    """
    wanted = preferred is not None and in_pod_range(preferred) and preferred not in taken
    if wanted and (usable is None or usable(str(preferred))):
        return str(preferred)
    start = next_pod_ip(after) if after is not None and in_pod_range(after) else POD_IP_FIRST
    candidate, first_free, asked = start, None, 0
    while True:
        if candidate not in taken:
            if usable is None:
                return candidate
            first_free = first_free or candidate
            if usable(candidate):
                return candidate
            asked += 1
            if asked >= attempts:
                return first_free
        candidate = next_pod_ip(candidate)
        if candidate == start:
            if first_free is None:
                raise RuntimeError("no free pod address left in 127.0.0.0/8")
            return first_free


# --------------------------------------------------------------------------- status


def exit_code_of(returncode: int) -> tuple[int, int | None]:
    """Popen returncode -> (container exit code, signal): a signal N becomes 128 + N."""
    if returncode < 0:
        return 128 - returncode, -returncode
    return returncode, None


def terminated_state(
    exit_code: int,
    started_at: str | None,
    finished_at: str,
    *,
    message: str = "",
    reason: str | None = None,
    signal: int | None = None,
    container_id: str | None = None,
) -> JSON:
    state: JSON = {
        "exitCode": exit_code,
        "reason": reason or ("Completed" if exit_code == 0 else "Error"),
        "finishedAt": finished_at,
    }
    if started_at:
        state["startedAt"] = started_at
    if message:
        state["message"] = message
    if signal:
        state["signal"] = signal
    if container_id:
        state["containerID"] = container_id
    return {"terminated": state}


def read_termination_message(
    path: Path | None,
    log_path: Path,
    log_offset: int,
    policy: str | None,
    exit_code: int,
) -> str:
    """What Kubernetes reports as the terminated state's message.

    The file at `path` (at most 4096 bytes); when it is empty and the policy is
    FallbackToLogsOnError and the container failed, the tail of this run's log
    (the last 80 lines, at most 2048 bytes).
    """
    text = ""
    if path is not None:
        try:
            with open(path, "rb") as f:
                text = f.read(TERMINATION_MESSAGE_MAX).decode("utf-8", errors="replace")
        except OSError:
            text = ""
    if text or policy != "FallbackToLogsOnError" or exit_code == 0:
        return text
    return tail_log(log_path, log_offset)


def tail_log(
    path: Path,
    offset: int = 0,
    max_lines: int = FALLBACK_LOG_LINES,
    max_bytes: int = FALLBACK_LOG_BYTES,
) -> str:
    """The last `max_lines` lines (and at most `max_bytes` bytes) of `path` after `offset`."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            start = max(offset, size - 64 * 1024)
            f.seek(start)
            data = f.read()
    except OSError:
        return ""
    lines = data.splitlines(keepends=True)[-max_lines:]
    out = b"".join(lines)[-max_bytes:]
    return out.decode("utf-8", errors="replace")


def compute_phase(
    restart_policy: str,
    init_statuses: list[JSON],
    container_statuses: list[JSON],
    *,
    sidecars: frozenset[str] = frozenset(),
    terminal: bool = False,
) -> str:
    """The pod phase from container statuses, following the kubelet's getPhase.

    `terminal` means the pod is being stopped for good (deleted): containers
    that would otherwise restart will not, so Always behaves like Never.
    Restartable init containers (`sidecars`) count neither for initialization
    nor for completion.
    """
    for st in init_statuses:
        if st.get("name") in sidecars:
            continue
        term = (st.get("state") or {}).get("terminated")
        if term is not None and term.get("exitCode") == 0:
            continue
        if term is not None and restart_policy == "Never":
            return "Failed"
        last = (st.get("lastState") or {}).get("terminated")
        if restart_policy == "Never" and last is not None and last.get("exitCode") != 0:
            return "Failed"
        if terminal and (term is not None or last is not None):
            return "Failed"
        return "Pending"

    running = waiting = stopped = succeeded = 0
    for st in container_statuses:
        state = st.get("state") or {}
        if "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            if state["terminated"].get("exitCode") == 0:
                succeeded += 1
        elif (st.get("lastState") or {}).get("terminated") is not None:
            stopped += 1
            if terminal and st["lastState"]["terminated"].get("exitCode") == 0:
                succeeded += 1
        else:
            waiting += 1
    if terminal:
        if running:
            return "Running"
        return "Succeeded" if stopped and stopped == succeeded and not waiting else "Failed"
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if not stopped:
        return "Pending"
    if restart_policy == "Always":
        return "Running"
    if stopped == succeeded:
        return "Succeeded"
    if restart_policy == "Never":
        return "Failed"
    return "Running"


def condition(
    ctype: str,
    ok: bool,
    previous: Mapping[str, JSON],
    reason: str | None = None,
    message: str | None = None,
) -> JSON:
    """A pod condition; lastTransitionTime only moves when the status changes."""
    status = "True" if ok else "False"
    prev = previous.get(ctype)
    ts = prev.get("lastTransitionTime") if prev and prev.get("status") == status else None
    cond: JSON = {
        "type": ctype,
        "status": status,
        "lastProbeTime": None,
        "lastTransitionTime": ts or now_rfc3339(),
    }
    if reason and not ok:
        cond["reason"] = reason
    if message and not ok:
        cond["message"] = message
    return cond


def pod_key(pod: JSON) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


def log_file_name(namespace: str, pod: str, container: str) -> str:
    return f"{namespace}_{pod}_{container}.log"
