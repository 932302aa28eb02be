"""Test helpers: fixtures' data, the aioresponses shim, a fake clock."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from unittest import mock

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from aioresponses import aioresponses
from yarl import URL

from whop_async._clock import Clock
from whop_async.testing import Shape, example_ad_group

API_KEY = "sk_test_secret_0123456789abcdef"
BASE_URL = "https://api.test.whop.example/api/v1"


def ad_group_json(
    ad_group_id: str = "adgrp_xxxxxxxxxxxx", *, shape: Shape = "seed", **changes: Any
) -> dict[str, Any]:
    """An ad group in one of Whop's real shapes (the documented unpause answer by
    default), with some fields changed."""
    return {**example_ad_group(shape), "id": ad_group_id, **changes}


class ShimResponse(aiohttp.ClientResponse):
    # aioresponses 0.7.9 does not pass stream_writer, which aiohttp 3.14 requires.
    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", mock.Mock())
        super().__init__(method, url, **kwargs)


class MockAPI(aioresponses):
    """aioresponses with the aiohttp 3.14 shim applied to every mocked answer."""

    def add(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("response_class", ShimResponse)
        super().add(*args, **kwargs)

    def sent(self, method: str, url: str) -> list[Any]:
        """The calls made to ``method url``, each with ``.kwargs['headers']``."""
        return list(self.requests.get((method, URL(url)), []))


class FakeClock:
    """Records sleeps instead of sleeping; time stands still unless a sleep moves it."""

    def __init__(self, *, random_value: float = 0.5) -> None:
        self.now = 1_800_000_000.0
        self.sleeps: list[float] = []
        self.random_value = random_value

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)

    def clock(self) -> Clock:
        return Clock(
            sleep=self.sleep,
            time=lambda: self.now,
            monotonic=lambda: self.now,
            random=lambda: self.random_value,
        )


@contextlib.asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Run ``app`` on 127.0.0.1 with a free port; yields its ``/api/v1`` base URL."""
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/api/v1"))
    finally:
        await server.close()


@contextlib.asynccontextmanager
async def serve_raw(
    handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[str]:
    """A bare TCP server on 127.0.0.1, for answers no HTTP framework would send."""

    async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handle(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(guarded, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/api/v1"
    finally:
        server.close()
        await server.wait_closed()


async def read_request_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def http_answer(status: int, body: bytes, *extra_headers: str) -> bytes:
    head = [
        f"HTTP/1.1 {status} X",
        f"Content-Length: {len(body)}",
        "Content-Type: application/json",
        *extra_headers,
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body
