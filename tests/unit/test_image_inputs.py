"""What an image build depends on (devstack.images.input_hash), and the dockerignores.

The hash decides whether `make images` rebuilds: it must change with every file
a Dockerfile's COPY brings in and with nothing else, and it must see the
context exactly as the builder does, through the Dockerfile's dockerignore.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from devstack import images

REPO = Path(__file__).resolve().parents[2]
OPERATOR = "operator/Dockerfile"
TRAINER = "trainer-image/Dockerfile"
BASE = "sha256-of-a-base"


@pytest.fixture
def context(tmp_path: Path) -> Path:
    """A copy of what the two builds read from the repository root."""
    for name in ("contract", "operator", "trainer-image"):
        shutil.copytree(
            REPO / name,
            tmp_path / name,
            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", ".mypy_cache"),
        )
    shutil.copy(REPO / "requirements.txt", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.md").write_text("not an input\n")
    return tmp_path


def hashes(context: Path) -> dict[str, str]:
    return {df: images.input_hash(df, BASE, context) for df in (OPERATOR, TRAINER)}


def append(path: Path, text: str = "\n# changed\n") -> None:
    path.write_text(path.read_text() + text)


@pytest.mark.parametrize(
    ("changed", "affects"),
    [
        ("trainer-image/freshet_trainer/train.py", {TRAINER}),
        ("trainer-image/pyproject.toml", {TRAINER}),
        ("trainer-image/Dockerfile", {TRAINER}),
        ("trainer-image/Dockerfile.dockerignore", {TRAINER}),
        ("operator/freshet/controller.py", {OPERATOR}),
        ("operator/freshet/estimator_params.json", {OPERATOR}),
        ("operator/Dockerfile", {OPERATOR}),
        ("contract/freshet_contract/run.py", {OPERATOR, TRAINER}),
        ("contract/pyproject.toml", {OPERATOR, TRAINER}),
        ("requirements.txt", {OPERATOR, TRAINER}),
        # Under a COPY source, but left out by the dockerignore:
        ("trainer-image/README.md", set()),
        ("contract/README.md", set()),
        ("contract/runspec.example.json", set()),
        # Not under any COPY source:
        ("docs/notes.md", set()),
    ],
)
def test_a_change_rebuilds_exactly_the_images_that_copy_it(
    context: Path, changed: str, affects: set[str]
) -> None:
    before = hashes(context)
    target = context / changed
    if target.suffix == ".json":
        target.write_text(target.read_text().rstrip() + " \n")
    else:
        append(target)
    after = hashes(context)
    assert {df for df in before if before[df] != after[df]} == affects


def test_new_files_count_unless_ignored(context: Path) -> None:
    before = hashes(context)
    cache = context / "trainer-image" / "freshet_trainer" / "__pycache__"
    cache.mkdir()
    (cache / "train.cpython-311.pyc").write_bytes(b"\0")
    (context / "contract" / "freshet_contract.egg-info").mkdir()
    (context / "contract" / "freshet_contract.egg-info" / "PKG-INFO").write_text("x")
    assert hashes(context) == before
    (context / "trainer-image" / "freshet_trainer" / "extra.py").write_text("X = 1\n")
    after = hashes(context)
    assert after[TRAINER] != before[TRAINER]
    assert after[OPERATOR] == before[OPERATOR]


def test_the_base_is_an_input(context: Path) -> None:
    for df in (OPERATOR, TRAINER):
        assert images.input_hash(df, "a", context) != images.input_hash(df, "b", context)


def test_an_executable_bit_is_an_input(context: Path) -> None:
    before = hashes(context)
    (context / "operator" / "freshet" / "jobs.py").chmod(0o755)
    assert hashes(context)[OPERATOR] != before[OPERATOR]


@pytest.mark.parametrize("dockerfile", [OPERATOR, TRAINER])
def test_every_copy_source_survives_the_dockerignore(dockerfile: str) -> None:
    """A COPY whose source the dockerignore leaves out fails the build (`docker build` too)."""
    path = REPO / dockerfile
    ignore = images.ignore_file(path, REPO)
    assert ignore == path.with_name(path.name + ".dockerignore")
    rules = images.parse_ignore(ignore.read_text())
    sources = images.copy_sources(path.read_text())
    assert "requirements.txt" in sources
    assert "contract" in sources
    for src in sources:
        assert images.context_files(REPO, [src], rules), f"{dockerfile}: COPY {src} brings nothing"


@pytest.mark.parametrize("dockerfile", [OPERATOR, TRAINER])
def test_the_context_is_only_what_the_image_needs(dockerfile: str) -> None:
    path = REPO / dockerfile
    ignore = images.ignore_file(path, REPO)
    assert ignore is not None
    files = images.context_files(
        REPO, images.copy_sources(path.read_text()), images.parse_ignore(ignore.read_text())
    )
    package = "operator/freshet/" if dockerfile == OPERATOR else "trainer-image/freshet_trainer/"
    allowed = (package, "contract/freshet_contract/")
    plain = {
        "requirements.txt",
        "contract/pyproject.toml",
        dockerfile.partition("/")[0] + "/pyproject.toml",
    }
    for f in files:
        assert f in plain or f.startswith(allowed), f
        assert "__pycache__" not in f
    assert plain <= set(files)
    assert "contract/freshet_contract/py.typed" in files


def test_copy_sources_parsing() -> None:
    text = """# syntax=docker/dockerfile:1
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE} AS build
COPY requirements.txt ./
COPY --chown=1:1 a/ \\
     b/c.txt dest/
# a comment
ADD ["d e", "/dest/"]
FROM ${PYTHON_IMAGE}
COPY --from=build /opt/freshet /opt/freshet
copy ./f .
"""
    assert images.copy_sources(text) == ["requirements.txt", "a", "b/c.txt", "d e", "f"]


def ignore(rules: str, path: str) -> bool:
    return images.ignored(path, images.parse_ignore(rules))


def test_dockerignore_semantics() -> None:
    rules = "*\n!keep/\n**/__pycache__\n!keep/__pycache__/wanted.pyc\n"
    assert ignore(rules, "top.txt")
    assert ignore(rules, "other/deep/file.py")
    assert not ignore(rules, "keep/a.py")
    assert not ignore(rules, "keep/sub/b.py")
    assert ignore(rules, "keep/sub/__pycache__/b.pyc")
    assert not ignore(rules, "keep/__pycache__/wanted.pyc")  # the last match wins
    assert ignore("*.md\n", "README.md")
    assert not ignore("*.md\n", "docs/README.md")  # `*` stops at a slash
    assert ignore("**/*.md\n", "docs/deep/README.md")
    assert ignore("**/*.md\n", "README.md")
    assert ignore("/docs\n", "docs/x")  # a leading slash is the context root
    assert ignore("doc?\n", "docs/x")
    assert ignore("[a-c]bc\n", "abc")
    assert not ignore("[!a-c]bc\n", "abc")
    assert not ignore("# *\n\n", "anything")


def test_the_operator_dockerfile_takes_the_base_as_an_argument() -> None:
    text = (REPO / OPERATOR).read_text()
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    froms = [rest for word, rest in images._instructions(text) if word == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE}"]
    assert "pip check" in text


@pytest.mark.parametrize("dockerfile", [OPERATOR, TRAINER])
def test_images_run_as_65532_with_an_explicit_group(dockerfile: str) -> None:
    users = [
        rest
        for word, rest in images._instructions((REPO / dockerfile).read_text())
        if word == "USER"
    ]
    assert users == [images.USER]


def test_base_key_is_the_package_list(monkeypatch: pytest.MonkeyPatch) -> None:
    key = images.base_key()
    assert key == images.base_key()
    monkeypatch.setattr(images, "BASE_PACKAGES", (*images.BASE_PACKAGES, "curl"))
    assert images.base_key() != key
