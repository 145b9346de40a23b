"""Object-store access for the trainer and the model server.

The store is configured only from the environment the operator sets on the pod
(credentials come from a Secret through `secretKeyRef`, never from the spec).
Reads can be pinned to an ETag: the operator chose each batch by key *and*
ETag, so an object overwritten since then must be refused, not silently used.
The ETag is compared on the very response whose body is returned, so there is
no window between a check and the read.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import urlsplit

from freshet_contract import env as variables
from minio import Minio
from minio.commonconfig import CopySource
from minio.error import S3Error
from urllib3 import BaseHTTPResponse

_MISSING_CODES = frozenset({"NoSuchKey", "NoSuchObject", "NoSuchBucket"})


class StoreConfigError(ValueError):
    """The environment does not describe a usable object store."""


class ObjectNotFound(LookupError):
    """The object (or its bucket) does not exist."""

    def __init__(self, key: str) -> None:
        super().__init__(f"object {key!r} not found")
        self.key = key


class ETagMismatch(RuntimeError):
    """The object changed since its ETag was recorded."""

    def __init__(self, key: str, expected: str, actual: str) -> None:
        super().__init__(f"object {key!r} has ETag {actual!r}, expected {expected!r}")
        self.key = key
        self.expected = expected
        self.actual = actual


class ObjectTooLarge(ValueError):
    """The object is larger than the caller agreed to read."""

    def __init__(self, key: str, size: int, limit: int) -> None:
        super().__init__(f"object {key!r} has more than {limit} bytes")
        self.key = key
        self.size = size
        self.limit = limit


_DOWNLOAD_CHUNK = 1024 * 1024


def normalize_etag(etag: str) -> str:
    """ETags arrive quoted from HTTP headers and unquoted from listings; compare bare."""
    return etag.strip().removeprefix("W/").strip('"')


def _parse_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"true", "1", "yes"}:
        return True
    if lowered in {"false", "0", "no"}:
        return False
    raise StoreConfigError(f"{name} must be true or false, got {value!r}")


@dataclass(frozen=True)
class StoreConfig:
    """Where the bucket is and how to authenticate; built from the pod environment."""

    endpoint: str
    secure: bool
    bucket: str
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    region: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StoreConfig:
        """Read FRESHET_S3_* and AWS_* variables.

        The endpoint may be `host:port` or a URL; a URL's scheme decides TLS,
        otherwise FRESHET_S3_SECURE does (default true: plain HTTP is opt-in).
        """
        missing = [
            name
            for name in (
                variables.S3_ENDPOINT,
                variables.S3_BUCKET,
                variables.ACCESS_KEY_ID,
                variables.SECRET_ACCESS_KEY,
            )
            if not env.get(name)
        ]
        if missing:
            raise StoreConfigError(f"missing environment: {', '.join(missing)}")
        endpoint = env[variables.S3_ENDPOINT].strip()
        secure = _parse_bool(variables.S3_SECURE, env.get(variables.S3_SECURE) or "true")
        if "://" in endpoint:
            url = urlsplit(endpoint)
            if url.scheme not in {"http", "https"} or not url.netloc:
                raise StoreConfigError(f"FRESHET_S3_ENDPOINT is not an S3 URL: {endpoint!r}")
            if url.path.strip("/"):
                raise StoreConfigError("FRESHET_S3_ENDPOINT must not have a path")
            endpoint, secure = url.netloc, url.scheme == "https"
        return cls(
            endpoint=endpoint,
            secure=secure,
            bucket=env[variables.S3_BUCKET],
            access_key=env[variables.ACCESS_KEY_ID],
            secret_key=env[variables.SECRET_ACCESS_KEY],
            region=env.get(variables.S3_REGION) or None,
        )


class ObjectStore:
    """Bytes and JSON in one bucket, with ETag-pinned reads."""

    def __init__(self, config: StoreConfig, client: Minio | None = None) -> None:
        self.bucket = config.bucket
        self._client = client or Minio(
            config.endpoint,
            access_key=config.access_key,
            secret_key=config.secret_key,
            secure=config.secure,
            region=config.region,
        )

    def get_bytes(self, key: str, expected_etag: str | None = None) -> bytes:
        """The object's content; refused with ETagMismatch if it is not the pinned version."""
        with self._open(key, expected_etag) as response:
            return response.read()

    def download(self, key: str, target: IO[bytes], expected_etag: str, max_bytes: int) -> int:
        """Stream the pinned object into `target` in 1 MiB chunks; return its size.

        Memory stays at one chunk whatever the object's size, and the copy stops
        with ObjectTooLarge as soon as it passes `max_bytes`, so a batch bigger
        than the policy allows costs at most that much disk, not a crashed pod.
        """
        written = 0
        with self._open(key, expected_etag) as response:
            declared = int(response.headers.get("Content-Length") or 0)
            if declared > max_bytes:
                raise ObjectTooLarge(key, declared, max_bytes)
            for chunk in response.stream(_DOWNLOAD_CHUNK):
                written += len(chunk)
                if written > max_bytes:
                    raise ObjectTooLarge(key, written, max_bytes)
                target.write(chunk)
        return written

    @contextmanager
    def _open(self, key: str, expected_etag: str | None) -> Iterator[BaseHTTPResponse]:
        # The ETag is compared on the very response whose body is then read.
        try:
            response = self._client.get_object(self.bucket, key)
        except S3Error as error:
            if error.code in _MISSING_CODES:
                raise ObjectNotFound(key) from error
            raise
        try:
            if expected_etag is not None:
                actual = normalize_etag(response.headers.get("ETag", ""))
                if actual != normalize_etag(expected_etag):
                    raise ETagMismatch(key, normalize_etag(expected_etag), actual)
            yield response
        finally:
            response.close()
            response.release_conn()

    def put_bytes(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> str:
        """Write the object whole; return its ETag."""
        result = self._client.put_object(
            self.bucket, key, io.BytesIO(data), len(data), content_type=content_type
        )
        return normalize_etag(result.etag or "")

    def exists(self, key: str) -> bool:
        try:
            self._client.stat_object(self.bucket, key)
        except S3Error as error:
            if error.code in _MISSING_CODES:
                return False
            raise
        return True

    def list_keys(self, prefix: str) -> Iterator[str]:
        for item in self._client.list_objects(self.bucket, prefix=prefix, recursive=True):
            if item.object_name is not None and not item.is_dir:
                yield item.object_name

    def copy(self, source: str, target: str) -> None:
        """Server-side copy within the bucket (no bytes pass through this process)."""
        self._client.copy_object(self.bucket, target, CopySource(self.bucket, source))

    def remove(self, key: str) -> None:
        """Delete the object; deleting one that does not exist is not an error (as in S3)."""
        self._client.remove_object(self.bucket, key)

    def put_json(self, key: str, document: Any) -> str:
        """Write a JSON document (sorted keys, so equal content gives equal bytes)."""
        data = json.dumps(document, indent=2, sort_keys=True).encode()
        return self.put_bytes(key, data, content_type="application/json")
