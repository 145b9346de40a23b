"""The S3 store is a real S3 server reachable with the `minio` client."""

from __future__ import annotations

import io
from typing import Any

import pytest
from devstack import stack as devstack
from minio import Minio
from minio.error import S3Error

pytestmark = pytest.mark.integration


def test_put_get_list_delete(s3: Any, bucket: str) -> None:
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


def test_wrong_secret_is_refused(stack: devstack.Stack, bucket: str) -> None:
    intruder = Minio(
        stack.s3.endpoint, access_key=stack.s3.access_key, secret_key="wrong", secure=False
    )
    with pytest.raises(S3Error) as info:
        list(intruder.list_objects(bucket))
    assert info.value.code in {"SignatureDoesNotMatch", "AccessDenied", "InvalidAccessKeyId"}
