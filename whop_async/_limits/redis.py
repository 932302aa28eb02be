"""Operation budgets held in Redis, shared by every client that names the same budget.

Imported only when a RateLimit names a ``redis_url`` (the ``redis`` extra). The rules
are the same code as for a budget in memory (``operation.py``): a budget is read, changed in
Python, and written back only if nobody wrote it in between (a compare-and-set in one
small script), so no rule is written twice. Contention is low: the API allows about ten
calls a second per operation and key.

Time is Redis's own (``TIME``), so clocks that differ between hosts do not matter. A
turn is taken only when it is due, a probe holds the gate for at most ``PROBE_LEASE``,
and no wait longer than the caller's ``max_server_wait`` is ever written: a worker
killed at any moment leaves nothing behind that holds the others back for long. When
Redis cannot be reached in time, each client falls back to pacing alone at a share of
the budget, says so once, and returns to the shared budget when Redis answers again.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import attrs
import redis.asyncio
import redis.exceptions

from .._clock import Clock
from .estimate import Phase, RateEstimate
from .gate import Gate
from .limit import RateLimit
from .operation import Answer, Decision, Go, OperationBudget, Report, Standing, apply
from .pacing import Pacing
from .store import APPLIED, NOT_NOW, MemoryStore

T = TypeVar("T")

logger = logging.getLogger("whop_async")

# Longer than a healthy Redis ever takes, short enough that a stalled one costs a call
# at most this much before it falls back.
_REDIS_TIMEOUT = 0.25
_RETRY_REDIS_AFTER = 1.0
_STATE_TTL_MS = 3_600_000
_WRITE_ATTEMPTS = 50

_READ = """
local time = redis.call('TIME')
return {redis.call('GET', KEYS[1]) or '', time[1], time[2]}
"""
_WRITE_IF_UNCHANGED = """
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""


class _Contended(Exception):
    """Other clients kept writing the budget between this client's read and write."""


def encode(budget: OperationBudget) -> str:
    """A budget's changing parts as JSON (its limit comes from each client's own)."""
    estimate = attrs.asdict(budget.estimate, filter=lambda field, _: field.name != "ceiling")
    estimate["phase"] = budget.estimate.phase.value
    estimate["accepted"] = sorted(budget.estimate.accepted.items())
    estimate["refused_slots"] = sorted(budget.estimate.refused_slots.items())
    state = {
        "pacing": attrs.asdict(budget.pacing),
        "estimate": estimate,
        "gate": attrs.asdict(budget.gate),
    }
    return json.dumps(state, separators=(",", ":"))


def decode(text: str, blank: OperationBudget) -> OperationBudget:
    """The budget stored as ``text`` (``blank`` when nothing is stored yet)."""
    if not text:
        return blank
    state = json.loads(text)
    estimate = state["estimate"]
    estimate["accepted"] = {int(slot): count for slot, count in estimate["accepted"]}
    estimate["refused_slots"] = {int(slot): count for slot, count in estimate["refused_slots"]}
    estimate["phase"] = Phase(estimate["phase"])
    return OperationBudget(
        Pacing(**state["pacing"]),
        RateEstimate(ceiling=blank.estimate.ceiling, **estimate),
        Gate(**state["gate"]),
        blank.burst,
    )


class _SharedClock(Clock):
    """The shared time, so a turn taken from the fallback counts in the shared budget."""

    __slots__ = ()

    def __init__(self, store: RedisStore) -> None:
        super().__init__()
        self.monotonic = store.now


class RedisStore:
    """The budgets of one shared budget key, in Redis, with a local fallback."""

    # Other clients change a shared budget: a waiting client looks again this often.
    nap = 0.5

    def __init__(self, limit: RateLimit, budget_key: str, clock: Clock) -> None:
        assert limit.redis_url is not None
        self.limit = limit
        self._url = limit.redis_url
        self._clock = clock
        self._prefix = f"whop_async:{{{budget_key}}}"
        # Kept in the shared time too, so a ticket taken from one counts in the other.
        self._fallback = MemoryStore(limit.share(limit.fallback_share), _SharedClock(self))
        self._offset = 0.0
        self._redis: Any = None
        self._scripts: tuple[Any, Any] | None = None
        self._down_until = 0.0
        self._warned = False
        # Accepted answers not yet told: they go with this process's next update, so an
        # accepted answer costs no round trip.
        self._unreported: dict[str, int] = {}

    def take_now(self, operation: str) -> Decision | None:
        """None: only Redis knows, and ``take`` asks it."""
        del operation
        return None

    def report_now(self, operation: str, report: Report) -> tuple[bool, Standing | None]:
        """An accepted answer goes with this process's next update; the rest need one."""
        if report.answer is Answer.ACCEPTED and report.go is Go.SEND:
            self._unreported[operation] = self._unreported.get(operation, 0) + 1
            return APPLIED
        return NOT_NOW

    async def take(self, operation: str) -> Decision:
        """A turn now, or how long to wait."""
        return await self.update(operation, lambda budget, now: budget.take(now))

    async def report(self, operation: str, report: Report) -> Standing | None:
        """Apply what a turn came to."""
        if self.report_now(operation, report)[0]:
            return None
        return await self.update(operation, lambda budget, now: apply(budget, report, now))

    def now(self) -> float:
        """The shared time, as last seen from Redis (on a virtual-time loop, the loop's)."""
        if self._clock.virtual():
            return self._clock.monotonic()
        return self._clock.monotonic() + self._offset

    def state_key(self, operation: str) -> str:
        """Where an operation's budget lives."""
        return f"{self._prefix}:{operation}"

    async def update(self, operation: str, change: Callable[[OperationBudget, float], T]) -> T:
        """Apply ``change(budget, now)`` to the shared budget, or to the local fallback
        while Redis cannot be reached; return what it returns."""
        if self._clock.monotonic() >= self._down_until:
            try:
                async with asyncio.timeout(_REDIS_TIMEOUT):
                    result = await self._update_shared(operation, change)
            except (redis.exceptions.RedisError, OSError, TimeoutError, _Contended) as error:
                self._down(error)
            else:
                self._back()
                return result
        return change(self._fallback.budget(operation), self.now())

    async def close(self) -> None:
        """Close the connection pool."""
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def _update_shared(
        self, operation: str, change: Callable[[OperationBudget, float], T]
    ) -> T:
        read, write = self._connected()
        key = self.state_key(operation)
        for _ in range(_WRITE_ATTEMPTS):
            text, seconds, microseconds = await read(keys=[key])
            stored = text.decode() if isinstance(text, bytes) else text
            if not self._clock.virtual():
                self._offset = int(seconds) + int(microseconds) / 1e6 - self._clock.monotonic()
            budget = decode(stored, OperationBudget.new(self.limit.rate, self.limit.burst_size))
            now = self.now()
            budget.accepted(self._unreported.get(operation, 0), now)
            result = change(budget, now)
            changed = encode(budget)
            if changed == stored or await write(keys=[key], args=[stored, changed, _STATE_TTL_MS]):
                self._unreported.pop(operation, None)
                return result
        raise _Contended(f"{key} changed under every one of {_WRITE_ATTEMPTS} writes")

    def _connected(self) -> tuple[Any, Any]:
        if self._scripts is None:
            self._redis = redis.asyncio.Redis.from_url(
                self._url,
                socket_timeout=_REDIS_TIMEOUT,
                socket_connect_timeout=_REDIS_TIMEOUT,
            )
            self._scripts = (
                self._redis.register_script(_READ),
                self._redis.register_script(_WRITE_IF_UNCHANGED),
            )
        return self._scripts

    def _down(self, error: BaseException) -> None:
        self._down_until = self._clock.monotonic() + _RETRY_REDIS_AFTER
        if not self._warned:
            self._warned = True
            logger.warning(
                "Redis at the shared rate budget is unreachable (%s: %s); pacing locally"
                " at %.0f%% of the budget until it answers again",
                type(error).__name__,
                error,
                self.limit.fallback_share * 100,
            )

    def _back(self) -> None:
        if self._warned:
            self._warned = False
            logger.warning("Redis answers again; back on the shared rate budget")
