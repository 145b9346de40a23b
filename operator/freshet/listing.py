"""Listing a bucket cheaply enough to do it every second for a thousand policies.

The shared watcher lists the union of every policy's prefix at the fastest
poll interval any of them asked for: at a thousand policies of twenty objects
that is twenty ListObjectsV2 pages a second. Through the `minio` client each
entry becomes a generic object with a parsed date (1.3 s of CPU for 20,000
keys, longer than the interval itself). Here a page is fetched as bytes over one
kept-alive connection, signed with the `minio` package's own SigV4 signer, and
parsed only if its bytes differ from the same page of the previous listing:
a bucket where nothing changed costs the HTTP round trips and a digest per
page, nothing per object.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import ssl
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from html import unescape
from typing import NamedTuple

import certifi
from minio import Minio
from minio.credentials.credentials import Credentials
from minio.error import S3Error
from minio.helpers import DictType
from minio.signer import sign_v4_s3

from freshet.store_config import StoreConfig

PAGE_SIZE = 10_000
"""Objects asked for per page. AWS S3 and MinIO send at most 1,000 whatever is
asked; SeaweedFS sends this many, and fewer round trips is most of the saving."""
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_COLUMNS = tuple(
    re.compile(f"<{name}>([^<]*)</{name}>") for name in ("Key", "ETag", "Size", "LastModified")
)
_ERROR = re.compile(rb"<Code>([^<]*)</Code>(?:.*?<Message>([^<]*)</Message>)?", re.DOTALL)


def _element(body: bytes, tag: bytes) -> str | None:
    """The text of the first <tag> in `body` (a plain search: the page-level
    elements are the few that need reading, and the body may be a megabyte)."""
    start = body.find(b"<" + tag + b">")
    if start < 0:
        return None
    start += len(tag) + 2
    return unescape(body[start : body.find(b"<", start)].decode())


class ListingError(OSError):
    """The store refused or failed a listing (an S3 error document, or no answer)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code


class ObjectInfo(NamedTuple):
    """One object of a listing, as the store sent it (a tuple: 20,000 are built per
    full parse). The date is parsed only when asked for."""

    key: str
    etag: str
    size: int
    modified: str
    """LastModified, ISO 8601 as the store wrote it."""

    @property
    def last_modified(self) -> datetime:
        return datetime.fromisoformat(self.modified)


@dataclass(frozen=True, slots=True)
class Page:
    digest: bytes
    """What the page's bytes hash to: an equal digest means an unchanged page."""
    body: bytes
    truncated: bool
    token: str | None


def parse(body: bytes) -> list[ObjectInfo]:
    """The objects of a ListObjectsV2 page (encoding-type=url), in the store's key order.

    Servers order the fields inside <Contents> differently (SeaweedFS puts
    LastModified last), so each field is collected on its own, in one pass of
    the regular expression engine each, and the columns zipped; a page where
    some object lacks a field is read object by object instead.
    """
    text = body.decode()
    count = text.count("<Contents>")
    columns = [pattern.findall(text) for pattern in _COLUMNS]
    entries: list[ObjectInfo] = []
    if all(len(column) == count for column in columns):
        # Objects written in the same second share one date string.
        dates: dict[str, str] = {}
        for key, etag, size, modified in zip(*columns, strict=True):
            _add(entries, key, etag, size, dates.setdefault(modified, modified))
        return entries
    for block in text.split("<Contents>")[1:]:
        key, etag, size, modified = (
            found.group(1) if (found := pattern.search(block)) else "" for pattern in _COLUMNS
        )
        _add(entries, key, etag, size, modified)
    return entries


def _add(entries: list[ObjectInfo], key: str, etag: str, size: str, modified: str) -> None:
    if not key:
        return
    if "%" in key or "+" in key or "&" in key:
        key = urllib.parse.unquote_plus(unescape(key))
    if key.endswith("/") and size in ("", "0"):
        return  # a folder marker, not data
    # An ETag is a quoted hex digest; servers escape the quotes as &quot; or &#34;.
    etag = etag.replace("&#34;", "").replace("&quot;", "").strip('"')
    entries.append(ObjectInfo(key, etag, int(size or 0), modified))


class Lister:
    """ListObjectsV2 pages of one bucket as bytes, over one kept-alive connection.

    Not thread-safe: each watcher owns one and lists from one thread at a time.
    The URL (path or virtual-host style, the region) is the `minio` client's, so
    this reaches exactly what the rest of the operator reaches.
    """

    def __init__(self, config: StoreConfig, client: Minio) -> None:
        self._config = config
        self._client = client
        self._credentials = Credentials(config.access_key_id, config.secret_access_key)
        self._connections: dict[tuple[str, str], http.client.HTTPConnection] = {}
        self._lock = threading.Lock()

    def pages(self, prefix: str) -> Iterator[Page]:
        token: str | None = None
        while True:
            query: DictType = {
                "list-type": "2",
                "prefix": prefix,
                "max-keys": str(PAGE_SIZE),
                "encoding-type": "url",
            }
            if token is not None:
                query["continuation-token"] = token
            body = self._get(query)
            truncated = body.find(b"<IsTruncated>true</IsTruncated>") >= 0
            token = _element(body, b"NextContinuationToken")
            yield Page(hashlib.sha256(body).digest(), body, truncated, token)
            if not truncated or token is None:
                return

    def _get(self, query: DictType) -> bytes:
        with self._lock:
            try:
                region = self._config.region or self._client._get_region(self._config.bucket)
            except S3Error as e:  # the bucket's region, asked of the store once
                raise ListingError(e.code or "S3Error", e.message or "") from e
            url = self._client._base_url.build(
                method="GET", region=region, bucket_name=self._config.bucket, query_params=query
            )
            now = datetime.now(UTC)
            headers = sign_v4_s3(
                method="GET",
                url=url,
                region=region,
                headers={
                    "Host": url.netloc,
                    "x-amz-content-sha256": _EMPTY_SHA256,
                    "x-amz-date": now.strftime("%Y%m%dT%H%M%SZ"),
                },
                credentials=self._credentials,
                content_sha256=_EMPTY_SHA256,
                date=now,
            )
            target = url.path + ("?" + url.query if url.query else "")
            for attempt in (1, 2):
                conn = self._connection(url.scheme, url.netloc)
                try:
                    conn.request("GET", target, headers={k: str(v) for k, v in headers.items()})
                    response = conn.getresponse()
                    body = response.read()
                    break
                except (http.client.HTTPException, OSError):
                    # A kept-alive connection the server closed: one fresh try.
                    self._connections.pop((url.scheme, url.netloc), None)
                    conn.close()
                    if attempt == 2:
                        raise
            if response.status != 200:
                found = _ERROR.search(body)
                code = found.group(1).decode() if found else f"HTTP {response.status}"
                message = unescape(found.group(2).decode()) if found and found.group(2) else ""
                raise ListingError(code, message)
            return body

    def _connection(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        conn = self._connections.get((scheme, netloc))
        if conn is None:
            if scheme == "https":
                # The same trust store the minio client uses.
                context = ssl.create_default_context(
                    cafile=os.environ.get("SSL_CERT_FILE") or certifi.where()
                )
                conn = http.client.HTTPSConnection(netloc, timeout=30, context=context)
            else:
                conn = http.client.HTTPConnection(netloc, timeout=30)
            self._connections[(scheme, netloc)] = conn
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._connections.values():
                conn.close()
            self._connections.clear()
