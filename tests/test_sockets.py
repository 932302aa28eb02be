"""Over real sockets on 127.0.0.1: what a mock cannot show."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from aiohttp import web

import whop_async
from whop_async import WhopClient
from whop_async.testing import FakeWhop

from .helpers import (
    API_KEY,
    ad_group_json,
    http_answer,
    jitter_at,
    read_request_head,
    serve,
    serve_raw,
)

AD_GROUP_ID = "adgrp_xxxxxxxxxxxx"
OK_BYTES = http_answer(200, json.dumps(ad_group_json()).encode())

pytestmark = pytest.mark.usefixtures("env")


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Full-jitter backoff drawn at the bottom of its range: retries go at once, so a
    test over real sockets never sleeps."""
    jitter_at(monkeypatch, 0.0)


class Hang:
    """An unpause endpoint that accepts requests and never answers."""

    def __init__(self) -> None:
        self.attempts = 0
        self.arrived = asyncio.Event()
        self.app = web.Application()
        self.app.router.add_post("/api/v1/ad_groups/{id}/unpause", self.hang)

    async def hang(self, _: web.Request) -> web.Response:
        self.attempts += 1
        self.arrived.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_the_exact_bytes_of_an_unpause_request() -> None:
    heads: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await read_request_head(reader))
        writer.write(OK_BYTES)
        await writer.drain()

    async with serve_raw(handle) as base_url, WhopClient(base_url=base_url) as client:
        group = await client.ad_groups.unpause(AD_GROUP_ID, idempotency_key="key-1")
    assert group.id == AD_GROUP_ID
    [head] = heads
    request_line, *header_lines = head.decode().rstrip("\r\n").split("\r\n")
    assert request_line == f"POST /api/v1/ad_groups/{AD_GROUP_ID}/unpause HTTP/1.1"
    headers = dict(line.split(": ", 1) for line in header_lines)
    assert headers["Authorization"] == f"Bearer {API_KEY}"
    assert headers["Accept"] == "application/json"
    assert headers["Idempotency-Key"] == "key-1"
    assert headers["User-Agent"].startswith("whop_async/")
    assert headers.get("Content-Length", "0") == "0"
    assert "Api-Version-Date" not in headers
    assert "Cookie" not in headers


async def test_a_client_used_without_async_with_opens_lazily_and_closes() -> None:
    connected, hung_up = asyncio.Event(), asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.set()
        await read_request_head(reader)
        writer.write(OK_BYTES)
        await writer.drain()
        await reader.read()  # until the client hangs up
        hung_up.set()

    async with serve_raw(handle) as base_url:
        client = WhopClient(base_url=base_url)
        await asyncio.sleep(0)
        assert not connected.is_set()  # made, not opened
        group = await client.ad_groups.unpause(AD_GROUP_ID)  # opened by the first call
        assert group.id == AD_GROUP_ID
        assert not hung_up.is_set()  # the connection is kept for the next call
        await client.close()
        await asyncio.wait_for(hung_up.wait(), timeout=10)  # closed by close()
    assert client.closed
    with pytest.raises(RuntimeError, match="closed"):
        await client.ad_groups.unpause(AD_GROUP_ID)


@pytest.mark.usefixtures("no_backoff")
async def test_a_connection_dropped_before_the_answer_is_retried() -> None:
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await read_request_head(reader)
        if connections > 1:
            writer.write(OK_BYTES)
            await writer.drain()

    async with (
        serve_raw(handle) as base_url,
        WhopClient(base_url=base_url) as client,
    ):
        group = await client.ad_groups.unpause(AD_GROUP_ID)
    assert group.id == AD_GROUP_ID
    assert connections == 2


@pytest.mark.usefixtures("no_backoff")
async def test_a_connection_dropped_mid_body_is_a_connection_error() -> None:
    attempts = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal attempts
        await read_request_head(reader)
        attempts += 1
        writer.write(OK_BYTES[:-20])
        await writer.drain()

    async with (
        serve_raw(handle) as base_url,
        WhopClient(base_url=base_url, max_retries=2) as client,
    ):
        with pytest.raises(whop_async.APIConnectionError) as caught:
            await client.ad_groups.unpause(AD_GROUP_ID)
    assert type(caught.value) is whop_async.APIConnectionError
    assert attempts == 3  # retried twice


@pytest.mark.usefixtures("no_backoff")
async def test_a_hung_answer_times_out_and_is_retried() -> None:
    hang = Hang()
    async with (
        serve(hang.app) as base_url,
        WhopClient(base_url=base_url, timeout=0.05, max_retries=1) as client,
    ):
        with pytest.raises(whop_async.APITimeoutError, match=r"timed out after 0\.05 s"):
            await client.ad_groups.unpause(AD_GROUP_ID)
    assert hang.attempts == 2


async def test_redirects_are_not_followed_even_to_the_same_api() -> None:
    elsewhere_hits = 0

    async def elsewhere(_: web.Request) -> web.Response:
        nonlocal elsewhere_hits
        elsewhere_hits += 1
        return web.json_response(ad_group_json())

    other = web.Application()
    other.router.add_route("*", "/{tail:.*}", elsewhere)
    async with serve(other) as other_url:

        async def redirect(_: web.Request) -> web.Response:
            raise web.HTTPTemporaryRedirect(f"{other_url}/ad_groups/{AD_GROUP_ID}/unpause")

        app = web.Application()
        app.router.add_post("/api/v1/ad_groups/{id}/unpause", redirect)
        async with serve(app) as base_url, WhopClient(base_url=base_url) as client:
            with pytest.raises(whop_async.APIStatusError) as caught:
                await client.ad_groups.unpause(AD_GROUP_ID)
    assert caught.value.status_code == 307
    assert caught.value.headers["Location"].startswith(other_url)
    assert elsewhere_hits == 0


async def test_answers_are_read_whole_so_the_connection_is_reused() -> None:
    peers: set[object] = set()

    async def unpause(request: web.Request) -> web.Response:
        peers.add(request.transport.get_extra_info("peername") if request.transport else None)
        return web.json_response(ad_group_json(request.match_info["id"]))

    app = web.Application()
    app.router.add_post("/api/v1/ad_groups/{id}/unpause", unpause)
    async with serve(app) as base_url, WhopClient(base_url=base_url) as client:
        for index in range(5):
            await client.ad_groups.unpause(f"adgrp_{index}")
    assert len(peers) == 1


@pytest.mark.fake_whop(groups=1)
async def test_a_borrowed_session_is_used_and_left_open(fake_whop: FakeWhop) -> None:
    async with aiohttp.ClientSession() as session:
        async with WhopClient(
            fake_whop.api_key, base_url=fake_whop.base_url, session=session
        ) as client:
            await client.ad_groups.unpause(fake_whop.ids[0])
        assert not session.closed
        assert client.closed


async def test_cancelling_an_in_flight_call_leaves_nothing_behind() -> None:
    hang = Hang()
    async with serve(hang.app) as base_url:
        async with WhopClient(base_url=base_url) as client:
            call = asyncio.create_task(client.ad_groups.unpause(AD_GROUP_ID))
            await hang.arrived.wait()
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
        assert client.closed
    # no_loop_errors and filterwarnings=error check that nothing leaked


async def test_leaving_the_block_by_cancellation_closes_the_session() -> None:
    hang = Hang()
    opened: list[WhopClient] = []

    async def use_client(base_url: str) -> None:
        async with WhopClient(base_url=base_url) as client:
            opened.append(client)
            await client.ad_groups.unpause(AD_GROUP_ID)

    async with serve(hang.app) as base_url:
        task = asyncio.create_task(use_client(base_url))
        await hang.arrived.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert opened[0].closed


@pytest.mark.virtual_time
async def test_waiting_for_a_permit_does_not_count_against_the_timeout() -> None:
    """250 calls, 100 sockets: the third wave waits two answers' time (0.4 s) for a permit,
    which with its own answer (0.2 s) would exceed the 0.5 s timeout if the wait were
    timed."""

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.2)
        return web.json_response(ad_group_json(request.match_info["id"]))

    app = web.Application()
    app.router.add_post("/api/v1/ad_groups/{id}/unpause", slow)
    # A limit far above the load: no pacing and no slow-start window hold calls back,
    # so only the permit stands between them and the pool.
    unlimited = whop_async.RateLimit(1_000_000, per=1.0, burst=1000)
    async with (
        serve(app) as base_url,
        WhopClient(base_url=base_url, timeout=0.5, max_retries=0, rate_limit=unlimited) as client,
    ):
        groups = await asyncio.gather(*(client.ad_groups.unpause(f"adgrp_{n}") for n in range(250)))
    assert len(groups) == 250


async def test_an_unknown_limit_is_found_over_real_sockets_with_few_429s() -> None:
    # Virtual time cannot show this: over real sockets, calls the opening let through
    # at once all reach a fixed window that is already spent before its first 429 is
    # read, where one after another they are stopped by it.
    async with (
        FakeWhop(rate_limit=50, per=1.0, accept_any_id=True) as fake,
        WhopClient(fake.api_key, base_url=fake.base_url, rate_limit=None) as whop,
    ):
        ids = [f"adgrp_{number}" for number in range(150)]
        result = await whop.ad_groups.unpause_many(ids, concurrency=64)
    assert result.ok
    assert fake.stats.rate_limited <= 0.1 * fake.stats.requests


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
async def test_an_answer_without_end_is_read_no_further_than_sixteen_mib(framing: str) -> None:
    """A 2xx whose body never ends (chunked) or claims ten gigabytes: the call ends, the
    server accepted it, and no more than the cap is kept."""
    block = b"x" * 65536
    sent = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        await read_request_head(reader)
        framing_header = (
            "Transfer-Encoding: chunked" if framing == "chunked" else "Content-Length: 10000000000"
        )
        writer.write(f"HTTP/1.1 200 OK\r\n{framing_header}\r\n\r\n".encode())
        while sent < 200 * 2**20:  # far past the cap: the client must stop reading first
            chunk = (
                f"{len(block):x}\r\n".encode() + block + b"\r\n" if framing == "chunked" else block
            )
            writer.write(chunk)
            await writer.drain()
            sent += len(block)

    async with (
        serve_raw(handle) as base_url,
        WhopClient(base_url=base_url, max_retries=0) as client,
    ):
        with pytest.raises(whop_async.APIResponseValidationError) as raised:
            await client.ad_groups.unpause("adgrp_1")
    assert raised.value.accepted
    assert "larger than 16 MiB" in str(raised.value)
    assert sent < 100 * 2**20
