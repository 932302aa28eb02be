"""The rate budget shared through a real redis-server, across clients and processes."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
from typing import Any

import pytest
import redis.asyncio

import whop_async
from whop_async import RateLimit, WhopClient
from whop_async.testing import FakeWhop, run_virtual

from . import workers
from .redis_servers import (
    RedisServer,
    multi_client,
    run_against_redis,
    unpause_all,
)
from .scenarios import RealIO, Server, client, limited, serving


def shared(
    redis_server: RedisServer, requests: int, per: float = 1.0, **options: object
) -> RateLimit:
    return RateLimit(requests, per=per, redis_url=redis_server.url, **options)  # type: ignore[arg-type]


async def budget_in(redis_client: redis.asyncio.Redis, key: str) -> dict[str, Any]:
    """An operation's budget as stored in Redis: its fields, each a JSON value."""
    stored = await redis_client.hgetall(key)
    assert stored
    return {name.decode(): json.loads(value) for name, value in stored.items()}


async def everything_in(redis_client: redis.asyncio.Redis, key: str) -> object:
    """Whatever ``key`` holds, whatever its type."""
    kind = (await redis_client.type(key)).decode()
    if kind == "hash":
        return await redis_client.hgetall(key)
    return await redis_client.zrange(key, 0, -1, withscores=True)


async def redis_now(redis_client: redis.asyncio.Redis) -> float:
    seconds, micros = await redis_client.time()
    return float(seconds) + micros / 1e6


def test_two_clients_share_one_budget_and_its_pauses(redis_server: RedisServer) -> None:
    async def two_clients() -> tuple[Server, float]:
        loop = asyncio.get_running_loop()
        server = limited(50, limiter="bucket", burst=5, hint="retry-after")
        server.strays = frozenset({20})
        limit = shared(redis_server, 50, burst=5, key="two")
        with serving(server):
            async with client(limit) as one, client(limit) as two:
                start = loop.time()
                ids = [[f"adgrp_{side}{n}" for n in range(150)] for side in "ab"]
                await asyncio.gather(
                    one.ad_groups.unpause_many(ids[0]), two.ad_groups.unpause_many(ids[1])
                )
                return server, loop.time() - start

    io = RealIO()
    with io.watching_redis():
        server, seconds = run_virtual(two_clients(), io_pending=io.pending)
    assert len(server.unpaused) == 300
    assert seconds >= (300 - 5) / 50  # together, never faster than the one budget
    assert seconds <= 1.3 * (300 - 5) / 50
    assert server.refused <= 0.05 * server.requests


async def test_the_budget_key_is_a_hash_never_the_api_key(
    redis_server: RedisServer, redis_client: redis.asyncio.Redis
) -> None:
    async with FakeWhop(groups=3, rate_limit=None) as fake:
        limit = shared(redis_server, 100)
        async with WhopClient(fake.api_key, base_url=fake.base_url, rate_limit=limit) as client:
            await client.ad_groups.unpause_many(fake.ids)
        keys = [key.decode() async for key in redis_client.scan_iter()]
        assert keys
        assert all(key.startswith("whop_async:{") for key in keys)
        for key in keys:
            assert fake.api_key not in key
            assert fake.api_key not in str(await everything_in(redis_client, key))
        named = shared(redis_server, 100, key="team-ads")
        async with WhopClient(fake.api_key, base_url=fake.base_url, rate_limit=named) as client:
            await client.ad_groups.unpause(fake.ids[0])
        assert await redis_client.exists("whop_async:{team-ads}:ad_groups.unpause")


async def test_nothing_longer_than_max_server_wait_is_written(
    redis_server: RedisServer, redis_client: redis.asyncio.Redis
) -> None:
    async with FakeWhop(groups=2, rate_limit=1, per=86_400.0, hint="retry-after") as fake:
        limit = shared(redis_server, 100, key="long")
        async with WhopClient(
            fake.api_key, base_url=fake.base_url, rate_limit=limit, max_server_wait=30.0
        ) as whop:
            await whop.ad_groups.unpause(fake.ids[0])
            with pytest.raises(whop_async.RateLimitError) as caught:
                await whop.ad_groups.unpause(fake.ids[1])  # "come back tomorrow"
        assert caught.value.retry_after is not None
        assert caught.value.retry_after == 86_400.0  # the window began with the first call
    state = await budget_in(redis_client, "whop_async:{long}:ad_groups.unpause")
    now = await redis_now(redis_client)
    assert not state["passing"]
    assert state["probe_at"] - now <= 30.0
    assert 0 < await redis_client.pttl("whop_async:{long}:ad_groups.unpause") <= 3_600_000


async def test_four_processes_share_one_budget_with_almost_no_429s(
    redis_server: RedisServer,
) -> None:
    count, each = 4, 40
    async with FakeWhop(
        groups=count * each,
        rate_limit=100,
        per=1.0,
        limiter="bucket",
        burst=10,
        hint="retry-after-ms",
    ) as fake:
        started = await workers.start(
            fake.base_url, fake.api_key, redis_server.url, workers=count, each=each, rate=100
        )
        assert await workers.run(started) == [0] * count
        assert fake.statuses() == {"active": count * each}
        unpauses = fake.stats.requests - count  # each worker's retrieve before it
        assert fake.stats.rate_limited <= 0.02 * unpauses


async def wait_until_active(fake: FakeWhop, count: int) -> None:
    for _ in range(2000):
        if fake.statuses().get("active", 0) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"fewer than {count} groups became active")


async def test_a_killed_worker_leaves_nothing_that_holds_the_others_back(
    redis_server: RedisServer, redis_client: redis.asyncio.Redis
) -> None:
    async with FakeWhop(groups=400, rate_limit=None, latency=0.01) as fake:
        [worker] = await workers.start(
            fake.base_url, fake.api_key, redis_server.url, workers=1, each=400, rate=50
        )
        workers.release([worker])
        await wait_until_active(fake, 30)
        worker.send_signal(signal.SIGKILL)
        await worker.wait()
        now = await redis_now(redis_client)
        [state_key] = [key async for key in redis_client.scan_iter("whop_async:*ad_groups.unpause")]
        state = await budget_in(redis_client, state_key)
        assert state["tat"] - now <= 1.0  # turns are booked at most a burst ahead
        assert state.get("passing", True) or state["lease_until"] - now <= 5.0


async def test_redis_stopped_mid_run_loses_nothing_and_comes_back(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with FakeWhop(groups=150, rate_limit=None) as fake:
        limit = shared(redis_server, 400, key="outage")
        finished = 0

        def count(_: object) -> None:
            nonlocal finished
            finished += 1
            if finished == 50:
                redis_server.stop()

        with caplog.at_level(logging.WARNING, logger="whop_async"):
            async with WhopClient(fake.api_key, base_url=fake.base_url, rate_limit=limit) as client:
                result = await client.ad_groups.unpause_many(fake.ids, on_outcome=count)
                assert result.ok
                assert fake.statuses() == {"active": 150}
                redis_server.start()
                await asyncio.sleep(0.3)  # the client tries Redis again after a quarter second
                await client.ad_groups.pause(fake.ids[0])
        unreachable = [r for r in caplog.records if "cannot be reached" in r.getMessage()]
        assert len(unreachable) == 1  # said once, not once per call
        assert any("answers again" in r.getMessage() for r in caplog.records)
        back = redis.asyncio.Redis.from_url(redis_server.url)
        assert await back.exists("whop_async:{outage}:ad_groups.pause")
        await back.aclose()


async def test_the_command_line_shares_the_budget_too(
    redis_server: RedisServer, redis_client: redis.asyncio.Redis
) -> None:
    async with FakeWhop(groups=3) as fake:
        command = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "whop_async", "unpause", *fake.ids,
            "--redis-url", redis_server.url,
            env={**os.environ, "WHOP_API_KEY": fake.api_key, "WHOP_BASE_URL": fake.base_url},
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, stderr = await command.communicate()
        assert command.returncode == 0, stderr.decode()
        assert fake.statuses() == {"active": 3}
    assert [key async for key in redis_client.scan_iter("whop_async:*ad_groups.unpause")]


def test_without_a_shared_budget_redis_is_never_imported() -> None:
    code = (
        "import sys, asyncio, whop_async\n"
        "async def main():\n"
        "    async with whop_async.WhopClient('k', base_url='http://127.0.0.1:9'):\n"
        "        pass\n"
        "asyncio.run(main())\n"
        "assert 'redis' not in sys.modules, 'redis was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


async def test_a_stalled_redis_is_given_up_on_without_holding_calls(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    stalled = asyncio.Event()

    async def stall_redis() -> None:
        blocker = redis.asyncio.Redis.from_url(redis_server.url)
        stalled.set()
        await blocker.execute_command("DEBUG", "SLEEP", "3")  # Redis answers nobody meanwhile
        await blocker.aclose()

    async with FakeWhop(groups=20, rate_limit=None) as fake:
        limit = shared(redis_server, 400, key="stall")
        async with WhopClient(fake.api_key, base_url=fake.base_url, rate_limit=limit) as client:
            await client.ad_groups.unpause(fake.ids[0])  # connected and sharing
            staller = asyncio.create_task(stall_redis())
            await stalled.wait()
            await asyncio.sleep(0.05)
            with caplog.at_level(logging.WARNING, logger="whop_async"):
                result = await client.ad_groups.unpause_many(fake.ids[1:])
            assert result.ok
            assert not staller.done()  # the calls finished while Redis was still asleep
            await staller
    assert any("did not answer in time" in record.getMessage() for record in caplog.records)


def test_sixteen_workers_against_a_server_stricter_than_told_settle_at_its_rate(
    redis_server: RedisServer,
) -> None:
    # A server at half the told rate: a refusal closes the gate for every worker, and
    # the one turn each may hold booked is judged by the budget of when it was granted,
    # so no cut follows another from turns booked before it. Accepted answers reach the
    # shared evidence with each worker's next turn, so a cut measures a little short and
    # more is refused than by a lone client (about 6 %), but nothing like a cascade.
    stand_in = limited(50, limiter="bucket", burst=10, hint="retry-after-ms")
    limit = RateLimit(100, per=1.0, redis=redis_server.url, key="stricter")

    async def run() -> tuple[float, list[whop_async.BulkResult]]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with serving(stand_in):
            results = await unpause_all(limit, multi_client(16, 40))
        return loop.time() - started, results

    (seconds, results), _ = run_against_redis(run())
    assert all(result.ok for result in results)
    assert seconds <= 1.3 * (640 - 10) / 50
    assert stand_in.refused <= 0.20 * stand_in.requests
