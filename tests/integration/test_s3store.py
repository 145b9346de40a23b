"""Both S3 stores are real S3 servers reachable with the `minio` client: the stack's
SeaweedFS and the MinIO flavour (which adds bucket notifications, see
test_minio_store.py)."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from devstack import s3store
from devstack import stack as devstack
from minio import Minio
from minio.error import S3Error

pytestmark = pytest.mark.integration


@pytest.fixture(params=["seaweedfs", "minio"])
def store(request: pytest.FixtureRequest, stack: devstack.Stack) -> s3store.S3Info:
    if request.param == "seaweedfs":
        return stack.s3
    info: s3store.S3Info = request.getfixturevalue("minio_store")
    return info


@pytest.fixture
def store_bucket(store: s3store.S3Info) -> Iterator[tuple[Minio, str]]:
    client = s3store.client(store)
    with s3store.temporary_bucket(client) as name:
        yield client, name


def test_put_get_list_delete(store_bucket: tuple[Minio, str]) -> None:
    s3, bucket = store_bucket
    payloads = {f"in/batch-{i}.csv": f"x,y\n{i},{i * 2}\n".encode() for i in range(3)}
    for key, data in payloads.items():
        s3.put_object(bucket, key, io.BytesIO(data), len(data))
    s3.put_object(bucket, "elsewhere/other.csv", io.BytesIO(b"z"), 1)

    listed = {o.object_name for o in s3.list_objects(bucket, prefix="in/", recursive=True)}
    assert listed == set(payloads)
    for key, data in payloads.items():
        assert s3.get_object(bucket, key).read() == data

    s3.remove_object(bucket, "in/batch-1.csv")
    listed = {o.object_name for o in s3.list_objects(bucket, prefix="in/", recursive=True)}
    assert listed == {"in/batch-0.csv", "in/batch-2.csv"}
    with pytest.raises(S3Error) as info:
        s3.stat_object(bucket, "in/batch-1.csv")
    assert info.value.code == "NoSuchKey"


def test_wrong_secret_is_refused(store: s3store.S3Info, store_bucket: tuple[Minio, str]) -> None:
    _, bucket = store_bucket
    intruder = Minio(store.endpoint, access_key=store.access_key, secret_key="wrong", secure=False)
    with pytest.raises(S3Error) as info:
        list(intruder.list_objects(bucket))
    assert info.value.code in {"SignatureDoesNotMatch", "AccessDenied", "InvalidAccessKeyId"}
