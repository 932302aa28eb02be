"""GCRA pacing: requests spread evenly at a rate, with a burst allowance after a quiet
spell (the generic cell rate algorithm, as token buckets keep it, in one number).

A budget in one process answers "now" or "wait". A budget shared by many processes
also books the next turn (``shared.BOOKED_AHEAD``: the asker sleeps until it and
sends without asking again), and tells askers whose turn lies further ahead when to ask again, an
interval apart in the order they asked: waiting workers are woken one by one, never
all at once, and served before those who ask after them.

Pure: no clock, no I/O; the time is an argument.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import attrs

# A turn due within this many seconds is due now: timers and sums of floats land a hair
# either side of a moment, and a wait of a hair would be asked about again and again.
EARLY = 1e-6


class Slot(NamedTuple):
    """A turn ``taken`` at ``at``, or, not taken, the moment ``at`` to ask again."""

    taken: bool
    at: float


@attrs.define
class Pacing:
    """The theoretical arrival time (``tat``) of the next request at the current rate,
    and, for a shared budget, when the last asker told to come back is due
    (``queue_at``)."""

    tat: float = -math.inf
    queue_at: float = -math.inf

    def take(
        self, now: float, rate: float, burst: int, ahead: int = 0, queued: bool = False
    ) -> Slot:
        """The next turn if it is due now, or among the next ``ahead`` turns (booked:
        its moment may be ahead of ``now``); else when to ask again. ``queued``: the
        asker was told to come back, and is served before those who were not."""
        if math.isinf(rate):
            return Slot(True, now)
        interval = 1.0 / rate
        within = ahead * interval
        due = max(now, self.tat - (burst - 1) * interval)
        # A newcomer goes behind those told to come back (each comes back as a turn
        # opens, and finds it taken by nobody else); whoever is told to come back goes
        # to the end of the line, so that they come back an interval apart.
        newcomer = ahead > 0 and not queued
        ask_at = due - within
        if ask_at > now + EARLY or (newcomer and self.queue_at > now):
            if ahead:
                ask_at = max(ask_at, self.queue_at + interval)
                self.queue_at = ask_at
            return Slot(False, ask_at)
        self.tat = max(self.tat, due) + interval
        return Slot(True, due)

    def no_burst(self, now: float, rate: float, burst: int) -> None:
        """The next request waits a full interval, whatever allowance had built up:
        after a pause for a refusal, a burst would meet the same limit at once."""
        if not math.isinf(rate):
            self.tat = max(self.tat, now + burst / rate)

    def owe(self, now: float, seconds: float, rate: float, burst: int) -> None:
        """Turns spent elsewhere count: ``seconds`` of them at this rate (what a worker
        paced on its own while the shared budget could not be reached), after an
        allowance already spent (they were sent while others paced too)."""
        self.no_burst(now, rate, burst)
        if not math.isinf(rate):
            self.tat += seconds

    def owed(self, now: float, share: float) -> float:
        """What this budget, paced at ``share`` of a shared one, still owes it: the
        seconds its next turn is ahead of ``now``, at the shared rate."""
        return max(0.0, self.tat - now) * share
