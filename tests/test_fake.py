"""FakeWhop, the stand-in server users test against, and its pytest fixture."""

from __future__ import annotations

import argparse
import functools
import inspect
import re
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict

import whop_async
from whop_async import AdGroupStatus, WhopClient
from whop_async.testing import HINTS, SHAPES, FakeWhop, Hint, Limiter, Shape, example_ad_group

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
    headers["Authorization"] = f"Bearer {fake.api_key}"
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


@pytest.mark.parametrize("hint", HINTS)
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


@pytest.mark.parametrize(
    "options",
    [{"rate_limit": 0}, {"per": 0.0}, {"fault_rate": 1.5}, {"fault_rate": 0.6, "drop_rate": 0.6},
     {"latency": -1.0}, {"limiter": "leaky"}, {"hint": "header"}, {"neighbour_rate": 10.0},
     {"neighbour_rate": 1.0, "neighbour_from": -1.0}, {"limit_drop": (1.0, 2.0, 0.5)},
     {"limit_drop": (1.0, 0.0, 2.0)}, {"outage": (-1.0, 5.0)}, {"fail_first": -1},
     {"groups": -1}, {"port": 70_000}],
)  # fmt: skip
def test_out_of_range_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"must be|needs a"):
        FakeWhop(**options)


def parse(*flags: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    FakeWhop.add_arguments(parser)
    return parser.parse_args(flags)


FLAGS = {
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
    ],
)  # fmt: skip
def test_bad_flag_values_are_refused_in_a_line_naming_the_flag(
    flags: list[str], message: str
) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}[^\n]*$"):
        FakeWhop.from_arguments(parse(*flags))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--outage", "5"], "argument --outage: expected AT,FOR, got '5'"),
        (["--limit-drop", "1,x,2"], "argument --limit-drop: expected AT,FOR,FACTOR"),
        (["--hint", "header"], "argument --hint: invalid choice: 'header'"),
        (["--limiter", "leaky"], "argument --limiter: invalid choice: 'leaky'"),
    ],
)
def test_malformed_flags_are_refused_by_the_parser(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse(*flags)
    assert message in capsys.readouterr().err
