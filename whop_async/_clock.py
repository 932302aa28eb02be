"""Time and chance as whop_async reads them.

Time is the running event loop's (``loop.time()``, ``asyncio.sleep``), as asyncio's own
timeouts read it: an event loop with virtual time (``whop_async.testing.run_virtual``,
or looptime) moves it, so rate limits and retries can be tested without waiting.
"""

from __future__ import annotations

import asyncio
import random
import time

import attrs


@attrs.frozen(kw_only=True)
class Clock:
    """What whop_async asks of the outside world besides the network."""

    @staticmethod
    def monotonic() -> float:
        """Seconds that only move forward: the running loop's time."""
        return asyncio.get_running_loop().time()

    @staticmethod
    async def sleep(seconds: float) -> None:
        """Sleep on the running loop."""
        await asyncio.sleep(seconds)

    @staticmethod
    def time() -> float:
        """Wall-clock Unix seconds, to read an HTTP-date ``Retry-After`` with no ``Date``."""
        return time.time()

    @staticmethod
    def random() -> float:
        """A float in [0, 1), for backoff jitter."""
        return random.random()

    @staticmethod
    def virtual() -> bool:
        """True on an event loop whose time is virtual (``whop_async.testing``'s): a
        budget shared through Redis then keeps the loop's time, not Redis's."""
        return bool(getattr(asyncio.get_running_loop(), "virtual_time", False))


CLOCK = Clock()
