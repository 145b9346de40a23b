"""A real S3 server (SeaweedFS via the dev stack's launcher), shared by the session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from devstack import s3store
from freshet_trainer.store import ObjectStore, StoreConfig
from minio import Minio


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[s3store.S3Info]:
    state: Path = tmp_path_factory.mktemp("s3")
    info = s3store.start(state)
    try:
        yield info
    finally:
        s3store.stop(state)


@pytest.fixture
def s3_env(s3: s3store.S3Info, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A fresh bucket, and the pod environment pointing at it (also set in os.environ);
    the bucket is removed afterwards."""
    client = Minio(s3.endpoint, s3.access_key, s3.secret_key, secure=False, region=s3.region)
    with s3store.temporary_bucket(client) as bucket:
        yield _pod_env(s3, bucket, monkeypatch)


def _pod_env(s3: s3store.S3Info, bucket: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {
        "FRESHET_S3_ENDPOINT": s3.endpoint,
        "FRESHET_S3_SECURE": "false",
        "FRESHET_S3_BUCKET": bucket,
        "FRESHET_S3_REGION": s3.region,
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def store(s3_env: dict[str, str]) -> ObjectStore:
    return ObjectStore(StoreConfig.from_env(s3_env))
