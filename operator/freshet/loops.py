"""What every reconcile loop (a policy's, a set's) does between steps."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping
from typing import Any, cast

import kopf

INTERNED_LENGTH = 80
"""Strings up to this long are interned: names, reasons, messages, timestamps."""


class Kept:
    """The newest version of a loop's object, as kept between events: without
    metadata.managedFields, which nothing reads and which is half of it, and with
    its keys and short values interned, since a thousand policies repeat the same
    field names, condition types, reasons and messages a thousand times."""

    __slots__ = ("_body",)

    def __init__(self, body: Mapping[str, Any]) -> None:
        raw = {k: v for k, v in body.items() if k != "metadata"}
        raw["metadata"] = {
            k: v for k, v in (body.get("metadata") or {}).items() if k != "managedFields"
        }
        self._body = kopf.Body(cast(kopf.RawBody, _interned(raw)))

    def body(self) -> kopf.Body:
        return self._body


def _interned(value: Any) -> Any:
    if isinstance(value, dict):
        return {sys.intern(k): _interned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_interned(v) for v in value]
    if isinstance(value, str) and len(value) <= INTERNED_LENGTH:
        return sys.intern(value)
    return value


async def sleep_or_wake(wake: asyncio.Event, delay: float) -> None:
    """Return when `wake` is set or after `delay` seconds, whichever comes first.

    A timer that sets the event, not `asyncio.wait_for`, which wraps the wait in a
    task of its own: one more task, future and coroutine per sleeping policy."""
    timer = asyncio.get_running_loop().call_later(delay, wake.set)
    try:
        await wake.wait()
    finally:
        timer.cancel()
