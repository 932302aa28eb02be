"""Rate-limit and outage scenarios in virtual time: the stand-in (FakeWhop) limiting and
failing the way real servers do, and the real client stack running against it.

FakeWhop's own application answers each request in-process (aiohttp's mocked request,
through aioresponses), so everything but the socket is what users run and test
against. Time is virtual (whop_async.testing.run_virtual): a minute of rate limits takes
milliseconds, and no figure depends on how busy the machine is.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from unittest import mock

import aiohttp
import attrs
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from aioresponses import CallbackResult
from yarl import URL

import whop_async
from whop_async.testing import FakeWhop

from .helpers import MockAPI, ShimResponse

API_KEY = "sk_scenario"
ANY_REQUEST = re.compile(r"https://api\.scenario\.example/api/v1/.*")


class _Transport:
    """Stands in for the connection of a mocked request: FakeWhop closes it to drop one."""

    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


@attrs.define
class _Addressed:
    """What routing reads of a request."""

    method: str
    rel_url: URL


@attrs.define
class _Protocol:
    """What a request reads of its connection (``make_mocked_request``'s own mocks,
    made afresh for every request, would cost more than the rest of the scenario)."""

    transport: _Transport
    writer: object = None
    max_field_size: int = 8190
    max_line_length: int = 8190
    max_headers: int = 128
    peername: object = None
    sockname: object = None
    ssl_context: object = None


@attrs.define
class Server:
    """A FakeWhop with ``options``, answering in-process, and what it accepted when.

    ``strays`` are the numbers (from 1) of requests refused with a 429 whatever the
    limit, worded in the FakeWhop's hint style, for a wait of ``stray_wait`` seconds: a
    429 that another program's burst might cause. A second FakeWhop, refusing everything
    for ``stray_wait`` seconds from the first request it sees, answers them.
    """

    options: dict[str, Any]
    round_trip: float = 0.002
    strays: frozenset[int] = frozenset()
    stray_wait: float = 1.0
    accepted: list[tuple[float, str]] = attrs.field(factory=list)
    arrivals: list[tuple[float, str, str]] = attrs.field(factory=list)
    requests: int = 0
    fake: FakeWhop | None = None
    _app: web.Application | None = None
    _refuser: FakeWhop | None = None
    _refusing_app: web.Application | None = None

    def start(self) -> None:
        """Make the FakeWhops, on the running (virtual) loop's clock."""
        clock = asyncio.get_running_loop().time
        # One key, or the accounts of api_keys (FakeWhop takes one or the other).
        key = (
            {"api_keys": self.options["api_keys"]}
            if "api_keys" in self.options
            else {"api_key": API_KEY}
        )
        options = {**key, "accept_any_id": True, **self.options}
        self.fake = FakeWhop(clock=clock, **options)
        self.fake.base_url = "https://api.scenario.example/api/v1"
        self._app = self.fake.app()
        self._refuser = FakeWhop(
            **key,
            accept_any_id=True,
            rate_limit=None,
            hint=self.options.get("hint", "message"),
            throttle_rate=1.0,
            throttle_cycle=(self.stray_wait, 86_400.0),
            clock=clock,
        )
        self._refusing_app = self._refuser.app()

    @property
    def refused(self) -> int:
        assert self.fake is not None
        return self.fake.stats.rate_limited + self.stray_refusals

    @property
    def stray_refusals(self) -> int:
        assert self._refuser is not None
        return self._refuser.stats.rate_limited

    @property
    def unpaused(self) -> set[str]:
        return {ad_group_id for _, ad_group_id in self.accepted}

    def rate_between(self, start: float, end: float) -> float:
        """What the server accepted from the client, a second, in ``[start, end)``."""
        return sum(1 for moment, _ in self.accepted if start <= moment < end) / (end - start)

    async def answer(self, method: str, url: URL, **kwargs: Any) -> CallbackResult:
        await asyncio.sleep(self.round_trip / 2)
        self.requests += 1
        self.arrivals.append((asyncio.get_running_loop().time(), method, url.path))
        app = self._refusing_app if self.requests in self.strays else self._app
        assert app is not None
        response = await _handled(app, method, url, kwargs.get("headers") or {})
        await asyncio.sleep(self.round_trip / 2)
        if response.status == 200 and "/unpause" in url.path:
            now = asyncio.get_running_loop().time()
            self.accepted.append((now, url.path.split("/")[-2]))
        return _result(response)


async def _handled(
    app: web.Application, method: str, url: URL, headers: dict[str, str]
) -> web.Response:
    """``app``'s answer to a request, made in-process."""
    path = url.path_qs
    route = await app.router.resolve(_Addressed(method, URL(path)))  # type: ignore[arg-type]
    transport = _Transport()
    request = make_mocked_request(
        method,
        path,
        headers,
        match_info=dict(route),
        app=app,
        transport=transport,
        protocol=_Protocol(transport),
        writer=_Transport(),  # never written to: the handler's answer is read instead
    )
    response = await route.handler(request)
    if transport.closed:
        raise aiohttp.ServerDisconnectedError()
    assert isinstance(response, web.Response)
    return response


def _result(response: web.Response) -> CallbackResult:
    """FakeWhop's answer as aioresponses gives it to the client."""
    return CallbackResult(
        status=response.status,
        headers=dict(response.headers),
        body=response.body,
        response_class=ShimResponse,
    )


def limited(rate: int, per: float = 1.0, **options: Any) -> Server:
    """A Server limiting each operation to ``rate`` requests per ``per`` seconds."""
    return Server({"rate_limit": rate, "per": per, **options})


def unlimited(**options: Any) -> Server:
    """A Server with no rate limit."""
    return Server({"rate_limit": None, **options})


def client(rate_limit: whop_async.RateLimit | None, **options: Any) -> whop_async.WhopClient:
    return whop_async.WhopClient(
        API_KEY,
        base_url="https://api.scenario.example/api/v1",
        rate_limit=rate_limit,
        **options,
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


@contextlib.contextmanager
def serving(server: Server, *, first: Callable[[MockAPI], None] | None = None) -> Iterator[MockAPI]:
    """``server`` answering every request of the scenario's base URL (after what
    ``first`` registers, which answers before it)."""
    server.start()
    with MockAPI() as mocked:
        if first is not None:
            first(mocked)
        for method in ("GET", "POST"):

            async def answer(url: URL, _method: str = method, **kwargs: Any) -> CallbackResult:
                return await server.answer(_method, url, **kwargs)

            mocked.add(ANY_REQUEST, method, callback=answer, repeat=True)
        yield mocked


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
    with serving(server):
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
    with serving(server):
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
    answered (``run_virtual(..., io_pending=real_io.pending)``), and every command sent
    by name (``commands["EVALSHA"]``)."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.commands: collections.Counter[str] = collections.Counter()

    def pending(self) -> bool:
        return self.in_flight > 0

    @contextlib.contextmanager
    def watching_redis(self) -> Iterator[None]:
        import redis.asyncio.client

        original = redis.asyncio.client.Redis.execute_command
        counter = self

        async def counted(client: Any, *args: Any, **options: Any) -> Any:
            counter.commands[str(args[0]).upper()] += 1
            counter.in_flight += 1
            try:
                return await original(client, *args, **options)
            finally:
                counter.in_flight -= 1

        with mock.patch.object(redis.asyncio.client.Redis, "execute_command", counted):
            yield
