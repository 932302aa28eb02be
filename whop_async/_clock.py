"""Time and chance, in one replaceable place, so retries can be tested without waiting."""

from __future__ import annotations

import asyncio
import random
import time as clocks
from collections.abc import Awaitable, Callable

import attrs


@attrs.frozen(kw_only=True)
class Clock:
    """What whop_async asks of the outside world besides the network.

    Attributes:
        sleep: awaited for every wait between attempts.
        time: wall-clock Unix seconds, to read HTTP-date ``Retry-After`` values.
        monotonic: seconds that only move forward, for pacing and deadlines.
        random: a float in [0, 1), for backoff jitter.
        shared_time: the time a budget shared through Redis is kept in; None (the
            default) takes Redis's own clock, so hosts whose clocks differ agree.
    """

    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    time: Callable[[], float] = clocks.time
    monotonic: Callable[[], float] = clocks.monotonic
    random: Callable[[], float] = random.random
    shared_time: Callable[[], float] | None = None
