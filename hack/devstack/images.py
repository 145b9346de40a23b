"""The project's container images, built here without an image registry.

`operator/Dockerfile` and `trainer-image/Dockerfile` are built unchanged with
buildah. Their `FROM ${PYTHON_IMAGE}` (default `python:3.11-slim`, which needs
a registry) is pointed at a local Debian base instead:

1. base: `mmdebstrap --variant=minbase` of bookworm with `BASE_PACKAGES`, from
   the Debian mirror apt on this machine uses (read from its sources at build
   time), imported into buildah's storage (under `$FRESHET_CACHE/buildah`) as
   `localhost/freshet-base:<key>`.
   Cached as a tar under `$FRESHET_CACHE/images/` by the hash of its package
   list and options.
2. each image: `buildah bud --pull=never --layers` from the repository root,
   with the machine's CA bundle bind-mounted over the image's for the RUN steps
   only (pip's TLS goes through whatever proxy this machine trusts; nothing of
   it ends up in a layer), then exported as a docker-archive tar.

An image is rebuilt only when its inputs change: the Dockerfile, its
dockerignore, the base image id, and every file its COPY instructions bring in
after the dockerignore is applied (`input_hash`). `$FRESHET_CACHE/images/
index.json` maps each image name to its archive, image id and input hash.

    python -m devstack.images            # build what is stale, print the archives
    python -m devstack.images --check    # also run the read-only smoke checks
    devstack.images.ensure()             # {"freshet-trainer:dev": Path(...), ...}
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RUNC = "/usr/sbin/runc"
SUITE = "bookworm"
# What the Dockerfiles need from `python:3.11-slim`: python 3.11 as `python`,
# venv with ensurepip, CA certificates.
BASE_PACKAGES = ("ca-certificates", "python3", "python3-venv", "python-is-python3")
# Documentation the images never read (copyright files are kept).
DPKG_OPTIONS = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
)
BASE_FORMAT = 1  # bump when the way the base is made changes
BUILD_FORMAT = 1  # bump when the way images are built or indexed changes
BASE_REPO = "localhost/freshet-base"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
# Image name -> Dockerfile (relative to the repository root, the build context).
IMAGES = {
    "freshet-operator:dev": "operator/Dockerfile",
    "freshet-trainer:dev": "trainer-image/Dockerfile",
}
USER = "65532:65532"


def cache_dir() -> Path:
    base = Path(os.environ.get("FRESHET_CACHE", Path.home() / ".cache" / "freshet"))
    return base / "images"


def buildah() -> list[str]:
    """buildah with its layer storage under the cache (`$FRESHET_CACHE/buildah`),
    next to the archives, not in /var/lib/containers: an empty cache is a cold build.
    Its run state (locks, mount counts) goes to /run, cleared at boot, one per storage."""
    root = (cache_dir().parent / "buildah").resolve()
    run = Path("/run") / f"freshet-buildah-{hashlib.sha256(str(root).encode()).hexdigest()[:12]}"
    return ["buildah", "--root", str(root), "--runroot", str(run)]


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- build inputs ------------------------------------------------------------


@dataclass(frozen=True)
class IgnoreRule:
    exclude: bool  # False for a `!` exception
    regex: re.Pattern[str]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A dockerignore pattern (Go filepath.Match plus `**`) as an anchored regex."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                out.append("(?:.*/)?")
                i += 1
            else:
                out.append(".*")
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end]
                if body.startswith("^"):
                    body = "!" + body[1:]
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
                i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("^" + "".join(out) + "$")


def parse_ignore(text: str) -> list[IgnoreRule]:
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclude = not line.startswith("!")
        if not exclude:
            line = line[1:].strip()
        line = os.path.normpath(line).lstrip("/")
        if line in ("", "."):
            continue
        rules.append(IgnoreRule(exclude, _pattern_regex(line)))
    return rules


def ignored(path: str, rules: Sequence[IgnoreRule]) -> bool:
    """Whether the context path (slash-separated, relative) is left out of the build.

    As Docker does: a rule matches a path when it matches the path or one of
    its parent directories, and the last matching rule wins.
    """
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for rule in rules:
        if any(rule.regex.match(p) for p in prefixes):
            result = rule.exclude
    return result


def ignore_file(dockerfile: Path, context: Path) -> Path | None:
    """`<Dockerfile>.dockerignore` next to the Dockerfile, else the context's `.dockerignore`."""
    for candidate in (
        dockerfile.with_name(dockerfile.name + ".dockerignore"),
        context / ".dockerignore",
    ):
        if candidate.is_file():
            return candidate
    return None


def _instructions(text: str) -> Iterator[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined."""
    joined = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not joined and (not line or line.startswith("#")):
            continue
        if joined and line.startswith("#"):
            continue
        if line.endswith("\\"):
            joined += line[:-1] + " "
            continue
        joined += line
        word, _, rest = joined.partition(" ")
        yield word.upper(), rest.strip()
        joined = ""
    if joined:
        word, _, rest = joined.partition(" ")
        yield word.upper(), rest.strip()


def copy_sources(dockerfile_text: str) -> list[str]:
    """The context paths the COPY/ADD instructions bring in (not `--from` stages)."""
    sources: list[str] = []
    for word, rest in _instructions(dockerfile_text):
        if word not in ("COPY", "ADD"):
            continue
        args = rest
        flags = []
        while args.startswith("--"):
            flag, _, args = args.partition(" ")
            flags.append(flag)
            args = args.strip()
        if any(f.startswith("--from") for f in flags):
            continue
        items = json.loads(args) if args.startswith("[") else args.split()
        sources.extend(os.path.normpath(s).lstrip("/") for s in items[:-1])
    return sources


def context_files(context: Path, sources: Sequence[str], rules: Sequence[IgnoreRule]) -> list[str]:
    """Every file under `sources` in `context` that the dockerignore lets through."""
    found: set[str] = set()
    for src in sources:
        if any(ch in src for ch in "*?["):
            candidates = [p for p in context.glob(src)]
        else:
            candidates = [context / src] if src != "." else [context]
        for top in candidates:
            if top.is_dir() and not top.is_symlink():
                for dirpath, dirnames, filenames in os.walk(top):
                    dirnames.sort()
                    for name in filenames + [d for d in dirnames if Path(dirpath, d).is_symlink()]:
                        rel = Path(dirpath, name).relative_to(context).as_posix()
                        if not ignored(rel, rules):
                            found.add(rel)
            elif top.exists() or top.is_symlink():
                rel = top.relative_to(context).as_posix()
                if not ignored(rel, rules):
                    found.add(rel)
    return sorted(found)


def input_hash(dockerfile: str, base: str, context: Path = REPO) -> str:
    """sha256 of everything a build of `dockerfile` depends on; `base` identifies the base."""
    path = context / dockerfile
    text = path.read_text()
    ignore = ignore_file(path, context)
    rules = parse_ignore(ignore.read_text()) if ignore else []
    h = hashlib.sha256()
    h.update(f"format {BUILD_FORMAT}\nbase {base}\n".encode())
    h.update(b"dockerfile\n" + text.encode() + b"\n")
    h.update(b"dockerignore\n" + (ignore.read_bytes() if ignore else b"") + b"\n")
    for rel in context_files(context, copy_sources(text), rules):
        f = context / rel
        if f.is_symlink():
            digest = "link:" + os.readlink(f)
        else:
            digest = hashlib.sha256(f.read_bytes()).hexdigest()
            digest += " x" if os.access(f, os.X_OK) else ""
        h.update(f"{rel} {digest}\n".encode())
    return h.hexdigest()


# --- the base image ---------------------------------------------------------


def base_key() -> str:
    """Hash of the base image's package list and how it is made (not the mirror)."""
    spec = {
        "format": BASE_FORMAT,
        "suite": SUITE,
        "variant": "minbase",
        "packages": sorted(BASE_PACKAGES),
        "dpkg": list(DPKG_OPTIONS),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def _deb822(text: str) -> Iterator[dict[str, str]]:
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0].isspace() and key:
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if fields:
            yield fields


def apt_mirrors(suite: str = SUITE) -> list[str]:
    """One-line `deb URI SUITE COMPONENTS` entries for `suite` from this machine's apt sources.

    Only Debian's own suites (`suite`, `suite-updates`, `suite-security`) are
    kept; third-party repositories are not for the base image.
    """
    wanted = {suite, f"{suite}-updates", f"{suite}-security"}
    entries: list[tuple[str, str, str]] = []
    etc = Path("/etc/apt")
    lists = [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*.list"))]
    for path in lists:
        if not path.is_file():
            continue
        for raw in path.read_text().splitlines():
            words = re.sub(r"\[[^]]*\]", " ", raw.split("#", 1)[0]).split()
            if len(words) >= 4 and words[0] == "deb":
                entries.append((words[1], words[2], " ".join(words[3:])))
    for path in sorted((etc / "sources.list.d").glob("*.sources")):
        for st in _deb822(path.read_text()):
            if st.get("enabled", "yes").lower() == "no" or "deb" not in st.get("types", "").split():
                continue
            for uri in st.get("uris", "").split():
                for s in st.get("suites", "").split():
                    entries.append((uri, s, st.get("components", "main")))
    out: list[str] = []
    for uri, s, components in entries:
        entry = f"deb {uri} {s} {components}"
        if s in wanted and entry not in out:
            out.append(entry)
    if not any(e.split()[2] == suite for e in out):
        raise RuntimeError(f"no apt source on this machine serves Debian {suite}")
    return out


def _run(argv: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), check=True, text=True, **kw)


def _out(argv: Sequence[str]) -> str:
    return _run(argv, stdout=subprocess.PIPE).stdout.strip()


def image_id(ref: str) -> str | None:
    """The full id of `ref` in buildah's storage, or None."""
    p = subprocess.run(
        [*buildah(), "inspect", "--type", "image", "--format", "{{.FromImageID}}", ref],
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    return p.stdout.strip() or None if p.returncode == 0 else None


def image_config(ref: str) -> dict[str, Any]:
    """The Docker-format config (User, Env, Entrypoint, ...) of an image in buildah's storage."""
    data = json.loads(_out([*buildah(), "inspect", "--type", "image", ref]))
    config: dict[str, Any] = data["Docker"]["config"]
    return config


def _import_tar(tar: Path, ref: str) -> str:
    """`buildah from scratch`, untar the rootfs, commit as `ref`; the image id."""
    ctr = _out([*buildah(), "from", "scratch"])
    try:
        mnt = _out([*buildah(), "mount", ctr])
        _run(["tar", "-xpf", str(tar), "-C", mnt, "--numeric-owner"])
        _run([*buildah(), "umount", ctr], stdout=subprocess.DEVNULL)
        _run([*buildah(), "config", "--cmd", "/bin/bash", "--env", "LANG=C.UTF-8", ctr])
        _run(
            [*buildah(), "commit", "--quiet", "--timestamp", "0", "--format", "docker", ctr, ref],
            stdout=subprocess.DEVNULL,
        )
    finally:
        subprocess.run([*buildah(), "rm", ctr], stdout=subprocess.DEVNULL, check=False)
    iid = image_id(ref)
    assert iid, ref
    return iid


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def ensure_base(index: dict[str, Any]) -> dict[str, str]:
    """The base image entry {key, ref, digest, image_id, tar}; made or imported when missing.

    `digest` (the sha256 of the rootfs tar) identifies the base in the images'
    input hashes: a re-import of the same tar gets a new image id from buildah
    but is the same base.
    """
    key = base_key()
    ref = f"{BASE_REPO}:{key}"
    tar = cache_dir() / f"base-{key}.tar"
    entry = dict(index.get("base", {}))
    if entry.get("key") != key or entry.get("tar") != str(tar) or not tar.is_file():
        entry = {}
    if not tar.is_file():
        t0 = time.monotonic()
        mirrors = apt_mirrors()
        _log(f"images: making the Debian {SUITE} base ({', '.join(BASE_PACKAGES)})")
        tar.parent.mkdir(parents=True, exist_ok=True)
        part = tar.with_name(f".{tar.name}.part")
        part.unlink(missing_ok=True)
        argv = [
            "mmdebstrap",
            "--quiet",
            "--variant=minbase",
            "--include=" + ",".join(BASE_PACKAGES),
            *(f"--dpkgopt={o}" for o in DPKG_OPTIONS),
            "--format=tar",
            SUITE,
            str(part),
            *mirrors,
        ]
        _run(argv)
        part.rename(tar)
        _log(f"images: base made in {time.monotonic() - t0:.0f} s ({tar.stat().st_size >> 20} MB)")
    if "digest" not in entry:
        entry = {"key": key, "ref": ref, "tar": str(tar), "digest": _sha256(tar)}
    iid = image_id(ref)
    if iid is None:
        t0 = time.monotonic()
        iid = _import_tar(tar, ref)
        _log(f"images: base imported as {ref} in {time.monotonic() - t0:.0f} s")
    entry["image_id"] = iid
    index["base"] = entry
    return entry


# --- the images ---------------------------------------------------------------


def _archive_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", name) + ".tar"


def build(name: str, dockerfile: str, base: dict[str, str], digest: str) -> dict[str, Any]:
    """`buildah bud` one image and export it as a docker-archive; its index entry."""
    t0 = time.monotonic()
    path = REPO / dockerfile
    ignore = ignore_file(path, REPO)
    with tempfile.TemporaryDirectory() as tmp:
        iidfile = Path(tmp) / "iid"
        argv = [
            *buildah(),
            "bud",
            "--pull=never",
            "--runtime",
            RUNC,
            "--network",
            "host",
            "--layers",
            "--format",
            "docker",
            "--build-arg",
            f"PYTHON_IMAGE={base['ref']}",
            "--iidfile",
            str(iidfile),
            "-f",
            str(path),
            "-t",
            name,
        ]
        if ignore:
            argv += ["--ignorefile", str(ignore)]
        if HOST_CA.is_file():
            argv += ["--volume", f"{HOST_CA}:/etc/ssl/certs/ca-certificates.crt:ro"]
        _log(f"images: building {name} from {dockerfile}")
        _run([*argv, str(REPO)], stdout=sys.stderr)
        iid = iidfile.read_text().strip().removeprefix("sha256:")
    built = time.monotonic() - t0
    archive = cache_dir() / _archive_name(name)
    part = archive.with_name(f".{archive.name}.part")
    part.unlink(missing_ok=True)
    _run([*buildah(), "push", "--quiet", iid, f"docker-archive:{part}:{name}"])
    part.rename(archive)
    total = time.monotonic() - t0
    _log(f"images: {name} built in {built:.0f} s, exported in {total - built:.0f} s")
    return {
        "archive": str(archive),
        # The archive's RepoTags (the fully qualified <name>): what a pod's
        # `image: <name>` resolves to once the archive is imported.
        "ref": archive_config(archive)["RepoTags"][0],
        "image_id": iid,
        "input_hash": digest,
        "base_digest": base["digest"],
        "dockerfile": dockerfile,
        "size_bytes": archive.stat().st_size,
        "build_seconds": round(built, 1),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _drop(old: str | None, keep: str) -> None:
    """Remove the image a rebuild replaced, with its untagged parent layers (best effort)."""
    if old and old != keep:
        subprocess.run(
            [*buildah(), "rmi", old],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    cache_dir().mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _index_path() -> Path:
    return cache_dir() / "index.json"


def read_index() -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(_index_path().read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data


def _write_index(index: dict[str, Any]) -> None:
    tmp = _index_path().with_suffix(".tmp")
    tmp.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    tmp.replace(_index_path())


def _require_tools() -> None:
    missing = [t for t in ("buildah", "mmdebstrap", RUNC) if not shutil.which(t)]
    if missing:
        raise RuntimeError(
            f"missing {', '.join(missing)}: run hack/install-debian-packages.sh (as root)"
        )


def _current(entry: dict[str, Any], digest: str) -> bool:
    """Whether an index entry is the build of these inputs, in the archive and in storage."""
    return (
        entry.get("input_hash") == digest
        and Path(entry.get("archive", "/nonexistent")).is_file()
        and bool(iid := entry.get("image_id"))
        and image_id(str(iid)) == iid
    )


def ensure(names: Sequence[str] | None = None, rebuild: bool = False) -> dict[str, Path]:
    """The docker-archive of each image (all of `IMAGES` by default), built if stale."""
    wanted = list(names or IMAGES)
    with _locked():
        index = read_index()
        images = index.setdefault("images", {})
        base = index.get("base", {})
        # Warm path: the base is known and every image's inputs are unchanged,
        # its archive is there and buildah's storage still holds it.
        fresh = (
            not rebuild
            and base.get("key") == base_key()
            and "digest" in base
            and all(
                _current(images.get(n, {}), input_hash(IMAGES[n], base["digest"])) for n in wanted
            )
        )
        if not fresh:
            _require_tools()
            base = ensure_base(index)
            _write_index(index)
            for n in wanted:
                digest = input_hash(IMAGES[n], base["digest"])
                entry = images.get(n, {})
                if rebuild or not _current(entry, digest):
                    images[n] = build(n, IMAGES[n], base, digest)
                    _write_index(index)
                    _drop(entry.get("image_id"), keep=images[n]["image_id"])
        return {n: Path(images[n]["archive"]) for n in wanted}


def archive_config(archive: Path) -> dict[str, Any]:
    """The image config (`config` of the Docker image JSON) stored in a docker-archive."""
    import tarfile

    with tarfile.open(archive) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))  # type: ignore[arg-type]
        config = json.load(tf.extractfile(manifest[0]["Config"]))  # type: ignore[arg-type]
    out: dict[str, Any] = config.get("config") or {}
    out["RepoTags"] = manifest[0].get("RepoTags")
    return out


# --- running an image like a restricted pod -------------------------------------


def run_restricted(
    image: str,
    argv: Sequence[str],
    user: str = USER,
    timeout: float = 300,
    readonly: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run `argv` in `image` with runc as `user`, read-only root, tmpfs /tmp, no capabilities.

    What a pod with `readOnlyRootFilesystem`, `runAsUser`/`runAsGroup`, drop
    ALL and an emptyDir on /tmp gets; no network.
    """
    cfg = image_config(image)
    uid, _, gid = user.partition(":")
    ctr = _out([*buildah(), "from", "--pull=never", image])
    bundle = Path(tempfile.mkdtemp(prefix="freshet-run-"))
    cid = ""
    try:
        root = _out([*buildah(), "mount", ctr])
        _run([RUNC, "spec", "--bundle", str(bundle)])
        spec = json.loads((bundle / "config.json").read_text())
        spec["root"] = {"path": root, "readonly": readonly}
        proc = spec["process"]
        proc["terminal"] = False
        proc["args"] = list(argv)
        proc["env"] = cfg.get("Env") or []
        proc["cwd"] = cfg.get("WorkingDir") or "/"
        proc["user"] = {"uid": int(uid), "gid": int(gid or uid)}
        proc["noNewPrivileges"] = True
        proc["capabilities"] = {k: [] for k in proc.get("capabilities", {})}
        spec["hostname"] = "freshet-check"
        spec["mounts"].append(
            {
                "destination": "/tmp",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "nodev", "mode=1777", "size=256m"],
            }
        )
        (bundle / "config.json").write_text(json.dumps(spec))
        cid = f"freshet-check-{os.getpid()}-{time.monotonic_ns()}"
        return subprocess.run(
            [RUNC, "run", "--bundle", str(bundle), cid],
            text=True,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    finally:
        if cid:  # gone already unless the run timed out
            subprocess.run([RUNC, "delete", "--force", cid], capture_output=True, check=False)
        subprocess.run([*buildah(), "umount", ctr], stdout=subprocess.DEVNULL, check=False)
        subprocess.run([*buildah(), "rm", ctr], stdout=subprocess.DEVNULL, check=False)
        shutil.rmtree(bundle, ignore_errors=True)


# Run inside an image: every path outside /tmp (and the kernel's /proc, /sys,
# /dev) that the current user could write, by access(2) and by trying.
WRITABLE_PROBE = r"""
import os, sys
bad = []
def probe(d):
    try:
        fd = os.open(os.path.join(d, ".freshet-probe"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError:
        return False
    os.close(fd); os.unlink(os.path.join(d, ".freshet-probe"))
    return True
skip = {"/proc", "/sys", "/dev", "/tmp"}
for top in ["/"] + ["/" + n for n in sorted(os.listdir("/")) if "/" + n not in skip]:
    walk = [(top, [], [])] if top == "/" else os.walk(top)
    for dirpath, dirnames, filenames in walk:
        if os.path.islink(dirpath):
            continue
        if probe(dirpath):
            bad.append(dirpath + "/")
        for f in filenames:
            p = os.path.join(dirpath, f)
            if not os.path.islink(p) and os.access(p, os.W_OK):
                bad.append(p)
ok_tmp = probe("/tmp")
print("writable outside /tmp:", len(bad), *bad[:50], sep="\n")
print("tmp-writable:", ok_tmp)
sys.exit(1 if bad or not ok_tmp else 0)
"""


# Per image: what must import, and an entrypoint run that must print `expect`.
SMOKE = {
    "freshet-operator:dev": {
        "import": "import freshet_contract, freshet, freshet.handlers",
        "args": ["--help"],
        "expect": "Usage:",
        "rc": 0,
    },
    "freshet-trainer:dev": {
        "import": "import freshet_contract, freshet_trainer.train, freshet_trainer.serve, "
        "freshet_trainer.reproduce, sklearn, pandas, pyarrow",
        # No run contract in the environment: it starts, imports, and refuses.
        "args": [],
        "expect": "missing environment: FRESHET_S3_ENDPOINT",
        "rc": 1,
    },
}


def check(name: str) -> list[str]:
    """Smoke checks of a built image, as a restricted pod runs it; the problems found."""
    problems = []
    cfg = image_config(name)
    if cfg.get("User") != USER:
        problems.append(f"{name}: user is {cfg.get('User')!r}, want {USER!r}")
    smoke: dict[str, Any] = SMOKE[name]
    entry = [*(cfg.get("Entrypoint") or []), *smoke["args"]]
    uid, _, gid = USER.partition(":")
    runs: dict[str, tuple[list[str], int, str]] = {
        "id": (["id"], 0, f"uid={uid} gid={gid} groups={gid}"),
        "import": (["python", "-c", smoke["import"]], 0, ""),
        "pip check": (["python", "-m", "pip", "check"], 0, "No broken requirements"),
        "read-only root": (["python", "-c", WRITABLE_PROBE], 0, "tmp-writable: True"),
        "entrypoint": (entry, smoke["rc"], smoke["expect"]),
    }
    for what, (argv, rc, expect) in runs.items():
        p = run_restricted(name, argv)
        out = p.stdout + p.stderr
        ok = p.returncode == rc and expect in out
        _log(f"images: {name}: {what}: {'ok' if ok else 'FAILED'} (rc={p.returncode})")
        if not ok:
            problems.append(f"{name}: {what}: rc={p.returncode}, want {rc} and {expect!r}:\n{out}")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m devstack.images", description=(__doc__ or "").split("\n")[0]
    )
    ap.add_argument("names", nargs="*", help=f"images (default: {', '.join(IMAGES)})")
    ap.add_argument("--rebuild", action="store_true", help="rebuild even when inputs are unchanged")
    ap.add_argument("--check", action="store_true", help="run the restricted smoke checks after")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    before = read_index().get("images", {})
    archives = ensure(args.names or None, rebuild=args.rebuild)
    after = read_index().get("images", {})
    rebuilt = [n for n in archives if before.get(n) != after.get(n)]
    summary = ", ".join(f"{n} {p}" for n, p in archives.items())
    state = f"built {', '.join(rebuilt)}" if rebuilt else "cached (inputs unchanged)"
    print(f"images {state} in {time.monotonic() - t0:.1f} s: {summary}")
    if args.check:
        problems = [p for n in archives for p in check(n)]
        for p in problems:
            print(p, file=sys.stderr)
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
