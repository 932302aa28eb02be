"""What users of generated SDKs expect: raw responses, derived clients, per-call
headers and query parameters, and logging switched on from the environment."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
from typing import Any

import pytest

import whop_async
from whop_async import RateLimit, WhopClient
from whop_async.testing import FakeWhop, run_virtual

from .helpers import API_KEY, BASE_URL, MockAPI, ad_group_json
from .scenarios import client, serving, unlimited

UNPAUSE_URL = f"{BASE_URL}/ad_groups/adgrp_1/unpause"
pytestmark = pytest.mark.usefixtures("env")


def sent(mock_api: MockAPI, method: str, url: str) -> list[dict[str, Any]]:
    return [call.kwargs for call in mock_api.sent(method, url)]


# --- raw responses -------------------------------------------------------------------


@pytest.mark.virtual_time
async def test_a_raw_response_has_status_headers_request_id_timing_and_the_model(
    mock_api: MockAPI,
) -> None:
    mock_api.post(UNPAUSE_URL, status=503)
    mock_api.post(
        UNPAUSE_URL,
        payload=ad_group_json("adgrp_1", shape="docs-2026-11"),
        headers={"X-Request-Id": "req_42", "X-RateLimit-Remaining": "9"},
    )
    async with WhopClient(base_url=BASE_URL) as whop:
        raw = await whop.ad_groups.with_raw_response.unpause("adgrp_1")
    assert raw.status_code == 200
    assert raw.request_id == "req_42"
    assert raw.headers["x-ratelimit-remaining"] == "9"
    assert raw.retries_taken == 1
    [waited] = mock_api.waits("POST", UNPAUSE_URL)
    assert waited > 0
    assert raw.elapsed == pytest.approx(waited)  # answers take no time here: only the wait
    assert raw.http_request.method == "POST"
    assert raw.http_request.url == UNPAUSE_URL
    assert raw.http_request.headers["Authorization"] == "<redacted>"
    assert API_KEY not in repr(raw)
    group = raw.parse()
    assert isinstance(group, whop_async.AdGroup)
    assert group.to_dict() == ad_group_json("adgrp_1", shape="docs-2026-11")
    assert raw.content.startswith(b"{")


async def test_every_single_request_operation_has_a_raw_form(mock_api: MockAPI) -> None:
    mock_api.get(f"{BASE_URL}/ad_groups/adgrp_1", payload=ad_group_json("adgrp_1"))
    mock_api.post(f"{BASE_URL}/ad_groups/adgrp_1/pause", payload=ad_group_json("adgrp_1"))
    page = {"data": [ad_group_json("adgrp_1")], "page_info": {"end_cursor": "c1"}}
    mock_api.get(f"{BASE_URL}/ad_groups?first=5", payload=page)
    async with WhopClient(base_url=BASE_URL) as whop:
        raw_api = whop.ad_groups.with_raw_response
        retrieved = await raw_api.retrieve("adgrp_1")
        paused = await raw_api.pause("adgrp_1", idempotency_key="pause-1")
        listed = await raw_api.list(page_size=5)
    assert retrieved.parse().id == paused.parse().id == "adgrp_1"
    assert paused.http_request.headers["Idempotency-Key"] == "pause-1"
    first_page = listed.parse()
    assert isinstance(first_page, whop_async.AdGroupPage)
    assert first_page.page_info.end_cursor == "c1"
    assert listed.http_request.url == f"{BASE_URL}/ad_groups?first=5"


async def test_a_raw_call_raises_as_the_plain_one_does(mock_api: MockAPI) -> None:
    mock_api.post(UNPAUSE_URL, status=404, payload={"error": {"message": "no such group"}})
    async with WhopClient(base_url=BASE_URL) as whop:
        with pytest.raises(whop_async.NotFoundError):
            await whop.ad_groups.with_raw_response.unpause("adgrp_1")
        # The raw form leaves the plain one plain.
        mock_api.post(UNPAUSE_URL, payload=ad_group_json("adgrp_1"))
        assert isinstance(await whop.ad_groups.unpause("adgrp_1"), whop_async.AdGroup)


async def test_parse_of_an_answer_that_is_not_an_ad_group_raises_a_validation_error(
    mock_api: MockAPI,
) -> None:
    mock_api.post(UNPAUSE_URL, payload={"status": "active"})
    async with WhopClient(base_url=BASE_URL) as whop:
        raw = await whop.ad_groups.with_raw_response.unpause("adgrp_1")
    assert raw.status_code == 200
    with pytest.raises(whop_async.APIResponseValidationError, match=r"\$\.id"):
        raw.parse()


# --- derived clients -----------------------------------------------------------------


@pytest.mark.virtual_time
async def test_a_derived_client_has_its_own_defaults(mock_api: MockAPI) -> None:
    for _ in range(6):
        mock_api.post(UNPAUSE_URL, status=503)
    mock_api.post(UNPAUSE_URL, payload=ad_group_json("adgrp_1"))
    async with WhopClient(base_url=BASE_URL, max_retries=1) as whop:
        patient = whop.with_options(max_retries=6, default_headers={"X-Team": "ads"})
        await patient.ad_groups.unpause("adgrp_1")  # 6 retries: it gets through
        mock_api.post(UNPAUSE_URL, status=503, repeat=True)
        with pytest.raises(whop_async.InternalServerError):
            await whop.ad_groups.unpause("adgrp_1")  # the parent keeps its 1
    headers = [kwargs["headers"] for kwargs in sent(mock_api, "POST", UNPAUSE_URL)]
    assert len(headers) == 7 + 2
    assert all(h["X-Team"] == "ads" for h in headers[:7])
    assert "X-Team" not in headers[7]


def test_a_derived_client_shares_the_rate_budget() -> None:
    async def parent_and_child() -> list[float]:
        loop = asyncio.get_running_loop()
        with serving(unlimited()):
            async with client(RateLimit(2, per=1.0, burst=1)) as whop:
                child = whop.with_options(timeout=5)
                moments = []
                for caller in (whop, child, whop, child):
                    await caller.ad_groups.unpause("adgrp_1")
                    moments.append(loop.time())
                return moments

    moments = run_virtual(parent_and_child())
    gaps = [later - earlier for earlier, later in itertools.pairwise(moments)]
    assert all(gap == pytest.approx(0.5, abs=0.01) for gap in gaps)  # one budget of 2/s


async def test_closing_a_derived_client_leaves_the_parent_open(mock_api: MockAPI) -> None:
    mock_api.post(UNPAUSE_URL, payload=ad_group_json("adgrp_1"), repeat=True)
    async with WhopClient(base_url=BASE_URL) as whop:
        async with whop.with_options(timeout=5) as child:
            await child.ad_groups.unpause("adgrp_1")
        assert child.closed
        with pytest.raises(RuntimeError, match="closed"):
            await child.ad_groups.unpause("adgrp_1")
        await whop.ad_groups.unpause("adgrp_1")  # the session is still open
        other = whop.with_options(max_retries=0)
    assert other.closed  # closing the parent closes what was derived from it
    with pytest.raises(RuntimeError, match="closed"):
        await other.ad_groups.unpause("adgrp_1")


def test_with_options_refuses_what_the_constructor_refuses() -> None:
    whop = WhopClient(base_url=BASE_URL)
    for bad in (
        {"timeout": 0},
        {"timeout": True},
        {"timeout": 10**400},
        {"max_retries": -1},
        {"rate_limit_timeout": -1},
        {"default_headers": {"Authorization": "Bearer other"}},
        {"default_headers": {"X-Team": "a\r\nb"}},
    ):
        with pytest.raises(ValueError):  # noqa: PT011 - each names its own argument
            whop.with_options(**bad)  # type: ignore[arg-type]


# --- per-call headers and query parameters -------------------------------------------


async def test_extra_headers_and_query_reach_every_kind_of_call(mock_api: MockAPI) -> None:
    flag = "?beta=1"
    mock_api.post(UNPAUSE_URL + flag, payload=ad_group_json("adgrp_1"))
    mock_api.get(f"{BASE_URL}/ad_groups/adgrp_1{flag}", payload=ad_group_json("adgrp_1"))
    page = {"data": [ad_group_json("adgrp_1")], "page_info": {}}
    mock_api.get(f"{BASE_URL}/ad_groups?status=paused&beta=1", payload=page)
    for number in (2, 3):
        url = f"{BASE_URL}/ad_groups/adgrp_{number}/unpause{flag}"
        mock_api.post(url, payload=ad_group_json(f"adgrp_{number}"))
    extras: dict[str, Any] = {"extra_headers": {"traceparent": "00-ab-cd-01"}}
    extras["extra_query"] = {"beta": "1"}
    async with WhopClient(base_url=BASE_URL) as whop:
        await whop.ad_groups.unpause("adgrp_1", **extras)
        await whop.ad_groups.retrieve("adgrp_1", **extras)
        [listed] = [group async for group in whop.ad_groups.list(status="paused", **extras)]
        result = await whop.ad_groups.unpause_many(["adgrp_2", "adgrp_3"], **extras)
    assert result.ok
    assert listed.id == "adgrp_1"
    requests = [call for calls in mock_api.requests.values() for call in calls]
    assert len(requests) == 5
    assert all(call.kwargs["headers"]["traceparent"] == "00-ab-cd-01" for call in requests)


@pytest.mark.parametrize(
    ("extras", "message"),
    [
        ({"extra_headers": {"Authorization": "Bearer x"}}, "Authorization cannot be set here"),
        ({"extra_headers": {"idempotency-key": "k"}}, "pass idempotency_key="),
        ({"extra_headers": {"X-Ok": "a\nb"}}, "without control characters"),
        ({"extra_headers": {"Bad Name": "x"}}, "is not a header name"),
        ({"extra_query": {"beta": 1}}, "must map a string to a string"),
    ],
)
async def test_what_the_client_owns_cannot_be_overridden_and_nothing_is_sent(
    mock_api: MockAPI, extras: dict[str, Any], message: str
) -> None:
    async with WhopClient(base_url=BASE_URL) as whop:
        with pytest.raises(ValueError, match=message):
            await whop.ad_groups.unpause("adgrp_1", **extras)
        with pytest.raises(ValueError, match=message):
            await whop.ad_groups.unpause_many(["adgrp_1"], **extras)
    assert mock_api.requests == {}


async def test_a_listing_keeps_its_own_query_parameters(mock_api: MockAPI) -> None:
    async with WhopClient(base_url=BASE_URL) as whop:
        for name in ("first", "after", "status"):
            with pytest.raises(ValueError, match=f"'{name}' is set by the operation"):
                whop.ad_groups.list(status="paused", page_size=5, extra_query={name: "x"})
    assert mock_api.requests == {}


async def test_a_misspelt_option_is_a_type_error_not_ignored() -> None:
    async with WhopClient(base_url=BASE_URL) as whop:
        with pytest.raises(TypeError, match="unexpected keyword argument 'timout'"):
            await whop.ad_groups.unpause("adgrp_1", timout=5)  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="'concurency'"):
            await whop.ad_groups.unpause_many(["adgrp_1"], concurency=5)  # type: ignore[call-arg]


# --- WHOP_LOG --------------------------------------------------------------------------

LOGGED_RUN = """
import asyncio, logging, sys, whop_async
if sys.argv[1] == "configured":
    logging.basicConfig(level=logging.WARNING, stream=sys.stdout)

async def main():
    async with whop_async.WhopClient() as client:
        await client.ad_groups.unpause(sys.argv[2])

asyncio.run(main())
"""


async def _logged_run(mode: str, level: str) -> tuple[subprocess.CompletedProcess[str], FakeWhop]:
    """One unpause in a fresh interpreter with ``WHOP_LOG=level``; ``mode`` "configured"
    configures the application's own logging first."""
    async with FakeWhop(groups=1, fault_rate=0.0) as fake:
        environment = {
            **os.environ,
            "WHOP_API_KEY": fake.api_key,
            "WHOP_BASE_URL": fake.base_url,
            "WHOP_LOG": level,
        }
        run = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", LOGGED_RUN, mode, fake.ids[0]],
            env=environment,
            capture_output=True,
            text=True,
        )
    return run, fake


@pytest.mark.parametrize(("level", "shown"), [("debug", True), ("info", False), ("", False)])
async def test_whop_log_shows_what_the_client_sends_on_stderr(level: str, shown: bool) -> None:
    run, fake = await _logged_run("plain", level)
    assert run.returncode == 0, run.stderr
    assert (f"DEBUG whop_async: POST {fake.base_url}/ad_groups/" in run.stderr) is shown
    assert fake.api_key not in run.stderr


async def test_whop_log_leaves_an_applications_own_logging_alone() -> None:
    run, _ = await _logged_run("configured", "debug")
    assert run.returncode == 0, run.stderr
    assert "whop_async" not in run.stderr + run.stdout  # its WARNING level holds


async def test_an_idempotency_key_that_is_not_a_string_is_refused_by_name(
    mock_api: MockAPI,
) -> None:
    async with WhopClient(base_url=BASE_URL) as whop:
        with pytest.raises(ValueError, match="idempotency_key must be"):
            await whop.ad_groups.unpause("adgrp_1", idempotency_key=5)  # type: ignore[arg-type]
    assert not mock_api.requests
