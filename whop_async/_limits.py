"""The rate-limit engine: one per client, shared by every call it makes.

A request passes, in order: a concurrency permit, the pause gate, then its operation's
pacer. Answers flow back in: a 429 closes the gate for the server's wait and lowers the
operation's rate; successes raise it again and fund the retry budget.
"""

from __future__ import annotations

import asyncio
import collections
import math
from typing import Any

import attrs

from ._clock import Clock
from ._exceptions import APIStatusError

# After a cut, the rate climbs back by this share of the rate that was refused, per second:
# slow enough to sit just under the server's limit for long stretches, fast enough to
# recover from a cut caused by someone else's burst within a minute.
RECOVERY_PER_SECOND = 0.02
# A cut lands at this share of the rate the server was seen to accept.
CUT_FACTOR = 0.9
MIN_RATE = 0.5
_ACCEPTED_WINDOW = 2.0


@attrs.frozen
class RateLimit:
    """A request budget per operation, e.g. Whop's ``RateLimit(600, per=60.0)``.

    Requests are spread evenly at ``requests / per`` per second, with at most ``burst``
    sent back to back after a quiet spell.

    With ``redis_url``, the budget is shared through Redis by every client, process and
    host that names the same budget (the ``redis`` extra): pacing, the pause after a
    429 and the adapted rate.

    Attributes:
        requests: how many requests the budget allows...
        per: ...in this many seconds (60).
        burst: how many may go at once; defaults to ``min(10, requests)``.
        redis_url: share the budget through this Redis, e.g. ``"redis://cache:6379/0"``.
        key: the budget's name in Redis; defaults to a hash of the API key and base URL
            (never the key itself), so clients with the same key share one budget.
        fallback_share: while Redis cannot be reached, each client paces alone at this
            share of the budget (0.25).

    Raises:
        ValueError: a value is out of range.
    """

    requests: int
    per: float = 60.0
    burst: int | None = attrs.field(default=None, kw_only=True)
    redis_url: str | None = attrs.field(default=None, kw_only=True)
    key: str | None = attrs.field(default=None, kw_only=True)
    fallback_share: float = attrs.field(default=0.25, kw_only=True)

    def __attrs_post_init__(self) -> None:
        if not (isinstance(self.requests, int) and self.requests > 0):
            raise ValueError(f"requests must be a positive whole number, got {self.requests!r}")
        if not (math.isfinite(self.per) and self.per > 0):
            raise ValueError(f"per must be a positive number of seconds, got {self.per!r}")
        if self.burst is not None and not (isinstance(self.burst, int) and self.burst > 0):
            raise ValueError(f"burst must be a positive whole number, got {self.burst!r}")
        if not 0 < self.fallback_share <= 1:
            raise ValueError(f"fallback_share must be in (0, 1], got {self.fallback_share!r}")

    @property
    def rate(self) -> float:
        """Requests per second."""
        return self.requests / self.per

    @property
    def burst_size(self) -> int:
        """The burst in force: ``burst``, or ``min(10, requests)``."""
        return self.burst if self.burst is not None else min(10, self.requests)


# With no known limit, an operation starts with this many requests in flight and one
# more for each answer (doubling every round trip, as TCP's slow start does), so an
# opening wave never meets a small burst allowance all at once; past the last size no
# permit count reaches, the window has done its job and costs nothing more.
SLOW_START_WINDOW = 4
SLOW_START_END = 128


class Pacer:
    """GCRA pacing for one operation, with an adaptive rate.

    ``rate`` None means unpaced: no proactive limit was given and no 429 seen yet; then
    a slow-start window bounds the requests in flight until it outgrows every permit.
    """

    def __init__(self, limit: RateLimit | None, clock: Clock) -> None:
        self._clock = clock
        self._ceiling = limit.rate if limit is not None else math.inf
        self.rate: float | None = limit.rate if limit is not None else None
        self._burst = limit.burst_size if limit is not None else 1
        self._theoretical_arrival = -math.inf
        self._queue = asyncio.Lock()
        self._last_cut = -math.inf
        self._refused_rate = 0.0
        self._last_raise = -math.inf
        self._first_send = math.inf
        self._accepted: collections.deque[float] = collections.deque()
        self._window: int | None = SLOW_START_WINDOW if limit is None else None
        self._in_flight = 0
        self._slot_freed = asyncio.Event()

    def try_turn(self, gate: Gate) -> float | None:
        """Take a turn at once if nothing stands in the way; the moment taken, else None."""
        now = self._clock.monotonic()
        if now < gate.resume_at or self._queue.locked():
            return None
        if self.rate is not None:
            interval = 1.0 / self.rate
            if now < self._theoretical_arrival - (self._burst - 1) * interval:
                return None
            self._theoretical_arrival = max(self._theoretical_arrival, now) + interval
        elif self._window is not None:
            if self._in_flight >= self._window:
                return None
            self._in_flight += 1
        return self._sent_now(now)

    async def wait_turn(self, gate: Gate) -> float:
        """Wait until this operation may send, in arrival order; the moment it may."""
        async with self._queue:
            while True:
                await gate.wait()
                now = self._clock.monotonic()
                if self.rate is None:
                    if self._window is None:
                        return self._sent_now(now)
                    if self._in_flight < self._window:
                        self._in_flight += 1
                        return self._sent_now(now)
                    self._slot_freed.clear()
                    await self._slot_freed.wait()
                    continue
                interval = 1.0 / self.rate
                earliest = self._theoretical_arrival - (self._burst - 1) * interval
                if now >= earliest:
                    self._theoretical_arrival = max(self._theoretical_arrival, now) + interval
                    return self._sent_now(now)
                # Woken up, it checks again: the gate may have closed, the rate changed.
                await self._clock.sleep(earliest - now)

    def _sent_now(self, now: float) -> float:
        if now < self._first_send:
            self._first_send = now
        return now

    def release(self) -> None:
        """An attempt let go by this pacer has ended, answered or not."""
        if self._window is not None and self._in_flight:
            self._in_flight -= 1
            self._slot_freed.set()

    def _end_slow_start(self) -> None:
        self._window = None
        self._slot_freed.set()

    def on_success(self) -> None:
        """An answer came back accepted: remember it, and climb back after a cut."""
        if self._window is not None:
            self._window += 1
            if self._window >= SLOW_START_END:
                self._end_slow_start()
        now = self._clock.monotonic()
        accepted = self._accepted
        accepted.append(now)
        while accepted[0] < now - _ACCEPTED_WINDOW:
            accepted.popleft()
        if self.rate is None or self.rate >= self._ceiling:
            return
        elapsed, self._last_raise = now - self._last_raise, now
        step = self._refused_rate * RECOVERY_PER_SECOND * elapsed
        self.rate = min(self._ceiling, self.rate + step)

    async def on_rate_limited(self, sent_at: float, pause: float | None = None) -> None:
        """A 429 came back: lower the rate to just under what the server accepted.

        Only a request sent after the last cut tells anything about the current rate.
        ``pause`` is the server's wait: what it accepted lately, it accepted over that
        span and this wait, which keeps an opening burst from passing for a rate.
        """
        if sent_at < self._last_cut:
            return
        self._end_slow_start()
        now = self._clock.monotonic()
        accepted = self._accepted_rate(now, pause or 0.0)
        current = self.rate if self.rate is not None else accepted
        self._refused_rate = max(MIN_RATE, min(current, accepted) if accepted else current)
        self.rate = max(MIN_RATE, CUT_FACTOR * self._refused_rate)
        self._last_cut = self._last_raise = now
        # No burst straight after being refused: the next send waits a full interval.
        self._theoretical_arrival = now + self._burst / self.rate

    def _accepted_rate(self, now: float, pause: float) -> float:
        since = max(now - _ACCEPTED_WINDOW, self._first_send)
        count = sum(1 for moment in self._accepted if moment >= since)
        span = now - since + pause
        return count / span if count and span > 0 else 0.0


class Gate:
    """The client-wide pause after a 429: nothing is sent until ``resume_at``."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.resume_at = -math.inf

    def close_for(self, seconds: float) -> None:
        """Hold every request back for ``seconds`` from now (never shortens a pause)."""
        self.resume_at = max(self.resume_at, self._clock.monotonic() + seconds)

    async def wait(self) -> None:
        """Return once the gate is open; checked again after every sleep."""
        while (remaining := self.resume_at - self._clock.monotonic()) > 0:
            await self._clock.sleep(remaining)


class RetryBudget:
    """Caps retries at a share of successes, so an outage does not multiply traffic.

    Each success deposits ``ratio`` of a retry, each retry withdraws one; the balance
    starts at ``reserve`` (so a quiet client can retry its first failures) and never
    exceeds ``cap`` (so an outage after a long good run is noticed within ``cap`` retries).
    """

    def __init__(self, *, ratio: float = 0.2, reserve: float = 10.0, cap: float = 20.0) -> None:
        self._ratio = ratio
        self._cap = cap
        self._balance = reserve

    def deposit(self) -> None:
        """One call succeeded."""
        self._balance = min(self._cap, self._balance + self._ratio)

    def withdraw(self) -> bool:
        """True, and one retry spent, when the budget allows a retry."""
        if self._balance < 1.0:
            return False
        self._balance -= 1.0
        return True


@attrs.frozen(kw_only=True)
class ClientStats:
    """What a client has been answered so far, e.g. for a progress display.

    Attributes:
        answered: HTTP answers received, every attempt counted.
        rate_limited: of those, answers of 429.
    """

    answered: int
    rate_limited: int


class Engine:
    """Permits, gate, pacers per operation and the retry budget of one client.

    ``budget_key`` names the budget in Redis when the limit is shared.
    """

    def __init__(
        self, limit: RateLimit | None, clock: Clock, *, max_in_flight: int, budget_key: str
    ) -> None:
        self._limit = limit
        self._clock = clock
        self._shared: Any = None
        if limit is not None and limit.redis_url is not None:
            # Imported only here: without a shared budget, redis is never needed.
            from ._shared import RedisBudget

            self._shared = RedisBudget(limit, limit.key or budget_key, clock)
        self.permits = asyncio.Semaphore(max_in_flight)
        self.gate = Gate(clock)
        self.retry_budget = RetryBudget()
        self._pacers: dict[str, Pacer] = {}
        self._answered = 0
        self._rate_limited = 0

    @property
    def stats(self) -> ClientStats:
        """The counters so far."""
        return ClientStats(answered=self._answered, rate_limited=self._rate_limited)

    def pacer(self, operation: str) -> Pacer:
        """The pacer of ``operation``, created on first use."""
        pacer = self._pacers.get(operation)
        if pacer is None:
            pacer = self._pacers[operation] = self._new_pacer(operation)
        return pacer

    def _new_pacer(self, operation: str) -> Pacer:
        if self._shared is None:
            return Pacer(self._limit, self._clock)
        from ._shared import SharedPacer

        # Same methods as a Pacer; typed as one so the hot path stays monomorphic.
        return SharedPacer(self._shared, operation, self._clock)  # type: ignore[return-value]

    async def close(self) -> None:
        """Release what the engine holds outside the process (a Redis connection)."""
        if self._shared is not None:
            await self._shared.close()

    def on_success(self, operation: str) -> None:
        """A 2xx answer."""
        self._answered += 1
        self.pacer(operation).on_success()
        self.retry_budget.deposit()

    async def on_error(self, operation: str, sent_at: float, error: APIStatusError) -> None:
        """A 429, or a 503 with a wait, pauses everyone; a 429 also lowers the rate."""
        self._answered += 1
        rate_limited = error.status_code == 429
        self._rate_limited += rate_limited
        pause = error.retry_after if rate_limited or error.status_code == 503 else None
        if pause is not None:
            self.gate.close_for(pause)
        if rate_limited:
            await self.pacer(operation).on_rate_limited(sent_at, pause)
        elif pause is not None and self._shared is not None:
            await self._shared.rate_limited(operation, None, pause)
