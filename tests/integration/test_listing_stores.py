"""The lean lister (freshet.listing) against real SeaweedFS and MinIO: the same
objects the `minio` client lists, across pages, with keys that need escaping; a
refused listing says why. Runs its own stores (no cluster needed)."""

from __future__ import annotations

import contextlib
import io
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from devstack import s3store
from freshet import listing
from freshet.objectstore import ObjectStore
from freshet.store_config import StoreConfig
from freshet.watcher import Listing, relist
from minio import Minio
from minio.error import S3Error

pytestmark = pytest.mark.integration

KEYS = [
    "in/p1/batch-00.csv",
    "in/p1/batch-01.csv",
    "in/p1/with space+plus&amp.csv",
    "in/p1/été/ünïcode.csv",
    "in/p1/100%.csv",
    "in/p1-b/x.csv",  # byte order puts it before in/p1/
    "in/p2/a.csv",
    "freshet/ns/p1/ledger.json",  # operator state: never part of a listing
]


@pytest.fixture(scope="module", params=["seaweedfs", "minio"])
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[s3store.S3Info]:
    state: Path = tmp_path_factory.mktemp(f"listing-{request.param}")
    info = s3store.start(state, flavour=request.param)
    try:
        yield info
    finally:
        s3store.stop(state)


@pytest.fixture(scope="module")
def filled(store: s3store.S3Info) -> tuple[s3store.S3Info, str]:
    client: Minio = s3store.client(store)
    bucket = "listing-test"
    client.make_bucket(bucket)
    for i, key in enumerate(KEYS):
        data = f"x,y\n{i},0\n".encode()
        client.put_object(bucket, key, io.BytesIO(data), len(data))
    return store, bucket


def config(info: s3store.S3Info, bucket: str, secret: str | None = None) -> StoreConfig:
    return StoreConfig(
        secret_name="store",
        endpoint=info.endpoint,
        bucket=bucket,
        secure=False,
        region=None,
        access_key_id=info.access_key,
        secret_access_key=secret or info.secret_key,
    )


def test_the_lean_listing_sees_what_the_minio_client_sees_across_pages(
    filled: tuple[s3store.S3Info, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    info, bucket = filled
    store = ObjectStore(config(info, bucket))
    monkeypatch.setattr(listing, "PAGE_SIZE", 3)  # 7 data objects: three pages
    pages = list(store.lister().pages("in/"))
    assert len(pages) == 3
    ours = {o.key: o for page in pages for o in listing.parse(page.body)}
    theirs = {o.key: o for o in store.list("in/")}
    assert sorted(ours) == sorted(theirs) == sorted(k for k in KEYS if k.startswith("in/"))
    for key, mine in ours.items():
        other = theirs[key]
        assert (mine.etag, mine.size) == (other.etag, other.size), key
        assert mine.last_modified == other.last_modified, key


def test_a_relisting_of_an_unchanged_bucket_is_the_same_listing(
    filled: tuple[s3store.S3Info, str],
) -> None:
    info, bucket = filled
    lister = ObjectStore(config(info, bucket)).lister()
    first = relist(lister, "", Listing())
    assert "freshet/ns/p1/ledger.json" not in first.keys
    assert first.keys[0] == "in/p1-b/x.csv"
    assert relist(lister, "", first) is first
    client: Minio = s3store.client(info)
    client.put_object(bucket, "in/p2/b.csv", io.BytesIO(b"x,y\n"), 4)
    try:
        assert "in/p2/b.csv" in relist(lister, "", first).keys
    finally:
        client.remove_object(bucket, "in/p2/b.csv")


def test_a_refused_listing_names_the_store_error(filled: tuple[s3store.S3Info, str]) -> None:
    info, bucket = filled
    lister = ObjectStore(config(info, bucket, secret="wrong-secret-key")).lister()
    with pytest.raises(listing.ListingError) as refused:
        list(lister.pages("in/"))
    assert refused.value.code in ("SignatureDoesNotMatch", "AccessDenied", "InvalidAccessKeyId")


def test_the_store_announces_created_and_removed_keys_where_it_can(
    filled: tuple[s3store.S3Info, str],
) -> None:
    """MinIO streams each created and removed key, decoded; SeaweedFS refuses the
    request at once (the watcher then polls only)."""
    info, bucket = filled
    store = ObjectStore(config(info, bucket))
    if info.flavour != "minio":
        with pytest.raises(S3Error) as refused:
            next(iter(store.listen()))
        assert refused.value.code in ("NotImplemented", "XNotImplemented", "MethodNotAllowed")
        return
    keys: queue.Queue[str | BaseException] = queue.Queue()
    last = "in/p3/été x+y%41.csv"  # as stored, not decoded

    def listen() -> None:
        ends = 0
        try:
            for key in store.listen():
                keys.put(key)
                ends += key == last
                if ends == 2:  # created, then removed: all the test waits for
                    return
        except BaseException as e:  # handed to the test
            keys.put(e)

    thread = threading.Thread(target=listen, name="listen", daemon=True)
    thread.start()
    client: Minio = s3store.client(info)
    # The subscription is live once the request reaches the server, which nothing
    # signals: put until the first event comes.
    first: str | BaseException | None = None
    deadline = time.monotonic() + 10
    while first is None and time.monotonic() < deadline:
        client.put_object(bucket, "in/p3/probe.csv", io.BytesIO(b"x"), 1)
        with contextlib.suppress(queue.Empty):
            first = keys.get(timeout=0.5)
    assert first == "in/p3/probe.csv", first
    client.put_object(bucket, last, io.BytesIO(b"x"), 1)
    client.remove_object(bucket, "in/p3/probe.csv")
    client.remove_object(bucket, last)
    seen: list[str | BaseException] = []
    deadline = time.monotonic() + 3
    while seen.count(last) < 2 and time.monotonic() < deadline:
        try:
            seen.append(keys.get(timeout=max(0.0, deadline - time.monotonic())))
        except queue.Empty:
            break
    assert [k for k in seen if k != "in/p3/probe.csv"] == [last, last], seen
