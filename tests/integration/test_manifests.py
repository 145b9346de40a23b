"""deploy/ (hack/gen-manifests.py): the chart rendered for kubectl and kustomize
users, current with the chart, and accepted by the real API server."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from devstack.stack import Stack

from tests import hack_scripts

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def _gen() -> Any:
    return hack_scripts.load("gen-manifests")


def _objects(text: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {
        (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o
        for o in yaml.safe_load_all(text)
        if o
    }


def _kubectl(stack: Stack, *args: str) -> str:
    p = subprocess.run([*stack.kubectl(), *args], capture_output=True, text=True, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def test_deploy_is_current_with_the_chart() -> None:
    gen = _gen()
    stale = [str(p.relative_to(REPO)) for p, text in gen.files().items() if p.read_text() != text]
    assert stale == [], "run hack/gen-manifests.py"


def test_the_namespaced_overlay_is_the_chart_in_namespaced_mode(stack: Stack) -> None:
    built = _objects(_kubectl(stack, "kustomize", str(DEPLOY / "kustomize/overlays/namespaced")))
    rendered = _gen().render("namespaces={team-a}")
    chart = _objects("".join(f"---\n{yaml.safe_dump(o)}" for o in rendered))
    assert built == chart
    cluster = _objects(_kubectl(stack, "kustomize", str(DEPLOY / "kustomize/overlays/cluster")))
    assert cluster == _objects((DEPLOY / "install.yaml").read_text())


@pytest.fixture(scope="module")
def team_a(stack: Stack) -> Iterator[str]:
    """The namespace the namespaced overlay names."""
    _kubectl(stack, "create", "namespace", "team-a")
    yield "team-a"
    _kubectl(stack, "delete", "namespace", "team-a", "--wait=false")


@pytest.mark.parametrize(
    "source",
    [
        ["-f", "deploy/install.yaml"],
        ["-k", "deploy/kustomize/overlays/cluster"],
        ["-k", "deploy/kustomize/overlays/namespaced"],
    ],
    ids=["install.yaml", "cluster", "namespaced"],
)
def test_applied_server_side(freshet_release: Stack, team_a: str, source: list[str]) -> None:
    """The API server accepts every object (schema, admission). A dry run: the
    session's operator is the Helm release (its namespace must exist, so the
    release is installed first); --force-conflicts because its fields (image,
    values) differ from the manifests' defaults."""
    out = _kubectl(
        freshet_release,
        "apply",
        "--server-side",
        "--force-conflicts",
        "--dry-run=server",
        *[str(REPO / s) if i else s for i, s in enumerate(source)],
    )
    assert "customresourcedefinition.apiextensions.k8s.io/trainingpolicies.freshet.dev" in out
    assert "deployment.apps/freshet-operator serverside-applied (server dry run)" in out


def test_the_crd_reference_is_current() -> None:
    """docs/reference/trainingpolicy.md is generated from crds/ (hack/gen-crd-reference.py)."""
    module = hack_scripts.load("gen-crd-reference")
    page = (REPO / "docs" / "reference" / "trainingpolicy.md").read_text()
    assert page == module.render(), "run hack/gen-crd-reference.py"
    assert "| `spec.mode` (required) | string |" in page
