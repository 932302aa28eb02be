"""retrieve, pause, list and their bulk forms, against FakeWhop and a mocked API."""

from __future__ import annotations

import asyncio
import re

import pytest

import whop_async
from whop_async import AdGroupStatus, RateLimit, WhopClient
from whop_async.testing import FakeWhop

from .helpers import BASE_URL, MockAPI, ad_group_json

CAMPAIGN_2 = "adcamp_00000000002"


def client_for(fake: FakeWhop) -> WhopClient:
    return WhopClient(fake.api_key, base_url=fake.base_url, rate_limit=None)


@pytest.mark.virtual_time
async def test_retrieve_reads_one_group_without_an_idempotency_key(
    env: pytest.MonkeyPatch, mock_api: MockAPI
) -> None:
    url = f"{BASE_URL}/ad_groups/adgrp_1"
    mock_api.get(url, status=503)
    mock_api.get(url, payload=ad_group_json("adgrp_1"))
    async with WhopClient(base_url=BASE_URL) as client:
        group = await client.ad_groups.retrieve("adgrp_1")
    assert group.id == "adgrp_1"
    calls = mock_api.sent("GET", url)
    assert len(calls) == 2  # a GET is retried like the rest
    assert all("Idempotency-Key" not in call.kwargs["headers"] for call in calls)


@pytest.mark.fake_whop(groups=2, status="active")
async def test_pause_and_retrieve_against_the_stand_in(fake_whop: FakeWhop) -> None:
    async with client_for(fake_whop) as client:
        paused = await client.ad_groups.pause(fake_whop.ids[0])
        assert paused.status is AdGroupStatus.PAUSED
        assert (await client.ad_groups.retrieve(fake_whop.ids[0])).status is AdGroupStatus.PAUSED
        assert (await client.ad_groups.retrieve(fake_whop.ids[1])).status is AdGroupStatus.ACTIVE
        with pytest.raises(whop_async.NotFoundError):
            await client.ad_groups.retrieve("adgrp_nosuchgroup")
        with pytest.raises(whop_async.InvalidIdError):
            await client.ad_groups.pause("../unpause")


@pytest.mark.fake_whop(groups=45, campaigns=2)
async def test_list_follows_cursors_lazily_newest_first(fake_whop: FakeWhop) -> None:
    async with client_for(fake_whop) as client:
        listing = client.ad_groups.list(page_size=10)
        assert fake_whop.stats.requests == 0  # nothing sent before iterating
        seen = []
        async for group in listing:
            seen.append(group.id)
            if len(seen) == 10:
                assert fake_whop.stats.requests == 1  # the next page only when needed
        assert seen == list(reversed(fake_whop.ids))
        assert fake_whop.stats.requests == 5
        pages = [page async for page in listing.pages()]
    assert [len(page.data) for page in pages] == [10, 10, 10, 10, 5]
    assert [page.page_info.has_next_page for page in pages] == [True] * 4 + [False]


@pytest.mark.fake_whop(groups=30, campaigns=2)
async def test_list_filters_by_campaign_and_status(fake_whop: FakeWhop) -> None:
    async with client_for(fake_whop) as client:
        await client.ad_groups.unpause(fake_whop.ids[1])  # in campaign 2
        paused_in_2 = [
            group.id
            async for group in client.ad_groups.list(
                ad_campaign_id=CAMPAIGN_2, status=AdGroupStatus.PAUSED, page_size=4
            )
        ]
    expected = [
        ad_group_id for ad_group_id in fake_whop.ids[1::2] if ad_group_id != fake_whop.ids[1]
    ]
    assert paused_in_2 == list(reversed(expected))


async def test_list_refuses_bad_arguments_before_sending(env: pytest.MonkeyPatch) -> None:
    client = WhopClient(base_url=BASE_URL)
    with pytest.raises(whop_async.InvalidIdError):
        client.ad_groups.list(ad_campaign_id="adcamp_1&status=active")
    for bad in (0, 101, 2.5):
        with pytest.raises(ValueError, match="page_size"):
            client.ad_groups.list(page_size=bad)  # type: ignore[arg-type]


async def test_list_reads_the_2026_shape(env: pytest.MonkeyPatch, mock_api: MockAPI) -> None:
    page = {
        "data": [ad_group_json("adgrp_2026shape0001", shape="sdk-2026")],
        "page_info": {"end_cursor": "c1", "start_cursor": "c1", "has_next_page": False,
                      "has_previous_page": False, "total": 1},
    }  # fmt: skip
    mock_api.get(f"{BASE_URL}/ad_groups?status=paused", payload=page)
    async with WhopClient(base_url=BASE_URL) as client:
        groups = [group async for group in client.ad_groups.list(status="paused")]
    assert [group.title for group in groups] == ["Spring retargeting"]


@pytest.mark.fake_whop(groups=120, campaigns=2)
async def test_unpausing_a_listing_streams_and_misses_nothing(fake_whop: FakeWhop) -> None:
    async with client_for(fake_whop) as client:
        listing = client.ad_groups.list(ad_campaign_id=CAMPAIGN_2, status="paused", page_size=7)
        result = await client.ad_groups.unpause_many(listing, concurrency=8)
    campaign_2 = set(fake_whop.ids[1::2])
    assert {group.id for group in result.succeeded} == campaign_2
    assert result.ok
    assert {fake_whop.status_of(i) for i in campaign_2} == {"active"}
    assert {fake_whop.status_of(i) for i in fake_whop.ids[0::2]} == {"paused"}


@pytest.mark.fake_whop(groups=40, status="active")
async def test_pause_then_list_paused_then_unpause_round_trips(fake_whop: FakeWhop) -> None:
    wrong = fake_whop.ids[5:25]
    async with client_for(fake_whop) as client:
        paused = await client.ad_groups.pause_many(wrong)
        assert [group.id for group in paused.succeeded] == wrong
        listed = [group.id async for group in client.ad_groups.list(status="paused")]
        assert sorted(listed) == sorted(wrong)
        outcomes = [outcome async for outcome in client.ad_groups.iter_pause(wrong[:3])]
        assert all(outcome.ok for outcome in outcomes)
        restored = await client.ad_groups.unpause_many(client.ad_groups.list(status="paused"))
    assert sorted(group.id for group in restored.succeeded) == sorted(wrong)
    assert fake_whop.statuses() == {"active": 40}


@pytest.mark.virtual_time
async def test_each_operation_has_its_own_rate_budget(
    env: pytest.MonkeyPatch, mock_api: MockAPI
) -> None:
    for name in ("adgrp_1", "adgrp_2", "adgrp_3"):
        mock_api.post(f"{BASE_URL}/ad_groups/{name}/unpause", payload=ad_group_json(name))
    mock_api.get(f"{BASE_URL}/ad_groups/adgrp_1", payload=ad_group_json("adgrp_1"))
    mock_api.post(f"{BASE_URL}/ad_groups/adgrp_1/pause", payload=ad_group_json("adgrp_1"))
    limit = RateLimit(2, per=60.0)
    loop = asyncio.get_running_loop()
    async with WhopClient(base_url=BASE_URL, rate_limit=limit) as client:
        await client.ad_groups.unpause("adgrp_1")
        await client.ad_groups.unpause("adgrp_2")
        await client.ad_groups.retrieve("adgrp_1")
        await client.ad_groups.pause("adgrp_1")
        assert loop.time() == 0.0  # the unpause budget is spent, the others are not
        await client.ad_groups.unpause("adgrp_3")
    assert mock_api.arrivals("POST", f"{BASE_URL}/ad_groups/adgrp_3/unpause") == [
        pytest.approx(30.0)
    ]


async def test_a_listing_that_goes_round_in_circles_stops_with_an_error(
    env: pytest.MonkeyPatch, mock_api: MockAPI
) -> None:
    # A server whose pages always say there is a next one, at the same cursor.
    page = {
        "data": [ad_group_json("adgrp_1")],
        "page_info": {"end_cursor": "c1", "start_cursor": "c1", "has_next_page": True,
                      "has_previous_page": False},
    }  # fmt: skip
    mock_api.get(re.compile(rf"{re.escape(BASE_URL)}/ad_groups\?.*"), payload=page, repeat=True)
    async with WhopClient(base_url=BASE_URL) as client:
        with pytest.raises(whop_async.APIResponseValidationError, match="already listed"):
            async for _ in client.ad_groups.list(status="paused"):
                pass
    # The first page, and the page after c1, which leads to c1 again: then it stopped.
    assert sum(len(calls) for calls in mock_api.requests.values()) == 2
