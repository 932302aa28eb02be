"""An event loop whose clock jumps ahead whenever it would otherwise wait.

whop_async reads time from the running loop, so on this loop a test runs the real
client through seconds or minutes of rate limits, outages and retries in milliseconds,
with every timing exact: the loop's time moves only when nothing is left to do but wait
for the next timer. Real I/O that takes real time (a socket, a Redis server) is waited
for in real time: ``io_pending`` tells the loop when some is outstanding, and virtual
time stands still meanwhile, so a busy machine changes nothing but how long the test
takes. A FakeWhop given ``clock=loop.time`` keeps the same time.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_IO_POLL = 1.0


class _JumpingSelector(selectors.DefaultSelector):
    def __init__(self, io_pending: Callable[[], bool]) -> None:
        super().__init__()
        self.io_pending = io_pending
        self.now = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[Any, int]]:
        events: list[tuple[Any, int]] = super().select(0)
        if events or timeout == 0:
            return events
        if self.io_pending() or timeout is None:
            # Something real is on its way (or nothing is scheduled at all): wait for it
            # in real time, without moving the clock.
            real: list[tuple[Any, int]] = super().select(_IO_POLL)
            return real
        self.now += timeout
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop on virtual time, starting at 0.

    Args:
        io_pending: True while real I/O is outstanding (virtual time then stands still
            and the loop waits for it in real time); by default none ever is.
    """

    # Read by whop_async: a budget shared through Redis keeps this loop's time.
    virtual_time = True

    def __init__(self, io_pending: Callable[[], bool] = lambda: False) -> None:
        self._jumping = _JumpingSelector(io_pending)
        super().__init__(self._jumping)

    def time(self) -> float:
        return self._jumping.now


def run_virtual(
    main: Coroutine[Any, Any, T], *, io_pending: Callable[[], bool] = lambda: False
) -> T:
    """Run ``main`` to the end on a fresh VirtualTimeLoop, and return what it returns:

        def test_a_minute_of_rate_limits() -> None:
            run_virtual(main())

    ``io_pending`` tells the loop when real I/O is outstanding (see VirtualTimeLoop).
    """
    with asyncio.Runner(loop_factory=lambda: VirtualTimeLoop(io_pending)) as runner:
        return runner.run(main)
