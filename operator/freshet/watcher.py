"""One watcher per bucket, shared by every policy that reads from it.

Polling each policy's prefix separately costs a listing per policy per
interval; at a thousand policies that is more than the machine has (see
docs/architecture.md). Instead one task per (endpoint, bucket, principal) lists
the union of its subscribers' prefixes at the fastest interval any of them
asked for, keeps the latest listing indexed by key, and wakes exactly the
policies whose prefix saw a new, changed or removed object.

What a quiet bucket costs is the point (docs/benchmarks.md, "Scale"): a page
whose bytes equal the previous listing's is not parsed again
(`freshet.listing`), a listing where no page changed compares nothing, and a
policy's objects are a binary search in the sorted keys, not a scan. While the
store streams notifications, an event lists at once the policy prefixes its key
falls under (a prefix, not the bucket: MinIO takes seconds to list 20,000
objects and milliseconds to list one policy's), and the periodic listing of the
bucket only backs them up.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from freshet_contract.layout import STATE_ROOT_PREFIX
from minio.error import S3Error

from freshet import metrics
from freshet.listing import Lister, ObjectInfo, parse
from freshet.objectstore import ObjectStore

log = logging.getLogger(__name__)
T = TypeVar("T")

STATE_PREFIX = STATE_ROOT_PREFIX
STREAM_SETTLE_SECONDS = 2.0
STREAMING_LISTING_SECONDS = 60.0
"""How often the bucket is listed while notifications stream: each event lists at
once, so the periodic listing only catches an event the stream lost."""
NARROW_PREFIXES = 64
"""Notifications that concern more policy prefixes than this, between two
listings, list the bucket instead of each prefix."""


@dataclass
class _Subscriber:
    prefixes: tuple[str, ...]
    interval: float
    wake: Callable[[], None]


@dataclass(frozen=True, slots=True)
class Listing:
    """One listing of the bucket: its objects sorted by key (and the keys alone, to
    search), and per page the digest of its bytes and its objects, so the next
    listing can reuse a page. No dict by key: at 20,000 objects that is a megabyte
    kept for the rare listing that changed."""

    objects: tuple[ObjectInfo, ...] = ()
    keys: tuple[str, ...] = ()
    digests: tuple[bytes, ...] = ()
    pages: tuple[tuple[ObjectInfo, ...], ...] = ()
    overlaid: bool = False
    """Some prefixes were listed since the pages were: the objects are newer than them."""

    def _span(self, prefix: str) -> tuple[int, int]:
        start = end = bisect.bisect_left(self.keys, prefix)
        while end < len(self.keys) and self.keys[end].startswith(prefix):
            end += 1
        return start, end

    def under(self, prefix: str) -> list[ObjectInfo]:
        """The objects whose key starts with `prefix`, in key order."""
        start, end = self._span(prefix)
        return list(self.objects[start:end])

    def replaced(self, prefix: str, objects: Iterable[ObjectInfo]) -> Listing:
        """This listing with the objects under `prefix` those of a listing of that
        prefix alone. The pages stay those of the last whole listing, which the
        next one is compared with."""
        start, end = self._span(prefix)
        new = tuple(sorted(objects, key=lambda o: o.key))
        return Listing(
            self.objects[:start] + new + self.objects[end:],
            self.keys[:start] + tuple(o.key for o in new) + self.keys[end:],
            self.digests,
            self.pages,
            overlaid=True,
        )


def relist(lister: Lister, prefix: str, previous: Listing) -> Listing:
    """List `prefix` again; `previous` itself when no page's bytes changed (and no
    prefix was listed since: then the pages say what the store holds, not it).

    Keys are sorted here rather than taken in the store's order: SeaweedFS lists
    folder by folder, which is not byte order ("in/a-b/x" after "in/a/y").
    """
    digests, pages = [], []
    for i, page in enumerate(lister.pages(prefix)):
        digests.append(page.digest)
        if i < len(previous.digests) and previous.digests[i] == page.digest:
            pages.append(previous.pages[i])
        else:
            pages.append(tuple(o for o in parse(page.body) if not o.key.startswith(STATE_PREFIX)))
    if tuple(digests) == previous.digests and not previous.overlaid:
        return previous
    by_key = {o.key: o for page in pages for o in page}
    objects = tuple(by_key[k] for k in sorted(by_key))
    return Listing(objects, tuple(o.key for o in objects), tuple(digests), tuple(pages))


def list_prefixes(lister: Lister, prefixes: list[str]) -> list[tuple[str, list[ObjectInfo]]]:
    """Each prefix's objects, listed on its own (what a notification concerns)."""
    return [
        (
            prefix,
            [
                o
                for page in lister.pages(prefix)
                for o in parse(page.body)
                if not o.key.startswith(STATE_PREFIX)
            ],
        )
        for prefix in prefixes
    ]


def touched(before: Listing, after: Listing) -> tuple[list[str], list[str]]:
    """Keys that are new or changed (another ETag), and keys that are gone, sorted."""
    if before is after:
        return [], []
    return diff(before.objects, after.objects)


def diff(before: Iterable[ObjectInfo], after: Iterable[ObjectInfo]) -> tuple[list[str], list[str]]:
    """`touched` for two lists of objects (of a prefix listed on its own)."""
    old, new = {o.key: o.etag for o in before}, {o.key: o.etag for o in after}
    changed = [k for k, etag in new.items() if old.get(k) != etag]
    return changed, sorted(old.keys() - new.keys())


def any_under(keys: list[str], prefixes: tuple[str, ...]) -> bool:
    """Does any of the sorted `keys` start with one of `prefixes`?"""
    for prefix in prefixes:
        i = bisect.bisect_left(keys, prefix)
        if i < len(keys) and keys[i].startswith(prefix):
            return True
    return False


@dataclass
class BucketWatcher:
    store: ObjectStore
    subscribers: dict[str, _Subscriber] = field(default_factory=dict)
    listing: Listing = field(default_factory=Listing)
    # When the watcher first saw each key that arrived after its first listing
    # (monotonic), for the trigger-latency metric.
    first_seen: dict[str, float] = field(default_factory=dict)
    listed_prefix: str | None = None
    """The prefix the current listing covers; None before the first one."""
    errors: int = 0
    last_error: str | None = None
    _task: asyncio.Task[None] | None = None
    _kick: asyncio.Event = field(default_factory=asyncio.Event)
    _next_listing: float = 0.0
    """When the bucket is listed next (monotonic); a kick makes it now."""
    _notified: set[str] = field(default_factory=set)
    """Keys notified since the last listing: their prefixes are listed at once."""
    _stream_opened: float | None = None
    _reported_streaming: bool = False
    _listener: threading.Thread | None = None
    _lister: Lister | None = None
    _thread: ThreadPoolExecutor | None = None
    """Where this watcher's listings block: its own thread, so that a notified
    prefix is listed at once, not after the Kubernetes calls of busy policies
    queued in the loop's default executor."""
    _swept: asyncio.Event = field(default_factory=asyncio.Event)

    async def listed(self, prefixes: tuple[str, ...]) -> None:
        """Wait until a listing covers `prefixes` (a new subscriber's first one) or
        one fails. A policy that went on with a listing that does not cover its
        prefix would report no data."""
        while not self.covers(prefixes) and not self.errors:
            await self._swept.wait()

    def covers(self, prefixes: tuple[str, ...]) -> bool:
        listed = self.listed_prefix
        return listed is not None and all(p.startswith(listed) for p in prefixes)

    def objects(self, prefix: str) -> list[ObjectInfo]:
        return self.listing.under(prefix)

    def _list_prefix(self) -> str:
        prefixes = [p for s in self.subscribers.values() for p in s.prefixes]
        # S3 prefixes are plain strings, not paths: the character-wise common
        # prefix is exactly what to list.
        return os.path.commonprefix(prefixes) if prefixes else ""  # noqa: RUF071

    def _interval(self) -> float:
        interval = min((s.interval for s in self.subscribers.values()), default=5.0)
        return max(interval, STREAMING_LISTING_SECONDS) if self.streaming else interval

    async def _blocking(self, fn: Callable[[Lister], T]) -> T:
        """Run one listing call on the watcher's thread, with its lister."""
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"list {self.store.bucket}")
            self._lister = self.store.lister()
        lister = self._lister
        assert lister is not None
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, lister)

    async def _sweep(self) -> None:
        before, prefix = self.listing, self._list_prefix()
        self._notified.clear()  # this listing covers them
        with metrics.LISTING_SECONDS.time():
            after = await self._blocking(lambda lister: relist(lister, prefix, before))
        self.listing = after
        self._woken(*touched(before, after))
        self.listed_prefix = prefix

    async def _sweep_prefixes(self, prefixes: list[str]) -> None:
        listed = await self._blocking(lambda lister: list_prefixes(lister, prefixes))
        changed, gone = [], []
        for prefix, objects in listed:
            c, g = diff(self.listing.under(prefix), objects)
            changed += c
            gone += g
            self.listing = self.listing.replaced(prefix, objects)
        self._woken(changed, gone)

    def _notified_prefixes(self) -> list[str] | None:
        """The subscribers' prefixes the notified keys fall under, outermost only;
        None when listing the bucket is the cheaper (or the only right) answer."""
        keys, self._notified = self._notified, set()
        if self.listed_prefix is None:
            return None
        prefixes = {p for sub in self.subscribers.values() for p in sub.prefixes}
        hit = sorted({p for key in keys for p in prefixes if key.startswith(p)})
        outermost = [p for i, p in enumerate(hit) if not any(p.startswith(q) for q in hit[:i])]
        if len(outermost) > NARROW_PREFIXES or any(
            self.listed_prefix.startswith(p) for p in outermost
        ):
            return None
        return outermost

    def _woken(self, changed: list[str], gone: list[str]) -> None:
        """Record when new keys were first seen and wake whom they concern."""
        if self.listed_prefix is not None:
            now = time.monotonic()
            self.first_seen.update(dict.fromkeys(changed, now))
        for key in gone:
            self.first_seen.pop(key, None)
        if keys := sorted([*changed, *gone]):
            for sub in list(self.subscribers.values()):
                if any_under(keys, sub.prefixes):
                    sub.wake()

    async def run(self) -> None:
        """List the bucket at the fastest subscriber's interval, counted from each
        listing's start (a slow listing does not stretch the period), or at once
        when kicked; list a notification's prefixes as soon as it comes."""
        try:
            while self.subscribers:
                self._kick.clear()  # a kick from here on asks for another listing
                started = time.monotonic()
                failing = self.errors > 0
                try:
                    # Due, or kicked: the bucket. Notified: the prefixes concerned.
                    due = started >= self._next_listing
                    prefixes = None if due else self._notified_prefixes()
                    if prefixes is None:
                        self._next_listing = started + self._interval()
                        await self._sweep()
                    elif prefixes:
                        await self._sweep_prefixes(prefixes)
                    self.errors, self.last_error = 0, None
                except Exception as e:  # a flaky store must not kill the watcher
                    self.errors += 1
                    self.last_error = f"{type(e).__name__}: {e}"
                    log.warning(
                        "listing bucket failed",
                        extra={"bucket": self.store.bucket, "error": self.last_error},
                    )
                self._swept.set()  # wakes whoever waits for this listing
                self._swept = asyncio.Event()
                if failing != (self.errors > 0):
                    # The store went away or came back: every subscriber says so
                    # now, not at its next resync.
                    for sub in list(self.subscribers.values()):
                        sub.wake()
                wait = self._next_listing - time.monotonic()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._kick.wait(), timeout=max(0.0, wait))
        finally:
            if self._thread is not None and self._lister is not None:
                # After any listing still running there (a cancelled await does
                # not stop its thread), not under it.
                self._thread.submit(self._lister.close)
                self._thread.shutdown(wait=False)
            self._thread = self._lister = None  # a later run starts its own

    def start_listening(self, loop: asyncio.AbstractEventLoop) -> None:
        """Listen for bucket notifications in a thread, where the server offers them.

        A notification only starts a listing of the prefixes it concerns: the
        listings stay the one source of truth, so a lost or duplicated event can
        at worst cost one periodic listing's wait, never a missed or
        double-counted batch. A daemon thread,
        because the stream blocks until the next event and must not hold up
        the operator's shutdown.
        """
        if self._listener is not None and self._listener.is_alive():
            return
        self._listener = threading.Thread(
            target=self._listen, args=(loop,), name=f"notify {self.store.bucket}", daemon=True
        )
        self._listener.start()

    def _listen(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            self._stream(loop)
        finally:
            self._stream_opened = None
            loop.call_soon_threadsafe(self._arrivals_changed)

    def _stream(self, loop: asyncio.AbstractEventLoop) -> None:
        backoff = 1.0
        while self.subscribers:
            try:
                self._stream_opened = time.monotonic()
                # Once it has settled, the policies' status.data.arrivals says so.
                loop.call_soon_threadsafe(
                    loop.call_later, STREAM_SETTLE_SECONDS + 0.1, self._arrivals_changed
                )
                for key in self.store.listen():
                    backoff = 1.0
                    if not self.subscribers:
                        return
                    if not key.startswith(STATE_PREFIX):
                        loop.call_soon_threadsafe(self.notified, key)
            except S3Error as e:
                if e.code in ("NotImplemented", "XNotImplemented", "MethodNotAllowed"):
                    self._stream_opened = None
                    log.info(
                        "bucket notifications unsupported; polling only",
                        extra={"bucket": self.store.bucket},
                    )
                    return
                log.warning("notification stream failed", extra={"error": str(e)})
            except ValueError:  # the client refuses the extension for AWS S3
                self._stream_opened = None
                return
            except Exception as e:  # a dropped stream; polling covers the gap
                log.warning("notification stream failed", extra={"error": str(e)})
            self._stream_opened = None
            loop.call_soon_threadsafe(self._arrivals_changed)
            time.sleep(backoff)
            backoff = min(backoff * 2, 60.0)

    def _arrivals_changed(self) -> None:
        """Notifications started or stopped streaming: each subscriber reports it, and
        the listing interval follows (the periodic listing backs up a stream)."""
        if self.streaming == self._reported_streaming:
            return
        self._reported_streaming = self.streaming
        for sub in list(self.subscribers.values()):
            sub.wake()
        self.kick()

    @property
    def streaming(self) -> bool:
        """The notification stream is open and healthy.

        The client gives no signal when the stream is established, only events;
        a server without the extension refuses the request at once, so a stream
        that has stayed open for a couple of seconds is taken as working.
        """
        opened = self._stream_opened
        return opened is not None and time.monotonic() - opened > STREAM_SETTLE_SECONDS

    def kick(self) -> None:
        """List the bucket again now (e.g. a new subscriber wants its first snapshot)."""
        self._next_listing = 0.0
        self._kick.set()

    def notified(self, key: str) -> None:
        """`key` was created or removed: list the prefixes it concerns now."""
        self._notified.add(key)
        self._kick.set()


class WatcherRegistry:
    """Hands out the shared watcher for a store, starting and stopping it as needed."""

    def __init__(self) -> None:
        self._watchers: dict[tuple[str, str, str], BucketWatcher] = {}

    def subscribe(
        self,
        policy: str,
        store: ObjectStore,
        prefixes: tuple[str, ...],
        interval: float,
        wake: Callable[[], None],
    ) -> BucketWatcher:
        config = store.config
        identity = (config.endpoint, config.bucket, config.access_key_id)
        watcher = self._watchers.get(identity)
        if watcher is not None and watcher.store.config != config:
            # Same bucket and principal, other settings (a rotated secret key):
            # retire the old watcher, its subscribers move over as they reconcile.
            self._retire(identity)
            watcher = None
        if watcher is None:
            watcher = BucketWatcher(store=store)
            self._watchers[identity] = watcher
        for other_identity, other in list(self._watchers.items()):
            moved = other is not watcher and other.subscribers.pop(policy, None) is not None
            if moved and not other.subscribers:
                self._retire(other_identity)
        wanted = _Subscriber(prefixes, interval, wake)
        known = watcher.subscribers.get(policy)
        watcher.subscribers[policy] = wanted
        if watcher._task is None or watcher._task.done():
            watcher._task = asyncio.get_running_loop().create_task(
                watcher.run(), name=f"watch {config.endpoint}/{config.bucket}"
            )
            watcher.start_listening(asyncio.get_running_loop())
        elif known is None or (known.prefixes, known.interval) != (prefixes, interval):
            # Only a new or changed subscription needs a listing now; the
            # periodic sweep serves everyone else.
            watcher.kick()
        return watcher

    def _retire(self, identity: tuple[str, str, str]) -> None:
        watcher = self._watchers.pop(identity)
        watcher.subscribers.clear()
        watcher.kick()  # its loop sees no subscribers and ends

    def unsubscribe(self, policy: str) -> None:
        for identity, watcher in list(self._watchers.items()):
            watcher.subscribers.pop(policy, None)
            if not watcher.subscribers:
                self._retire(identity)
