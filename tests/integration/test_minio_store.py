"""The MinIO flavour of the S3 store: how it is run, and the ListenBucketNotification
API that SeaweedFS lacks. Runs its own MinIO, not the session stack's store (plain S3
operations are tested on both stores in test_s3store.py)."""

from __future__ import annotations

import io
import json
import os
import queue
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from devstack import procs, s3store
from minio import Minio

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, s3store.S3Info]]:
    state = tmp_path_factory.mktemp("minio")
    info = s3store.start(state, flavour="minio")
    try:
        yield state, info
    finally:
        s3store.stop(state)


@pytest.fixture
def client(store: tuple[Path, s3store.S3Info]) -> Minio:
    return s3store.client(store[1])


@pytest.fixture
def bucket(client: Minio) -> Iterator[str]:
    with s3store.temporary_bucket(client) as name:
        yield name


def test_records_flavour(store: tuple[Path, s3store.S3Info]) -> None:
    state, info = store
    assert info.flavour == "minio"
    assert s3store.load(state) == info
    assert json.loads((state / "s3.json").read_text())["flavour"] == "minio"
    assert procs.http_ok(f"{info.url}/minio/health/live")()


def test_listen_bucket_notification_sees_a_put(
    store: tuple[Path, s3store.S3Info], client: Minio, bucket: str
) -> None:
    # The listener gets its own client (own connection pool): its request stays open.
    listener = s3store.client(store[1])
    events: queue.Queue[dict[str, Any] | BaseException] = queue.Queue()

    def listen() -> None:
        try:
            with listener.listen_bucket_notification(
                bucket, prefix="in/", events=("s3:ObjectCreated:*",)
            ) as stream:
                for event in stream:
                    events.put(event)
                    if _key(event) == "in/single.csv":
                        return  # the last one the test waits for
        except BaseException as exc:  # handed to the test thread
            events.put(exc)

    thread = threading.Thread(target=listen, name="minio-listen", daemon=True)
    thread.start()

    # The subscription is registered once the listener's request reaches the
    # server, which the client gives no signal for: put a new object every half
    # second until an event arrives, so none is lost to that race.
    put: list[str] = []
    first: dict[str, Any] | None = None
    deadline = time.monotonic() + 10
    while first is None and time.monotonic() < deadline:
        client.put_object(bucket, "elsewhere/ignored.csv", io.BytesIO(b"z"), 1)
        key = f"in/batch-{len(put)}.csv"
        client.put_object(bucket, key, io.BytesIO(b"x,y\n1,2\n"), 8)
        put.append(key)
        first = _next_event(events, timeout=0.5)
    assert first is not None, f"no notification within 10s for puts of {put}"
    record = first["Records"][0]
    assert record["eventName"].startswith("s3:ObjectCreated:")
    assert record["s3"]["bucket"]["name"] == bucket
    # The prefix filter kept out elsewhere/.
    assert _key(first) in put

    # Now that the subscription is live, one put alone must come through, promptly:
    # not held back until later events fill a server-side buffer.
    client.put_object(bucket, "in/single.csv", io.BytesIO(b"z"), 1)
    seen: list[str] = []
    deadline = time.monotonic() + 3
    while "in/single.csv" not in seen and time.monotonic() < deadline:
        event = _next_event(events, timeout=max(0.0, deadline - time.monotonic()))
        if event is not None:
            seen.append(_key(event))
    assert "in/single.csv" in seen, f"no event for a single put within 3s; saw {seen}"
    thread.join(timeout=5)
    assert not thread.is_alive(), "listener did not end"


def _next_event(
    events: queue.Queue[dict[str, Any] | BaseException], timeout: float
) -> dict[str, Any] | None:
    try:
        item = events.get(timeout=timeout)
    except queue.Empty:
        return None
    if isinstance(item, BaseException):
        raise item
    return item


def _key(event: dict[str, Any]) -> str:
    return str(event["Records"][0]["s3"]["object"]["key"])  # not escaped by this API


def test_stop_ends_the_process(tmp_path: Path) -> None:
    info = s3store.start(tmp_path, flavour="minio")
    pid = procs.pid_of(s3store.NAME, tmp_path)
    assert pid is not None
    assert s3store.client(info).bucket_exists("nothing-here") is False

    s3store.stop(tmp_path)

    assert procs.pid_of(s3store.NAME, tmp_path) is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    host, port = info.endpoint.rsplit(":", 1)
    with pytest.raises(OSError), socket.create_connection((host, int(port)), timeout=2):
        pass
