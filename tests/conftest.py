"""Shared fixtures: a mocked API, virtual time, and guards against leaked warnings."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio

import whop_async

from .helpers import API_KEY, BASE_URL, MockAPI
from .redis_servers import RedisServer, running_redis_server

# The fixture users get: the project tests itself with it too.
pytest_plugins = ["whop_async.testing.pytest_plugin"]


@pytest.fixture
def mock_api() -> Iterator[MockAPI]:
    with MockAPI() as mocked:
        yield mocked


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A clean environment with only the test key set."""
    monkeypatch.delenv("WHOP_BASE_URL", raising=False)
    monkeypatch.setenv("WHOP_API_KEY", API_KEY)
    return monkeypatch


@pytest.fixture
async def client(env: pytest.MonkeyPatch) -> AsyncIterator[whop_async.WhopClient]:
    async with whop_async.WhopClient(base_url=BASE_URL) as opened:
        yield opened


@pytest.fixture(autouse=True)
async def no_loop_errors() -> AsyncIterator[None]:
    """Fail a test whose event loop reported an error (e.g. 'Task exception was never
    retrieved', 'Unclosed client session')."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    yield
    gc.collect()
    await asyncio.sleep(0)
    assert reported == [], reported


class _Recorded(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def no_errors_of_other_loops() -> Iterator[None]:
    """Fail a test whose other event loops (run_virtual's, a thread's) reported an
    error: asyncio logs them, as an exception raised in a callback, and moves on."""
    recorded = _Recorded()
    logger = logging.getLogger("asyncio")
    logger.addHandler(recorded)
    try:
        yield
    finally:
        logger.removeHandler(recorded)
    assert [record.getMessage() for record in recorded.records] == []


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    yield from running_redis_server()


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()
