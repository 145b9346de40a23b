"""The operator and trainer images, built (or taken from the cache) by devstack.images.

Checked from the docker-archives the node imports and by running each image
with runc as a restricted pod would: uid/gid 65532, no capabilities, a
read-only root filesystem and a tmpfs on /tmp.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from devstack import images

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def archives() -> dict[str, Path]:
    return images.ensure()


def dockerfile_entrypoint(name: str) -> list[str]:
    text = (REPO / images.IMAGES[name]).read_text()
    entry = [rest for word, rest in images._instructions(text) if word == "ENTRYPOINT"]
    parsed: list[str] = json.loads(entry[-1])
    return parsed


@pytest.mark.parametrize("name", list(images.IMAGES))
def test_archive_config(archives: dict[str, Path], name: str) -> None:
    config = images.archive_config(archives[name])
    assert config["User"] == "65532:65532"
    assert config["Entrypoint"] == dockerfile_entrypoint(name)
    # The name kubelet resolves `image: freshet-trainer:dev` to, after `ctr images import`.
    (tag,) = config["RepoTags"]
    assert tag.endswith(f"/library/{name}")
    assert images.read_index()["images"][name]["ref"] == tag
    assert "TMPDIR=/tmp" in config["Env"]
    assert "HOME=/tmp" in config["Env"]


@pytest.mark.parametrize("name", list(images.IMAGES))
def test_index_matches_storage(archives: dict[str, Path], name: str) -> None:
    entry = images.read_index()["images"][name]
    assert Path(entry["archive"]) == archives[name]
    assert entry["input_hash"] == images.input_hash(
        images.IMAGES[name], images.read_index()["base"]["digest"]
    )
    assert images.image_id(name) == entry["image_id"]
    assert images.image_config(name)["User"] == images.USER


def test_a_warm_ensure_builds_nothing(archives: dict[str, Path]) -> None:
    before = images.read_index()
    t0 = time.monotonic()
    assert images.ensure() == archives
    assert time.monotonic() - t0 < 5
    assert images.read_index() == before


@pytest.mark.parametrize("name", list(images.IMAGES))
def test_runs_as_65532_with_its_group(archives: dict[str, Path], name: str) -> None:
    p = images.run_restricted(name, ["id"])
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "uid=65532(freshet) gid=65532(freshet) groups=65532(freshet)"


@pytest.mark.parametrize("name", list(images.IMAGES))
def test_pip_check_is_clean(archives: dict[str, Path], name: str) -> None:
    p = images.run_restricted(name, ["python", "-m", "pip", "check"])
    assert p.returncode == 0, p.stdout + p.stderr
    assert "No broken requirements found." in p.stdout


def test_trainer_imports_scikit_learn_and_the_contract(archives: dict[str, Path]) -> None:
    code = (
        "import sklearn, freshet_contract, freshet_trainer.train, freshet_trainer.serve;"
        "from sklearn.linear_model import LogisticRegression;"
        "m = LogisticRegression().fit([[0.0], [1.0]], [0, 1]);"
        "print(sklearn.__version__, int(m.predict([[0.9]])[0]))"
    )
    p = images.run_restricted("freshet-trainer:dev", ["python", "-c", code])
    assert p.returncode == 0, p.stderr
    version, predicted = p.stdout.split()
    pins = (REPO / "requirements.txt").read_text().splitlines()
    assert f"scikit-learn=={version}" in pins
    assert predicted == "1"


def test_operator_imports_its_handlers_and_the_contract(archives: dict[str, Path]) -> None:
    p = images.run_restricted(
        "freshet-operator:dev", ["python", "-c", "import freshet_contract, freshet.handlers"]
    )
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("name", list(images.IMAGES))
def test_entrypoint_starts_with_a_read_only_root(archives: dict[str, Path], name: str) -> None:
    smoke = images.SMOKE[name]
    p = images.run_restricted(name, [*dockerfile_entrypoint(name), *smoke["args"]])
    assert p.returncode == smoke["rc"], p.stdout + p.stderr
    assert smoke["expect"] in p.stdout + p.stderr


@pytest.mark.parametrize("name", list(images.IMAGES))
def test_nothing_is_writable_outside_tmp(archives: dict[str, Path], name: str) -> None:
    p = images.run_restricted(name, ["python", "-c", images.WRITABLE_PROBE])
    assert p.returncode == 0, p.stdout + p.stderr
    assert "writable outside /tmp:\n0\n" in p.stdout
    assert "tmp-writable: True" in p.stdout


def test_the_writable_probe_finds_writable_paths(archives: dict[str, Path]) -> None:
    """Control: on a writable root the same probe does report paths (1777 dirs of the base)."""
    p = images.run_restricted(
        "freshet-operator:dev", ["python", "-c", images.WRITABLE_PROBE], readonly=False
    )
    assert p.returncode == 1
    assert "/var/tmp/" in p.stdout.splitlines()
