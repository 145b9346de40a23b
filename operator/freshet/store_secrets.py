"""The store Secrets policies name, read once per MAX_AGE_SECONDS, not once per step.

A step needs its store's settings; at a thousand policies on one Secret, reading
it per step was a fifth of the operator's requests to the API server. A watch
would need `list` and `watch` on every Secret the operator may read, so the
settings are kept for a short while instead: `get` stays the only verb.

A changed Secret takes effect within MAX_AGE_SECONDS, and on the next step of a
policy whose step failed (`forget`: the fix may be in the Secret, e.g. rotated
credentials), so a rotation costs at most one failed step. Reads of the same Secret at once (a
thousand policies woken together) share one request. Failures are not kept: a
missing or invalid Secret is read again on the next step.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from freshet.failures import Failure, from_api
from freshet.kube import ApiError, Kube
from freshet.store_config import StoreConfig, StoreSecretError, parse_store_secret

MAX_AGE_SECONDS = 30.0

_Key = tuple[str, str]


class StoreSecrets:
    def __init__(
        self,
        kube: Kube,
        max_age: float = MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube, self._max_age, self._clock = kube, max_age, clock
        self._kept: dict[_Key, tuple[float, StoreConfig]] = {}
        self._reading: dict[_Key, asyncio.Future[StoreConfig]] = {}

    async def config(self, namespace: str, secret: str, field: str) -> StoreConfig:
        """The settings in Secret `namespace/secret`, which the policy names at `field`
        (for the message when it is missing). Raises Failure."""
        key = (namespace, secret)
        kept = self._kept.get(key)
        if kept is not None and self._clock() - kept[0] < self._max_age:
            return kept[1]
        reading = self._reading.get(key)
        if reading is None:
            reading = asyncio.ensure_future(self._read(namespace, secret))
            self._reading[key] = reading
            reading.add_done_callback(lambda _: self._reading.pop(key, None))
        # Shielded: one caller cancelled (its policy deleted) must not cancel the
        # read the others wait on. Each caller gets a Failure of its own.
        try:
            return await asyncio.shield(reading)
        except _NotFound:
            raise Failure("StoreSecretNotFound", f"Secret {secret!r} ({field}) not found") from None
        except Failure as f:
            raise Failure(f.reason, f.message, permanent=f.permanent, delay=f.delay) from None

    def forget(self, namespace: str, secret: str) -> None:
        """Read the Secret again on the next call (its credentials were refused)."""
        self._kept.pop((namespace, secret), None)

    async def _read(self, namespace: str, secret: str) -> StoreConfig:
        started = self._clock()
        try:
            data = await asyncio.to_thread(self._kube.secret_data, namespace, secret)
        except ApiError as e:
            raise from_api(e, f"read Secret {secret}", rejected="StoreSecretInvalid") from e
        if data is None:
            raise _NotFound
        try:
            config = parse_store_secret(secret, data)
        except StoreSecretError as e:
            raise Failure("StoreSecretInvalid", str(e)) from e
        # Expired entries go here, so that Secrets nobody names any more (their
        # namespace deleted) are not kept for the operator's lifetime.
        self._kept = {k: v for k, v in self._kept.items() if started - v[0] < self._max_age}
        self._kept[(namespace, secret)] = (started, config)
        return config


class _NotFound(Exception):
    """No such Secret; the caller says which field names it."""
