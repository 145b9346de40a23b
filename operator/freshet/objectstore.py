"""The object-store adapter: where a policy's data arrives and its state is kept.

A policy names a Secret (`spec.data.storeRef`) holding the endpoint, bucket and
credentials; nothing else in the operator knows how to reach S3. The `minio`
client is synchronous, so callers on the event loop go through
`asyncio.to_thread`.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from minio import Minio
from minio.commonconfig import CopySource
from minio.error import S3Error

REQUIRED_KEYS = ("endpoint", "bucket", "accessKeyID", "secretAccessKey")


class StoreConfigError(ValueError):
    """The store Secret is missing or incomplete: the user must fix it."""


@dataclass(frozen=True)
class StoreConfig:
    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    secure: bool
    region: str | None

    @classmethod
    def from_secret_data(cls, name: str, data: Mapping[str, str]) -> StoreConfig:
        """Parse a Secret's base64 `data`; say exactly which key is missing."""
        decoded = {k: base64.b64decode(v).decode() for k, v in (data or {}).items()}
        missing = [k for k in REQUIRED_KEYS if not decoded.get(k)]
        if missing:
            raise StoreConfigError(
                f"Secret {name!r} lacks key(s) {', '.join(missing)}; "
                f"a store Secret needs {', '.join(REQUIRED_KEYS)} (and optionally secure, region)"
            )
        endpoint = decoded["endpoint"]
        secure = decoded.get("secure", "").lower() == "true"
        for scheme, is_secure in (("https://", True), ("http://", False)):
            if endpoint.startswith(scheme):
                endpoint, secure = endpoint[len(scheme) :], is_secure
        return cls(
            endpoint=endpoint.rstrip("/"),
            bucket=decoded["bucket"],
            access_key=decoded["accessKeyID"],
            secret_key=decoded["secretAccessKey"],
            secure=secure,
            region=decoded.get("region") or None,
        )

    @property
    def identity(self) -> tuple[str, str, str]:
        """What makes two policies share one watcher: same server, bucket and principal."""
        return (self.endpoint, self.bucket, self.access_key)


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    etag: str
    size: int
    last_modified: datetime


class ObjectStore:
    """The few S3 operations freshet needs, on one bucket."""

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self.bucket = config.bucket
        self._client = Minio(
            config.endpoint,
            access_key=config.access_key,
            secret_key=config.secret_key,
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
                last_modified=obj.last_modified,  # type: ignore[arg-type]
            )

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

    def exists(self, key: str) -> bool:
        try:
            self._client.stat_object(self.bucket, key)
        except S3Error as e:
            if e.code in ("NoSuchKey", "NoSuchObject"):
                return False
            raise
        return True
