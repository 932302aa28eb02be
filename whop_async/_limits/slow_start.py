"""Slow start: with no limit known, at most ``window`` requests in flight.

One more for each accepted answer (doubling every round trip, as TCP's slow start
does): an opening wave never meets a small burst allowance all at once. Its first
refusal hands the pace to the rate estimate (from then on the limiter is paced and the
window is dropped); halving the window after a refusal matters only while nothing was
accepted to pace by. Once the window outgrows every permit it costs nothing.

It counts requests in flight, which only the process that sends them can count, so it
stays in memory even when the budget is shared.
"""

from __future__ import annotations

import attrs

# bucket-ms, rate_limit=None: 11 % of requests refused with 64 at once, 3.7 % from 4.
FIRST_WINDOW = 4
# Past this window no permit count is reached (a session has 100 connections): the
# window has done its job.
LAST_WINDOW = 128


@attrs.define
class SlowStart:
    """The window, and the requests in flight under it."""

    window: int = FIRST_WINDOW
    in_flight: int = 0
    ended: bool = False

    def has_room(self) -> bool:
        """True when one more request may go."""
        return self.ended or self.in_flight < self.window

    def admit(self) -> None:
        """A request went: count it in flight."""
        if not self.ended:
            self.in_flight += 1

    def release(self) -> None:
        """A request admitted by ``admit`` has ended."""
        if not self.ended and self.in_flight:
            self.in_flight -= 1

    def accepted(self) -> None:
        """An accepted answer: one more may be in flight."""
        if not self.ended:
            self.window += 1
            self.ended = self.window >= LAST_WINDOW

    def refused(self) -> None:
        """A refusal: half as many in flight as now (an ended window starts again)."""
        self.window = max(1, min(self.window, self.in_flight) // 2)
        self.ended = False
