"""Test helpers: fixtures' data, the aioresponses shim that records when requests
arrive, local servers."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from unittest import mock

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aioresponses import aioresponses
from yarl import URL

from whop_async.testing import Shape, example_ad_group

API_KEY = "sk_test_secret_0123456789abcdef"
BASE_URL = "https://api.test.whop.example/api/v1"


def ad_group_json(
    ad_group_id: str = "adgrp_xxxxxxxxxxxx", *, shape: Shape = "seed", **changes: Any
) -> dict[str, Any]:
    """An ad group in one of Whop's real shapes (the documented unpause answer by
    default), with some fields changed."""
    return {**example_ad_group(shape), "id": ad_group_id, **changes}


def jitter_at(monkeypatch: pytest.MonkeyPatch, value: float) -> None:
    """Backoff jitter drawn at ``value`` of its range every time (whop_async draws it
    from the standard ``random`` module)."""
    monkeypatch.setattr(random, "random", lambda: value)


class ShimResponse(aiohttp.ClientResponse):
    # aioresponses 0.7.9 does not pass stream_writer, which aiohttp 3.14 requires.
    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", mock.Mock())
        super().__init__(method, url, **kwargs)


class MockAPI(aioresponses):
    """aioresponses with the aiohttp 3.14 shim applied to every mocked answer, keeping
    the event loop's time at which each request arrived."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._arrivals: dict[tuple[str, URL], list[float]] = {}

    def add(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("response_class", ShimResponse)
        super().add(*args, **kwargs)

    async def match(self, method: str, url: URL, **kwargs: Any) -> Any:
        now = asyncio.get_running_loop().time()
        self._arrivals.setdefault((method, url), []).append(now)
        return await super().match(method, url, **kwargs)

    def sent(self, method: str, url: str) -> list[Any]:
        """The calls made to ``method url``, each with ``.kwargs['headers']``."""
        return list(self.requests.get((method, URL(url)), []))

    def arrivals(self, method: str, url: str) -> list[float]:
        """When the requests to ``method url`` arrived, on the event loop's clock."""
        return list(self._arrivals.get((method, URL(url)), []))

    def waits(self, method: str, url: str) -> list[float]:
        """The seconds between one request to ``method url`` and the next."""
        moments = self.arrivals(method, url)
        return [later - earlier for earlier, later in itertools.pairwise(moments)]


class InFlight:
    """Counts the requests of an aiohttp session that are on the wire (until their
    answer's head arrives), so that virtual time stands still while one is:
    ``ClientSession(trace_configs=[in_flight.trace])``, then
    ``run_virtual(..., io_pending=in_flight.pending)``."""

    def __init__(self) -> None:
        self.count = 0
        self.trace = aiohttp.TraceConfig()
        self.trace.on_request_start.append(self._started)
        self.trace.on_request_end.append(self._ended)
        self.trace.on_request_exception.append(self._ended)

    async def _started(self, *_: object) -> None:
        self.count += 1

    async def _ended(self, *_: object) -> None:
        self.count -= 1

    def pending(self) -> bool:
        return self.count > 0


class Traceparents:
    """The ``traceparent`` each request of an aiohttp session carried (None: none):
    ``ClientSession(trace_configs=[sent.trace])``, then ``sent.seen``."""

    def __init__(self) -> None:
        self.seen: list[str | None] = []
        self.trace = aiohttp.TraceConfig()
        self.trace.on_request_start.append(self._started)

    async def _started(self, _: object, __: object, start: aiohttp.TraceRequestStartParams) -> None:
        self.seen.append(start.headers.get("traceparent"))


def ipv6_loopback() -> bool:
    """True when this machine can listen on ``::1``."""
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


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


def python_alone(code: str, **environment: str) -> subprocess.CompletedProcess[str]:
    """``code`` run by a fresh interpreter from the project's root, with ``environment``
    added to this one's: for what one process can do once (OpenTelemetry's global
    providers are set once), or must not have imported."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **environment},
        cwd=Path(__file__).parent.parent,
    )
