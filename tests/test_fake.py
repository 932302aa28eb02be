"""FakeWhop, the stand-in server users test against, and its pytest fixture."""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import functools
import inspect
import math
import re
import socket
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

import aiohttp
import orjson
import pytest
from multidict import CIMultiDict
from yarl import URL

import whop_async
from whop_async import AdGroupStatus, WhopClient
from whop_async.testing import (
    DEFAULT_API_KEY,
    EDGE_HINTS,
    HINTS,
    SHAPES,
    FakeWhop,
    Hint,
    Limiter,
    Shape,
    example_ad_group,
    run_virtual,
)

from .helpers import ipv6_loopback

T = TypeVar("T")
FIRST = "adgrp_000000000001"
UNPAUSE = f"/ad_groups/{FIRST}/unpause"


class SteppedClock:
    """Time that moves only when the test moves it; far from 0, so nothing can count
    from 0 by accident."""

    def __init__(self) -> None:
        self.now = 5_000.5

    def __call__(self) -> float:
        return self.now

    def to(self, seconds: float) -> None:
        """Move to ``seconds`` after the first request (made at the start)."""
        self.now = 5_000.5 + seconds


async def raw(
    fake: FakeWhop, method: str, path: str, **headers: str
) -> tuple[int, CIMultiDict[str], Any]:
    """Ask the fake directly; ``path`` below the API base, or ``/_fake/...``."""
    headers.setdefault("Authorization", f"Bearer {fake.api_key}")
    base = fake.base_url.removesuffix("/api/v1") if path.startswith("/_fake/") else fake.base_url
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, base + path, headers=headers) as answer,
    ):
        is_json = answer.content_type == "application/json"
        body = await answer.json() if is_json else await answer.text()
        return answer.status, CIMultiDict(answer.headers), body


async def passed(fake: FakeWhop, tries: int, path: str = UNPAUSE) -> int:
    """How many of ``tries`` requests made at once (the clock standing still) pass."""
    return [(await raw(fake, "POST", path))[0] for _ in range(tries)].count(200)


def client_for(fake: FakeWhop, **options: Any) -> WhopClient:
    return WhopClient(fake.api_key, base_url=fake.base_url, rate_limit=None, **options)


async def test_unpause_and_pause_change_state_and_answer_todays_shape() -> None:
    async with FakeWhop(groups=3) as fake, client_for(fake) as client:
        first = fake.ids[0]
        assert fake.status_of(first) == "paused"
        group = await client.ad_groups.unpause(first)
        assert group.status is AdGroupStatus.ACTIVE
        assert (group.platform, group.budget, group.budget_amount) == (None, None, 100.0)
        assert fake.status_of(first) == "active"
        status, _, body = await raw(fake, "POST", f"/ad_groups/{first}/pause")
        assert (status, body["status"]) == (200, "paused")
        assert set(body) == set(example_ad_group("docs-2026-11"))
        assert fake.statuses() == {"paused": 3}
        assert fake.stats.attempts[first] == 2


@pytest.mark.parametrize("shape", SHAPES)
async def test_each_real_shape_can_be_played(shape: Shape) -> None:
    async with FakeWhop(groups=2, shape=shape) as fake, client_for(fake) as client:
        group = await client.ad_groups.unpause(fake.ids[0])
        listed = [group async for group in client.ad_groups.list()]
        _, _, body = await raw(fake, "GET", f"/ad_groups/{fake.ids[1]}")
    expected_fields = set(example_ad_group(shape))
    assert set(group.to_dict()) == expected_fields
    assert {frozenset(group.to_dict()) for group in listed} == {frozenset(expected_fields)}
    assert set(body) == expected_fields
    assert group.id == fake.ids[0]
    with pytest.raises(ValueError, match="shape must be one of seed, sdk-2026, docs-2026-11"):
        FakeWhop(shape="v3")  # type: ignore[arg-type]


async def test_retrieve_and_unknown_ids() -> None:
    async with FakeWhop(groups=1) as fake, client_for(fake) as client:
        status, headers, body = await raw(fake, "GET", f"/ad_groups/{fake.ids[0]}")
        assert (status, body["id"]) == (200, fake.ids[0])
        assert headers["X-Request-Id"].startswith("req_fake")
        with pytest.raises(whop_async.NotFoundError) as caught:
            await client.ad_groups.unpause("adgrp_nosuchgroup")
        assert caught.value.request_id is not None


async def test_a_wrong_key_is_401() -> None:
    async with (
        FakeWhop(groups=1) as fake,
        WhopClient("sk_wrong", base_url=fake.base_url) as client,
    ):
        with pytest.raises(whop_async.AuthenticationError):
            await client.ad_groups.unpause(fake.ids[0])


async def test_list_pages_newest_first_and_filters() -> None:
    async with FakeWhop(groups=25, campaigns=2) as fake:
        fake.add_group("adgrp_activeone", status="active", campaign=2)
        seen: list[str] = []
        after = ""
        while True:
            status, _, page = await raw(fake, "GET", f"/ad_groups?first=10{after}")
            assert status == 200
            seen += [group["id"] for group in page["data"]]
            if not page["page_info"]["has_next_page"]:
                break
            after = f"&after={page['page_info']['end_cursor']}"
        assert seen == list(reversed(fake.ids))
        _, _, paused = await raw(
            fake, "GET", "/ad_groups?first=100&status=paused&ad_campaign_id=adcamp_00000000002"
        )
        assert len(paused["data"]) == 12
        assert {group["status"] for group in paused["data"]} == {"paused"}


async def refusal(fake: FakeWhop) -> tuple[dict[str, str], str]:
    """A 429's hint headers and message, its status and body's shape checked."""
    status, headers, body = await raw(fake, "POST", UNPAUSE)
    assert status == 429
    assert set(body) == {"error"}
    assert (set(body["error"]), body["error"]["type"]) == (
        {"type", "message"},
        "rate_limit_exceeded",
    )
    hints = {name: headers[name] for name in ("Retry-After", "retry-after-ms") if name in headers}
    return hints, body["error"]["message"]


async def test_the_rate_limit_answers_like_whop() -> None:
    async with FakeWhop(groups=1, rate_limit=2, per=60.0) as fake:
        assert await passed(fake, 2) == 2
        hints, message = await refusal(fake)
        assert hints == {}
        assert re.fullmatch(r"Try again in \d+ seconds\.", message)
        # Each operation has its own budget.
        assert (await raw(fake, "GET", f"/ad_groups/{FIRST}"))[0] == 200
        assert fake.stats.rate_limited == 1


NO_WAIT = "Rate limit exceeded."
# What a 429 carries when the wait is 10 ms, and when it is 2.25 s.
HINTED = {
    "message": (({}, "Try again in 1 seconds."), ({}, "Try again in 3 seconds.")),
    "retry-after": (({"Retry-After": "1"}, NO_WAIT), ({"Retry-After": "3"}, NO_WAIT)),
    "retry-after-ms": (({"retry-after-ms": "10"}, NO_WAIT), ({"retry-after-ms": "2250"}, NO_WAIT)),
    "none": (({}, NO_WAIT), ({}, NO_WAIT)),
}


@pytest.mark.parametrize("hint", HINTED)
async def test_each_hint_style_rounds_the_wait_up_as_real_servers_do(hint: Hint) -> None:
    short, long = HINTED[hint]
    # 100 a second with room for one: the second request is 10 ms early.
    async with FakeWhop(
        groups=1, rate_limit=100, per=1.0, limiter="bucket", burst=1, hint=hint,
        clock=SteppedClock(),
    ) as fake:  # fmt: skip
        assert await passed(fake, 1) == 1
        assert await refusal(fake) == short
    # One in 3 s: 0.75 s after the first request, the wait is 2.25 s.
    clock = SteppedClock()
    async with FakeWhop(groups=1, rate_limit=1, per=3.0, hint=hint, clock=clock) as fake:
        assert await passed(fake, 1) == 1
        clock.to(0.75)
        assert await refusal(fake) == long


async def test_a_fixed_window_starts_at_the_first_request_and_refills_whole() -> None:
    clock = SteppedClock()
    async with FakeWhop(groups=1, rate_limit=3, per=1.0, clock=clock) as fake:
        assert await passed(fake, 4) == 3
        clock.to(0.999)
        assert await passed(fake, 1) == 0
        clock.to(1.0)
        assert await passed(fake, 4) == 3


async def test_a_token_bucket_refills() -> None:
    clock = SteppedClock()
    async with FakeWhop(
        groups=1, rate_limit=10, per=1.0, limiter="bucket", burst=2, clock=clock
    ) as fake:
        assert await passed(fake, 3) == 2
        clock.to(0.1)
        assert await passed(fake, 2) == 1


async def test_a_sliding_log_lets_each_request_go_a_period_after_it_came() -> None:
    clock = SteppedClock()
    async with FakeWhop(
        groups=1, rate_limit=3, per=1.0, limiter="sliding", hint="retry-after-ms", clock=clock
    ) as fake:
        for moment in (0.0, 0.4, 0.8):
            clock.to(moment)
            assert await passed(fake, 1) == 1
        clock.to(0.9)
        assert (await raw(fake, "POST", UNPAUSE))[1]["retry-after-ms"] == "100"
        clock.to(1.0)  # a fixed window would let three pass here
        assert await passed(fake, 2) == 1
        assert (await raw(fake, "POST", UNPAUSE))[1]["retry-after-ms"] == "400"


# Requests that pass at 0, 1, 2, ... seconds, a burst at each, under 10 a second.
@pytest.mark.parametrize(
    ("limiter", "with_neighbour", "with_drop"),
    [
        ("window", [10, 6, 6, 10, 10], [10, 10, 5, 5, 5, 10]),
        ("sliding", [10, 10, 6, 6, 10], [10, 10, 5, 5, 5, 10]),
        ("bucket", [10, 10, 6, 6, 10], [10, 10, 10, 5, 5, 5, 10]),
    ],
)
async def test_a_neighbour_and_a_drop_take_their_share_then_leave(
    limiter: Limiter, with_neighbour: list[int], with_drop: list[int]
) -> None:
    common: dict[str, Any] = {"groups": 1, "rate_limit": 10, "per": 1.0, "limiter": limiter,
                              "burst": 10}  # fmt: skip
    for options, expected in (
        ({"neighbour_rate": 4.0, "neighbour_from": 1.0, "neighbour_for": 2.0}, with_neighbour),
        ({"limit_drop": (2.0, 3.0, 2.0)}, with_drop),
    ):
        clock = SteppedClock()
        async with FakeWhop(**common, **options, clock=clock) as fake:
            seen = []
            for second in range(len(expected)):
                clock.to(second)
                seen.append(await passed(fake, 12))
            assert seen == expected, options


async def test_a_neighbour_leaves_a_sliding_log_gradually() -> None:
    clock = SteppedClock()
    async with FakeWhop(
        groups=1, rate_limit=10, per=1.0, limiter="sliding", neighbour_rate=9.0,
        neighbour_for=1.0, hint="retry-after-ms", clock=clock,
    ) as fake:  # fmt: skip
        assert await passed(fake, 10) == 10
        clock.to(1.0)  # ours have left; the neighbour's 9 of the last second have not
        assert await passed(fake, 1) == 1
        # Room for one more when the neighbour's count falls below 8: at 1 + 1/9 s.
        assert (await raw(fake, "POST", UNPAUSE))[1]["retry-after-ms"] == "112"
        clock.to(1.112)
        assert await passed(fake, 1) == 1


async def test_a_neighbour_slows_a_bucket_and_a_burst_of_it_empties_it() -> None:
    clock = SteppedClock()
    async with FakeWhop(
        groups=1, rate_limit=10, per=1.0, limiter="bucket", burst=1, neighbour_rate=4.0,
        hint="retry-after-ms", clock=clock,
    ) as fake:  # fmt: skip
        assert await passed(fake, 1) == 1
        assert (await raw(fake, "POST", UNPAUSE))[1]["retry-after-ms"] == "167"  # 1 / 6 s
    clock = SteppedClock()
    async with FakeWhop(
        groups=1, rate_limit=10, per=1.0, limiter="bucket", burst=10, neighbour_rate=200.0,
        neighbour_from=1.0, neighbour_for=0.1, hint="retry-after-ms", clock=clock,
    ) as fake:  # fmt: skip
        assert await passed(fake, 1) == 1
        clock.to(1.1)  # 20 of the neighbour's in 0.1 s took all 10 tokens and the refill
        assert (await raw(fake, "POST", UNPAUSE))[1]["retry-after-ms"] == "100"
        clock.to(1.2)
        assert await passed(fake, 2) == 1


async def test_an_outage_answers_html_503s_then_recovers() -> None:
    clock = SteppedClock()
    async with FakeWhop(groups=1, rate_limit=None, outage=(1.0, 2.0), clock=clock) as fake:
        answers = []
        for moment in (0.0, 1.0, 2.999, 3.0):
            clock.to(moment)
            answers.append(await raw(fake, "POST", UNPAUSE))
        assert [status for status, _, _ in answers] == [200, 503, 503, 200]
        _, headers, page = answers[1]
        assert headers["Content-Type"].startswith("text/html")
        assert "<h1>503 Service Temporarily Unavailable</h1>" in page
        assert (fake.stats.outage, fake.stats.requests, fake.stats.faults) == (2, 4, 0)


async def test_fail_first_fails_each_ids_first_requests() -> None:
    async with FakeWhop(groups=3, rate_limit=None, fail_first=2) as fake:
        first, second, third = fake.ids
        for ad_group_id in (first, first, second):
            assert (await raw(fake, "POST", f"/ad_groups/{ad_group_id}/unpause"))[0] == 503
        assert (await raw(fake, "POST", f"/ad_groups/{first}/pause"))[0] == 200
        assert (await raw(fake, "POST", f"/ad_groups/{second}/pause"))[0] == 503
        assert (await raw(fake, "POST", f"/ad_groups/{second}/unpause"))[0] == 200
        assert fake.stats.failed_first == {first: 2, second: 2}
        assert fake.stats.attempts == {first: 1, second: 1}
        assert fake.stats.faults == 4
        assert fake.status_of(third) == "paused"


async def test_fail_first_ids_chooses_which_ids_fail() -> None:
    async with FakeWhop(groups=2, rate_limit=None, fail_first=1, fail_first_ids={FIRST}) as fake:
        statuses = [
            (await raw(fake, "POST", f"/ad_groups/{ad_group_id}/unpause"))[0]
            for ad_group_id in (FIRST, FIRST, fake.ids[1])
        ]
        assert statuses == [503, 200, 200]


async def test_reset_restarts_the_clock() -> None:
    clock = SteppedClock()
    async with FakeWhop(groups=1, rate_limit=1, per=10.0, outage=(1.0, 1.0), clock=clock) as fake:
        assert await passed(fake, 2) == 1
        clock.to(1.5)
        assert (await raw(fake, "POST", UNPAUSE))[0] == 503
        fake.reset()
        assert await passed(fake, 2) == 1  # a fresh window, and the outage is 1 s away
        clock.to(2.5)
        assert (await raw(fake, "POST", UNPAUSE))[0] == 503
        clock.to(3.5)
        assert (await raw(fake, "POST", UNPAUSE))[0] == 429


async def test_faults_are_seeded_so_a_run_repeats() -> None:
    async def statuses(seed: int) -> list[int]:
        async with FakeWhop(groups=1, rate_limit=None, fault_rate=0.5, seed=seed) as fake:
            return [(await raw(fake, "GET", f"/ad_groups/{fake.ids[0]}"))[0] for _ in range(20)]

    first = await statuses(1)
    assert first == await statuses(1)
    assert {500, 502, 503} & set(first)
    assert 200 in first


async def test_dropped_connections_reach_the_client_as_connection_errors() -> None:
    async with FakeWhop(groups=1, rate_limit=None, drop_rate=1.0) as fake:
        async with client_for(fake, max_retries=0) as client:
            with pytest.raises(whop_async.APIConnectionError):
                await client.ad_groups.unpause(fake.ids[0])
        assert fake.stats.faults == 1


async def test_an_idempotency_key_replays_the_first_answer() -> None:
    async with FakeWhop(groups=1) as fake:
        path = f"/ad_groups/{fake.ids[0]}/unpause"
        first = await raw(fake, "POST", path, **{"Idempotency-Key": "k1"})
        again = await raw(fake, "POST", path, **{"Idempotency-Key": "k1"})
        assert again[2] == first[2]
        assert again[1]["Idempotent-Replayed"] == "true"
        assert fake.stats.attempts[fake.ids[0]] == 1


async def test_accept_any_id_answers_without_keeping_state() -> None:
    async with FakeWhop(accept_any_id=True, rate_limit=None) as fake, client_for(fake) as client:
        group = await client.ad_groups.unpause("adgrp_anything")
        assert group.id == "adgrp_anything"
        assert fake.ids == []


async def test_admin_endpoints_read_counters_and_reset() -> None:
    async with FakeWhop(groups=2) as fake, client_for(fake) as client:
        await client.ad_groups.unpause(fake.ids[0])
        _, _, stats = await raw(fake, "GET", "/_fake/stats")
        assert stats["requests"] == 1
        assert stats["attempts"] == {fake.ids[0]: 1}
        assert stats["statuses"] == {"active": 1, "paused": 1}
        assert (await raw(fake, "POST", "/_fake/reset"))[0] == 200
        assert fake.statuses() == {"paused": 2}
        assert fake.stats.requests == 0


@pytest.mark.fake_whop(groups=3)
async def test_the_fixture_points_a_default_client_at_the_fake(fake_whop: FakeWhop) -> None:
    async with WhopClient() as client:
        result = await client.ad_groups.unpause_many(fake_whop.ids)
    assert result.ok
    assert fake_whop.statuses() == {"active": 3}


# --- hostile servers ---------------------------------------------------------------


async def statuses(fake: FakeWhop, tries: int, path: str = UNPAUSE, key: str = "") -> list[int]:
    """The statuses of ``tries`` requests made one after another on one session."""
    headers = {"Authorization": f"Bearer {key or fake.api_key}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        seen = []
        for _ in range(tries):
            async with session.post(fake.base_url + path) as answer:
                seen.append(answer.status)
        return seen


def http_date(headers: CIMultiDict[str], name: str) -> float:
    return email.utils.parsedate_to_datetime(headers[name]).timestamp()


def test_every_hint_style_is_tested() -> None:
    assert set(HINTED) | {"retry-after-date"} | set(EDGE_HINTS) == set(HINTS)


async def test_every_answer_is_dated_by_the_servers_clock() -> None:
    clock = SteppedClock()
    async with FakeWhop(groups=1, rate_limit=None, clock=clock) as fake:
        first = await raw(fake, "POST", UNPAUSE)
        clock.to(10.0)
        unknown = await raw(fake, "GET", "/ad_groups/adgrp_nosuchgroup")
        clock.to(25.0)
        refused = await raw(fake, "POST", UNPAUSE, Authorization="Bearer sk_wrong")
    assert [status for status, _, _ in (first, unknown, refused)] == [200, 404, 401]
    dates = [http_date(headers, "Date") for _, headers, _ in (first, unknown, refused)]
    assert [date - dates[0] for date in dates] == [0, 10, 25]


@pytest.mark.parametrize("skew", [0.0, -3600.0])
async def test_a_date_hint_is_read_against_the_answers_date(skew: float) -> None:
    clock = SteppedClock()
    before = time.time()
    async with FakeWhop(
        groups=1, rate_limit=1, per=3.0, hint="retry-after-date", date_skew=skew, clock=clock
    ) as fake:
        assert await passed(fake, 1) == 1
        clock.to(0.75)
        status, headers, body = await raw(fake, "POST", UNPAUSE)
    after = time.time()
    assert (status, body["error"]["message"]) == (429, "Rate limit exceeded.")
    # 2.25 s to wait, rounded up from the answer's Date: never early.
    assert http_date(headers, "Retry-After") - http_date(headers, "Date") == 3
    assert before + skew <= http_date(headers, "Date") <= after + skew + 1


EDGES = {
    "message-zero": ({}, "Try again in 0 seconds."),
    "retry-after-zero": ({"Retry-After": "0"}, NO_WAIT),
    "retry-after-negative": ({"Retry-After": "-5"}, NO_WAIT),
    "retry-after-ms-zero": ({"retry-after-ms": "0"}, NO_WAIT),
}


@pytest.mark.parametrize("hint", EDGE_HINTS)
async def test_a_throttle_of_one_refuses_everything_forever_with_the_edge_hint(hint: Hint) -> None:
    clock = SteppedClock()
    async with FakeWhop(
        groups=1, rate_limit=None, throttle_rate=1.0, hint=hint, clock=clock
    ) as fake:
        for moment in (0.0, 1.0, 100.0, 100_000.0):
            clock.to(moment)
            if hint == "retry-after-past":
                _, headers, _ = await raw(fake, "POST", UNPAUSE)
                assert http_date(headers, "Retry-After") == http_date(headers, "Date") - 60
            else:
                assert await refusal(fake) == EDGES[hint]
        assert (fake.stats.rate_limited, fake.stats.requests) == (4, 4)
        assert fake.status_of(FIRST) == "paused"


async def test_a_throttle_refuses_a_share_every_other_second() -> None:
    clock = SteppedClock()
    async with FakeWhop(
        groups=1, rate_limit=None, throttle_rate=0.15, throttle_cycle=(1.0, 1.0),
        hint="retry-after-ms", seed=3, clock=clock,
    ) as fake:  # fmt: skip
        refused = []
        for moment in (0.25, 1.25, 2.25, 3.25):
            clock.to(moment)
            refused.append((await statuses(fake, 200)).count(429))
    on_first, off_first, on_second, off_second = refused
    assert (off_first, off_second) == (0, 0)
    assert 15 <= on_first <= 45
    assert 15 <= on_second <= 45
    assert fake.stats.rate_limited == on_first + on_second


async def test_a_throttled_429_asks_for_the_rest_of_its_stretch() -> None:
    clock = SteppedClock()
    async with FakeWhop(
        groups=1, rate_limit=None, throttle_rate=1.0, throttle_cycle=(2.0, 1.0),
        hint="retry-after-ms", clock=clock,
    ) as fake:  # fmt: skip
        assert await refusal(fake) == ({"retry-after-ms": "2000"}, NO_WAIT)
        clock.to(0.5)
        assert await refusal(fake) == ({"retry-after-ms": "1500"}, NO_WAIT)
        clock.to(2.5)
        assert await passed(fake, 3) == 3
        clock.to(4.0)
        assert await refusal(fake) == ({"retry-after-ms": "1000"}, NO_WAIT)


async def test_failing_ids_answer_500_every_time_while_the_others_succeed() -> None:
    async with FakeWhop(groups=3, rate_limit=None, failing_ids={FIRST}) as fake:
        second = fake.ids[1]
        assert await statuses(fake, 5) == [500] * 5
        assert await statuses(fake, 1, f"/ad_groups/{FIRST}/pause") == [500]
        assert await statuses(fake, 2, f"/ad_groups/{second}/unpause") == [200, 200]
        assert (await raw(fake, "GET", f"/ad_groups/{FIRST}"))[0] == 200
        assert fake.stats.failed == {FIRST: 6}
        assert fake.stats.faults == 6
        assert fake.stats.attempts == {second: 2}
        assert fake.status_of(FIRST) == "paused"


async def hanging(fake: FakeWhop, path: str = UNPAUSE, key: str = "") -> asyncio.Task[Any]:
    """A request left hanging: started, and seen to hang by the fake."""
    hung = fake.stats.hung
    request = asyncio.create_task(statuses(fake, 1, path, key))
    while fake.stats.hung == hung:  # until the server holds it
        assert not request.done(), request.result()
        await asyncio.sleep(0)
    return request


async def test_hang_ids_are_never_answered_until_the_fake_closes() -> None:
    fake = FakeWhop(groups=2, rate_limit=None, hang_ids={FIRST})
    async with fake:
        request = await hanging(fake)
        second = fake.ids[1]
        assert await statuses(fake, 1, f"/ad_groups/{second}/unpause") == [200]
        assert not request.done()
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await request
    assert (fake.stats.hung, fake.stats.attempts) == (1, {second: 1})
    assert fake.status_of(FIRST) == "paused"


async def test_a_hang_rate_of_one_leaves_every_request_hanging() -> None:
    async with FakeWhop(groups=1, rate_limit=None, hang_rate=1.0) as fake:
        requests = [await hanging(fake, f"/ad_groups/{FIRST}/pause") for _ in range(2)]
    for request in requests:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await request
    assert fake.stats.hung == 2


async def test_a_portal_answers_every_path_with_200_and_html() -> None:
    async with FakeWhop(groups=1, portal=True) as fake:
        answers = [
            await raw(fake, "POST", UNPAUSE),
            await raw(fake, "GET", "/ad_groups?first=10"),
            await raw(fake, "GET", "/../../login", Authorization="Bearer sk_wrong"),
        ]
        for status, headers, body in answers:
            assert status == 200
            assert headers["Content-Type"].startswith("text/html")
            assert "<h1>Welcome!</h1>" in body
        assert (await raw(fake, "GET", "/_fake/stats"))[2]["requests"] == 3
        assert fake.status_of(FIRST) == "paused"


async def test_answers_can_echo_the_key_as_sent() -> None:
    async with FakeWhop(groups=1, rate_limit=1, echo_key=True) as fake:
        sent = f"Bearer {fake.api_key}"
        answers = {
            "ok": await raw(fake, "POST", UNPAUSE),
            "rate limited": await raw(fake, "POST", UNPAUSE),
            "not found": await raw(fake, "GET", "/ad_groups/adgrp_nosuchgroup"),
            "wrong key": await raw(fake, "POST", UNPAUSE, Authorization="Bearer sk_wrong_one"),
        }
    for name, (status, headers, body) in answers.items():
        expected = "Bearer sk_wrong_one" if name == "wrong key" else sent
        assert status < 500
        assert headers["X-Echoed-Authorization"] == expected, name
        assert body["echo"] == {"authorization": expected}, name
        if status != 200:
            assert expected in body["error"]["message"], name
    assert answers["ok"][2]["id"] == FIRST


def depth(value: Any) -> int:
    """How many arrays and objects deep ``value`` is (without recursing)."""
    levels = 0
    while isinstance(value, (list, dict)):
        levels += 1
        value = value[0] if isinstance(value, list) else next(iter(value.values()))
    return levels


async def test_answers_can_nest_a_thousand_levels_deep() -> None:
    async with (
        FakeWhop(groups=1, rate_limit=1, nesting=1000) as fake,
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {fake.api_key}"}) as session,
    ):
        bodies = []
        for path in (UNPAUSE, UNPAUSE, "/ad_groups/adgrp_nosuchgroup"):
            async with session.request(
                "POST" if path == UNPAUSE else "GET", fake.base_url + path
            ) as answer:
                bodies.append((answer.status, orjson.loads(await answer.read())))
    assert [status for status, _ in bodies] == [200, 429, 404]
    for _, body in bodies:
        assert depth(body["nested"]) == 1000
    assert bodies[0][1]["id"] == FIRST
    assert bodies[2][1]["error"]["type"] == "not_found"


def test_listen_after_refuses_connections_then_serves() -> None:
    in_flight = 0

    async def real(io: Awaitable[T]) -> T:
        """Real I/O: virtual time stands still until it is done."""
        nonlocal in_flight
        in_flight += 1
        try:
            return await io
        finally:
            in_flight -= 1

    async def connects(url: URL) -> bool:
        try:
            _, writer = await real(asyncio.open_connection(url.host, url.port))
        except ConnectionRefusedError:
            return False
        writer.close()
        await real(writer.wait_closed())
        return True

    async def main() -> tuple[list[bool], list[int]]:
        loop = asyncio.get_running_loop()
        async with FakeWhop(groups=1, rate_limit=None, listen_after=3.0, clock=loop.time) as fake:
            url = URL(fake.base_url)
            seen = [await connects(url)]
            await asyncio.sleep(2.9)
            seen.append(await connects(url))
            await asyncio.sleep(0.1)
            seen.append(await connects(url))
            answered = await real(statuses(fake, 2))
            assert loop.time() == 3.0
        return seen, answered

    seen, answered = run_virtual(main(), io_pending=lambda: in_flight > 0)
    assert seen == [False, False, True]
    assert answered == [200, 200]


IPV6 = pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback on this machine")


@pytest.mark.parametrize("host", ["127.0.0.1", pytest.param("::1", marks=IPV6)])
def test_listen_after_holds_its_port_and_closes_before_listening(host: str) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET

    async def main() -> None:
        async with FakeWhop(host=host, listen_after=60.0) as fake:
            port = URL(fake.base_url).port
            assert fake.base_url == str(
                URL.build(scheme="http", host=host, port=port, path="/api/v1")
            )
            with socket.socket(family) as other, pytest.raises(OSError, match="in use"):
                other.bind((host, port))
        with socket.socket(family) as other:
            other.bind((host, port))  # released by close()

    run_virtual(main())


@IPV6
async def test_an_ipv6_host_is_bracketed_in_base_url_and_served() -> None:
    async with FakeWhop(groups=1, host="::1", rate_limit=None) as fake:
        port = URL(fake.base_url).port
        assert fake.base_url == f"http://[::1]:{port}/api/v1"
        assert await statuses(fake, 1) == [200]


# --- many credentials --------------------------------------------------------------

KEYS = {"acme": "sk_acme", "globex": "sk_globex"}


async def test_a_single_key_is_the_default_account() -> None:
    async with FakeWhop(groups=1) as fake:
        assert fake.api_keys == {"default": DEFAULT_API_KEY} == {"default": fake.api_key}
        assert await passed(fake, 1) == 1
        await raw(fake, "POST", UNPAUSE, Authorization="Bearer sk_wrong")
        assert fake.stats.accounts["default"].requests == 1
        assert (fake.stats.requests, fake.stats.unauthorized) == (2, 1)


async def test_each_account_has_its_own_budget_per_operation() -> None:
    async with FakeWhop(
        groups=1, api_keys=KEYS, rate_limit=2, account_rate_limit={"globex": 1}
    ) as fake:
        assert fake.api_key == "sk_acme"
        assert fake.api_keys == KEYS
        assert await statuses(fake, 3, key="sk_acme") == [200, 200, 429]
        assert await statuses(fake, 2, key="sk_globex") == [200, 429]
        assert (await raw(fake, "GET", f"/ad_groups/{FIRST}"))[0] == 200  # another operation
        assert await statuses(fake, 1, key=DEFAULT_API_KEY) == [401]
        acme, globex = fake.stats.accounts["acme"], fake.stats.accounts["globex"]
        assert (acme.requests, acme.rate_limited, acme.attempts) == (4, 1, {FIRST: 2})
        assert (globex.requests, globex.rate_limited, globex.attempts) == (2, 1, {FIRST: 1})
        assert (fake.stats.requests, fake.stats.unauthorized) == (7, 1)
        _, _, stats = await raw(fake, "GET", "/_fake/stats")
        assert stats["accounts"]["globex"]["rate_limited"] == 1


async def test_idempotent_replies_are_kept_per_account() -> None:
    async with FakeWhop(groups=1, api_keys=KEYS) as fake:
        for key in ("sk_acme", "sk_acme", "sk_globex"):
            await raw(
                fake, "POST", UNPAUSE, Authorization=f"Bearer {key}", **{"Idempotency-Key": "k"}
            )
        assert fake.stats.attempts == {FIRST: 2}


async def test_an_accounts_key_can_be_revoked_mid_run() -> None:
    clock = SteppedClock()
    async with FakeWhop(
        groups=1, api_keys=KEYS, rate_limit=None, account_revoked_at={"acme": 5.0}, clock=clock
    ) as fake:
        assert await statuses(fake, 1, key="sk_acme") == [200]
        clock.to(4.999)
        assert await statuses(fake, 1, key="sk_acme") == [200]
        clock.to(5.0)
        assert await statuses(fake, 2, key="sk_acme") == [401, 401]
        assert await statuses(fake, 1, key="sk_globex") == [200]
        assert fake.stats.accounts["acme"].unauthorized == 2
        assert fake.stats.accounts["globex"].unauthorized == 0


async def test_an_account_can_fail_for_a_while() -> None:
    clock = SteppedClock()
    async with FakeWhop(
        groups=1, api_keys=KEYS, rate_limit=None, account_outage={"acme": (1.0, 2.0)}, clock=clock
    ) as fake:
        seen = []
        for moment in (0.0, 1.0, 2.999, 3.0):
            clock.to(moment)
            seen.append(
                await statuses(fake, 1, key="sk_acme") + await statuses(fake, 1, key="sk_globex")
            )
        assert seen == [[200, 200], [503, 200], [503, 200], [200, 200]]
        assert fake.stats.accounts["acme"].outage == 2
        assert fake.stats.outage == 2


async def test_an_account_can_hang() -> None:
    async with FakeWhop(
        groups=1, api_keys=KEYS, rate_limit=None, account_hang={"globex": (0.0, math.inf)}
    ) as fake:
        request = await hanging(fake, key="sk_globex")
        assert await statuses(fake, 1, key="sk_acme") == [200]
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await request
    assert fake.stats.accounts["globex"].hung == 1
    assert fake.stats.accounts["globex"].attempts == {}


@pytest.mark.parametrize(
    "options",
    [{"rate_limit": 0}, {"per": 0.0}, {"fault_rate": 1.5}, {"fault_rate": 0.6, "drop_rate": 0.6},
     {"latency": -1.0}, {"limiter": "leaky"}, {"hint": "header"}, {"neighbour_rate": 10.0},
     {"neighbour_rate": 1.0, "neighbour_from": -1.0}, {"limit_drop": (1.0, 2.0, 0.5)},
     {"limit_drop": (1.0, 0.0, 2.0)}, {"outage": (-1.0, 5.0)}, {"fail_first": -1},
     {"groups": -1}, {"port": 70_000}, {"throttle_rate": 1.5},
     {"throttle_rate": 0.5, "throttle_cycle": (1.0, 0.0)}, {"throttle_cycle": (1.0, 1.0)},
     {"hang_rate": 0.5, "fault_rate": 0.6}, {"nesting": -1}, {"listen_after": -1.0},
     {"date_skew": math.nan}, {"api_keys": {}}, {"api_keys": {"a": ""}},
     {"api_keys": {"a": "k"}, "api_key": "sk_other"}, {"api_keys": {"a": "k", "b": "k"}},
     {"account_outage": {"ghost": (1.0, 2.0)}}, {"account_rate_limit": {"default": 0}},
     {"account_revoked_at": {"default": -1.0}}, {"account_hang": {"default": (1.0, 0.0)}},
     {"account_rate_limit": {"default": 5}, "neighbour_rate": 5.0, "per": 1.0}],
)  # fmt: skip
def test_out_of_range_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"must|needs a|names no|replaces|one key"):
        FakeWhop(**options)


def parse(*flags: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    FakeWhop.add_arguments(parser)
    return parser.parse_args(flags)


FLAGS: dict[tuple[str, ...], dict[str, Any]] = {
    ("--limiter", "sliding"): {"limiter": "sliding"},
    ("--hint", "retry-after-ms"): {"hint": "retry-after-ms"},
    ("--retry-after",): {"hint": "retry-after"},
    ("--rate", "10", "--per", "1"): {"rate_limit": 10, "per": 1.0},
    ("--rate", "0"): {"rate_limit": None},
    ("--neighbour-rate", "4", "--neighbour-from", "1", "--neighbour-for", "2.5"):
        {"neighbour_rate": 4.0, "neighbour_from": 1.0, "neighbour_for": 2.5},
    ("--limit-drop", "2,3,2"): {"limit_drop": (2.0, 3.0, 2.0)},
    ("--outage", "1,6"): {"outage": (1.0, 6.0)},
    ("--fail-first", "2", "--fail-first-ids", "adgrp_a,adgrp_b"):
        {"fail_first": 2, "fail_first_ids": {"adgrp_a", "adgrp_b"}},
    ("--host", "127.0.0.2", "--status", "active", "--campaigns", "3"):
        {"host": "127.0.0.2", "status": "active", "campaigns": 3},
    ("--hint", "retry-after-negative", "--date-skew", "-60"):
        {"hint": "retry-after-negative", "date_skew": -60.0},
    ("--throttle-rate", "0.15", "--throttle-cycle", "1,1"):
        {"throttle_rate": 0.15, "throttle_cycle": (1.0, 1.0)},
    ("--failing-ids", "adgrp_a,adgrp_b", "--hang-ids", "adgrp_c", "--hang-rate", "0.1"):
        {"failing_ids": {"adgrp_a", "adgrp_b"}, "hang_ids": {"adgrp_c"}, "hang_rate": 0.1},
    ("--portal",): {"portal": True},
    ("--echo-key", "--nesting", "1000"): {"echo_key": True, "nesting": 1000},
    ("--host", "::1", "--listen-after", "3"): {"host": "::1", "listen_after": 3.0},
    ("--key", "acme=sk_1", "--key", "globex=sk=2", "--account-rate", "acme=60",
     "--account-revoked-at", "acme=5", "--account-outage", "globex=1,2.5",
     "--account-hang", "acme=0,inf"):
        {"api_keys": {"acme": "sk_1", "globex": "sk=2"}, "account_rate_limit": {"acme": 60},
         "account_revoked_at": {"acme": 5.0}, "account_outage": {"globex": (1.0, 2.5)},
         "account_hang": {"acme": (0.0, math.inf)}},
}  # fmt: skip


@pytest.mark.parametrize("flags", FLAGS)
def test_each_fake_server_flag_reaches_fakewhop(
    flags: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    received: dict[str, Any] = {}
    build = FakeWhop.__init__

    @functools.wraps(build)
    def spy(self: FakeWhop, **options: Any) -> None:
        received.update(options)
        build(self, **options)

    monkeypatch.setattr(FakeWhop, "__init__", spy)
    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(FakeWhop).parameters.items()
        if name != "clock"
    }
    FakeWhop.from_arguments(parse())
    assert received == {**defaults, "groups": 100, "port": 8080}  # fake-server's own
    FakeWhop.from_arguments(parse(*flags))
    assert received == {**defaults, "groups": 100, "port": 8080, **FLAGS[flags]}


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--rate", "10", "--per", "1", "--neighbour-rate", "10"],
         "--neighbour-rate: must be 0 to 9 requests a second under this limit, got 10.0"),
        (["--rate", "0", "--neighbour-rate", "1"], "--neighbour-rate: needs a rate limit"),
        (["--neighbour-rate", "1", "--neighbour-for", "0"], "--neighbour-for: must be more than 0"),
        (["--limit-drop", "1,2,0.5"], "--limit-drop: needs a factor of 1 or more, got 0.5"),
        (["--outage", "1,0"], "--outage: must be at 0 or more seconds, for more than 0"),
        (["--fail-first", "-1"], "--fail-first: must be 0 or more, got -1"),
        (["--per", "0"], "--per: must be more than 0 seconds"),
        (["--rate", "-5"], "--rate: must be at least 1, got -5"),
        (["--fault-rate", "0.6", "--drop-rate", "0.6"], "--drop-rate: must be a share, 0 to 0.4"),
        (["--groups", "-1"], "--groups: must be 0 or more"),
        (["--port", "70000"], "--port: must be 0 to 65535"),
        (["--latency", "nan"], "--latency: must be 0 or more seconds"),
        (["--throttle-rate", "1.5"], "--throttle-rate: must be a share, 0 to 1, got 1.5"),
        (["--throttle-cycle", "1,1"], "--throttle-cycle: needs a throttle rate above 0"),
        (["--throttle-rate", "0.5", "--throttle-cycle", "1,0"],
         "--throttle-cycle: must be ON,OFF: both more than 0 seconds, got 1,0"),
        (["--fault-rate", "0.5", "--hang-rate", "0.6"], "--hang-rate: must be a share, 0 to 0.5"),
        (["--nesting", "-1"], "--nesting: must be 0 or more levels, got -1"),
        (["--listen-after", "-1"], "--listen-after: must be 0 or more seconds, got -1.0"),
        (["--date-skew", "inf"], "--date-skew: must be a number of seconds, got inf"),
        (["--key", "a=sk_1", "--api-key", "sk_2"], "--key: replaces the single api_key"),
        (["--key", "a=sk_1", "--key", "b=sk_1"], "--key: gives a and b one key"),
        (["--key", "a=sk_1", "--account-outage", "b=1,2"], "--account-outage: names no account: b"),
        (["--account-rate", "default=0"], "--account-rate: must be at least 1 for each account"),
        (["--account-revoked-at", "default=-1"], "--account-revoked-at: must be 0 or more seconds"),
        (["--account-hang", "default=1,0"], "--account-hang: must be at 0 or more seconds, for"),
    ],
)  # fmt: skip
def test_bad_flag_values_are_refused_in_a_line_naming_the_flag(
    flags: list[str], message: str
) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}[^\n]*$"):
        FakeWhop.from_arguments(parse(*flags))


def test_a_malformed_key_flag_keeps_the_key_out_of_the_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        parse("--key", "sk_secret_one")
    error = capsys.readouterr().err
    assert "argument --key: expected NAME=KEY" in error
    assert "sk_secret_one" not in error


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--outage", "5"], "argument --outage: expected AT,FOR, got '5'"),
        (["--limit-drop", "1,x,2"], "argument --limit-drop: expected AT,FOR,FACTOR"),
        (["--hint", "header"], "argument --hint: invalid choice: 'header'"),
        (["--limiter", "leaky"], "argument --limiter: invalid choice: 'leaky'"),
        (["--throttle-cycle", "1"], "argument --throttle-cycle: expected ON,OFF, got '1'"),
        (["--account-outage", "acme=5"], "argument --account-outage: expected AT,FOR, got '5'"),
        (["--account-rate", "acme=x"], "argument --account-rate: expected NAME=N, got 'acme=x'"),
        (["--account-revoked-at", "5"], "argument --account-revoked-at: expected NAME=AT, got"),
        (["--key", "a=1", "--key", "a=2"], "argument --key: a given twice"),
    ],
)
def test_malformed_flags_are_refused_by_the_parser(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse(*flags)
    assert message in capsys.readouterr().err
