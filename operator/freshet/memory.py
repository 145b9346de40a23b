"""Giving freed memory back to the system.

A thousand policies reconciled at once (an operator restart, a set of segments
created) allocate far more than they keep; glibc holds the freed pages inside
its heaps, and the process keeps that peak as RSS for good. `malloc_trim(0)`
returns every free page, so the operator trims once a minute: a call that
costs about a millisecond when there is little to give back.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
from collections.abc import Callable

TRIM_SECONDS = 60.0

log = logging.getLogger(__name__)


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim  # type: ignore[no-any-return]


async def trim_periodically(seconds: float = TRIM_SECONDS) -> None:
    """Trim the heap every `seconds`, until cancelled; nothing where glibc is absent."""
    trim = _malloc_trim()
    if trim is None:
        log.info("no malloc_trim in this C library; freed memory stays with the process")
        return
    while True:
        await asyncio.sleep(seconds)
        trim(0)
