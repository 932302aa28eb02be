"""GCRA pacing: requests spread evenly at a rate, with a burst allowance after a quiet
spell (the generic cell rate algorithm, as token buckets keep it, in one number).

Pure: no clock, no I/O; the time is an argument.
"""

from __future__ import annotations

import math

import attrs


@attrs.define
class Pacing:
    """The theoretical arrival time (``tat``) of the next request at the current rate."""

    tat: float = -math.inf

    def take(self, now: float, rate: float, burst: int) -> float:
        """0, and the turn taken, or how many seconds until one is due."""
        if math.isinf(rate):
            return 0.0
        interval = 1.0 / rate
        earliest = self.tat - (burst - 1) * interval
        if now < earliest:
            return earliest - now
        self.tat = max(self.tat, now) + interval
        return 0.0

    def no_burst(self, now: float, rate: float, burst: int) -> None:
        """The next request waits a full interval, whatever allowance had built up:
        after a pause for a refusal, a burst would meet the same limit at once."""
        if not math.isinf(rate):
            self.tat = max(self.tat, now + burst / rate)
