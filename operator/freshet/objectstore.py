"""The object-store adapter: where a policy's data arrives and its state is kept.

A policy names a Secret (`spec.data.storeRef`, parsed by `store_config`) holding
the endpoint, bucket and credentials; nothing else in the operator talks to S3 (the
shared watcher lists through `listing`, with this client's URL and signer). The `minio`
client is synchronous, so callers on the event loop go through
`asyncio.to_thread`.
"""

from __future__ import annotations

import io
import json
import weakref
from collections.abc import Iterator
from typing import Any

from minio import Minio
from minio.commonconfig import CopySource
from minio.error import S3Error
from minio.helpers import DictType
from urllib3 import BaseHTTPResponse

from freshet.listing import Lister, ObjectInfo
from freshet.store_config import StoreConfig

STREAM_CHUNK_BYTES = 64 * 1024


class ObjectStore:
    """The few S3 operations freshet needs, on one bucket."""

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self.bucket = config.bucket
        self._client = Minio(
            config.endpoint,
            access_key=config.access_key_id,
            secret_key=config.secret_access_key,
            secure=config.secure,
            region=config.region,
        )

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[ObjectInfo]:
        for obj in self._client.list_objects(
            self.bucket, prefix=prefix, recursive=True, start_after=start_after
        ):
            if obj.is_dir or obj.object_name is None:
                continue
            yield ObjectInfo(
                key=obj.object_name,
                etag=(obj.etag or "").strip('"'),
                size=int(obj.size or 0),
                modified=obj.last_modified.isoformat() if obj.last_modified else "",
            )

    def lister(self) -> Lister:
        """A lean lister of this bucket (freshet.listing), for the shared watcher."""
        return Lister(self.config, self._client)

    def listen(self) -> Iterator[str]:
        """Keys created or removed in the bucket, as the server announces them.

        MinIO's ListenBucketNotification extension: a long-lived HTTP stream of
        one JSON event per line. Servers without it (SeaweedFS) raise S3Error
        NotImplemented on the request; AWS S3 has none either, and gets a
        ValueError without one. Either way the caller falls back to polling.

        Read here rather than with the client's own iterator, which reads each
        line byte by byte: about 5 ms of CPU per event, and the operator's own
        state writes are events too.
        """
        if self._client._base_url.is_aws_host:
            raise ValueError("ListenBucketNotification is not available on AWS S3")
        query: DictType = {
            "prefix": "",
            "suffix": "",
            "events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"],
        }
        response = self._client._execute(
            "GET", self.bucket, query_params=query, preload_content=False
        )
        try:
            for line in stream_lines(response):
                if not line.strip():
                    continue  # the server's keep-alive
                for record in json.loads(line).get("Records") or []:
                    # The key as stored: MinIO's listen API sends it unescaped,
                    # so decoding would turn a "+" into a space
                    # (tests/integration/test_listing_stores.py).
                    yield record["s3"]["object"]["key"]
        finally:
            response.close()
            response.release_conn()

    def get_json(self, key: str) -> Any | None:
        """The JSON document at `key`, or None when there is none."""
        try:
            resp = self._client.get_object(self.bucket, key)
        except S3Error as e:
            if e.code in ("NoSuchKey", "NoSuchObject"):
                return None
            raise
        try:
            return json.loads(resp.read())
        finally:
            resp.close()
            resp.release_conn()

    def put_json(self, key: str, doc: Any) -> None:
        data = json.dumps(doc, indent=1, sort_keys=True).encode()
        self._client.put_object(
            self.bucket, key, io.BytesIO(data), len(data), content_type="application/json"
        )

    def move(self, key: str, to: str) -> None:
        """Copy then delete: a crash between the two leaves a copy, never a loss."""
        self._client.copy_object(self.bucket, to, CopySource(self.bucket, key))
        self._client.remove_object(self.bucket, key)

    def remove(self, key: str) -> None:
        """Delete `key`; deleting what is not there is not an error (S3's own rule)."""
        self._client.remove_object(self.bucket, key)

    def etag(self, key: str) -> str | None:
        """The object's current ETag, or None when there is no such object."""
        try:
            stat = self._client.stat_object(self.bucket, key)
        except S3Error as e:
            if e.code in ("NoSuchKey", "NoSuchObject"):
                return None
            raise
        return (stat.etag or "").strip('"')


class Stores:
    """One `ObjectStore` (one client, one connection pool) per store configuration,
    shared by every policy and watcher that names it, and dropped once none does:
    a thousand policies on one bucket hold one client, not a thousand."""

    def __init__(self) -> None:
        self._by_config: weakref.WeakValueDictionary[StoreConfig, ObjectStore] = (
            weakref.WeakValueDictionary()
        )

    def get(self, config: StoreConfig) -> ObjectStore:
        store = self._by_config.get(config)
        if store is None:
            store = self._by_config[config] = ObjectStore(config)
        return store


def stream_lines(response: BaseHTTPResponse) -> Iterator[bytes]:
    """The lines of a streamed body as they arrive: `read1` returns whatever the
    server has sent so far, so a line is never held back waiting for a full buffer."""
    pending = b""
    while chunk := response.read1(STREAM_CHUNK_BYTES):
        *lines, pending = (pending + chunk).split(b"\n")
        yield from lines
    if pending:
        yield pending
