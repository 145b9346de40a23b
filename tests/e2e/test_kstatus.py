"""Tools that wait read status the way kstatus does (Reconciling, Stalled,
observedGeneration): Helm 4's `--wait` and `kubectl wait`, the real binaries.

A policy installed by a chart with `helm install --wait` is waited for until its
first model serves; a policy that cannot make progress until someone acts makes
the same command fail, instead of hanging until its timeout.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import scenario as sc
import yaml
from devstack import release
from devstack.stack import Stack
from kubernetes import client


def _chart(root: Path, policy: dict[str, Any]) -> Path:
    """A user's chart holding one TrainingPolicy."""
    root.mkdir()
    (root / "Chart.yaml").write_text(
        yaml.safe_dump({"apiVersion": "v2", "name": "ml", "version": "0.1.0"})
    )
    (root / "templates").mkdir()
    (root / "templates" / "policy.yaml").write_text(yaml.safe_dump(policy))
    return root


def test_helm_wait_returns_once_the_first_model_serves(
    stack: Stack, kube_api: client.ApiClient, ns: str, bucket: str, s3: Any, tmp_path: Path
) -> None:
    for i in range(2):
        sc.put(s3, bucket, f"incoming/b{i}.csv", sc.batch_csv(300, seed=40 + i))
    chart = _chart(tmp_path / "ml", sc.policy("waited", mode="Static"))
    started = time.monotonic()
    release.helm(stack, "install", "ml", str(chart), "-n", ns, "--wait", "--timeout", "180s")
    waited = time.monotonic() - started
    p = sc.get_policy(kube_api, ns, "waited")
    # Returned only when kstatus said Current: reconciled and serving.
    assert sc.serving_version(p) == "v1", p.get("status")
    assert sc.condition(p, "Reconciling")["status"] == "False"
    assert sc.condition(p, "Stalled")["status"] == "False"
    assert p["status"]["observedGeneration"] == p["metadata"]["generation"]
    print(f"\nhelm install --wait of a policy: {waited:.1f}s (first model trained meanwhile)")


def test_a_stalled_policy_fails_helm_wait_and_satisfies_kubectl_wait(
    stack: Stack, kube_api: client.ApiClient, ns: str, tmp_path: Path
) -> None:
    body = sc.policy("stuck", serving=None, data__storeRef={"name": "no-such-secret"})
    chart = _chart(tmp_path / "ml", body)
    with pytest.raises(RuntimeError) as failed:
        release.helm(stack, "install", "ml", str(chart), "-n", ns, "--wait", "--timeout", "120s")
    said = str(failed.value)
    assert "Failed" in said or "failed" in said, said
    assert "context deadline exceeded" not in said, said
    p = sc.get_policy(kube_api, ns, "stuck")
    stalled = sc.condition(p, "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "StoreSecretNotFound"), stalled

    waited = subprocess.run(
        [
            *stack.kubectl(),
            "-n",
            ns,
            "wait",
            "--for=condition=Stalled=True",
            "trainingpolicy/stuck",
            "--timeout=30s",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert waited.returncode == 0, waited.stdout + waited.stderr
