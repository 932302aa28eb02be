"""unpause_many and iter_unpause against a local server: nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aioresponses import CallbackResult
from yarl import URL

import whop_async
from whop_async import Outcome, WhopClient
from whop_async.testing import FakeWhop, run_virtual

from .helpers import API_KEY, BASE_URL, InFlight, MockAPI, ShimResponse, ad_group_json, serve

MISSING_AD_GROUP_ID = "adgrp_doesnotexist"
ANY_ID = pytest.mark.fake_whop(accept_any_id=True, rate_limit=None)


def counting_app() -> tuple[web.Application, Counter[str]]:
    hits: Counter[str] = Counter()

    async def unpause(request: web.Request) -> web.Response:
        ad_group_id = request.match_info["id"]
        hits[ad_group_id] += 1
        if ad_group_id == MISSING_AD_GROUP_ID:
            return web.json_response({"error": {"type": "not_found", "message": "no"}}, status=404)
        await asyncio.sleep(0.001 * (hash(ad_group_id) % 3))  # completion order != input order
        return web.json_response(ad_group_json(ad_group_id))

    app = web.Application()
    app.router.add_post("/api/v1/ad_groups/{id}/unpause", unpause)
    return app, hits


@pytest.mark.usefixtures("env")
async def test_unpause_many_reports_every_id_once_in_input_order() -> None:
    app, hits = counting_app()
    ids = [f"adgrp_{n}" for n in range(40)] + ["adgrp_3", MISSING_AD_GROUP_ID, "bad/id", "adgrp_7"]
    async with serve(app) as base_url, WhopClient(base_url=base_url, rate_limit=None) as client:
        result = await client.ad_groups.unpause_many(ids, concurrency=8)
    assert [group.id for group in result.succeeded] == [f"adgrp_{n}" for n in range(40)]
    assert set(result.failed) == {MISSING_AD_GROUP_ID, "bad/id"}
    assert isinstance(result.failed[MISSING_AD_GROUP_ID], whop_async.NotFoundError)
    invalid = result.failed["bad/id"]
    assert isinstance(invalid, whop_async.InvalidIdError)
    assert isinstance(invalid, ValueError)
    assert not result.ok
    assert max(hits.values()) == 1
    assert "bad/id" not in hits


@ANY_ID
async def test_iter_unpause_reads_ids_lazily_and_streams_outcomes(fake_whop: FakeWhop) -> None:
    pulled = 0

    def ids() -> Iterator[str]:
        nonlocal pulled
        for number in range(1_000):
            pulled += 1
            yield f"adgrp_{number}"

    seen = 0
    async with WhopClient(rate_limit=None) as client:
        async for outcome in client.ad_groups.iter_unpause(ids(), concurrency=4):
            seen += 1
            assert outcome.ok
            assert pulled <= seen + 4 + 4  # in flight plus finished-but-unread
    assert seen == 1_000


@ANY_ID
async def test_async_iterables_and_both_kinds_of_callback(fake_whop: FakeWhop) -> None:
    async def ids() -> AsyncIterator[str]:
        for number in range(10):
            yield f"adgrp_{number}"

    synchronous: list[str] = []
    asynchronous: list[str] = []

    async def record(outcome: Outcome) -> None:
        asynchronous.append(outcome.id)

    async with WhopClient(rate_limit=None) as client:
        result = await client.ad_groups.unpause_many(
            ids(), on_outcome=lambda outcome: synchronous.append(outcome.id)
        )
        await client.ad_groups.unpause_many(ids(), on_outcome=record)
    assert result.ok
    assert sorted(synchronous) == sorted(asynchronous) == [f"adgrp_{n}" for n in range(10)]


@ANY_ID
async def test_an_error_that_is_not_a_whop_error_stops_the_batch_and_propagates(
    fake_whop: FakeWhop,
) -> None:
    def explode(outcome: Outcome) -> None:
        raise KeyError(outcome.id)

    async with WhopClient(rate_limit=None) as client:
        with pytest.raises(KeyError):
            await client.ad_groups.unpause_many(
                [f"adgrp_{n}" for n in range(100)], on_outcome=explode
            )


async def test_an_error_raised_by_the_ids_after_a_few_propagates(fake_whop: FakeWhop) -> None:
    # The third id fails to come: the worker that asked for it is one made after the
    # run began, and its error must not be lost.
    async def ids() -> AsyncIterator[str]:
        yield fake_whop.ids[0]
        yield fake_whop.ids[1]
        raise OSError("the listing broke")

    async with WhopClient(rate_limit=None) as client:
        with pytest.raises(OSError, match="the listing broke"):
            await client.ad_groups.unpause_many(ids(), concurrency=16)


@pytest.mark.usefixtures("env")
async def test_cancelling_a_batch_cancels_its_calls_cleanly() -> None:
    started = asyncio.Event()

    async def hang(_: web.Request) -> web.Response:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    app = web.Application()
    app.router.add_post("/api/v1/ad_groups/{id}/unpause", hang)
    async with serve(app) as base_url, WhopClient(base_url=base_url, rate_limit=None) as client:
        batch = asyncio.create_task(client.ad_groups.unpause_many(["adgrp_1", "adgrp_2"]))
        await started.wait()
        batch.cancel()
        with pytest.raises(asyncio.CancelledError):
            await batch


@pytest.mark.usefixtures("env")
@pytest.mark.parametrize("concurrency", [0, -1, 10_001, 10**8, 1.5, True])
async def test_concurrency_is_a_whole_number_from_1_to_10000(concurrency: object) -> None:
    async with WhopClient(rate_limit=None) as client:
        with pytest.raises(ValueError, match="concurrency"):
            await client.ad_groups.unpause_many(["adgrp_1"], concurrency=concurrency)  # type: ignore[arg-type]


async def test_a_high_concurrency_makes_no_more_workers_than_ids(fake_whop: FakeWhop) -> None:
    # Workers are made as ids are taken: two ids at the highest concurrency make three
    # tasks, not ten thousand (each worker a task waiting for its turn).
    async with WhopClient(rate_limit=None) as client:
        before = len(asyncio.all_tasks())
        most = before

        def count(_: whop_async.Outcome) -> None:
            nonlocal most
            most = max(most, len(asyncio.all_tasks()))

        result = await client.ad_groups.unpause_many(
            fake_whop.ids[:2], concurrency=10_000, on_outcome=count
        )
    assert result.ok
    assert most - before <= 3 + 2  # the workers, and the server's handlers of two requests


def test_a_rate_limited_server_loses_nothing_and_the_gate_is_respected() -> None:
    """A small version of the benchmark: 60 ids against 40 per second with burst 5, over
    a real socket, the waits in virtual time.

    After a 429 the server counts requests that arrive during the pause it asked for,
    leaving a margin for those already on their way when it answered.
    """
    tokens, refused_at, refused_until = 5.0, 0.0, 0.0
    refill_at: float | None = None  # virtual time starts at 0
    early_requests = refusals = 0
    unpaused: Counter[str] = Counter()

    async def unpause(request: web.Request) -> web.Response:
        nonlocal tokens, refill_at, refused_at, refused_until, early_requests, refusals
        now = asyncio.get_running_loop().time()
        early_requests += refused_at + 0.06 < now < refused_until - 0.01
        if refill_at is not None:
            tokens = min(5.0, tokens + (now - refill_at) * 40)
        refill_at = now
        if tokens < 1:
            refusals += 1
            if now >= refused_until:
                refused_at, refused_until = now, now + 0.25
            return web.json_response(
                {"error": {"type": "rate_limit_exceeded", "message": "slow down"}},
                status=429,
                headers={"retry-after-ms": str(round((refused_until - now) * 1000))},
            )
        tokens -= 1
        unpaused[request.match_info["id"]] += 1
        return web.json_response(ad_group_json(request.match_info["id"]))

    app = web.Application()
    app.router.add_post("/api/v1/ad_groups/{id}/unpause", unpause)
    ids = [f"adgrp_{n}" for n in range(60)]
    in_flight = InFlight()

    async def unpause_all() -> whop_async.BulkResult:
        async with (
            serve(app) as base_url,
            aiohttp.ClientSession(trace_configs=[in_flight.trace]) as session,
            WhopClient(API_KEY, base_url=base_url, rate_limit=None, session=session) as client,
        ):
            return await client.ad_groups.unpause_many(ids, concurrency=16)

    result = run_virtual(unpause_all(), io_pending=in_flight.pending)
    assert result.ok
    assert sorted(unpaused) == sorted(ids)
    assert refusals > 0  # the gate was put to the test
    assert early_requests == 0


@pytest.mark.usefixtures("env")
@pytest.mark.virtual_time
async def test_bulk_calls_retry_longer_than_single_calls(mock_api: MockAPI) -> None:
    """Losing an id in bulk is worse than waiting: 8 retries by default, not 3."""
    url = f"{BASE_URL}/ad_groups/adgrp_1/unpause"
    for _ in range(6):
        mock_api.post(url, status=503)
    mock_api.post(url, payload=ad_group_json("adgrp_1"))
    async with WhopClient(base_url=BASE_URL) as client:
        result = await client.ad_groups.unpause_many(["adgrp_1"])
        assert result.ok
        mock_api.post(url, repeat=True, status=503)
        result = await client.ad_groups.unpause_many(["adgrp_1"], max_retries=2)
    assert isinstance(result.failed["adgrp_1"], whop_async.InternalServerError)
    assert len(mock_api.sent("POST", url)) == 7 + 3


@pytest.mark.usefixtures("env")
async def test_a_single_string_is_refused_rather_than_read_letter_by_letter() -> None:
    async with WhopClient(rate_limit=None) as client:
        with pytest.raises(TypeError, match="wrap it in a list"):
            await client.ad_groups.unpause_many("adgrp_1")


async def test_bulk_unpausing_todays_shape_ends_with_every_id_succeeded() -> None:
    async with (
        FakeWhop(groups=40, shape="docs-2026-11") as fake,
        WhopClient(fake.api_key, base_url=fake.base_url, rate_limit=None) as client,
    ):
        result = await client.ad_groups.unpause_many(fake.ids, concurrency=8)
        assert fake.statuses() == {"active": 40}
    assert result.ok
    assert [group.id for group in result.succeeded] == fake.ids
    assert {group.platform for group in result.succeeded} == {None}


@pytest.mark.usefixtures("env")
async def test_accepted_answers_that_cannot_be_read_are_kept_apart_from_failures() -> None:
    async def unpause(request: web.Request) -> web.StreamResponse:
        ad_group_id = request.match_info["id"]
        if ad_group_id == "adgrp_garbled":
            return web.Response(text="<html>done</html>", content_type="text/html")
        if ad_group_id == "adgrp_missing":
            return web.json_response({"error": {"message": "not found"}}, status=404)
        return web.json_response(ad_group_json(ad_group_id, shape="docs-2026-11"))

    app = web.Application()
    app.router.add_post("/api/v1/ad_groups/{id}/unpause", unpause)
    outcomes: list[Outcome] = []
    async with serve(app) as base_url, WhopClient(base_url=base_url, rate_limit=None) as client:
        ids = ["adgrp_good", "adgrp_garbled", "adgrp_missing"]
        result = await client.ad_groups.unpause_many(ids, on_outcome=outcomes.append)
    assert [group.id for group in result.succeeded] == ["adgrp_good"]
    assert set(result.failed) == {"adgrp_missing"}
    assert set(result.unreadable) == {"adgrp_garbled"}
    assert result.unreadable["adgrp_garbled"].body == "<html>done</html>"
    assert not result.ok
    records = {outcome.id: outcome.to_dict() for outcome in outcomes}
    assert records["adgrp_garbled"]["accepted"] is True
    assert records["adgrp_garbled"]["status_code"] == 200
    assert records["adgrp_missing"]["accepted"] is False
    assert records["adgrp_good"]["ad_group"]["budget_amount"] == 100


@pytest.mark.usefixtures("env")
async def test_once_the_opening_is_over_an_unknown_limit_costs_no_extra_wake_ups(
    mock_api: MockAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With no limit known, the first requests queue for the slow-start window. Once it
    # has opened, requests must go straight out again, not through the queue one by
    # one, each woken by the one before: that doubled the event loop's work per id.
    async def answer(url: URL, **_: object) -> CallbackResult:
        await asyncio.sleep(0)  # in flight across a turn of the loop, as on a network
        return CallbackResult(payload=ad_group_json(url.parts[-2]), response_class=ShimResponse)

    mock_api.post(re.compile(rf"{re.escape(BASE_URL)}/ad_groups/.*"), callback=answer, repeat=True)
    loop = asyncio.get_running_loop()
    scheduled = 0
    call_soon = loop.call_soon

    def counted(*args: Any, **kwargs: Any) -> asyncio.Handle:
        nonlocal scheduled
        scheduled += 1
        return call_soon(*args, **kwargs)

    monkeypatch.setattr(loop, "call_soon", counted)

    async def scheduled_per_id_after_the_opening(rate_limit: whop_async.RateLimit | None) -> float:
        ids = [f"adgrp_{number}" for number in range(1000)]
        outcomes, scheduled_at_half = 0, 0

        def halfway(_: Outcome) -> None:
            nonlocal outcomes, scheduled_at_half
            outcomes += 1
            if outcomes == len(ids) // 2:
                scheduled_at_half = scheduled

        async with WhopClient(base_url=BASE_URL, rate_limit=rate_limit) as whop:
            result = await whop.ad_groups.unpause_many(ids, concurrency=64, on_outcome=halfway)
        assert result.ok
        return (scheduled - scheduled_at_half) / (len(ids) // 2)

    told = whop_async.RateLimit(10**6, per=1.0, burst=10**6)
    never_queued = await scheduled_per_id_after_the_opening(told)
    unknown = await scheduled_per_id_after_the_opening(None)
    assert unknown <= never_queued * 1.1
