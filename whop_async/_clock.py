"""Time and chance as whop_async reads them.

Time is the running event loop's (``loop.time()``, ``asyncio.sleep``), as asyncio's own
timeouts read it: an event loop with virtual time (``whop_async.testing.run_virtual``,
or looptime) moves it, so rate limits and retries can be tested without waiting.
"""

from __future__ import annotations

import asyncio
import random as chance
import time as wall
from collections.abc import Callable


class Clock:
    """What one client asks of the outside world besides the network.

    Attributes:
        monotonic: seconds that only move forward: the running loop's time, looked up
            on first use (a client runs on one loop, as its HTTP session does).
    """

    __slots__ = ("monotonic",)

    def __init__(self) -> None:
        self.monotonic: Callable[[], float] = self._first_monotonic

    def _first_monotonic(self) -> float:
        self.monotonic = asyncio.get_running_loop().time
        return self.monotonic()

    @staticmethod
    async def sleep(seconds: float) -> None:
        """Sleep on the running loop."""
        await asyncio.sleep(seconds)

    @staticmethod
    def time() -> float:
        """Wall-clock Unix seconds, to read an HTTP-date ``Retry-After`` with no ``Date``."""
        return wall.time()

    @staticmethod
    def random() -> float:
        """A float in [0, 1), for backoff jitter."""
        return chance.random()

    @staticmethod
    def virtual() -> bool:
        """True on an event loop whose time is virtual (``whop_async.testing``'s): a
        budget shared through Redis then keeps the loop's time, not Redis's."""
        return bool(getattr(asyncio.get_running_loop(), "virtual_time", False))
