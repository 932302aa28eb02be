"""Bulk runs that finish right: outages ridden out, fatal errors stop the run at once,
every id accounted for; and what a single call and a closed client do meanwhile.

Outage scenarios run in virtual time (whop_async.testing.run_virtual) against a server answered
through aioresponses; a wrong key and a dead address run against real sockets.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections import Counter
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aioresponses import CallbackResult
from yarl import URL

import whop_async
from whop_async import NotFinishedError, WhopClient
from whop_async.testing import FakeWhop, run_virtual

from .helpers import (
    API_KEY,
    BASE_URL,
    InFlight,
    MockAPI,
    ShimResponse,
    ad_group_json,
    jitter_at,
    serve,
)
from .scenarios import bulk, client, limited, serving, unlimited

UNPAUSE_URL = f"{BASE_URL}/ad_groups/adgrp_xxxxxxxxxxxx/unpause"


def reasons(result: whop_async.BulkResult) -> Counter[str]:
    return Counter(
        error.reason if isinstance(error, NotFinishedError) else type(error).__name__
        for error in result.failed.values()
    )


# --- outages are ridden out ---------------------------------------------------------


@pytest.mark.parametrize("concurrency", [16, 64])
def test_a_six_second_outage_is_ridden_out_with_few_extra_requests(concurrency: int) -> None:
    bucket = {"limiter": "bucket", "burst": 10}
    normal = run_virtual(bulk(limited(100, **bucket), 300, None, concurrency=concurrency))
    server = limited(100, **bucket, outage=(1.0, 6.0))
    run = run_virtual(bulk(server, 300, None, concurrency=concurrency))
    assert run.result.ok
    assert len(server.unpaused) == 300
    assert run.seconds <= 6.0 + normal.seconds + 3.0
    assert server.requests - 300 <= 150  # about half as many extra requests as ids at most


@pytest.mark.parametrize(("failures", "every"), [(2, 3), (3, 11)])
def test_ids_that_need_two_or_three_retries_all_succeed(failures: int, every: int) -> None:
    needy = [f"adgrp_{number}" for number in range(0, 200, every)]
    server = unlimited(fail_first=failures, fail_first_ids=needy)
    run = run_virtual(bulk(server, 200, None, concurrency=16))
    assert run.result.ok
    assert server.requests == 200 + failures * len(needy)


def test_retries_and_dropped_connections_lose_nothing() -> None:
    needy = [f"adgrp_{number}" for number in range(20)]
    server = unlimited(fail_first=2, fail_first_ids=needy, drop_rate=0.03, seed=5)
    run = run_virtual(bulk(server, 255, None, concurrency=16))
    assert run.result.ok
    assert len(server.unpaused) == 255
    assert server.fake is not None
    assert server.fake.stats.faults >= 40 + 3


def test_a_long_outage_costs_probes_not_requests_per_id_then_ends_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Jitter held steady: which call takes the first probe must not be chance.
    jitter_at(monkeypatch, 0.5)
    server = unlimited(outage=(0.02, 3600.0))
    run = run_virtual(bulk(server, 2000, None, concurrency=16, max_outage=120.0))
    result = run.result
    assert len(result.succeeded) + len(result.failed) == 2000  # every id accounted for
    assert reasons(result)["outage"] == len(result.failed)
    # Beyond the ids done before it: those in flight as it began, their retries, then
    # one probe at a time (every 10 s at most): not two minutes of requests per id.
    assert server.requests - len(result.succeeded) <= 2 * 16 + 20
    assert run.seconds <= 120.0 + 15.0
    stopped = next(e for e in run.result.failed.values() if isinstance(e, NotFinishedError))
    assert "answered nothing for 120 s" in str(stopped)
    assert isinstance(stopped.cause, whop_async.InternalServerError)


def test_a_deadline_bounds_the_run_and_says_what_was_left() -> None:
    server = limited(10, limiter="bucket", burst=1)
    run = run_virtual(bulk(server, 100, whop_async.RateLimit(10, per=1.0), deadline=3.0))
    assert len(run.result.succeeded) + len(run.result.failed) == 100
    assert 20 <= len(run.result.succeeded) <= 40
    assert set(reasons(run.result)) == {"deadline"}
    error = next(iter(run.result.failed.values()))
    assert "the run's deadline (3 s) passed" in str(error)
    assert run.seconds <= 3.5


@pytest.mark.parametrize("bad", [{"deadline": 0}, {"deadline": -1}, {"max_outage": -5}])
def test_bounds_are_checked(bad: dict[str, Any]) -> None:
    async def start() -> None:
        async with client(None) as whop:
            await whop.ad_groups.unpause_many(["adgrp_1"], **bad)

    with pytest.raises(ValueError, match=next(iter(bad))):
        run_virtual(start())


# --- fatal errors stop the run ------------------------------------------------------


async def test_a_wrong_key_stops_the_run_after_what_was_in_flight() -> None:
    async with (
        FakeWhop(groups=500, rate_limit=None) as fake,
        WhopClient("sk_wrong", base_url=fake.base_url, rate_limit=None) as whop,
    ):
        result = await whop.ad_groups.unpause_many(fake.ids, concurrency=16)
        assert fake.stats.requests <= 2 * 16  # not 500 requests, each answered 401
    assert len(result.failed) == 500
    counts = reasons(result)
    assert counts["fatal"] >= 500 - 2 * 16
    assert counts["fatal"] + counts["AuthenticationError"] == 500
    never_sent = next(
        e for e in result.failed.values() if isinstance(e, NotFinishedError) and not e.attempted
    )
    assert isinstance(never_sent.cause, whop_async.AuthenticationError)
    assert "never sent: the run stopped at an error every id would meet" in str(never_sent)
    assert "sk_wrong" not in str(never_sent)


def test_calls_queued_for_the_rate_limit_are_not_sent_once_the_run_stops() -> None:
    # With no limit known, four go first and the rest queue for the opening window. The
    # 401s that stop the run free the window; the queued calls must end unsent, not
    # take the freed room.
    server = unlimited(api_key="sk_someone_else")
    run = run_virtual(bulk(server, 200, None, concurrency=64))
    assert server.requests == 4
    assert len(run.result.failed) == 200


SCENARIO_URL = "https://api.scenario.example/api/v1"


def _answering(answers: dict[str, list[tuple[float, int]]]) -> tuple[Any, list[str]]:
    """A server answering each id's requests in turn: after the delay, with the status
    (the last answer repeats); and the ids it saw, in order, with "401" logged when it
    has answered one."""
    seen: list[str] = []

    async def answer(url: URL, **_: object) -> CallbackResult:
        ad_group_id = url.parts[-2]
        seen.append(ad_group_id)
        replies = answers.get(ad_group_id, [(0.1, 200)])
        delay, status = replies.pop(0) if len(replies) > 1 else replies[0]
        await asyncio.sleep(delay)
        if status == 200:
            return CallbackResult(payload=ad_group_json(ad_group_id), response_class=ShimResponse)
        for _ in range(3):  # a few turns of the loop after the others' answers
            await asyncio.sleep(0)
        if status == 401:
            seen.append("401")
        body = {"error": {"message": "no"}}
        return CallbackResult(status=status, payload=body, response_class=ShimResponse)

    return answer, seen


def _run_against(answer: Any, ids: list[str]) -> whop_async.BulkResult:
    async def main() -> whop_async.BulkResult:
        with MockAPI() as mocked:
            mocked.post(re.compile(rf"{re.escape(SCENARIO_URL)}/.*"), callback=answer, repeat=True)
            async with client(None) as whop:
                return await whop.ad_groups.unpause_many(ids, concurrency=64)

    return run_virtual(main())


def test_no_call_handed_a_turn_is_sent_after_a_401_stopped_the_run() -> None:
    # Two answers free room in the opening window and hand it to queued calls; the 401s
    # that stop the run come a moment later, before those calls are on their way.
    answer, seen = _answering({"adgrp_2": [(0.1, 401)], "adgrp_3": [(0.1, 401)]})
    result = _run_against(answer, [f"adgrp_{number}" for number in range(64)])
    sent_after_the_stop = [seen_id for seen_id in seen[seen.index("401") :] if seen_id != "401"]
    assert sent_after_the_stop == []
    assert len(result.succeeded) + len(result.failed) == 64


def test_a_retry_is_not_sent_once_the_run_has_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    # adgrp_0 fails once and waits 0.25 s to retry; adgrp_1's 401 stops the run meanwhile.
    jitter_at(monkeypatch, 0.5)
    answer, seen = _answering({"adgrp_0": [(0.0, 503), (0.0, 200)], "adgrp_1": [(0.05, 401)]})
    result = _run_against(answer, ["adgrp_0", "adgrp_1"])
    assert seen.count("adgrp_0") == 1
    error = result.failed["adgrp_0"]
    assert isinstance(error, NotFinishedError)
    assert error.attempted


def test_a_base_url_where_nothing_listens_stops_the_run() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/api/v1"
    # Real connections refused, the waits between them in virtual time.
    in_flight = InFlight()

    async def unpause_all() -> list[whop_async.Outcome]:
        async with (
            aiohttp.ClientSession(trace_configs=[in_flight.trace]) as session,
            WhopClient(API_KEY, base_url=dead, rate_limit=None, session=session) as whop,
        ):
            ids = [f"adgrp_{number}" for number in range(400)]
            return [outcome async for outcome in whop.ad_groups.iter_unpause(ids)]

    outcomes = run_virtual(unpause_all(), io_pending=in_flight.pending)
    assert len(outcomes) == 400
    errors = [outcome.error for outcome in outcomes]
    stopped = [e for e in errors if isinstance(e, NotFinishedError)]
    assert len(stopped) >= 400 - 20
    assert all(e.reason == "fatal" for e in stopped)
    assert f"nothing answers at {dead}" in str(stopped[-1].cause)


async def test_403_and_404_belong_to_their_id_alone() -> None:
    async def unpause(request: web.Request) -> web.Response:
        ad_group_id = request.match_info["id"]
        status = {"adgrp_forbidden": 403, "adgrp_missing": 404}.get(ad_group_id)
        if status is not None:
            return web.json_response({"error": {"message": "no"}}, status=status)
        return web.json_response(ad_group_json(ad_group_id))

    app = web.Application()
    app.router.add_post("/api/v1/ad_groups/{id}/unpause", unpause)
    ids = ["adgrp_forbidden", "adgrp_missing", *(f"adgrp_{n}" for n in range(50))]
    async with (
        serve(app) as base_url,
        WhopClient(API_KEY, base_url=base_url, rate_limit=None) as whop,
    ):
        result = await whop.ad_groups.unpause_many(ids)
    assert len(result.succeeded) == 50
    assert reasons(result) == {"PermissionDeniedError": 1, "NotFoundError": 1}


# --- single calls, the retry budget, and closing -------------------------------------


def test_a_single_call_keeps_its_max_retries_and_a_quiet_client_can_retry_again() -> None:
    async def burst_then_quiet() -> tuple[list[BaseException | None], bool]:
        # Everything fails for 30 s, then adgrp_later needs one retry.
        server = unlimited(outage=(0.0, 30.0), fail_first=1, fail_first_ids=["adgrp_later"])
        with serving(server):
            async with client(None) as whop:
                burst = await asyncio.gather(
                    *(whop.ad_groups.unpause(f"adgrp_{n}") for n in range(40)),
                    return_exceptions=True,
                )
                spent = server.requests
                await asyncio.sleep(30)  # quiet: the retry budget refills with time
                await whop.ad_groups.unpause("adgrp_later")
                return burst, spent <= 40 + 20 + 10

    burst, bounded = run_virtual(burst_then_quiet())
    assert all(isinstance(error, whop_async.InternalServerError) for error in burst)
    assert bounded  # 40 calls of 4 attempts each did not make 160 requests


@pytest.mark.virtual_time
async def test_close_while_a_call_waits_to_retry_ends_it_and_sends_nothing(
    env: pytest.MonkeyPatch, mock_api: MockAPI
) -> None:
    jitter_at(env, 1.0)
    loop = asyncio.get_running_loop()
    mock_api.post(UNPAUSE_URL, status=503, repeat=True)
    whop = WhopClient(base_url=BASE_URL)
    call = asyncio.create_task(whop.ad_groups.unpause("adgrp_xxxxxxxxxxxx"))
    await asyncio.sleep(0.25)  # the call backs off for 0.5 s
    await whop.close()
    with pytest.raises(RuntimeError, match="closed"):
        await call
    assert loop.time() == 0.25  # ended at once
    assert len(mock_api.sent("POST", UNPAUSE_URL)) == 1


# --- the key never leaves -------------------------------------------------------------


@pytest.mark.parametrize("bad", ["sk_live\r\nX-Evil: 1", "sk\nlive", "sk\x00live", "sk live"])
def test_a_key_with_control_characters_is_refused_without_echoing_it(bad: str) -> None:
    with pytest.raises(ValueError, match="api_key") as caught:
        WhopClient(bad, base_url=BASE_URL)
    assert bad not in str(caught.value)
    assert "live" not in str(caught.value)


async def test_a_server_that_echoes_the_key_does_not_put_it_in_errors() -> None:
    async def echo(request: web.Request) -> web.Response:
        authorization = request.headers["Authorization"]
        key = authorization.removeprefix("Bearer ")
        body = {
            "error": {"message": f"bad header {authorization!r}", "code": key},
            "echo": [key, {"nested": f"x{key}y"}],
        }
        return web.json_response(body, status=400, headers={"X-Echo": authorization})

    app = web.Application()
    app.router.add_post("/api/v1/ad_groups/{id}/unpause", echo)
    async with serve(app) as base_url, WhopClient(API_KEY, base_url=base_url) as whop:
        with pytest.raises(whop_async.BadRequestError) as caught:
            await whop.ad_groups.unpause("adgrp_1")
    error = caught.value
    for text in (str(error), repr(error), repr(error.body), repr(dict(error.headers))):
        assert API_KEY not in text
    assert error.body["echo"] == ["<redacted>", {"nested": "x<redacted>y"}]
    assert "Bearer <redacted>" in str(error)
