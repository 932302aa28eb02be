"""How FakeWhop limits an operation: the budget over time and the three ways to keep it.

Times are seconds since FakeWhop's first request (its clock starts there), so a
window, a drop or a neighbour's span lines up with what a client sees.
"""

from __future__ import annotations

import bisect
import collections
import math
from collections.abc import Iterator
from typing import Literal, Protocol

import attrs

Limiter = Literal["window", "bucket", "sliding"]
LIMITERS: tuple[Limiter, ...] = ("window", "bucket", "sliding")
# Float noise must not keep a request out at the very moment its wait ends.
_HAIR = 1e-9


@attrs.frozen
class Span:
    """A stretch of time: from ``start``, for ``length`` seconds."""

    start: float
    length: float = math.inf

    @property
    def end(self) -> float:
        return self.start + self.length

    def holds(self, moment: float) -> bool:
        return self.start <= moment < self.end

    def overlap(self, start: float, end: float) -> float:
        """How many seconds of ``[start, end)`` fall inside the span."""
        return max(0.0, min(end, self.end) - max(start, self.start))


@attrs.frozen
class Budget:
    """What one operation may spend over time: ``limit`` requests per ``per`` seconds,
    ``factor`` times fewer during ``drop``, less what a neighbour sharing the key
    spends (``neighbour_rate`` a second during ``neighbour``)."""

    limit: int
    per: float
    drop: Span | None = None
    factor: float = 1.0
    neighbour: Span | None = None
    neighbour_rate: float = 0.0

    def limit_at(self, moment: float) -> float:
        if self.drop is not None and self.drop.holds(moment):
            return self.limit / self.factor
        return float(self.limit)

    def neighbour_spent(self, start: float, end: float) -> float:
        """The neighbour's requests in ``[start, end)``."""
        if self.neighbour is None:
            return 0.0
        return self.neighbour_rate * self.neighbour.overlap(start, end)

    def changes(self) -> list[float]:
        """Every moment the limit or the neighbour starts or stops, in order."""
        spans = (span for span in (self.drop, self.neighbour) if span is not None)
        return sorted({edge for span in spans for edge in (span.start, span.end)} - {math.inf})

    def net_rate(self, moment: float) -> float:
        """Requests a second the budget gains at ``moment``: the limit's rate less the
        neighbour's, below 0 while the neighbour asks faster than that."""
        active = self.neighbour is not None and self.neighbour.holds(moment)
        return self.limit_at(moment) / self.per - (self.neighbour_rate if active else 0)

    def stretches(self, start: float) -> Iterator[tuple[float, float, float]]:
        """(from, until, net rate) from ``start`` on; the last never ends."""
        for until in [edge for edge in self.changes() if edge > start] + [math.inf]:
            yield start, until, self.net_rate(start)
            start = until


class Keeper(Protocol):
    """One operation's limit, kept one way."""

    def admit(self, moment: float) -> float | None:
        """None when a request at ``moment`` may pass (it is counted), else the seconds
        until one may."""


class FixedWindow:
    """Whop-style: ``limit`` requests in each window of ``per`` seconds, the first
    starting at the first request. A neighbour's share of a window is held back from
    its start."""

    def __init__(self, budget: Budget) -> None:
        self._budget = budget
        self._window, self._used = 0, 0

    def admit(self, moment: float) -> float | None:
        window = math.floor((moment + _HAIR) / self._budget.per)
        if window != self._window:
            self._window, self._used = window, 0
        if self._used + 1 <= self._allowance(window, moment):
            self._used += 1
            return None
        following = window + 1
        while self._allowance(following, following * self._budget.per) < 1:
            following += 1
        return following * self._budget.per - moment

    def _allowance(self, window: int, moment: float) -> float:
        start = window * self._budget.per
        return self._budget.limit_at(moment) - self._budget.neighbour_spent(
            start, start + self._budget.per
        )


class TokenBucket:
    """A bucket of ``burst`` tokens refilled at the budget's rate. A neighbour takes
    its tokens as they come, so it slows the refill, and a burst of it empties the
    bucket."""

    def __init__(self, budget: Budget, burst: int) -> None:
        self._budget, self._burst = budget, burst
        self._tokens, self._stamp = float(burst), 0.0

    def admit(self, moment: float) -> float | None:
        for begin, until, net in self._budget.stretches(self._stamp):
            if begin >= moment:
                break
            self._tokens = self._after(self._tokens, net, min(until, moment) - begin)
        self._stamp = moment
        if self._tokens >= 1 - _HAIR:
            self._tokens = max(0.0, self._tokens - 1)
            return None
        return self._time_to_refill(moment)

    def _after(self, tokens: float, net: float, seconds: float) -> float:
        # Within a stretch the tokens only rise or only fall, so clamping at its end
        # is clamping all along.
        return min(float(self._burst), max(0.0, tokens + net * seconds))

    def _time_to_refill(self, moment: float) -> float:
        tokens = self._tokens
        for begin, until, net in self._budget.stretches(moment):
            if net > 0 and tokens + net * (until - begin) >= 1:
                return begin + (1 - tokens) / net - moment
            tokens = self._after(tokens, net, until - begin)
        raise AssertionError("the last stretch refills: FakeWhop checks the neighbour's rate")


class SlidingLog:
    """At most ``limit`` requests in any ``per`` seconds, the neighbour's counted too."""

    def __init__(self, budget: Budget) -> None:
        self._budget = budget
        self._log: collections.deque[float] = collections.deque()

    def admit(self, moment: float) -> float | None:
        while self._log and self._log[0] <= moment - self._budget.per + _HAIR:
            self._log.popleft()
        if self._room(moment, len(self._log)) >= 1 - _HAIR:
            self._log.append(moment)
            return None
        return self._next_room(moment) - moment

    def _room(self, moment: float, ours: int) -> float:
        spent = self._budget.neighbour_spent(moment - self._budget.per, moment) + ours
        return self._budget.limit_at(moment) - spent

    def _next_room(self, moment: float) -> float:
        """The first moment with room for one more request. Between two edges (one of
        ours leaving the log, the limit or the neighbour changing) only the neighbour's
        count moves, and linearly, so the answer is an edge or on the line between."""
        per = self._budget.per
        edges = {stamp + per for stamp in self._log}
        edges |= {edge + shift for edge in self._budget.changes() for shift in (0.0, per)}
        ordered = sorted(edge for edge in edges if edge > moment)
        for begin, until in zip([moment, *ordered], [*ordered, math.inf], strict=True):
            ours = len(self._log) - bisect.bisect_right(self._log, begin - per)
            room_at_start = self._room(begin, ours)
            if room_at_start >= 1 - _HAIR:
                return begin
            if until == math.inf:
                continue
            room_at_end = self._budget.limit_at(begin) - ours
            room_at_end -= self._budget.neighbour_spent(until - per, until)
            if room_at_end >= 1 - _HAIR:
                return begin + (1 - room_at_start) / (room_at_end - room_at_start) * (until - begin)
        raise AssertionError("the log empties: FakeWhop checks the neighbour's rate")


def keeper(limiter: Limiter, budget: Budget, burst: int) -> Keeper:
    """A fresh keeper of ``budget`` in the style ``limiter``."""
    if limiter == "bucket":
        return TokenBucket(budget, burst)
    if limiter == "sliding":
        return SlidingLog(budget)
    return FixedWindow(budget)
