"""The rate-limit engine of one account: ``async with engine.turn(operation, call)``.

A turn is taken, in order: its operation's turn (the breaker for calls that wait out
outages, the slow-start window with no known limit, the gate and pacing in the store),
then a concurrency permit (after, so that a call parked at one operation's gate holds
no permit another operation's calls need). When the block ends, the turn reports what
the attempt came to, read from how the block ended: nothing raised, an answer of 2xx
that could not be read, or any status below 500 but 429 (a 404 is the server's answer:
it took the request, and it counts against the budget) is accepted; a RateLimitError a
refusal with its hint; a 5xx or a connection error a failure; anything else (a
cancellation) an attempt abandoned. No turn can be taken without its answer being
reported. The breaker and the retry budget hear more narrowly: only a 2xx is a success
that refills the retry budget, and any answer below 500 ends an outage.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from types import TracebackType

from .._clock import Clock
from .._exceptions import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    RateLimitError,
)
from .breaker import NOTHING_ANSWERS_AFTER, Breaker
from .gate import NO_HINT, WaitHint
from .limit import ClientStats, RateLimit
from .limiter import Caller, OperationLimiter, Patience, Ticket
from .operation import Answer, Go, Report, Standing
from .retry_budget import RetryBudget
from .slow_start import SlowStart
from .store import MemoryStore, Store

# An account idle for this long has its budgets looked at: those at rest are forgotten
# (made anew when next needed), so thousands of idle accounts hold little (about 2 KiB
# each); a budget still recovering from a refusal is looked at again as long (only with
# a told limit: a budget that found an unknown limit keeps what it found). Five
# seconds: longer than any burst's refill at Whop's pace, so a budget forgotten is one
# that a new one equals.
REST_AFTER = 5.0

logger = logging.getLogger("whop_async")


class NothingAnswers(APIConnectionError):
    """Every request of the client failed for long enough, the breaker's probe too:
    nothing listens at the base URL."""


class Engine:
    """One account's turns: a limiter per operation, the outage breaker, the retry
    budget, news of errors every call would meet, and the permits of the session it
    shares with other accounts.

    Args:
        limit: the told limit (None: found from the server's refusals).
        clock: the client's clock.
        permits: requests in flight at most, shared by every account on one session.
        budget_key: the budget's name in Redis, when the limit is shared.
        max_server_wait: how long the gate may stay closed on the server's word.
        base_url: named when nothing answers there.
    """

    def __init__(
        self,
        limit: RateLimit | None,
        clock: Clock,
        *,
        permits: asyncio.Semaphore,
        budget_key: str,
        max_server_wait: float,
        base_url: str,
    ) -> None:
        self.clock = clock
        self._limit = limit
        self._cap = max_server_wait
        self._base_url = base_url
        self._store = self._store_for(limit, budget_key)
        self.permits = permits
        self.breaker = Breaker()
        self.retry_budget = RetryBudget()
        self._limiters: dict[str, OperationLimiter] = {}
        self.arrivals = itertools.count()  # the order calls arrive in, for the queues
        self._answered = 0
        self._rate_limited = 0
        self._first_failure: float | None = None
        self.ever_answered = False
        self._fatal_listeners: set[Callable[[BaseException], None]] = set()
        self._resting: asyncio.TimerHandle | None = None

    def _store_for(self, limit: RateLimit | None, budget_key: str) -> Store:
        if limit is not None and limit.address is not None:
            # Imported only here: without a shared budget, redis is never needed.
            from .redis import RedisStore

            return RedisStore(limit, budget_key, self.clock, self._cap)
        return MemoryStore(limit, self.clock)

    @property
    def stats(self) -> ClientStats:
        """The counters so far."""
        return ClientStats(answered=self._answered, rate_limited=self._rate_limited)

    def turn(self, operation: str, call: Caller) -> Turn:
        """``async with engine.turn(operation, call) as turn:`` around one attempt."""
        limiter = self._limiters.get(operation)
        if limiter is None:
            limiter = self._limiters[operation] = OperationLimiter(
                operation,
                self._store,
                self,
                # An unknown limit is approached in a widening window of requests.
                slow_start=SlowStart() if self._limit is None else None,
            )
        return Turn(self, limiter, call)

    def retry_wait(self, defers: bool) -> float | None:
        """One retry from the retry budget: seconds to wait for it (0: at once), or
        None when there is none and the call does not defer (a single call fails)."""
        now = self.clock.monotonic()
        if not defers:
            return 0.0 if self.retry_budget.withdraw(now) else None
        return self.retry_budget.borrow(now)

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

    async def sleep(self, seconds: float, wake: asyncio.Event | None, patience: Patience) -> None:
        """Sleep ``seconds``, or less if ``wake`` is set, the run stops or the client
        closes meanwhile."""
        events = [e for e in (wake, patience.stop, patience.closing) if e is not None]
        waits: list[asyncio.Future[object]] = [asyncio.ensure_future(e.wait()) for e in events]
        if math.isfinite(seconds):
            waits.append(asyncio.ensure_future(self.clock.sleep(seconds)))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    async def close(self) -> None:
        """Release what the engine holds outside the process (a Redis connection)."""
        if self._resting is not None:
            self._resting.cancel()
        await self._store.close()

    def _rest_soon(self) -> None:
        """Look for budgets at rest in a while, unless a look is due already."""
        if self._resting is None and isinstance(self._store, MemoryStore):
            loop = asyncio.get_running_loop()
            self._resting = loop.call_later(REST_AFTER, self._rest)

    def _rest(self) -> None:
        """Forget the idle operations whose budgets are at rest; look again later while a
        told limit's budget is still recovering (one found alone is kept: it was learnt)."""
        self._resting = None
        store = self._store
        assert isinstance(store, MemoryStore)
        now = self.clock.monotonic()
        for operation, limiter in list(self._limiters.items()):
            if limiter.idle() and store.forget(operation, now):
                del self._limiters[operation]
        if self._limiters and self._limit is not None:
            self._rest_soon()

    def end(
        self, limiter: OperationLimiter, ticket: Ticket, call: Caller, error: BaseException | None
    ) -> Coroutine[None, None, None] | None:
        """A turn's attempt ended with ``error`` (None: an accepted answer): its
        client-wide effects, and its report to the store. What must be awaited, when
        the store needs I/O for it (a refusal to a shared budget), else None."""
        limiter.window_released(ticket)
        answer, hint = self._answer_of(limiter, ticket, call, error)
        report = Report(ticket.go, ticket.sent_at, ticket.granted_at, answer, hint, self._cap)
        applied, standing = self._store.report_now(limiter.operation, report)
        self._rest_soon()
        if not applied:
            return self._reported(limiter, report)
        self._heard(limiter, report, standing)
        return None

    async def _reported(self, limiter: OperationLimiter, report: Report) -> None:
        standing = await self._store.report(limiter.operation, report)
        self._heard(limiter, report, standing)

    def _heard(self, limiter: OperationLimiter, report: Report, standing: Standing | None) -> None:
        """What the budget said of a report: the window and the log after a refusal,
        and waiters woken when the gate may have changed."""
        if standing is not None:
            limiter.paced = limiter.paced or standing.paced
            window = limiter.slow_start
            if window is not None and standing.news:
                window.refused()
            if limiter.paced:
                limiter.slow_start = None  # paced now: the window's job is done
            if standing.news:
                logger.info(
                    "%s refused (429): holding its calls for a probe in %.2f s; pacing at %s",
                    limiter.operation,
                    standing.probe_in,
                    "no set rate" if math.isinf(standing.rate) else f"{standing.rate:.3g}/s",
                )
        if report.answer is not Answer.ACCEPTED or report.go is Go.PROBE:
            limiter.changed.set()  # waiters at the gate look again

    def _answer_of(
        self, limiter: OperationLimiter, ticket: Ticket, call: Caller, error: BaseException | None
    ) -> tuple[Answer, WaitHint]:
        """What the attempt came to, and its client-wide effects: the counters, the
        breaker, the retry budget, news of a fatal error."""
        if error is None or isinstance(error, APIResponseValidationError):
            self._server_answered(ticket, accepted=True)
            if limiter.slow_start is not None:
                limiter.slow_start.accepted()
            return Answer.ACCEPTED, NO_HINT
        if isinstance(error, RateLimitError):
            self._rate_limited += 1
            self._server_answered(ticket, accepted=False)
            return Answer.REFUSED, WaitHint.of(error.retry_after, error.retry_after_resolution)
        if isinstance(error, APIStatusError) and error.status_code < 500:
            self._server_answered(ticket, accepted=False)
            return Answer.ACCEPTED, NO_HINT
        if isinstance(error, APIError):
            self._failed(ticket, call, error)
            return Answer.FAILED, NO_HINT
        if ticket.breaker_probe:
            self.breaker.probe_ended(self.clock.monotonic())
        return Answer.ABANDONED, NO_HINT

    def _server_answered(self, ticket: Ticket, *, accepted: bool) -> None:
        self._answered += 1
        self.ever_answered = True
        if accepted:
            self.retry_budget.deposit()
        if self.breaker.answered(accepted, self.clock.monotonic()):
            logger.warning("the server answers again: calls held through the outage go on")
            self._wake_all()

    def _failed(self, ticket: Ticket, call: Caller, error: APIError) -> None:
        """No answer of the server's, or a 5xx: the server may be down."""
        now = self.clock.monotonic()
        if isinstance(error, APIStatusError):
            self._answered += 1
            self.ever_answered = True
        if self._first_failure is None:
            self._first_failure = now
        own = call.failed_on_its_own(self.breaker.accepted)
        breaker = self.breaker
        if breaker.failed(now, probe=ticket.breaker_probe, own=own):
            logger.warning(
                "%d failures in a row with no answer of the server's: bulk calls wait,"
                " probing it at doubling intervals from %.1f s",
                breaker.failures,
                breaker.step,
            )
            self._wake_all()
        if ticket.breaker_probe:
            self._wake_all()
            if not self.ever_answered:
                if self._nothing_answers(error, now):
                    self.fatal(self._nothing_answers_error(error))
                else:  # a last probe when the time to tell has passed
                    breaker.probe_by(self._first_failure + NOTHING_ANSWERS_AFTER)

    def _nothing_answers(self, error: APIError, now: float) -> bool:
        """True when no request ever had an answer, for long enough (a refusal for the
        first seconds is an API restarting), or the name does not resolve at all."""
        assert self._first_failure is not None
        return _unresolved(error) or now - self._first_failure >= NOTHING_ANSWERS_AFTER

    def _nothing_answers_error(self, error: APIError) -> NothingAnswers:
        reason = (
            "the name does not resolve"
            if getattr(error, "unresolved", False)
            else ("no answer on any attempt")
        )
        return NothingAnswers(
            f"nothing answers at {self._base_url}: {reason} (last: {error})",
            method=error.method,
            url=error.url,
        )

    def _wake_all(self) -> None:
        for limiter in self._limiters.values():
            limiter.changed.set()


def _unresolved(error: APIError) -> bool:
    # Read by name: the transport's CouldNotConnect is below the engine's layer.
    return bool(getattr(error, "unresolved", False))


class Turn:
    """One attempt's turn: entered before the request, ended (and reported) after it."""

    __slots__ = ("_call", "_engine", "_limiter", "ticket")

    def __init__(self, engine: Engine, limiter: OperationLimiter, call: Caller) -> None:
        self._engine = engine
        self._limiter = limiter
        self._call = call

    async def __aenter__(self) -> Turn:
        engine, limiter, call = self._engine, self._limiter, self._call
        ticket = self.ticket = limiter.take_now(call) or await limiter.take(call)
        try:
            await engine.permits.acquire()
        except BaseException as error:
            pending = engine.end(limiter, ticket, call, error)
            if pending is not None:
                await pending
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        engine = self._engine
        engine.permits.release()
        pending = engine.end(self._limiter, self.ticket, self._call, error)
        if pending is not None:  # a report that needs the store's I/O
            await pending
