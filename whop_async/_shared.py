"""One rate budget shared through Redis by every client that names the same budget.

Imported only when a RateLimit names a ``redis_url`` (the ``redis`` extra). Each
operation's GCRA state, adapted rate and the budget's pause gate live in Redis and
change only inside Lua scripts, so there is no read-modify-write race between clients.
Time comes from Redis (``TIME``), so clocks that differ between hosts do not matter.

A turn is taken only when it is due, never booked ahead: a worker killed at any moment
leaves nothing behind that holds the others back. When Redis cannot be reached in time,
each client falls back to local pacing at a conservative share of the budget, says so
once, and returns to the shared budget when Redis answers again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis.asyncio
import redis.exceptions

from ._clock import Clock
from ._limits import CUT_FACTOR, MIN_RATE, RECOVERY_PER_SECOND, Gate, Pacer, RateLimit

logger = logging.getLogger("whop_async")

# Longer than a healthy Redis ever takes, short enough that a stalled one costs a call
# at most this much before it falls back.
_REDIS_TIMEOUT = 0.25
_RETRY_REDIS_AFTER = 1.0
# A pacer that must wait checks again at least this often, so a changed rate or a
# closed gate written by another worker is seen soon.
_LONGEST_NAP = 0.5
_STATE_TTL = 3600

_TAKE_TURN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local gate = redis.call('PTTL', KEYS[2])
if gate > 0 then
  return {tostring(gate / 1000), tostring(now)}
end
local ceiling, burst, recovery = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tat', 'rate', 'refused', 'last_raise')
local tat = tonumber(state[1]) or 0
local rate = tonumber(state[2]) or ceiling
local refused = tonumber(state[3]) or 0
local last_raise = tonumber(state[4]) or now
if rate < ceiling then
  rate = math.min(ceiling, rate + refused * recovery * (now - last_raise))
end
local interval = 1 / rate
local earliest = tat - (burst - 1) * interval
if now < earliest then
  redis.call('HSET', KEYS[1], 'rate', tostring(rate), 'last_raise', tostring(now))
  return {tostring(earliest - now), tostring(now)}
end
tat = math.max(tat, now) + interval
redis.call('HSET', KEYS[1], 'tat', tostring(tat), 'rate', tostring(rate),
  'last_raise', tostring(now))
redis.call('EXPIRE', KEYS[1], ARGV[4])
return {'0', tostring(now)}
"""

_RATE_LIMITED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local pause_ms = tonumber(ARGV[2])
if pause_ms > 0 and redis.call('PTTL', KEYS[2]) < pause_ms then
  redis.call('SET', KEYS[2], '1', 'PX', pause_ms)
end
if ARGV[1] == '' then
  return 0
end
local ceiling, factor, floor = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local state = redis.call('HMGET', KEYS[1], 'rate', 'last_cut')
local rate = tonumber(state[1]) or ceiling
local last_cut = tonumber(state[2]) or 0
if tonumber(ARGV[1]) < last_cut then
  return 0
end
local cut = math.max(floor, rate * factor)
-- No burst straight after being refused: the next turn is a full interval away.
local tat = now + tonumber(ARGV[7]) / cut
redis.call('HSET', KEYS[1], 'rate', tostring(cut), 'refused', tostring(rate),
  'last_cut', tostring(now), 'last_raise', tostring(now), 'tat', tostring(tat))
redis.call('EXPIRE', KEYS[1], ARGV[6])
return 1
"""


class RedisBudget:
    """The Redis side of one budget: a connection, two scripts, and whether Redis is up."""

    def __init__(self, limit: RateLimit, budget_key: str, clock: Clock) -> None:
        assert limit.redis_url is not None
        self.limit = limit
        self._url = limit.redis_url
        self._clock = clock
        self._prefix = f"whop_async:{{{budget_key}}}"
        self._redis: Any = None
        self._scripts: tuple[Any, Any] | None = None
        self._down_until = 0.0
        self._warned = False

    @property
    def up(self) -> bool:
        """False while Redis is being given a rest after a failure."""
        return self._clock.monotonic() >= self._down_until

    def state_key(self, operation: str) -> str:
        """Where an operation's pacing state lives."""
        return f"{self._prefix}:{operation}"

    @property
    def gate_key(self) -> str:
        """The key whose expiry is the budget's pause."""
        return f"{self._prefix}:gate"

    async def take_turn(self, operation: str) -> tuple[float, float] | None:
        """(seconds to wait, Redis time); 0 means the turn is taken. None: Redis is down."""
        limit = self.limit
        answer = await self._run(
            0,
            [self.state_key(operation), self.gate_key],
            [limit.rate, limit.burst_size, RECOVERY_PER_SECOND, _STATE_TTL],
        )
        if answer is None:
            return None
        wait, now = answer
        return float(wait), float(now)

    async def rate_limited(
        self, operation: str, sent_at: float | None, pause: float | None
    ) -> bool:
        """Share a 429 (``sent_at`` in Redis time) or a pause; False if Redis is down."""
        pause_ms = 0 if pause is None else max(1, round(pause * 1000))
        arguments = [
            "" if sent_at is None else repr(sent_at),
            pause_ms,
            self.limit.rate,
            CUT_FACTOR,
            MIN_RATE,
            _STATE_TTL,
            self.limit.burst_size,
        ]
        return await self._run(1, [self.state_key(operation), self.gate_key], arguments) is not None

    async def close(self) -> None:
        """Close the connection pool."""
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def _run(self, script: int, keys: list[str], arguments: list[Any]) -> Any:
        if not self.up:
            return None
        try:
            async with asyncio.timeout(_REDIS_TIMEOUT):
                answer = await self._script(script)(keys=keys, args=arguments)
        except (redis.exceptions.RedisError, OSError, TimeoutError) as error:
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
            return None
        if self._warned:
            self._warned = False
            logger.warning("Redis answers again; back on the shared rate budget")
        return answer

    def _script(self, index: int) -> Any:
        if self._scripts is None:
            self._redis = redis.asyncio.Redis.from_url(
                self._url,
                socket_timeout=_REDIS_TIMEOUT,
                socket_connect_timeout=_REDIS_TIMEOUT,
            )
            self._scripts = (
                self._redis.register_script(_TAKE_TURN),
                self._redis.register_script(_RATE_LIMITED),
            )
        return self._scripts[index]


class SharedPacer:
    """Paces one operation on the shared budget; a local Pacer stands in while Redis is
    down. Within a process, one task at a time asks Redis (FIFO), the rest queue."""

    def __init__(self, budget: RedisBudget, operation: str, clock: Clock) -> None:
        self._budget = budget
        self._operation = operation
        self._clock = clock
        self._queue = asyncio.Lock()
        limit = budget.limit
        self._fallback = Pacer(
            RateLimit(
                max(1, round(limit.requests * limit.fallback_share)),
                per=limit.per,
                burst=max(1, round(limit.burst_size * limit.fallback_share)),
            ),
            clock,
        )

    def try_turn(self, gate: Gate) -> float | None:
        """A shared turn always asks Redis: never at once."""
        return None

    async def wait_turn(self, gate: Gate) -> float:
        """Wait for a turn of the shared budget; the moment taken (Redis time)."""
        async with self._queue:
            while True:
                await gate.wait()
                answer = await self._budget.take_turn(self._operation)
                if answer is None:
                    return await self._fallback.wait_turn(gate)
                wait, now = answer
                if wait <= 0:
                    return now
                await self._clock.sleep(min(wait, _LONGEST_NAP))

    def release(self) -> None:
        """Nothing is held per attempt: turns are taken, never reserved."""

    def on_success(self) -> None:
        """Recovery after a cut is computed in Redis, when a turn is taken."""
        self._fallback.on_success()

    async def on_rate_limited(self, sent_at: float, pause: float | None) -> None:
        """A 429: cut the shared rate (once per round) and pause every worker."""
        if not await self._budget.rate_limited(self._operation, sent_at, pause):
            await self._fallback.on_rate_limited(sent_at, pause)
