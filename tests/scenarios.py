"""Rate-limit scenarios in virtual time: a server that limits like a real one, and the
real client stack (engine, retries, transport) running against it, measured.

The server is answered through aioresponses, so everything but the socket is the code
users run. Time is virtual (tests/virtual_time.py): a minute of rate limits takes
milliseconds, and the figures do not depend on how busy the machine is.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import random
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol
from unittest import mock

import aiohttp
import attrs
from aioresponses import CallbackResult

import whop_async
from whop_async._clock import Clock

from .helpers import MockAPI, ShimResponse, ad_group_json

BASE_URL = "https://api.scenario.example/api/v1"
API_KEY = "sk_scenario"
UNPAUSE = re.compile(r".*/ad_groups/([^/]+)/unpause$")


class Limiter(Protocol):
    def take(self, now: float, scale: float) -> float | None:
        """None when a request may pass at ``now`` (and is counted), else the true wait;
        ``scale`` multiplies the limit (a limit that drops mid-run)."""


@attrs.define
class Bucket:
    """A token bucket: ``rate`` a second, at most ``burst`` at once."""

    rate: float
    burst: int
    tokens: float = attrs.field(init=False)
    stamp: float = 0.0

    def __attrs_post_init__(self) -> None:
        self.tokens = self.burst

    def take(self, now: float, scale: float = 1.0) -> float | None:
        rate = self.rate * scale
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return None
        return (1 - self.tokens) / rate


@attrs.define
class FixedWindow:
    """Whop's style: at most ``limit`` per window of ``per`` seconds."""

    limit: int
    per: float
    start: float = 0.0
    used: int = 0

    def take(self, now: float, scale: float = 1.0) -> float | None:
        start = math.floor(now / self.per) * self.per
        if start != self.start:
            self.start, self.used = start, 0
        if self.used < self.limit * scale:
            self.used += 1
            return None
        return start + self.per - now


@attrs.define
class SlidingLog:
    """At most ``limit`` in any ``per`` seconds."""

    limit: int
    per: float
    log: collections.deque[float] = attrs.field(factory=collections.deque)

    def take(self, now: float, scale: float = 1.0) -> float | None:
        while self.log and self.log[0] <= now - self.per:
            self.log.popleft()
        if len(self.log) < self.limit * scale:
            self.log.append(now)
            return None
        return self.log[0] + self.per - now


PROXY_503 = CallbackResult(
    status=503,
    body="<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>",
    content_type="text/html",
    response_class=ShimResponse,
)


def rate_limited(style: str, wait: float) -> CallbackResult:
    """A 429 as servers send it: the wait rounded up to whole seconds (at least 1) in
    ``Retry-After`` or Whop's message, in milliseconds, or not at all."""
    seconds = max(1, math.ceil(wait))
    headers: dict[str, str] = {}
    message = "Rate limit exceeded."
    if style == "retry-after":
        headers["Retry-After"] = str(seconds)
    elif style == "retry-after-ms":
        headers["retry-after-ms"] = str(math.ceil(wait * 1000))
    elif style == "message":
        message = f"Try again in {seconds} seconds."
    body = {"error": {"type": "rate_limit_exceeded", "message": message}}
    return CallbackResult(status=429, headers=headers, payload=body, response_class=ShimResponse)


@attrs.define
class Server:
    """A limited server: its limiter, hint style, round trip, and who else spends it.

    ``neighbour`` requests a second of another program count against the same limit
    until ``neighbour_until``; ``drop`` is (from, for, factor): the limit scaled by
    ``factor`` for a while. ``strays`` are the numbers (from 1) of requests refused
    whatever the limit, as if told to wait ``stray_wait``: stray 429s. ``outage`` is
    (from, for): every request then gets a proxy's HTML 503. ``fail_first`` maps ids to
    how many of their first attempts get a 503; ``drops`` to how many lose their
    connection before any answer.
    """

    limiter: Limiter | None
    hint: str = "retry-after"
    round_trip: float = 0.002
    neighbour: float = 0.0
    neighbour_until: float = math.inf
    drop: tuple[float, float, float] | None = None
    strays: frozenset[int] = frozenset()
    stray_wait: float = 1.0
    outage: tuple[float, float] | None = None
    fail_first: dict[str, int] = attrs.field(factory=dict)
    drops: dict[str, int] = attrs.field(factory=dict)
    status: int = 200
    requests: int = 0
    refused: int = 0
    failed: int = 0
    accepted: list[tuple[float, str]] = attrs.field(factory=list)
    neighbour_accepted: int = 0
    _neighbour_next: float = 0.0

    def scale(self, now: float) -> float:
        if self.drop is not None and self.drop[0] <= now < self.drop[0] + self.drop[1]:
            return self.drop[2]
        return 1.0

    async def answer(self, url: Any, **_: Any) -> CallbackResult:
        await asyncio.sleep(self.round_trip / 2)
        now = asyncio.get_running_loop().time()
        self._neighbours_until(now)
        self.requests += 1
        ad_group_id = UNPAUSE.match(str(url)).group(1)  # type: ignore[union-attr]
        failure = self._failure(ad_group_id, now)
        if failure is not None:
            await asyncio.sleep(self.round_trip / 2)
            if isinstance(failure, BaseException):
                raise failure
            return failure
        if self.requests in self.strays:
            wait: float | None = self.stray_wait
        else:
            wait = None if self.limiter is None else self.limiter.take(now, self.scale(now))
        await asyncio.sleep(self.round_trip / 2)
        if wait is not None:
            self.refused += 1
            return rate_limited(self.hint, wait)
        self.accepted.append((now, ad_group_id))
        if self.status != 200:  # a server that answers every request the same way
            body = {"error": {"type": "error", "message": f"status {self.status}"}}
            return CallbackResult(status=self.status, payload=body, response_class=ShimResponse)
        return CallbackResult(payload=ad_group_json(ad_group_id), response_class=ShimResponse)

    def _failure(self, ad_group_id: str, now: float) -> CallbackResult | BaseException | None:
        if self.outage is not None and self.outage[0] <= now < sum(self.outage):
            self.failed += 1
            return PROXY_503
        if self.drops.get(ad_group_id, 0) > 0:
            self.drops[ad_group_id] -= 1
            self.failed += 1
            return aiohttp.ServerDisconnectedError()
        if self.fail_first.get(ad_group_id, 0) > 0:
            self.fail_first[ad_group_id] -= 1
            self.failed += 1
            return PROXY_503
        return None

    def _neighbours_until(self, now: float) -> None:
        if not self.neighbour or self.limiter is None:
            return
        while self._neighbour_next <= min(now, self.neighbour_until):
            moment = self._neighbour_next
            self.neighbour_accepted += self.limiter.take(moment, self.scale(moment)) is None
            self._neighbour_next += 1 / self.neighbour

    @property
    def unpaused(self) -> set[str]:
        return {ad_group_id for _, ad_group_id in self.accepted}

    def rate_between(self, start: float, end: float) -> float:
        """What the server accepted from the client, a second, in ``[start, end)``."""
        return sum(1 for moment, _ in self.accepted if start <= moment < end) / (end - start)


def virtual_clock() -> Clock:
    """The client's clock on the running virtual-time loop (shared budgets too)."""
    loop = asyncio.get_running_loop()
    chance = random.Random(7)
    return Clock(
        sleep=asyncio.sleep,
        time=lambda: 1_800_000_000.0 + loop.time(),
        monotonic=loop.time,
        random=chance.random,
        shared_time=loop.time,
    )


def client(rate_limit: whop_async.RateLimit | None, **options: Any) -> whop_async.WhopClient:
    return whop_async.WhopClient(
        API_KEY, base_url=BASE_URL, rate_limit=rate_limit, _clock=virtual_clock(), **options
    )


@attrs.frozen
class Run:
    """What a bulk run did: its result, its duration, and what the server saw."""

    result: whop_async.BulkResult
    seconds: float
    server: Server

    @property
    def refused_share(self) -> float:
        return self.server.refused / max(1, self.server.requests)


def serve(mock: MockAPI, server: Server) -> None:
    mock.post(UNPAUSE, callback=server.answer, repeat=True)


async def bulk(
    server: Server,
    count: int,
    rate_limit: whop_async.RateLimit | None,
    *,
    concurrency: int = 64,
    **options: Any,
) -> Run:
    """Unpause ``count`` ids through ``server``; the run as measured."""
    loop = asyncio.get_running_loop()
    ids = [f"adgrp_{number}" for number in range(count)]
    with MockAPI() as mock:
        serve(mock, server)
        async with client(rate_limit) as whop:
            start = loop.time()
            result = await whop.ad_groups.unpause_many(ids, concurrency=concurrency, **options)
            return Run(result, loop.time() - start, server)


async def timed_calls(
    server: Server,
    rate_limit: whop_async.RateLimit | None,
    moments: Sequence[float],
    *,
    before: Callable[[whop_async.WhopClient], Any] | None = None,
) -> list[float]:
    """One unpause started at each of ``moments`` (seconds from now); how long each took."""
    loop = asyncio.get_running_loop()
    with MockAPI() as mock:
        serve(mock, server)
        async with client(rate_limit) as whop:
            if before is not None:
                await before(whop)
            start = loop.time()

            async def call_at(number: int, moment: float) -> float:
                await asyncio.sleep(start + moment - loop.time())
                began = loop.time()
                await whop.ad_groups.unpause(f"adgrp_call{number}")
                return loop.time() - began

            return list(await asyncio.gather(*map(call_at, range(len(moments)), moments)))


class RealIO:
    """Counts Redis commands in flight, so virtual time stands still while one is
    answered (``run_virtual(..., io_pending=real_io.pending)``)."""

    def __init__(self) -> None:
        self.in_flight = 0

    def pending(self) -> bool:
        return self.in_flight > 0

    @contextlib.contextmanager
    def watching_redis(self) -> Iterator[None]:
        import redis.asyncio.client

        original = redis.asyncio.client.Redis.execute_command
        counter = self

        async def counted(client: Any, *args: Any, **options: Any) -> Any:
            counter.in_flight += 1
            try:
                return await original(client, *args, **options)
            finally:
                counter.in_flight -= 1

        with mock.patch.object(redis.asyncio.client.Redis, "execute_command", counted):
            yield
