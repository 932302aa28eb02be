"""Operation budgets held in Redis, shared by every client that names the same budget.

Imported only when a RateLimit names a Redis (the ``redis`` extra). A turn is one
script, one round trip (``shared.py``): it goes now, goes at a moment booked for this
worker (held here, and sent then without asking again), or waits until a moment the
script named (held here too, so a worker asks once per turn however long it waits).
Accepted answers travel with the next turn. Refusals and probes' answers run the same
Python rules as a budget in memory (``operation.apply``), read and written back whole.

Time is Redis's own (``TIME``), so clocks that differ between hosts do not matter; on
a virtual-time loop (tests), the loop's. While Redis cannot be reached, or refuses,
each worker paces alone at its share of the budget (one over the workers seen sharing
it), no faster than the budget together; what it spent counts when Redis answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

from .._clock import Clock
from . import shared
from .gate import Wait
from .limit import RateLimit
from .operation import Answer, Decision, Go, OperationBudget, Report, Standing, Taken, apply
from .pacing import EARLY, Slot
from .redis_connection import FAILURES, Connection
from .redis_faults import RETRY_EVERY, Cause, Contended, Fault, Health, fault_of
from .store import APPLIED, NOT_NOW, MemoryStore

T = TypeVar("T")

logger = logging.getLogger("whop_async")

# Longer than a healthy Redis ever takes, short enough that a stalled one costs a call
# at most this much before it falls back.
TIMEOUT = 0.25
# A timeout noticed this much later than it was due was the process's, starved of CPU
# (Redis's answer was waiting, unread): tried once more before falling back (32 workers
# starting on two cores had workers pace alone at 1/16 for want of this). A tenth of a
# second: an event loop that is merely busy is late by milliseconds.
_STARVED = 0.1
# A report's read-and-write is tried this many times while other reports come between.
# Reports are rare (a refusal, a probe's answer), and each write that fails means
# another's landed: twenty lost in a row is contention no wait of ours would clear.
WRITE_ATTEMPTS = 20
# Before any worker was seen, each paces alone at one over this many: the bulk
# concurrency, a fleet's likely size, and 16 x 1/16 is the budget.
UNSEEN_WORKERS = 16
# A booked turn is forgotten this long after its moment: sent so late, it would be a
# burst (a second is ten turns at Whop's pace).
_STALE = 1.0


class RedisStore:
    """The budgets of one shared budget key, in Redis, with a local fallback."""

    # At a gate whose probe is in flight (and for every wait: a longest sleep), a worker
    # looks again this often: the probe's answer opens it for everyone, and nobody is
    # told. Fifty milliseconds: half a turn at Whop's pace, a few Redis calls a second.
    nap = 0.05

    def __init__(self, limit: RateLimit, budget_key: str, clock: Clock, cap: float) -> None:
        assert limit.address is not None
        self.limit = limit
        self._clock = clock
        self._key = budget_key
        self._bounds = shared.Bounds.of(limit.rate, limit.burst_size, cap)
        self._connection = Connection(limit.address, TIMEOUT)
        self._health = Health(limit.address.describe())
        self._worker = secrets.token_hex(4)
        self._nonces = itertools.count()
        self._offset = 0.0
        self._alive = 0
        self._held: dict[str, Slot] = {}  # a booked turn, or when to ask again
        # When a booked turn was granted: its answer is judged by the budget of then
        # (a refusal of a turn booked before a cut or a pause is no news).
        self._booked_at: dict[str, float] = {}
        # When a worker told to come back was due: it is served before newcomers.
        self._queued: dict[str, float] = {}
        # Accepted answers not yet told: they go with this process's next turn.
        self._unreported: dict[str, int] = {}
        self._owed: dict[str, float] = {}
        self._fallback: _Fallback | None = None
        self._watcher: asyncio.Task[None] | None = None

    def now(self) -> float:
        """The shared time, as last seen from Redis (on a virtual-time loop, the loop's)."""
        return self._clock.monotonic() + self._offset

    def take_now(self, operation: str) -> Decision | None:
        """A booked turn that is due, with no I/O; None otherwise."""
        held = self._held_decision(operation)
        return held if isinstance(held, Taken) else None

    def report_now(self, operation: str, report: Report) -> tuple[bool, Standing | None]:
        """An accepted answer goes with the next turn; while paced locally, everything
        applies at once; the rest need Redis."""
        if self._fallback is not None:
            return self._fallback.store.report_now(operation, report)
        if report.answer is Answer.ACCEPTED and report.go is Go.SEND:
            self._unreported[operation] = self._unreported.get(operation, 0) + 1
            return APPLIED
        return NOT_NOW

    async def take(self, operation: str) -> Decision:
        """A turn now, or how long to wait."""
        held = self._held_decision(operation)
        if held is not None:
            return held
        return await self._shared_or_local(
            lambda: self._take_shared(operation),
            lambda fallback: fallback.take(operation, self.now()),
        )

    async def report(self, operation: str, report: Report) -> Standing | None:
        """Apply what a turn came to."""
        applied, standing = self.report_now(operation, report)
        if not applied:
            standing = await self._shared_or_local(
                lambda: self._report_shared(operation, report),
                lambda fallback: fallback.store.report_now(operation, report)[1],
            )
        if standing is not None and standing.news:
            # The gate closed: a turn booked before it would only meet the same refusal.
            self._held.pop(operation, None)
        return standing

    async def close(self) -> None:
        """Close the connections made here."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        await self._connection.close()

    def _held_decision(self, operation: str) -> Decision | None:
        """What a booked turn or a moment to ask again says now; None: ask Redis."""
        held = self._held.get(operation)
        if held is None:
            return None
        now = self.now()
        if held.at > now + EARLY:
            return Wait(held.at - now)
        del self._held[operation]
        if held.taken and now - held.at <= _STALE:
            return Taken(Go.SEND, held.at, self._booked_at[operation])
        return None

    async def _shared_or_local(
        self, shared_way: Callable[[], Awaitable[T]], local_way: Callable[[_Fallback], T]
    ) -> T:
        """The shared way, or the local one while Redis cannot be used."""
        if self._health.usable(self.now()):
            try:
                result = await self._in_time(shared_way)
            except FAILURES as error:
                self._failed(error)
            else:
                self._answered()
                return result
        return local_way(self._local())

    async def _in_time(self, shared_way: Callable[[], Awaitable[T]]) -> T:
        """``shared_way()`` within TIMEOUT, or once more when the process, not Redis,
        was late.

        Raises:
            TimeoutError: Redis did not answer in time.
        """
        started = self._clock.monotonic()
        try:
            async with asyncio.timeout(TIMEOUT):
                return await shared_way()
        except TimeoutError:
            if self._clock.monotonic() - started < TIMEOUT + _STARVED:
                raise
        async with asyncio.timeout(TIMEOUT):
            return await shared_way()

    def _ask(self, operation: str, accepted: int, *, queued: bool = False) -> shared.Ask:
        return shared.Ask(
            self.limit.rate,
            self.limit.burst_size,
            queued,
            accepted,
            self._owed.get(operation, 0.0),
            self._worker,
            f"{self._worker}{next(self._nonces):x}",
        )

    @contextlib.contextmanager
    def _claimed(self, operation: str) -> Iterator[int]:
        """The accepted answers not yet told, taken by one script (a take and a report
        may run at once: each tells its own), and given back if it fails."""
        accepted = self._unreported.pop(operation, 0)
        try:
            yield accepted
        except BaseException:
            if accepted:
                self._unreported[operation] = self._unreported.get(operation, 0) + accepted
            raise

    async def _take_shared(self, operation: str) -> Decision:
        back = self._queued.pop(operation, None)
        queued = back is not None and self.now() - back <= _STALE
        with self._claimed(operation) as accepted:
            ask = self._ask(operation, accepted, queued=queued)
            args = shared.take_args(self._now_arg(), ask, self._bounds)
            reply = await self._connection.run(shared.TAKE, self._keys(operation), args)
        answer = shared.answered(reply)
        self._saw(answer.now)
        self._owed.pop(operation, None)
        self._alive = answer.alive
        if answer.bad:
            self._replaced(operation, answer.bad)
        if answer.kind == "probe":
            return Taken(Go.PROBE, answer.moment, answer.moment)
        if answer.kind == "send":
            self._held[operation] = Slot(True, answer.moment)
            self._booked_at[operation] = answer.now
            booked = self._held_decision(operation)
            assert booked is not None
            return booked
        if not answer.firm:  # the probe is in flight: its answer may open the gate any moment
            return Wait(answer.moment, gated=True, firm=False)
        back = self.now() + answer.moment
        self._held[operation] = Slot(False, back)
        if not answer.gated:
            self._queued[operation] = back
        return Wait(answer.moment, gated=answer.gated)

    async def _report_shared(self, operation: str, report: Report) -> Standing | None:
        keys = self._keys(operation)[:3]
        with self._claimed(operation) as accepted:

            def reported(budget: OperationBudget, now: float) -> Standing | None:
                budget.accepted(accepted, now)
                return apply(budget, report, now)

            for _ in range(WRITE_ATTEMPTS):
                read = await self._connection.run(shared.READ, keys, [self._now_arg()])
                ask = self._ask(operation, accepted)
                standing, rewrite = shared.rewrite(read, ask, self._bounds, reported)
                self._saw(rewrite.now)
                if rewrite.bad is not None:
                    self._replaced(operation, rewrite.bad)
                written = [rewrite.expected, str(shared.TTL_MS), rewrite.change]
                if await self._connection.run(shared.WRITE, keys, written):
                    return standing
            raise Contended(f"the budget changed under each of {WRITE_ATTEMPTS} writes")

    def _keys(self, operation: str) -> list[str]:
        return shared.keys(self.limit.prefix, self._key, operation)

    def _now_arg(self) -> str:
        """The time for a script: Redis's own, or a virtual-time loop's."""
        return repr(self._clock.monotonic()) if self._clock.virtual() else ""

    def _saw(self, now: float) -> None:
        """Redis's time as a script saw it: the shared clock follows it."""
        self._offset = now - self._clock.monotonic()

    def _replaced(self, operation: str, reason: str) -> None:
        logger.warning(
            "the shared rate budget of %s held a value that is not a budget's (%s): replaced"
            " by a fresh budget",
            self._keys(operation)[0],
            reason,
        )

    def _local(self) -> _Fallback:
        if self._fallback is None:
            share = self.limit.fallback_share or 1.0 / (self._alive or UNSEEN_WORKERS)
            self._fallback = _Fallback(self.limit, share, self)
        return self._fallback

    def _failed(self, error: BaseException) -> None:
        fault: Fault = fault_of(error, self._connection.secrets)
        said = self._health.failed(fault, self.now(), self._local().share)
        if said is not None:
            logger.warning("%s", said)
        if fault.cause is Cause.TIMEOUT and self._watcher is None:
            self._health.watched = True
            self._watcher = asyncio.get_running_loop().create_task(self._until_redis_answers())

    async def _until_redis_answers(self) -> None:
        """Ask Redis at each quarter second of the shared time until it answers in
        time; then calls may try it again (the first to succeed says it is back)."""
        try:
            while True:
                await self._clock.sleep(RETRY_EVERY - self.now() % RETRY_EVERY)
                try:
                    async with asyncio.timeout(TIMEOUT):
                        await self._connection.ping()
                except FAILURES:
                    continue
                return
        finally:
            self._health.watched = False
            self._watcher = None

    def _answered(self) -> None:
        said = self._health.answered()
        if said is not None:
            logger.warning("%s", said)
        if self._fallback is not None:
            self._owed.update(self._fallback.owed(self.now()))
            self._fallback = None


class _Fallback:
    """The budgets a worker paces alone at ``share`` of the shared one, in the shared
    time, each starting with no burst (the others were spending it)."""

    def __init__(self, limit: RateLimit, share: float, store: RedisStore) -> None:
        self.share = share
        self.store = MemoryStore(limit.share(share), _SharedClock(store))
        self._used: set[str] = set()

    def take(self, operation: str, now: float) -> Decision:
        budget = self.store.budget(operation)
        if operation not in self._used:
            self._used.add(operation)
            budget.pacing.no_burst(now, budget.estimate.rate(now), budget.burst)
        return budget.take(now)

    def owed(self, now: float) -> dict[str, float]:
        """What each budget used here still owes the shared one."""
        return {op: self.store.budget(op).pacing.owed(now, self.share) for op in self._used}


class _SharedClock(Clock):
    """The shared time, so a turn taken from the fallback counts in the shared budget."""

    __slots__ = ()

    def __init__(self, store: RedisStore) -> None:
        super().__init__()
        self.monotonic = store.now
