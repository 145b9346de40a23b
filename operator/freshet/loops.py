"""What every reconcile loop (a policy's, a set's) does between steps."""

from __future__ import annotations

import asyncio


async def sleep_or_wake(wake: asyncio.Event, delay: float) -> None:
    """Return when `wake` is set or after `delay` seconds, whichever comes first.

    A timer that sets the event, not `asyncio.wait_for`, which wraps the wait in a
    task of its own: one more task, future and coroutine per sleeping policy."""
    timer = asyncio.get_running_loop().call_later(delay, wake.set)
    try:
        await wake.wait()
    finally:
        timer.cancel()
