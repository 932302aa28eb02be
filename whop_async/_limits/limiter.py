"""The turns of one operation's requests, in order of arrival.

A retried call keeps its place ahead of calls that arrived after it. One request at a
time (the head) asks the store; the others queue behind it and are woken in order.
Waiting ends early when the call's bounds say so: its deadline, its run's stop, its
client's close.
"""

from __future__ import annotations

import asyncio
import enum
import heapq
import itertools
import math
from typing import TYPE_CHECKING, NamedTuple, Protocol

import attrs

from .gate import Wait
from .operation import Go, Taken
from .slow_start import SlowStart
from .store import Store

if TYPE_CHECKING:
    from .engine import Engine


class Bound(enum.Enum):
    """What a call waits for its turn within."""

    DEADLINE = "deadline"
    """Its own: its rate_limit_timeout."""
    RUN = "run"
    """Its run's deadline."""
    OUTAGE = "outage"
    """The longest outage it waits through (its run's max_outage)."""


class WaitReason(enum.Enum):
    """Why a call waited (what its telemetry reports)."""

    PACING = "pacing"
    """For its paced turn: the operation's requests spread at the rate in force."""
    QUEUE = "queue"
    """Behind earlier calls of the same operation (which wait for pacing or the gate)."""
    SLOW_START = "slow_start"
    """For room in the window of requests in flight, while no limit is known."""
    GATE = "gate"
    """At the gate after a 429: until a probe finds the server willing again."""
    BREAKER = "breaker"
    """Held by the outage breaker (a bulk call), until the server answers again."""
    BACKOFF = "backoff"
    """Between its attempts: backoff, the server's hint after a 5xx, the retry budget."""


class WaitTooLong(Exception):
    """A call's turn would come after one of its bounds: it gives up instead of waiting.

    ``bound`` says which; ``refused`` when it waited at a closed gate (the server was
    refusing).
    """

    def __init__(self, wait: float, bound: Bound, *, refused: bool = False) -> None:
        super().__init__(f"the next turn is {wait:.1f} s away, past the call's {bound.value}")
        self.wait = wait
        self.bound = bound
        self.refused = refused


class Stopped(Exception):
    """The call's run stopped while the call waited for its turn."""


class Closed(RuntimeError):
    """The call's client was closed while the call waited: it is not sent."""

    def __init__(self) -> None:
        super().__init__("this WhopClient was closed; the call was not sent")


@attrs.frozen
class Patience:
    """How long, and through what, one call waits for its turns.

    Attributes:
        own_deadline: monotonic time after which it gives up waiting for the rate
            limit (its rate_limit_timeout); an outage it waited out does not count.
        run_deadline: its run's deadline, which nothing extends.
        outages: it waits out a tripped breaker (bulk calls do), for at most
            ``max_outage`` seconds after the trip; other calls are not held by it.
        downtime_before: the breaker's downtime when the call first waited.
        stop: set when the call's run stops: a wait ends at once (Stopped).
        closing: set when the call's client closes: a wait ends at once (Closed).
    """

    own_deadline: float = math.inf
    run_deadline: float = math.inf
    outages: bool = False
    max_outage: float = math.inf
    downtime_before: float = 0.0
    stop: asyncio.Event | None = None
    closing: asyncio.Event | None = None

    def check(self) -> None:
        """Raise what ends the wait, if anything has (Closed, Stopped)."""
        if self.closing is not None and self.closing.is_set():
            raise Closed
        if self.stop is not None and self.stop.is_set():
            raise Stopped


class Caller(Protocol):
    """What the engine reads of the call that takes a turn."""

    @property
    def order(self) -> int:
        """Its place in the queues: calls that arrived first go first."""

    @property
    def outages(self) -> bool:
        """True when it waits out outages (a bulk call), False when it fails."""

    @property
    def patience(self) -> Patience:
        """Its bounds, made when it first has to wait."""

    def failed_on_its_own(self, accepted: int) -> bool:
        """Told of a failure when the server has accepted ``accepted`` requests so far:
        True when others were accepted since this call first failed (the failure is
        the call's own, not the server's)."""

    def waited(self, reason: WaitReason, seconds: float) -> None:
        """Told of each wait for its turn: why, and how long it lasted."""


class Ticket(NamedTuple):
    """A turn taken: how, when it goes and when it was granted (in the store's time),
    whether the slow-start window counts it, and whether it is the outage breaker's
    probe."""

    go: Go
    sent_at: float
    granted_at: float
    windowed: bool
    breaker_probe: bool


# Waiting for room in the slow-start window: until an answer frees a slot.
_UNTIL_A_SLOT_FREES = Wait(math.inf, gated=True, firm=False)


class _Waiter:
    """A call queued for its turn: woken (``called``) with a turn handed on, or with
    None to become the head; ``gone`` once it gave up waiting."""

    __slots__ = ("called", "gone", "handed", "patience")

    def __init__(self, patience: Patience) -> None:
        self.patience = patience
        self.called = asyncio.Event()
        self.handed: Ticket | None = None
        self.gone = False


class OperationLimiter:
    """The queue of one operation's calls, in front of its budget in the store."""

    def __init__(
        self,
        operation: str,
        store: Store,
        engine: Engine,
        *,
        slow_start: SlowStart | None,
    ) -> None:
        self.operation = operation
        self._store = store
        self._engine = engine
        self.slow_start = slow_start
        # Something paces the requests: a told limit, or one the server showed.
        self.paced = slow_start is None
        self._busy = False
        self._waiters: list[tuple[int, int, _Waiter]] = []
        self._arrivals = itertools.count()
        self.changed = asyncio.Event()

    def idle(self) -> bool:
        """True when no call queues or asks here, and no slow-start window counts."""
        return not (self._busy or self._waiters or self.slow_start is not None)

    def take_now(self, call: Caller) -> Ticket | None:
        """This call's turn at once, when nobody queues and nothing stands in the way
        (most turns), else None (nothing taken): ``take`` waits for it."""
        if self._busy or self._waiters or not self._window_has_room():
            return None
        if call.outages and not self._engine.breaker.passing:
            return None
        decision = self._store.take_now(self.operation)
        if decision is None or not isinstance(decision, Taken):
            return None
        return self._ticket(decision, breaker_probe=False)

    async def take(self, call: Caller) -> Ticket:
        """This call's turn, when it comes.

        Raises:
            WaitTooLong: the turn would come after one of the call's bounds.
            Stopped: the call's run stopped meanwhile.
            Closed: the call's client closed meanwhile.
        """
        if self._busy or self._waiters:
            handed = await self._queue_up(call)
            if handed is not None:
                return handed
            try:
                call.patience.check()  # made head: the run may have stopped meanwhile
            except BaseException:
                self._pass_on()
                raise
        else:
            self._busy = True
        try:
            return await self._take_at_head(call)
        finally:
            self._pass_on()

    def window_released(self, ticket: Ticket) -> None:
        """The attempt of ``ticket`` has ended: its slot in the window is free."""
        if ticket.windowed and self.slow_start is not None:
            self.slow_start.release()
            self.changed.set()

    async def _take_at_head(self, call: Caller) -> Ticket:
        breaker = self._engine.breaker
        breaker_probe = False
        while True:
            if call.outages and not breaker_probe and not breaker.passing:
                now = self._engine.clock.monotonic()
                ends = breaker.tripped_at + call.patience.max_outage
                if now < ends:
                    breaker.probe_by(ends)  # a last probe when the run would give up
                wait = breaker.wait(now)
                if wait is not None:
                    probing = not wait.firm  # a probe in flight is answered first
                    if now >= ends and not probing:
                        raise WaitTooLong(wait.seconds, Bound.OUTAGE)
                    until = math.inf if probing else ends
                    await self._nap(wait, call, Bound.OUTAGE, until, WaitReason.BREAKER)
                    continue
                breaker.take_probe(now)
                breaker_probe = True
            if not self._window_has_room():
                await self._nap(
                    _UNTIL_A_SLOT_FREES, call, Bound.DEADLINE, math.inf, WaitReason.SLOW_START
                )
                continue
            decision = await self._store.take(self.operation)
            if isinstance(decision, Taken):
                return self._ticket(decision, breaker_probe)
            reason = WaitReason.GATE if decision.gated else WaitReason.PACING
            await self._nap(decision, call, Bound.DEADLINE, math.inf, reason)

    def _ticket(self, taken: Taken, breaker_probe: bool) -> Ticket:
        window = self.slow_start
        if window is not None:
            window.admit()
        return Ticket(taken.go, taken.at, taken.granted, window is not None, breaker_probe)

    def _window_has_room(self) -> bool:
        return self.slow_start is None or self.slow_start.has_room()

    def _deadline(self, patience: Patience, now: float) -> tuple[float, Bound]:
        """When the call gives up waiting, and which bound that is: its own deadline,
        later by the outages it waited out, or its run's, whichever comes first."""
        own = patience.own_deadline
        if patience.outages:
            own += self._engine.breaker.downtime(now) - patience.downtime_before
        if patience.run_deadline <= own:
            return patience.run_deadline, Bound.RUN
        return own, Bound.DEADLINE

    async def _nap(
        self, wait: Wait, call: Caller, bound: Bound, ends: float, reason: WaitReason
    ) -> None:
        """Wait as ``wait`` says (less if woken by a change of the budget); give up at once when
        the turn cannot come before the deadline or ``ends`` (the bound named ``bound``).
        Waiting out an outage, only the run's deadline and ``ends`` bound it. The call
        is told how long it waited, for ``reason``.
        """
        patience = call.patience
        patience.check()
        now = self._engine.clock.monotonic()
        deadline, kind = (
            (patience.run_deadline, Bound.RUN)
            if bound is Bound.OUTAGE
            else self._deadline(patience, now)
        )
        limit = min(deadline, ends)
        earliest = now + wait.seconds if wait.firm else now
        if now >= limit or earliest > limit:
            raise WaitTooLong(
                wait.seconds,
                bound if ends < deadline else kind,
                refused=wait.gated and wait is not _UNTIL_A_SLOT_FREES and bound is Bound.DEADLINE,
            )
        # From now on: a change while this request waits, at a gate (its probe's answer)
        # or for its pace's turn (a refusal that closed the gate, with a probe due sooner
        # than that turn: the server's hint of a millisecond is kept to).
        self.changed.clear()
        try:
            await self._engine.sleep(
                min(wait.seconds, self._store.nap, limit - now), self.changed, patience
            )
        finally:
            call.waited(reason, self._engine.clock.monotonic() - now)
        patience.check()  # woken by the run's stop or the client's close

    async def _queue_up(self, call: Caller) -> Ticket | None:
        """Wait to be at the head of the queue (None), or for a turn handed on by the
        request before (see ``_pass_on``), as long as the call's own patience lasts."""
        patience = call.patience
        waiter = _Waiter(patience)
        heapq.heappush(self._waiters, (call.order, next(self._arrivals), waiter))
        queued_at = self._engine.clock.monotonic()
        try:
            while not waiter.called.is_set():
                patience.check()
                now = self._engine.clock.monotonic()
                deadline, kind = self._deadline(patience, now)
                if now >= deadline:
                    raise WaitTooLong(math.inf, kind)
                await self._engine.sleep(deadline - now, waiter.called, patience)
            if waiter.handed is not None:
                # A turn handed before the deadline is used, as the head's would be;
                # but the run may have stopped, or the client closed, since.
                patience.check()
            return waiter.handed
        except BaseException:
            if not waiter.called.is_set():
                waiter.gone = True
            elif waiter.handed is None:
                self._pass_on()  # made head just as it gave up
            else:
                self.window_released(waiter.handed)  # handed a turn it will not use
            raise
        finally:
            call.waited(WaitReason.QUEUE, self._engine.clock.monotonic() - queued_at)

    def _pass_on(self) -> None:
        """Once the opening is over and nothing paces the requests (no limit known,
        none met), hand the waiters, in order, turns at once; the first that cannot have
        one becomes the head and asks. Without this, once the opening had made a queue,
        every later request queued behind it one by one, each waking the next.

        During the opening, and while paced, requests go one head at a time, each
        after a turn of the event loop: turns handed out at once would all reach a
        server at its limit before its first refusal could close the gate (against a
        fixed window of 50 a second, twice the 429s).
        """
        window = self.slow_start
        opening = window is not None and not window.ended
        free = not self.paced and not opening
        while self._waiters:
            _, _, waiter = heapq.heappop(self._waiters)
            if waiter.gone:
                continue
            waiter.handed = self._free_turn(waiter.patience) if free else None
            waiter.called.set()
            if waiter.handed is None:
                return
        self._busy = False

    def _free_turn(self, patience: Patience) -> Ticket | None:
        """A turn with nothing to pace it, unless the call must wait (its run stopped,
        the client closed, an outage it waits out): it is then made head instead."""
        stopped = (patience.stop is not None and patience.stop.is_set()) or (
            patience.closing is not None and patience.closing.is_set()
        )
        held = patience.outages and not self._engine.breaker.passing
        if stopped or held or not self._window_has_room():
            return None
        now = self._engine.clock.monotonic()
        return self._ticket(Taken(Go.SEND, now, now), breaker_probe=False)
