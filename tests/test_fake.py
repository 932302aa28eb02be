"""FakeWhop, the stand-in server users test against, and its pytest fixture."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict

import whop_async
from whop_async import AdGroupStatus, WhopClient
from whop_async.testing import SHAPES, FakeWhop, Shape, example_ad_group


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
        return answer.status, CIMultiDict(answer.headers), await answer.json()


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


@pytest.mark.parametrize("retry_after", [False, True])
async def test_the_rate_limit_answers_like_whop(retry_after: bool) -> None:
    async with FakeWhop(groups=1, rate_limit=2, per=60.0, retry_after=retry_after) as fake:
        path = f"/ad_groups/{fake.ids[0]}/unpause"
        for _ in range(2):
            assert (await raw(fake, "POST", path))[0] == 200
        status, headers, body = await raw(fake, "POST", path)
        assert status == 429
        assert body["error"]["type"] == "rate_limit_exceeded"
        assert body["error"]["message"].startswith("Try again in ")
        assert ("Retry-After" in headers) is retry_after
        # Each operation has its own budget.
        assert (await raw(fake, "GET", f"/ad_groups/{fake.ids[0]}"))[0] == 200
        assert fake.stats.rate_limited == 1


async def test_a_token_bucket_refills() -> None:
    now = [0.0]
    async with FakeWhop(
        groups=1, rate_limit=10, per=1.0, limiter="bucket", burst=2, clock=lambda: now[0]
    ) as fake:
        path = f"/ad_groups/{fake.ids[0]}/unpause"
        assert [(await raw(fake, "POST", path))[0] for _ in range(3)] == [200, 200, 429]
        now[0] += 0.1
        assert (await raw(fake, "POST", path))[0] == 200


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
     {"latency": -1.0}],
)  # fmt: skip
def test_out_of_range_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"must be|shares"):
        FakeWhop(**options)
