"""The lean bucket listing (freshet.listing) and the shared watcher's index
(freshet.watcher) on pages as stores write them; the same lister against real
SeaweedFS and MinIO is in tests/integration/test_listing_stores.py."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from freshet import watcher as watcher_module
from freshet.listing import ObjectInfo, Page, parse
from freshet.watcher import BucketWatcher, Listing, _Subscriber, any_under, relist, touched

SEAWEED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult><Name>b</Name>'
    b"<Prefix>in/</Prefix><IsTruncated>false</IsTruncated>"
    b"<Contents><Key>in/a/b%2Bc%20d.csv</Key><ETag>&#34;0a&#34;</ETag><Size>9</Size>"
    b"<StorageClass>STANDARD</StorageClass><LastModified>2026-12-01T21:59:59Z</LastModified>"
    b"</Contents>"
    b"<Contents><Key>in/a/</Key><ETag>&#34;d4&#34;</ETag><Size>0</Size>"
    b"<LastModified>2026-12-01T21:59:59Z</LastModified></Contents>"
    b"<EncodingType>url</EncodingType></ListBucketResult>"
)
AWS = (
    b"<ListBucketResult><IsTruncated>true</IsTruncated>"
    b"<Contents><Key>in/%C3%A9t%C3%A9+x%26y.csv</Key>"
    b"<LastModified>2026-12-01T21:59:59.120Z</LastModified>"
    b"<ETag>&quot;1b-2&quot;</ETag><Size>12</Size><Owner><ID>o</ID></Owner>"
    b"<StorageClass>STANDARD</StorageClass></Contents>"
    b"<NextContinuationToken>tok</NextContinuationToken></ListBucketResult>"
)


def test_a_page_is_read_whatever_the_order_of_its_fields() -> None:
    (weed,) = parse(SEAWEED)  # the folder marker in/a/ is not data
    assert weed == ObjectInfo("in/a/b+c d.csv", "0a", 9, "2026-12-01T21:59:59Z")
    (aws,) = parse(AWS)
    assert aws == ObjectInfo("in/été x&y.csv", "1b-2", 12, "2026-12-01T21:59:59.120Z")
    assert aws.last_modified.isoformat() == "2026-12-01T21:59:59.120000+00:00"


def test_an_object_lacking_a_field_does_not_shift_the_others() -> None:
    body = (
        b"<Contents><Key>k1</Key><Size>1</Size><LastModified>t1</LastModified></Contents>"
        b"<Contents><Key>k2</Key><ETag>&#34;e2&#34;</ETag><Size>2</Size>"
        b"<LastModified>t2</LastModified></Contents>"
    )
    assert parse(body) == [ObjectInfo("k1", "", 1, "t1"), ObjectInfo("k2", "e2", 2, "t2")]


def page_of(*objects: tuple[str, str]) -> bytes:
    return b"".join(
        b"<Contents><Key>%s</Key><ETag>%s</ETag><Size>1</Size>"
        b"<LastModified>2026-12-01T00:00:00Z</LastModified></Contents>" % (k.encode(), e.encode())
        for k, e in objects
    )


class FakeLister:
    """Serves fixed pages; counts how many pages were asked for."""

    def __init__(self, *pages: bytes) -> None:
        self.bodies = list(pages)
        self.served = 0

    def pages(self, prefix: str) -> Iterator[Page]:
        for i, body in enumerate(self.bodies):
            self.served += 1
            last = i == len(self.bodies) - 1
            yield Page(hashlib.sha256(body).digest(), body, not last, None if last else str(i))


def test_relisting_reuses_unchanged_pages_and_sorts_keys_in_byte_order() -> None:
    # SeaweedFS lists folder by folder: in/a/ before in/a-b/, not byte order.
    lister = FakeLister(page_of(("in/a/x", "1")), page_of(("in/a-b/y", "2")))
    first = relist(lister, "in/", Listing())  # type: ignore[arg-type]  # a fake lister
    assert first.keys == ("in/a-b/y", "in/a/x")
    assert [o.key for o in first.under("in/a/")] == ["in/a/x"]
    assert relist(lister, "in/", first) is first  # type: ignore[arg-type]
    lister.bodies[1] = page_of(("in/a-b/y", "3"), ("in/a-b/z", "4"))
    second = relist(lister, "in/", first)  # type: ignore[arg-type]
    assert second.pages[0] is first.pages[0]  # the unchanged page is not parsed again
    assert touched(first, second) == (["in/a-b/y", "in/a-b/z"], [])
    lister.bodies[1] = page_of(("in/a-b/z", "4"))
    third = relist(lister, "in/", second)  # type: ignore[arg-type]
    assert touched(second, third) == ([], ["in/a-b/y"])
    assert touched(third, third) == ([], [])


def test_state_objects_are_never_part_of_a_listing() -> None:
    lister = FakeLister(page_of(("freshet/ns/p/ledger.json", "1"), ("in/x", "2")))
    listing = relist(lister, "", Listing())  # type: ignore[arg-type]
    assert listing.keys == ("in/x",)


@pytest.mark.parametrize(
    ("keys", "prefixes", "expected"),
    [
        (["in/p1/a", "in/p3/a"], ("in/p2/",), False),
        (["in/p1/a", "in/p3/a"], ("in/p3/",), True),
        (["in/p1/a"], ("labels/", "in/p1/"), True),
        ([], ("in/",), False),
        (["in/p10/a"], ("in/p1/",), False),
    ],
)
def test_a_subscriber_is_woken_only_for_its_prefixes(
    keys: list[str], prefixes: tuple[str, ...], expected: bool
) -> None:
    assert any_under(keys, prefixes) is expected


class FlakyStore:
    """A store whose listing fails while `down` is set."""

    bucket = "b"

    def __init__(self) -> None:
        self.down = False
        self.lister_ = FakeLister(page_of(("in/p1/a", "1")))

    def lister(self) -> FlakyStore:
        return self

    def pages(self, prefix: str) -> Iterator[Page]:
        if self.down:
            raise OSError("connection refused")
        yield from self.lister_.pages(prefix)

    def close(self) -> None:
        pass


def test_the_watcher_wakes_its_subscribers_when_the_store_fails_and_when_it_is_back() -> None:
    async def scenario() -> list[str]:
        store = FlakyStore()
        woken: list[str] = []
        watcher = BucketWatcher(store=store)  # type: ignore[arg-type]  # a fake store
        watcher.subscribers["ns/p1"] = _Subscriber(("in/p1/",), 0.05, lambda: woken.append("p1"))
        watcher.subscribers["ns/p2"] = _Subscriber(("in/p2/",), 0.05, lambda: woken.append("p2"))
        task = asyncio.create_task(watcher.run())
        await asyncio.sleep(0.2)  # first listing: p1's object is new, p2 has none
        woken.append("|")
        store.down = True
        await asyncio.sleep(0.2)
        woken.append("|")
        store.down = False
        await asyncio.sleep(0.2)
        watcher.subscribers.clear()
        watcher.kick()
        await asyncio.wait_for(task, 1)
        return woken

    woken = "".join(asyncio.run(scenario()))
    # p1 once for its object, then both once for the outage and once for the recovery.
    assert woken == "p1|p1p2|p1p2", woken


def test_a_new_subscriber_waits_for_a_listing_that_covers_its_prefix() -> None:
    async def scenario() -> tuple[bool, bool, list[str]]:
        store = FlakyStore()
        watcher = BucketWatcher(store=store)  # type: ignore[arg-type]  # a fake store
        watcher.subscribers["ns/p1"] = _Subscriber(("in/p1/",), 30, lambda: None)
        task = asyncio.create_task(watcher.run())
        await watcher.listed(("in/p1/",))
        early = watcher.covers(("in/p2/",))  # listed in/p1/ only
        watcher.subscribers["ns/p2"] = _Subscriber(("in/p2/",), 30, lambda: None)
        watcher.kick()  # what WatcherRegistry.subscribe does for a new subscriber
        async with asyncio.timeout(1):
            await watcher.listed(("in/p2/",))
        late = watcher.covers(("in/p2/",))
        watcher.subscribers.clear()
        watcher.kick()
        await asyncio.wait_for(task, 1)
        return early, late, [o.key for o in watcher.objects("in/")]

    early, late, keys = asyncio.run(scenario())
    assert (early, late, keys) == (False, True, ["in/p1/a"])


def test_a_prefix_listed_on_its_own_replaces_only_its_objects() -> None:
    lister = FakeLister(page_of(("in/a/x", "1"), ("in/b/y", "2"), ("in/c/z", "3")))
    full = relist(lister, "in/", Listing())  # type: ignore[arg-type]  # a fake lister
    narrow = full.replaced("in/b/", [ObjectInfo("in/b/y2", "5", 1, "t"), full.under("in/b/")[0]])
    assert narrow.keys == ("in/a/x", "in/b/y", "in/b/y2", "in/c/z")
    assert narrow.pages is full.pages  # the next whole listing compares with the store's pages
    # The store went back to what the pages hold (y2 written, then removed): the
    # next listing is built from its pages, not taken for the overlaid one.
    again = relist(lister, "in/", narrow)  # type: ignore[arg-type]
    assert again.keys == full.keys
    assert touched(narrow, again) == ([], ["in/b/y2"])


class Bucket:
    """A store of keys and ETags whose listings honour the prefix; records each."""

    bucket = "b"

    def __init__(self, objects: dict[str, str]) -> None:
        self.objects, self.listed = objects, []

    def lister(self) -> Bucket:
        return self

    def pages(self, prefix: str) -> Iterator[Page]:
        self.listed.append(prefix)
        body = page_of(*sorted((k, e) for k, e in self.objects.items() if k.startswith(prefix)))
        yield Page(hashlib.sha256(body).digest(), body, False, None)

    def close(self) -> None:
        pass


def test_a_notification_lists_the_prefixes_it_concerns_not_the_bucket() -> None:
    async def scenario() -> tuple[list[str], list[str], list[str]]:
        store = Bucket({"in/p1/a": "1", "in/p2/a": "1"})
        woken: list[str] = []
        watcher = BucketWatcher(store=store)  # type: ignore[arg-type]  # a fake store
        for name in ("p1", "p2", "p3"):
            watcher.subscribers[f"ns/{name}"] = _Subscriber(
                (f"in/{name}/",), 60, lambda name=name: woken.append(name)
            )
        task = asyncio.create_task(watcher.run())
        async with asyncio.timeout(1):
            await watcher.listed(("in/p1/",))
        woken.clear()
        store.objects["in/p2/b"] = "2"
        watcher.notified("in/p2/b")
        watcher.notified("elsewhere/x")  # under no policy's prefix: nothing to list
        await asyncio.sleep(0.1)
        keys = [o.key for o in watcher.objects("in/")]
        watcher.subscribers.clear()
        watcher.kick()
        await asyncio.wait_for(task, 1)
        return store.listed, woken, keys

    listed, woken, keys = asyncio.run(scenario())
    assert listed == ["in/p", "in/p2/"]  # the bucket once (the common prefix), then p2 alone
    assert woken == ["p2"]
    assert keys == ["in/p1/a", "in/p2/a", "in/p2/b"]


def test_notifications_across_many_prefixes_list_the_bucket_once() -> None:
    async def scenario() -> list[str]:
        names = [f"p{i:03d}" for i in range(watcher_module.NARROW_PREFIXES + 1)]
        store = Bucket({})
        watcher = BucketWatcher(store=store)  # type: ignore[arg-type]  # a fake store
        for name in names:
            watcher.subscribers[name] = _Subscriber((f"in/{name}/",), 60, lambda: None)
        task = asyncio.create_task(watcher.run())
        async with asyncio.timeout(1):
            await watcher.listed(("in/p000/",))
        for name in names:
            store.objects[f"in/{name}/a"] = "1"
            watcher.notified(f"in/{name}/a")
        await asyncio.sleep(0.1)
        watcher.subscribers.clear()
        watcher.kick()
        await asyncio.wait_for(task, 1)
        return store.listed

    assert asyncio.run(scenario()) == ["in/p0", "in/p0"]  # the common prefix, twice


def test_a_notification_is_listed_while_every_default_thread_is_busy() -> None:
    """Steps block in the loop's default executor on Kubernetes calls; a notified
    prefix must not wait for them (the watcher lists on its own thread)."""

    async def scenario() -> list[str]:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(1))
        store = Bucket({"in/p1/a": "1"})
        woken = asyncio.Event()
        watcher = BucketWatcher(store=store)  # type: ignore[arg-type]  # a fake store
        watcher.subscribers["ns/p1"] = _Subscriber(("in/p1/",), 60, woken.set)
        task = asyncio.create_task(watcher.run())
        async with asyncio.timeout(1):
            await watcher.listed(("in/p1/",))
        woken.clear()
        release = threading.Event()
        busy = asyncio.create_task(asyncio.to_thread(release.wait, 5))  # the only thread
        store.objects["in/p1/b"] = "2"
        watcher.notified("in/p1/b")
        async with asyncio.timeout(1):  # not the 5 s the busy thread holds out
            await woken.wait()
        release.set()
        await busy
        watcher.subscribers.clear()
        watcher.kick()
        await asyncio.wait_for(task, 1)
        return [o.key for o in watcher.objects("in/")]

    assert asyncio.run(scenario()) == ["in/p1/a", "in/p1/b"]


def test_a_watcher_run_again_after_it_ended_lists_again() -> None:
    """Its thread is shut down when a run ends; the next run must not reuse it."""

    async def scenario() -> list[str]:
        store = Bucket({"in/p1/a": "1"})
        watcher = BucketWatcher(store=store)  # type: ignore[arg-type]  # a fake store
        for _ in range(2):
            watcher.subscribers["ns/p1"] = _Subscriber(("in/p1/",), 60, lambda: None)
            watcher.kick()
            task = asyncio.create_task(watcher.run())
            async with asyncio.timeout(1):
                await watcher.listed(("in/p1/",))
            watcher.subscribers.clear()
            watcher.kick()
            await asyncio.wait_for(task, 1)
            watcher.listed_prefix = None  # the next run's listing is waited for anew
        return store.listed

    assert asyncio.run(scenario()) == ["in/p1/", "in/p1/"]
