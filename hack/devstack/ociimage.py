"""Tiny OCI images without a registry or a builder: one layer of static files,
written as an OCI image archive that `ctr images import` takes.

Used for the real node's sandbox (`pause`) image and the test image (`hello`):
each is one static Go binary, so a layer tar assembled here is all an image
needs. The archive is deterministic (fixed mtimes), so the same binary gives
the same image digest.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path

_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def _blob(tar: tarfile.TarFile, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo(f"blobs/sha256/{digest}")
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
    return digest


def write_archive(
    path: Path,
    ref: str,
    files: Mapping[str, Path],
    entrypoint: Sequence[str],
    user: str = "",
) -> Path:
    """Write an OCI archive of image `ref` (a full name such as `freshet.local/pause:1`)
    holding `files` (path in the image → file on the host, kept executable)."""
    layer_buf = io.BytesIO()
    with tarfile.open(fileobj=layer_buf, mode="w", format=tarfile.PAX_FORMAT) as layer:
        dirs: set[str] = set()
        for inner in sorted(files):
            parts = inner.strip("/").split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    di = tarfile.TarInfo(d)
                    di.type, di.mode = tarfile.DIRTYPE, 0o755
                    layer.addfile(di)
            data = files[inner].read_bytes()
            fi = tarfile.TarInfo("/".join(parts))
            fi.size, fi.mode = len(data), 0o755
            layer.addfile(fi, io.BytesIO(data))
        # Mount points a runtime expects; empty directories cost nothing.
        for d in ("dev", "proc", "sys", "etc", "tmp"):
            if d not in dirs:
                di = tarfile.TarInfo(d)
                di.type, di.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
                layer.addfile(di)
    layer_bytes = layer_buf.getvalue()
    diff_id = hashlib.sha256(layer_bytes).hexdigest()
    config = {
        "architecture": _ARCH,
        "os": "linux",
        "config": {
            "Entrypoint": list(entrypoint),
            "Env": ["PATH=/"],
            "User": user,
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
        "history": [{"created_by": "devstack.ociimage"}],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as out:
        layer_digest = _blob(out, layer_bytes)
        config_bytes = json.dumps(config, sort_keys=True).encode()
        config_digest = _blob(out, config_bytes)
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": f"sha256:{config_digest}",
                "size": len(config_bytes),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": f"sha256:{layer_digest}",
                    "size": len(layer_bytes),
                }
            ],
        }
        manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
        manifest_digest = _blob(out, manifest_bytes)
        index = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": f"sha256:{manifest_digest}",
                    "size": len(manifest_bytes),
                    "platform": {"architecture": _ARCH, "os": "linux"},
                    "annotations": {
                        "io.containerd.image.name": ref,
                        "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[1],
                    },
                }
            ],
        }
        for name, data in (
            ("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode()),
            ("index.json", json.dumps(index, sort_keys=True).encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    tmp.replace(path)
    return path
