"""The rate-limit engine of one client: permits, one limiter per operation, and what
the whole client shares (the outage breaker, the retry budget, news of a fatal error).

A request passes, in order: a concurrency permit, the breaker (for calls that wait out
an outage), then its operation's limiter (the gate, pacing, and with no known limit the
slow-start window). Answers flow back in: an accepted probe opens the gate, a refusal
closes it and may cut the rate, failures in a row trip the breaker and any answer
resets it. The rules themselves live in ``rules.py``; this module only waits for what
they decide, in order of arrival.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import itertools
import logging
import math
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import NamedTuple, Protocol, TypeVar

import attrs

from .._clock import Clock
from .limit import ClientStats, RateLimit
from .local import LocalStore
from .rules import Breaker, Decision, OperationBudget, RetryBudget, SlowStart, Turn, WaitHint

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

logger = logging.getLogger("whop_async")


class Store(Protocol):
    """Where operation budgets are kept: in memory, or in Redis."""

    nap: float

    async def update(self, operation: str, change: _Change[T]) -> T: ...

    async def close(self) -> None: ...


class _Change(Protocol[T_co]):
    def __call__(self, budget: OperationBudget, now: float, /) -> T_co: ...


class WaitTooLong(Exception):
    """A call's turn would come after one of its bounds: it gives up instead of waiting.

    ``bound`` says which: ``"deadline"`` (the call's own) or ``"outage"`` (the longest
    outage it waits through).
    """

    def __init__(self, wait: float, bound: str) -> None:
        super().__init__(f"the next turn is {wait:.1f} s away, past the call's {bound}")
        self.wait = wait
        self.bound = bound


class Stopped(Exception):
    """The call's run stopped while the call waited for its turn."""


@attrs.frozen
class Patience:
    """How long, and through what, one call waits for its turns.

    Attributes:
        deadline: monotonic time after which it gives up waiting (WaitTooLong).
        outages: it waits out a tripped breaker (bulk calls do), for at most
            ``max_outage`` seconds after the trip; other calls are not held by it.
        stop: set when the call's run stops: a wait ends at once (Stopped).
    """

    deadline: float = math.inf
    outages: bool = False
    max_outage: float = math.inf
    stop: asyncio.Event | None = None


PATIENT = Patience()


class Ticket(NamedTuple):
    """A turn taken: when (in the store's time), and which probes it carries. A tuple:
    every request takes one."""

    sent_at: float
    probe: bool
    windowed: bool
    breaker_probe: bool = False


class _Waiter:
    """A call queued for its turn: woken (``called``) with a turn handed on, or with
    None to become the head; ``gone`` once it gave up waiting."""

    __slots__ = ("called", "gone", "handed", "patience")

    def __init__(self, patience: Patience) -> None:
        self.patience = patience
        self.called = asyncio.Event()
        self.handed: Ticket | None = None
        self.gone = False


# Waiting for room in the slow-start window: until an answer frees a slot.
_UNTIL_A_SLOT_FREES = Decision(Turn.WAIT, math.inf, gated=True, firm=False)


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
        engine: Engine,
        *,
        slow_start: SlowStart | None,
        max_server_wait: float,
    ) -> None:
        self.operation = operation
        self._store = store
        self._local = local
        self._engine = engine
        self._clock = engine.clock
        self._slow_start = slow_start
        self._cap = max_server_wait
        self._busy = False
        self._waiters: list[tuple[int, int, _Waiter]] = []
        self._arrivals = itertools.count()
        self.changed = asyncio.Event()
        self._unreported = 0

    def try_turn(self, waits_out_outages: bool) -> Ticket | None:
        """A turn at once when nobody queues and nothing stands in the way, else None
        (nothing taken)."""
        if self._busy or self._waiters:
            return None
        return self._turn_now(waits_out_outages)

    def _turn_now(self, waits_out_outages: bool) -> Ticket | None:
        """A turn at once from a local budget that has one to give, else None."""
        local = self._local
        if (
            local is None
            or not self._window_has_room()
            or (waits_out_outages and not self._engine.breaker.passing)
        ):
            return None
        decision = local.take(self._clock.monotonic())
        if decision.turn is Turn.WAIT:
            return None
        return self._ticket(decision, breaker_probe=False)

    async def turn(self, order: int, patience: Patience) -> Ticket:
        """Wait for this request's turn; ``order`` (its call's arrival) places it in the
        queue.

        Raises:
            WaitTooLong: the turn would come after one of the call's bounds.
            Stopped: the call's run stopped meanwhile.
        """
        handed = await self._queue_up(order, patience)
        if handed is not None:
            return handed
        try:
            return await self._turn_at_head(patience)
        finally:
            self._pass_turn_on()

    async def _turn_at_head(self, patience: Patience) -> Ticket:
        breaker = self._engine.breaker
        breaker_probe = False
        while True:
            self._check_not_ended(patience)
            now = self._clock.monotonic()
            if patience.outages and not breaker_probe:
                held = breaker.turn(now)
                if held is not None and held.turn is Turn.WAIT:
                    outage_ends = breaker.tripped_at + patience.max_outage
                    await self._nap(held, patience, "outage", outage_ends)
                    continue
                breaker_probe = held is not None
            if not self._window_has_room():
                await self._nap(_UNTIL_A_SLOT_FREES, patience, "deadline", math.inf)
                continue
            decision = await self._store.update(self.operation, self._reporting(_take))
            if decision.turn is not Turn.WAIT:
                return self._ticket(decision, breaker_probe=breaker_probe)
            await self._nap(decision, patience, "deadline", math.inf)

    def release(self, ticket: Ticket) -> None:
        """The attempt of ``ticket`` has ended, answered or not."""
        if ticket.windowed and self._slow_start is not None:
            self._slow_start.release()
            self.changed.set()

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

        def refuse(budget: OperationBudget, now: float) -> tuple[bool, float, float]:
            news = budget.refused(ticket.sent_at, ticket.probe, now, hint, cap)
            return news, budget.gate.probe_at - now, budget.estimate.rate(now)

        news, probe_in, rate = await self._store.update(self.operation, self._reporting(refuse))
        if news:
            logger.info(
                "%s refused (429): holding its calls for a probe in %.2f s; pacing at %s",
                self.operation,
                probe_in,
                "no set rate" if math.isinf(rate) else f"{rate:.3g}/s",
            )
        if self._slow_start is not None:
            if news:
                self._slow_start.refused()
            if self._local is not None and self._local.paced:
                self._slow_start = None  # paced now: the window's job is done
        self.changed.set()

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
        self.changed.set()

    def _ticket(self, decision: Decision, *, breaker_probe: bool) -> Ticket:
        window = self._slow_start
        if window is not None:
            window.admit()
        return Ticket(decision.at, decision.turn is Turn.PROBE, window is not None, breaker_probe)

    def _window_has_room(self) -> bool:
        return self._slow_start is None or self._slow_start.has_room()

    async def _nap(self, wait: Decision, patience: Patience, bound: str, ends: float) -> None:
        """Wait as ``wait`` says (less if woken, when it is gated); give up at once when
        its turn cannot come before the deadline or ``ends`` (the bound named ``bound``).
        """
        now = self._clock.monotonic()
        limit = min(patience.deadline, ends)
        earliest = now + wait.wait if wait.firm else now
        if now >= limit or earliest > limit:
            raise WaitTooLong(wait.wait, bound if ends < patience.deadline else "deadline")
        if wait.gated:
            self.changed.clear()  # from now on: a change while this request waits
        await self._engine.sleep(
            min(wait.wait, self._store.nap, limit - now),
            wake=self.changed if wait.gated else None,
            stop=patience.stop,
        )

    async def _queue_up(self, order: int, patience: Patience) -> Ticket | None:
        """Wait to be at the head of the queue (None), or for a turn handed on by the
        request before (see ``_pass_turn_on``), as long as the call's own patience lasts.

        Raises:
            WaitTooLong: the call's deadline passed while it queued.
            Stopped: the call's run stopped while it queued.
            RuntimeError: the client was closed while it queued.
        """
        if not self._busy and not self._waiters:
            self._busy = True
            return None
        waiter = _Waiter(patience)
        heapq.heappush(self._waiters, (order, next(self._arrivals), waiter))
        try:
            while not waiter.called.is_set():
                self._check_patience(patience)
                await self._engine.sleep(
                    patience.deadline - self._clock.monotonic(),
                    wake=waiter.called,
                    stop=patience.stop,
                )
            if waiter.handed is not None:
                # A turn handed before the deadline is used, as the head's would be;
                # but the run may have stopped, or the client closed, since.
                self._check_not_ended(patience)
            return waiter.handed
        except BaseException:
            if not waiter.called.is_set():
                waiter.gone = True
            elif waiter.handed is None:
                self._pass_turn_on()  # made head just as it gave up
            else:
                self.release(waiter.handed)  # handed a turn it will not use
            raise

    def _check_patience(self, patience: Patience) -> None:
        """Raise what ends a queued call's wait, if anything has."""
        self._check_not_ended(patience)
        if self._clock.monotonic() >= patience.deadline:
            raise WaitTooLong(math.inf, "deadline")

    def _check_not_ended(self, patience: Patience) -> None:
        """Raise if the client closed (RuntimeError) or the call's run stopped (Stopped)."""
        if self._engine.closing.is_set():
            raise RuntimeError("this WhopClient was closed; the call was not sent")
        if patience.stop is not None and patience.stop.is_set():
            raise Stopped

    def _pass_turn_on(self) -> None:
        """Once the opening is over and nothing paces the requests (no limit known,
        none met), hand the waiters, in order, the turns the budget has now; the first
        that cannot have one becomes the head and asks. Without this, once the opening
        had made a queue, every later request queued behind it one by one, each waking
        the next, for the rest of the run.

        During the opening, and while paced, requests go one head at a time, each
        after a turn of the event loop: turns handed out at once would all reach a
        server at its limit before its first refusal could close the gate (against a
        fixed window of 50 a second, twice the 429s).
        """
        local, window = self._local, self._slow_start
        opening = window is not None and not window.ended
        unpaced = local is not None and not local.paced and not opening
        while self._waiters:
            _, _, waiter = heapq.heappop(self._waiters)
            if waiter.gone:
                continue
            patience = waiter.patience
            stopped = patience.stop is not None and patience.stop.is_set()
            # A stopped call is made head instead, where it ends unsent.
            can_hand = unpaced and not stopped
            waiter.handed = self._turn_now(patience.outages) if can_hand else None
            waiter.called.set()
            if waiter.handed is None:
                return
        self._busy = False


class Permits:
    """At most ``count`` requests in flight, in order of asking. Taking one when one is
    free needs no await: most requests never wait here."""

    def __init__(self, count: int) -> None:
        self._free = count
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def take_now(self) -> bool:
        """True, and a permit taken, when one is free and nobody waits for one."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        return False

    async def take(self) -> None:
        """Wait for a permit, after those who asked before."""
        if self.take_now():
            return
        handed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(handed)
        try:
            await handed
        except asyncio.CancelledError:
            if handed.done() and not handed.cancelled():
                self.give_back()  # handed the permit just as it was cancelled
            raise

    def give_back(self) -> None:
        """A permit is free again: to the first waiter, if any."""
        while self._waiters:
            handed = self._waiters.popleft()
            if not handed.done():
                handed.set_result(None)
                return
        self._free += 1


class Engine:
    """Permits, one limiter per operation, the breaker and the retry budget of a client.

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
        self.clock = clock
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
        self.permits = Permits(max_in_flight)
        self.breaker = Breaker()
        self.retry_budget = RetryBudget()
        self.ever_answered = False
        self._limiters: dict[str, OperationLimiter] = {}
        self.arrivals = itertools.count()  # the order calls arrive in, for the queues
        self._answered = 0
        self._rate_limited = 0
        self._last_answer = -math.inf
        self._answer_heard = asyncio.Event()
        self.closing = asyncio.Event()
        self._fatal_listeners: set[Callable[[BaseException], None]] = set()

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
                self,
                # An unknown limit is approached in a widening window of requests.
                slow_start=SlowStart() if self._limit is None else None,
                max_server_wait=self._max_server_wait,
            )
        return limiter

    def answered(self, ticket: Ticket, *, accepted: bool, rate_limited: bool = False) -> None:
        """The server answered (any status but 5xx): it is up."""
        self._answered += 1
        self._rate_limited += rate_limited
        self.ever_answered = True
        self._last_answer = self.clock.monotonic()
        if accepted:
            self.retry_budget.deposit()
        if not self.breaker.passing:
            logger.warning("the server answers again: calls held through the outage go on")
            self.breaker.answered(self._last_answer)
            self._wake_all()
        self._answer_heard.set()

    def failed(self, ticket: Ticket, *, answered: bool) -> None:
        """No answer (``answered`` False), or a 5xx: the server may be down."""
        self._answered += answered
        self.ever_answered |= answered
        breaker = self.breaker
        was_passing = breaker.passing
        breaker.failed(ticket.breaker_probe, self.clock.monotonic())
        if was_passing and not breaker.passing:
            logger.warning(
                "%d failures in a row with no answer of the server's: bulk calls wait,"
                " probing it at doubling intervals from %.1f s",
                breaker.failures,
                breaker.step,
            )
        if ticket.breaker_probe or was_passing != breaker.passing:
            self._wake_all()

    async def answer_after(self, moment: float, patience: Patience) -> None:
        """Wait until the server answers anything after ``moment`` (a deferred retry
        waits for it), within the call's bounds.

        Raises:
            WaitTooLong: past the call's deadline.
            Stopped: the call's run stopped meanwhile.
        """
        while self._last_answer <= moment:
            if patience.stop is not None and patience.stop.is_set():
                raise Stopped
            now = self.clock.monotonic()
            if now >= patience.deadline:
                raise WaitTooLong(math.inf, "deadline")
            self._answer_heard.clear()
            await self.sleep(patience.deadline - now, wake=self._answer_heard, stop=patience.stop)

    def allow_retry(self) -> bool:
        """True, and one retry spent, when the client's retry budget allows one now."""
        return self.retry_budget.withdraw(self.clock.monotonic())

    @contextmanager
    def listening_for_fatal(self, listener: Callable[[BaseException], None]) -> Iterator[None]:
        """Tell ``listener`` of errors that would fail every call (a bulk run stops)."""
        self._fatal_listeners.add(listener)
        try:
            yield
        finally:
            self._fatal_listeners.discard(listener)

    def fatal(self, error: BaseException) -> None:
        """An error that every further call would meet too: tell the runs."""
        for listener in list(self._fatal_listeners):
            listener(error)

    async def sleep(
        self, seconds: float, *, wake: asyncio.Event | None, stop: asyncio.Event | None
    ) -> None:
        """Sleep ``seconds``, or less if ``wake`` or ``stop`` is set, or the client closes,
        meanwhile."""
        events = [event for event in (wake, stop, self.closing) if event is not None]
        waits: list[asyncio.Future[object]] = [
            asyncio.ensure_future(event.wait()) for event in events
        ]
        if math.isfinite(seconds):
            waits.append(asyncio.ensure_future(self.clock.sleep(seconds)))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    async def close(self) -> None:
        """Wake every waiting call (it will find the client closed) and release what the
        engine holds outside the process (a Redis connection)."""
        self.closing.set()
        await self._store.close()

    def _wake_all(self) -> None:
        for limiter in self._limiters.values():
            limiter.changed.set()
