"""The rate-limit engine of one client: permits, and one limiter per operation.

A request passes, in order: a concurrency permit, then its operation's limiter (the
gate, pacing, and with no known limit the slow-start window). Answers flow back in:
an accepted probe opens the gate, a refusal closes it and may cut the rate, and
accepted answers widen the slow-start window. The rules themselves live in ``rules.py``;
this module only waits for what they decide, in order of arrival.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections.abc import Awaitable
from typing import Protocol, TypeVar

import attrs

from .._clock import Clock
from .limit import ClientStats, RateLimit
from .local import LocalStore
from .rules import Decision, OperationBudget, SlowStart, Turn, WaitHint

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Store(Protocol):
    """Where operation budgets are kept: in memory, or in Redis."""

    nap: float

    async def update(self, operation: str, change: _Change[T]) -> T: ...

    async def close(self) -> None: ...


class _Change(Protocol[T_co]):
    def __call__(self, budget: OperationBudget, now: float, /) -> T_co: ...


class WaitTooLong(Exception):
    """A call's turn would come after its deadline: it gives up instead of waiting."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"the next turn is {wait:.1f} s away")
        self.wait = wait


@attrs.frozen
class Ticket:
    """A turn taken: when (in the store's time), and whether it is the gate's probe."""

    sent_at: float
    probe: bool
    windowed: bool


def _take(budget: OperationBudget, now: float) -> Decision:
    return budget.take(now)


class OperationLimiter:
    """The turns of one operation's requests, in order of arrival: a retried call keeps
    its place ahead of calls that arrived after it. One request at a time asks the
    store; the others queue behind it."""

    def __init__(
        self,
        operation: str,
        store: Store,
        local: OperationBudget | None,
        clock: Clock,
        *,
        slow_start: SlowStart | None,
        max_server_wait: float,
    ) -> None:
        self.operation = operation
        self._store = store
        self._local = local
        self._clock = clock
        self._slow_start = slow_start
        self._cap = max_server_wait
        self._busy = False
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()
        self._changed = asyncio.Event()
        self._unreported = 0

    def try_turn(self) -> Ticket | None:
        """A turn at once when nothing stands in the way, else None (nothing taken)."""
        local = self._local
        if local is None or self._busy or self._waiters or not self._window_has_room():
            return None
        now = self._clock.monotonic()
        decision = local.take(now)
        if decision.turn is Turn.WAIT:
            return None
        return self._ticket(decision)

    async def turn(self, order: int, deadline: float) -> Ticket:
        """Wait for this request's turn; ``order`` places it in the queue.

        Raises:
            WaitTooLong: the turn would come after ``deadline`` (monotonic seconds).
        """
        await self._queue_up(order)
        try:
            while True:
                if not self._window_has_room():
                    await self._nap(math.inf, deadline, wake_early=True)
                    continue
                decision = await self._store.update(self.operation, self._reporting(_take))
                if decision.turn is not Turn.WAIT:
                    return self._ticket(decision)
                await self._nap(decision.wait, deadline, wake_early=decision.gated)
        finally:
            self._pass_turn_on()

    def release(self, ticket: Ticket) -> None:
        """The attempt of ``ticket`` has ended, answered or not."""
        if ticket.windowed and self._slow_start is not None:
            self._slow_start.release()
            self._changed.set()

    def accepted(self, ticket: Ticket) -> Awaitable[None] | None:
        """The server accepted the request; what must be awaited, if anything.

        A shared budget hears of accepted answers with this process's next turn, so an
        accepted answer costs no round trip to Redis.
        """
        if self._slow_start is not None:
            self._slow_start.accepted()
        local = self._local
        if local is not None and not ticket.probe:
            local.estimate.note_accepted(1, self._clock.monotonic())
            return None
        self._unreported += 1
        if not ticket.probe:
            return None
        return self._update_and_wake(
            self._reporting(lambda budget, now: budget.accepted(0, True, now))
        )

    async def refused(self, ticket: Ticket, hint: WaitHint) -> None:
        """The server refused the request (429) and hinted how long to wait."""
        cap = self._cap

        def refuse(budget: OperationBudget, now: float) -> bool:
            return budget.refused(ticket.sent_at, ticket.probe, now, hint, cap)

        news = await self._store.update(self.operation, self._reporting(refuse))
        if self._slow_start is not None:
            if news:
                self._slow_start.refused()
            if self._local is not None and self._local.paced:
                self._slow_start = None  # paced now: the window's job is done
        self._changed.set()

    def failed(self, ticket: Ticket) -> Awaitable[None] | None:
        """No answer of the server's (a timeout, a drop, a 5xx); what must be awaited."""
        if not ticket.probe:
            return None
        return self._update_and_wake(lambda budget, now: budget.failed(True, now))

    def _reporting(self, change: _Change[T]) -> _Change[T]:
        """``change``, also telling the budget of the accepted answers not told yet."""
        count = self._unreported
        if not count:
            return change
        self._unreported = 0

        def report_then_change(budget: OperationBudget, now: float) -> T:
            budget.accepted(count, False, now)
            return change(budget, now)

        return report_then_change

    async def _update_and_wake(self, change: _Change[None]) -> None:
        await self._store.update(self.operation, change)
        self._changed.set()

    def _ticket(self, decision: Decision) -> Ticket:
        window = self._slow_start
        if window is not None:
            window.admit()
        return Ticket(decision.at, decision.turn is Turn.PROBE, window is not None)

    def _window_has_room(self) -> bool:
        return self._slow_start is None or self._slow_start.has_room()

    async def _nap(self, seconds: float, deadline: float, *, wake_early: bool) -> None:
        now = self._clock.monotonic()
        if now >= deadline or (math.isfinite(seconds) and now + seconds > deadline):
            raise WaitTooLong(seconds)
        seconds = min(seconds, self._store.nap, deadline - now)
        if not wake_early:
            await self._clock.sleep(seconds)
            return
        self._changed.clear()
        if math.isinf(seconds):
            await self._changed.wait()
            return
        woken = asyncio.ensure_future(self._changed.wait())
        slept = asyncio.ensure_future(self._clock.sleep(seconds))
        try:
            await asyncio.wait({woken, slept}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
            slept.cancel()

    async def _queue_up(self, order: int) -> None:
        if not self._busy and not self._waiters:
            self._busy = True
            return
        called: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (order, next(self._arrivals), called))
        try:
            await called
        except asyncio.CancelledError:
            if called.done() and not called.cancelled():
                self._pass_turn_on()  # handed the turn just as it was cancelled
            raise

    def _pass_turn_on(self) -> None:
        while self._waiters:
            _, _, called = heapq.heappop(self._waiters)
            if not called.done():
                called.set_result(None)
                return
        self._busy = False


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


class Engine:
    """Permits, one limiter per operation and the retry budget of one client.

    ``budget_key`` names the budget in Redis when the limit is shared.
    """

    def __init__(
        self,
        limit: RateLimit | None,
        clock: Clock,
        *,
        max_in_flight: int,
        budget_key: str,
        max_server_wait: float,
    ) -> None:
        self._clock = clock
        self._limit = limit
        self._max_server_wait = max_server_wait
        self._local: LocalStore | None = None
        self._store: Store
        if limit is not None and limit.redis_url is not None:
            # Imported only here: without a shared budget, redis is never needed.
            from .redis import RedisStore

            self._store = RedisStore(limit, limit.key or budget_key, clock)
        else:
            self._store = self._local = LocalStore(limit, clock.monotonic)
        self.permits = asyncio.Semaphore(max_in_flight)
        self.retry_budget = RetryBudget()
        self._limiters: dict[str, OperationLimiter] = {}
        self._orders = itertools.count()
        self._answered = 0
        self._rate_limited = 0

    @property
    def stats(self) -> ClientStats:
        """The counters so far."""
        return ClientStats(answered=self._answered, rate_limited=self._rate_limited)

    def limiter(self, operation: str) -> OperationLimiter:
        """The limiter of ``operation``, created on first use."""
        limiter = self._limiters.get(operation)
        if limiter is None:
            limiter = self._limiters[operation] = OperationLimiter(
                operation,
                self._store,
                None if self._local is None else self._local.budget(operation),
                self._clock,
                # An unknown limit is approached in a widening window of requests.
                slow_start=SlowStart() if self._limit is None else None,
                max_server_wait=self._max_server_wait,
            )
        return limiter

    def next_order(self) -> int:
        """A call's place in the queues, kept by all of its attempts."""
        return next(self._orders)

    def count_answer(self, rate_limited: bool) -> None:
        """Count an HTTP answer for ``stats``."""
        self._answered += 1
        self._rate_limited += rate_limited

    async def close(self) -> None:
        """Release what the engine holds outside the process (a Redis connection)."""
        await self._store.close()
