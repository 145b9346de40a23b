"""`kubectl freshet` (operator/freshet/cli.py), the real plugin run by the real
kubectl against the real stack: kubectl finds `kubectl-freshet` on PATH, the
plugin acts with the user's kubeconfig, and reads the object store with the
policy's own Secret (no store credentials in its environment)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import scenario as sc
from devstack.stack import Stack
from kubernetes import client

GARBAGE = bytes(range(256)) * 40  # binary, not CSV


def freshet(stack: Stack, ns: str, *args: str, ok: bool = True) -> str:
    """`kubectl freshet -n ns ARGS`, as a user runs it; its output (stderr too, on failure)."""
    env = {
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "KUBECONFIG": stack.kubeconfig,
        "HOME": os.environ.get("HOME", "/tmp"),
    }
    p = subprocess.run(
        [stack.kubectl()[0], "freshet", "-n", ns, *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert (p.returncode == 0) == ok, f"kubectl freshet {' '.join(args)}: {p.stdout}{p.stderr}"
    return p.stdout if ok else p.stderr


def _deployed(api: client.ApiClient, ns: str) -> str | None:
    """The model version the serving Deployment's pod template points at."""
    dep = client.AppsV1Api(api).read_namespaced_deployment("model-server", ns)
    version: str | None = (dep.spec.template.metadata.annotations or {}).get(
        "freshet.dev/model-version"
    )
    return version


def test_status_history_logs_and_every_action(
    stack: Stack, kube_api: client.ApiClient, ns: str, bucket: str, s3: Any
) -> None:
    sc.create_policy(
        kube_api, ns, sc.policy("ctl", gate={"metric": "accuracy", "maxRegression": "0.2"})
    )
    sc.put(s3, bucket, "incoming/b0.csv", sc.batch_csv(400, seed=80))
    sc.wait_for("v1", lambda: sc.serving_version(sc.get_policy(kube_api, ns, "ctl")) == "v1")

    out = freshet(stack, ns, "status", "ctl")
    assert f"TrainingPolicy {ns}/ctl: Dynamic" in out
    assert "Serving: v1 since" in out
    assert (
        "Ready        True" in out
        or "Ready   True" in out
        or "Ready" in out.split("Conditions:")[1]
    )
    assert "Last run:" in out and "Promoted" in out

    # retrain: one run more, recorded as asked for.
    assert "retrain requested" in freshet(stack, ns, "retrain", "ctl")
    p = sc.wait_for(
        "v2 from the retrain",
        lambda: (q := sc.get_policy(kube_api, ns, "ctl")) and sc.serving_version(q) == "v2" and q,
    )
    assert p["status"]["history"][0]["trigger"] == "RetrainRequested"

    history = freshet(stack, ns, "history", "ctl")
    lines = history.splitlines()
    assert lines[0].split()[:3] == ["VERSION", "DECISION", "REASON"]
    assert lines[1].startswith("v2 *") and "accuracy=" in lines[1] and "Promoted" in lines[1]
    assert lines[2].startswith("v1 ") and "Promoted" in lines[2]

    logs = freshet(stack, ns, "logs", "ctl")
    entries = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert any(e.get("runId") == p["status"]["lastRun"]["runId"] for e in entries), logs[:500]

    # rollback: back to v1, as the annotation would.
    assert "rollback requested" in freshet(stack, ns, "rollback", "ctl")
    p = sc.wait_for(
        "the rollback",
        lambda: (q := sc.get_policy(kube_api, ns, "ctl")) and q["status"].get("lastRollback") and q,
    )
    assert (p["status"]["lastRollback"]["toVersion"], sc.serving_version(p)) == ("v1", "v1")

    # pin and unpin: spec.serving.pinnedVersion, so GitOps and the operator see one truth.
    # A pin may name the version monitoring rolled back: it is a person's decision.
    assert "pinned to v2" in freshet(stack, ns, "rollback", "ctl", "--to", "v2")
    sc.wait_for("the Deployment on the pinned v2", lambda: _deployed(kube_api, ns) == "v2")
    assert sc.get_policy(kube_api, ns, "ctl")["spec"]["serving"]["pinnedVersion"] == "v2"
    assert "Pinned: v2" in freshet(stack, ns, "status", "ctl")
    freshet(stack, ns, "unpin", "ctl")
    assert "pinnedVersion" not in sc.get_policy(kube_api, ns, "ctl")["spec"]["serving"]

    # Clear errors.
    assert "TrainingPolicy" in freshet(stack, ns, "status", "nope", ok=False)
    assert "not found" in freshet(stack, ns, "status", "nope", ok=False)
    assert "v3" in freshet(stack, ns, "pin", "ctl", "three", ok=False)


def test_quarantine_list_show_release(
    stack: Stack, kube_api: client.ApiClient, ns: str, bucket: str, s3: Any
) -> None:
    sc.create_policy(kube_api, ns, sc.policy("q", serving=None))
    sc.put(s3, bucket, "incoming/good.csv", sc.batch_csv(400, seed=81))
    sc.put(s3, bucket, "incoming/broken.csv", GARBAGE)
    p = sc.wait_for(
        "the bad batch quarantined",
        lambda: (
            (q := sc.get_policy(kube_api, ns, "q"))
            and (q.get("status") or {}).get("data", {}).get("quarantined") == 1
            and q
        ),
    )
    listed = freshet(stack, ns, "quarantine", "list", "q")
    (row,) = listed.splitlines()[1:]
    shown = json.loads(freshet(stack, ns, "quarantine", "show", "q", "incoming/broken.csv"))
    assert shown["batch"] == "incoming/broken.csv" and shown["reason"], shown
    assert row.split()[:2] == ["incoming/broken.csv", f"{shown['reason']}:"], listed

    root = p["status"]["stateRoot"]
    assert "released incoming/broken.csv" in freshet(
        stack, ns, "quarantine", "release", "q", "incoming/broken.csv"
    )
    keys = {o.object_name for o in s3.list_objects(bucket, recursive=True)}
    assert "incoming/broken.csv" in keys
    assert not any(k.startswith(f"{root}quarantine/incoming/broken.csv") for k in keys)
    again = freshet(stack, ns, "quarantine", "release", "q", "incoming/broken.csv")
    assert "was already released" in again
    assert "neither in" in freshet(stack, ns, "quarantine", "release", "q", "no/such.csv", ok=False)


def test_completion_without_a_cluster() -> None:
    env = {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "KUBECONFIG": "/none"}
    script = subprocess.run(
        ["kubectl-freshet", "completion", "bash"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    assert "_KUBECTL_FRESHET_COMPLETE=bash_complete" in script
    words = subprocess.run(
        ["kubectl_complete-freshet", "quarantine", ""],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout.split()
    assert words == ["list", "release", "show", ":4"]
