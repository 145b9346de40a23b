"""Pure helpers of the node agent: env resolution, $(VAR) expansion, path rewriting, phases."""

from __future__ import annotations

import base64
import socket
from pathlib import Path
from typing import Any

import pytest
from devstack.nodeagent_lib import (
    ConfigError,
    PathRewriter,
    allocate_pod_ip,
    compute_phase,
    condition,
    exit_code_of,
    expand,
    field_ref_value,
    free_port,
    in_pod_range,
    next_pod_ip,
    port_env,
    read_termination_message,
    resolve_env,
    resolve_port,
    safe_join,
    select_items,
    tail_log,
    volume_files,
)

POD: dict[str, Any] = {
    "metadata": {
        "name": "web-1",
        "namespace": "ns1",
        "uid": "u-1",
        "labels": {"app": "web"},
        "annotations": {"a/b": "c"},
    },
    "spec": {"nodeName": "local"},
    "status": {"podIP": "127.0.0.1"},
}


# ----------------------------------------------------------------- expansion


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("$(A)", "1"),
        ("x$(A)y$(B)z", "x1y2z"),
        ("$$(A)", "$(A)"),
        ("$$$(A)", "$1"),
        ("$(MISSING)", "$(MISSING)"),
        ("$(A", "$(A"),
        ("$A", "$A"),
        ("cost $", "cost $"),
        ("", ""),
        ("$()", "$()"),
        ("$(A)$(A)", "11"),
    ],
)
def test_expand_follows_kubernetes_rules(value: str, expected: str) -> None:
    env = {"A": "1", "B": "2"}
    assert expand(value, env.get) == expected


# ----------------------------------------------------------------- env


def _secrets(data: dict[str, dict[str, str]]) -> Any:
    return lambda ns, name: data.get(f"{ns}/{name}")


def test_env_order_expansion_and_sources() -> None:
    container = {
        "name": "c",
        "envFrom": [
            {"configMapRef": {"name": "cm"}, "prefix": "CM_"},
            {"secretRef": {"name": "s"}},
        ],
        "env": [
            {"name": "LIT", "value": "a-$(PORT)-$(CM_k)-$(LATER)"},
            {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "s", "key": "password"}}},
            {"name": "K", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
            {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "LATER", "value": "late"},
            {"name": "REF", "value": "$(PASS)/$(LATER)/$$(NOPE)"},
            {"name": "password", "value": "overridden"},
        ],
    }
    env = resolve_env(
        POD,
        container,
        secrets=_secrets({"ns1/s": {"password": "hunter2"}}),
        configmaps=_secrets({"ns1/cm": {"k": "v"}}),
        preset=[("PORT", "8080")],
    )
    assert env["LIT"] == "a-8080-v-$(LATER)"  # LATER is defined after LIT
    assert env["PASS"] == "hunter2"
    assert env["K"] == "v"
    assert env["CM_k"] == "v"
    assert env["NAME"] == "web-1"
    assert env["NS"] == "ns1"
    assert env["APP"] == "web"
    assert env["IP"] == "127.0.0.1"
    assert env["REF"] == "hunter2/late/$(NOPE)"
    assert env["password"] == "overridden"
    assert next(iter(env)) == "PORT"


def test_env_values_from_sources_are_not_expanded() -> None:
    container = {
        "name": "c",
        "env": [
            {"name": "A", "value": "x"},
            {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        ],
    }
    env = resolve_env(
        POD, container, secrets=_secrets({"ns1/s": {"k": "$(A)"}}), configmaps=_secrets({})
    )
    assert env["S"] == "$(A)"


def test_missing_sources_raise_unless_optional() -> None:
    missing_secret = {"name": "c", "envFrom": [{"secretRef": {"name": "nope"}}]}
    with pytest.raises(ConfigError, match="nope"):
        resolve_env(POD, missing_secret, secrets=_secrets({}), configmaps=_secrets({}))
    missing_key = {
        "name": "c",
        "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "z"}}}],
    }
    with pytest.raises(ConfigError, match="'z'"):
        resolve_env(POD, missing_key, secrets=_secrets({}), configmaps=_secrets({"ns1/cm": {}}))
    optional = {
        "name": "c",
        "envFrom": [{"secretRef": {"name": "nope", "optional": True}}],
        "env": [
            {
                "name": "X",
                "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": True}},
            }
        ],
    }
    assert resolve_env(POD, optional, secrets=_secrets({}), configmaps=_secrets({})) == {}


def test_field_refs() -> None:
    assert field_ref_value(POD, "metadata.uid") == "u-1"
    assert field_ref_value(POD, "spec.nodeName") == "local"
    assert field_ref_value(POD, "metadata.annotations['a/b']") == "c"
    assert field_ref_value(POD, "metadata.labels['absent']") == ""
    with pytest.raises(ConfigError):
        field_ref_value(POD, "spec.bogus")


def test_resource_field_ref_uses_limits_then_allocatable() -> None:
    container = {
        "name": "c",
        "resources": {"limits": {"memory": "1Gi"}},
        "env": [
            {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}},
            {
                "name": "MEM_MI",
                "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
            },
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
        ],
    }
    env = resolve_env(
        POD, container, secrets=_secrets({}), configmaps=_secrets({}), allocatable={"cpu": "16"}
    )
    assert env == {"MEM": "1Gi", "MEM_MI": "1024", "CPU": "16"}


# ----------------------------------------------------------------- volumes


def test_volume_files_and_items() -> None:
    secret = {"data": {"a": base64.b64encode(b"A").decode(), "b": base64.b64encode(b"B").decode()}}
    files = volume_files("secret", secret)
    assert files == {"a": b"A", "b": b"B"}
    assert select_items(files, [{"key": "a", "path": "sub/x"}]) == {"sub/x": b"A"}
    cm = {"data": {"k": "v"}, "binaryData": {"bin": base64.b64encode(b"\x00").decode()}}
    assert volume_files("configmap", cm) == {"k": b"v", "bin": b"\x00"}


def test_safe_join_refuses_escapes(tmp_path: Path) -> None:
    assert safe_join(tmp_path, "a/b") == (tmp_path / "a" / "b").resolve()
    with pytest.raises(ConfigError):
        safe_join(tmp_path, "../outside")


# ----------------------------------------------------------------- path rewriting


def test_path_rewriting() -> None:
    rw = PathRewriter(
        {
            "/data": "/host/vol/data",
            "/data/sub": "/host/vol/sub",
            "/etc/creds/": "/host/vol/creds",
            "/dev/termination-log": "/host/term/main",
        }
    )
    assert rw.rewrite("/data") == "/host/vol/data"
    assert rw.rewrite("--out=/data/x.csv") == "--out=/host/vol/data/x.csv"
    assert rw.rewrite("/data/sub/f") == "/host/vol/sub/f"
    assert rw.rewrite("/database") == "/database"
    assert rw.rewrite("x/data") == "x/data"
    assert rw.rewrite("/etc/creds/password") == "/host/vol/creds/password"
    assert rw.rewrite("open('/dev/termination-log','w')") == "open('/host/term/main','w')"
    assert rw.rewrite("a:/data:b") == "a:/host/vol/data:b"
    assert PathRewriter({}).rewrite("/data") == "/data"


# ----------------------------------------------------------------- ports


def test_port_env_and_resolution() -> None:
    assert port_env({8080: 40001}) == [("PORT", "40001"), ("PORT_8080", "40001")]
    assert port_env({80: 1, 90: 2}) == [("PORT_80", "1"), ("PORT_90", "2")]
    assert port_env({}) == []
    container = {"ports": [{"name": "http", "containerPort": 8080}]}
    assert resolve_port("http", container, {8080: 40001}) == 40001
    assert resolve_port(8080, container, {8080: 40001}) == 40001
    assert resolve_port("8080", container, {8080: 40001}) == 40001
    assert resolve_port(9999, container, {8080: 40001}) == 9999
    assert resolve_port("nope", container, {8080: 40001}) is None


def test_free_ports_are_distinct_and_bindable() -> None:
    taken: set[int] = set()
    ports = [free_port(taken) for _ in range(20)]
    assert len(set(ports)) == 20
    assert taken == set(ports)
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[0]))


# ----------------------------------------------------------------- pod addresses


@pytest.mark.parametrize(
    ("ip", "ok"),
    [
        ("127.1.0.1", True),
        ("127.1.0.254", True),
        ("127.254.254.254", True),
        ("127.0.0.1", False),
        ("127.0.1.1", False),
        ("127.1.0.0", False),
        ("127.1.0.255", False),
        ("127.1.255.1", False),
        ("127.255.0.1", False),
        ("10.1.0.1", False),
        ("", False),
        (None, False),
        ("not an ip", False),
    ],
)
def test_pod_range(ip: object, ok: bool) -> None:
    assert in_pod_range(ip) is ok


def test_next_pod_ip_skips_0_and_255_and_wraps() -> None:
    assert next_pod_ip("127.1.0.1") == "127.1.0.2"
    assert next_pod_ip("127.1.0.254") == "127.1.1.1"
    assert next_pod_ip("127.1.254.254") == "127.2.0.1"
    assert next_pod_ip("127.254.254.254") == "127.1.0.1"
    assert next_pod_ip("127.0.0.1") == "127.1.0.1"


def test_allocation_is_unique_and_round_robin() -> None:
    taken: set[str] = set()
    last = None
    for _ in range(300):
        ip = allocate_pod_ip(taken, after=last)
        assert in_pod_range(ip) and ip not in taken
        taken.add(ip)
        last = ip
    assert "127.1.0.1" in taken and "127.1.1.1" in taken
    assert not any(ip.endswith((".0", ".255")) for ip in taken)
    # A released address is not reused at once: the next one after the last wins.
    taken.discard("127.1.0.1")
    assert allocate_pod_ip(taken, after=last) == next_pod_ip(last)
    # Skips taken addresses and wraps around to released ones at the end of the range.
    assert allocate_pod_ip({"127.1.0.1", "127.1.0.2"}) == "127.1.0.3"
    assert allocate_pod_ip({"127.1.0.1"}, after="127.254.254.254") == "127.1.0.2"


def test_allocation_keeps_the_preferred_address_when_it_can() -> None:
    assert allocate_pod_ip(set(), preferred="127.1.3.7") == "127.1.3.7"
    # Not ours (127.0.0.1, from an older agent), or held by another pod: a new one.
    assert allocate_pod_ip(set(), preferred="127.0.0.1") == "127.1.0.1"
    assert allocate_pod_ip({"127.1.3.7"}, preferred="127.1.3.7") == "127.1.0.1"


def test_allocation_skips_unusable_addresses() -> None:
    asked: list[str] = []

    def usable(ip: str) -> bool:
        asked.append(ip)
        return ip not in ("127.1.0.1", "127.1.0.3", "127.1.9.9")

    got = allocate_pod_ip({"127.1.0.2"}, preferred="127.1.9.9", usable=usable)
    assert got == "127.1.0.4"
    assert asked == ["127.1.9.9", "127.1.0.1", "127.1.0.3", "127.1.0.4"]
    # Nothing usable (a port held on a wildcard address): the first free one, after a few tries.
    asked.clear()
    got = allocate_pod_ip({"127.1.0.1"}, usable=lambda ip: bool(asked.append(ip)), attempts=5)
    assert got == "127.1.0.2"
    assert asked == ["127.1.0.2", "127.1.0.3", "127.1.0.4", "127.1.0.5", "127.1.0.6"]


# ----------------------------------------------------------------- termination


def test_exit_codes() -> None:
    assert exit_code_of(0) == (0, None)
    assert exit_code_of(3) == (3, None)
    assert exit_code_of(-15) == (143, 15)
    assert exit_code_of(-9) == (137, 9)


def test_termination_message(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    log.write_text("old run\n" + "".join(f"line {i}\n" for i in range(200)))
    offset = len("old run\n")
    term = tmp_path / "term"
    term.write_text("")
    fallback = read_termination_message(term, log, offset, "FallbackToLogsOnError", 1)
    assert fallback.splitlines()[-1] == "line 199"
    assert len(fallback.splitlines()) <= 80
    assert len(fallback.encode()) <= 2048
    assert read_termination_message(term, log, offset, "FallbackToLogsOnError", 0) == ""
    assert read_termination_message(term, log, offset, "File", 1) == ""
    term.write_text("x" * 5000)
    assert read_termination_message(term, log, offset, "FallbackToLogsOnError", 1) == "x" * 4096
    log.write_text("only\n")
    assert tail_log(log, 0) == "only\n"
    assert tail_log(log, 5) == ""
    assert tail_log(tmp_path / "missing") == ""


# ----------------------------------------------------------------- phase


def _running(name: str = "c") -> dict[str, Any]:
    return {"name": name, "state": {"running": {}}}


def _term(code: int, name: str = "c") -> dict[str, Any]:
    return {"name": name, "state": {"terminated": {"exitCode": code}}}


def _waiting(name: str = "c", last: int | None = None) -> dict[str, Any]:
    st: dict[str, Any] = {"name": name, "state": {"waiting": {"reason": "ContainerCreating"}}}
    if last is not None:
        st["lastState"] = {"terminated": {"exitCode": last}}
    return st


@pytest.mark.parametrize(
    ("policy", "init", "containers", "phase"),
    [
        ("Never", [], [_waiting()], "Pending"),
        ("Never", [], [_running()], "Running"),
        ("Never", [], [_term(0)], "Succeeded"),
        ("Never", [], [_term(3)], "Failed"),
        ("Never", [], [_term(0, "a"), _running("b")], "Running"),
        ("OnFailure", [], [_term(0)], "Succeeded"),
        ("OnFailure", [], [_waiting(last=1)], "Running"),
        ("Always", [], [_term(0)], "Running"),
        ("Always", [], [_waiting(last=0)], "Running"),
        ("Never", [_running("i")], [_waiting()], "Pending"),
        ("Never", [_term(1, "i")], [_waiting()], "Failed"),
        ("OnFailure", [_waiting("i", last=1)], [_waiting()], "Pending"),
        ("Never", [_term(0, "i")], [_term(0)], "Succeeded"),
    ],
)
def test_phase(
    policy: str, init: list[dict[str, Any]], containers: list[dict[str, Any]], phase: str
) -> None:
    assert compute_phase(policy, init, containers) == phase


def test_phase_of_a_terminated_pod() -> None:
    assert compute_phase("Always", [], [_term(0), _term(0, "b")], terminal=True) == "Succeeded"
    assert compute_phase("Always", [], [_term(143)], terminal=True) == "Failed"
    assert compute_phase("Always", [], [_waiting(last=0)], terminal=True) == "Succeeded"
    assert compute_phase("Always", [], [_waiting()], terminal=True) == "Failed"
    assert compute_phase("Always", [], [_running()], terminal=True) == "Running"


def test_sidecars_do_not_block_initialization() -> None:
    init = [_running("side")]
    assert compute_phase("Never", init, [_running()], sidecars=frozenset({"side"})) == "Running"


def test_condition_keeps_transition_time() -> None:
    prev = {"Ready": {"type": "Ready", "status": "True", "lastTransitionTime": "T0"}}
    assert condition("Ready", True, prev)["lastTransitionTime"] == "T0"
    flipped = condition("Ready", False, prev, "ContainersNotReady", "m")
    assert flipped["lastTransitionTime"] != "T0"
    assert flipped["reason"] == "ContainersNotReady"
    assert "reason" not in condition("Ready", True, {}, "X")
