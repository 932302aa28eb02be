"""WhopClient over a mocked API: configuration, the request, errors, retries, logs.

Every test runs in virtual time (whop_async.testing.VirtualTimeLoop): a wait is measured
where the server sees it, between the moments requests arrive, without sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

import whop_async
from whop_async import AdGroupStatus, WhopClient
from whop_async.testing import SHAPES, Shape

from .helpers import API_KEY, BASE_URL, MockAPI, ad_group_json, jitter_at
from .scenarios import client as scenario_client
from .scenarios import serving, unlimited

UNPAUSE_URL = f"{BASE_URL}/ad_groups/adgrp_xxxxxxxxxxxx/unpause"
RATE_LIMITED = {"error": {"type": "rate_limit_exceeded", "message": "Try again in 12 seconds."}}

pytestmark = pytest.mark.virtual_time


def sent_headers(mock_api: MockAPI, url: str = UNPAUSE_URL) -> list[dict[str, str]]:
    return [call.kwargs["headers"] for call in mock_api.sent("POST", url)]


def answer_in_turn(mock_api: MockAPI, *answers: dict[str, Any], url: str = UNPAUSE_URL) -> None:
    """Queue answers for ``url``: each a dict of aioresponses ``add`` arguments."""
    for kwargs in answers:
        mock_api.post(url, **kwargs)


OK = {"payload": ad_group_json()}


def waits(mock_api: MockAPI) -> list[float]:
    """The seconds between one unpause request and the next, as the server saw them."""
    return mock_api.waits("POST", UNPAUSE_URL)


# --- configuration ---------------------------------------------------------------------


async def test_the_key_comes_from_the_environment(
    env: pytest.MonkeyPatch, mock_api: MockAPI
) -> None:
    answer_in_turn(mock_api, OK)
    async with WhopClient(base_url=BASE_URL) as client:
        await client.ad_groups.unpause("adgrp_xxxxxxxxxxxx")
    assert sent_headers(mock_api)[0]["Authorization"] == f"Bearer {API_KEY}"


@pytest.mark.parametrize("value", [None, ""])
def test_a_missing_key_is_an_error_that_names_the_variable(
    env: pytest.MonkeyPatch, value: str | None
) -> None:
    env.delenv("WHOP_API_KEY")
    with pytest.raises(whop_async.WhopError, match="WHOP_API_KEY"):
        WhopClient(value)


def test_base_url_comes_from_the_argument_then_the_environment_then_the_default(
    env: pytest.MonkeyPatch,
) -> None:
    assert WhopClient().base_url == "https://api.whop.com/api/v1"
    env.setenv("WHOP_BASE_URL", "https://sandbox-api.whop.com/api/v1/")
    assert WhopClient().base_url == "https://sandbox-api.whop.com/api/v1"
    assert WhopClient(base_url="http://127.0.0.1:9/v1").base_url == "http://127.0.0.1:9/v1"


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("base_url", "api.whop.com"),
        ("base_url", "ftp://api.whop.com"),
        ("base_url", "https://api.whop.com/v1?x=1"),
        ("timeout", 0),
        ("timeout", -1),
        ("timeout", float("inf")),
        ("max_retries", -1),
        ("max_retries", 1.5),
        ("max_retries", True),
        ("max_server_wait", -1),
    ],
)
def test_bad_options_are_refused_at_construction(
    env: pytest.MonkeyPatch, option: str, value: object
) -> None:
    with pytest.raises(ValueError, match=option):
        WhopClient(**{option: value})


def test_repr_shows_the_base_url_and_never_the_key(env: pytest.MonkeyPatch) -> None:
    client = WhopClient(base_url=BASE_URL)
    assert repr(client) == f"WhopClient(base_url='{BASE_URL}')"
    assert API_KEY not in repr(client)
    assert API_KEY not in str(client)


# --- the request -----------------------------------------------------------------------


async def test_unpause_posts_to_the_path_with_the_documented_headers(
    client: WhopClient, mock_api: MockAPI
) -> None:
    answer_in_turn(mock_api, OK)
    group = await client.ad_groups.unpause("adgrp_xxxxxxxxxxxx")
    assert group.status is AdGroupStatus.ACTIVE
    [headers] = sent_headers(mock_api)
    assert headers["Authorization"] == f"Bearer {API_KEY}"
    assert headers["Accept"] == "application/json"
    assert headers["User-Agent"].startswith(f"whop_async/{whop_async.__version__} ")
    assert len(headers["Idempotency-Key"]) == 32
    assert "Api-Version-Date" not in headers
    [call] = mock_api.sent("POST", UNPAUSE_URL)
    assert call.kwargs["allow_redirects"] is False


async def test_api_version_and_default_headers_are_sent(
    env: pytest.MonkeyPatch, mock_api: MockAPI
) -> None:
    answer_in_turn(mock_api, {"payload": {**ad_group_json(), "impressions": 3.0}})
    async with WhopClient(
        base_url=BASE_URL, api_version="2026-10-15-1", default_headers={"X-Team": "ads"}
    ) as client:
        await client.ad_groups.unpause("adgrp_xxxxxxxxxxxx")
    [headers] = sent_headers(mock_api)
    assert headers["Api-Version-Date"] == "2026-10-15-1"
    assert headers["X-Team"] == "ads"


async def test_each_call_gets_a_fresh_idempotency_key(
    client: WhopClient, mock_api: MockAPI
) -> None:
    answer_in_turn(mock_api, OK, OK)
    await client.ad_groups.unpause("adgrp_xxxxxxxxxxxx")
    await client.ad_groups.unpause("adgrp_xxxxxxxxxxxx")
    first, second = sent_headers(mock_api)
    assert first["Idempotency-Key"] != second["Idempotency-Key"]


async def test_retries_repeat_the_calls_idempotency_key(
    client: WhopClient, mock_api: MockAPI
) -> None:
    answer_in_turn(mock_api, {"status": 503}, {"status": 502}, OK)
    await client.ad_groups.unpause("adgrp_xxxxxxxxxxxx")
    keys = {headers["Idempotency-Key"] for headers in sent_headers(mock_api)}
    assert len(sent_headers(mock_api)) == 3
    assert len(keys) == 1


async def test_a_callers_idempotency_key_is_used(client: WhopClient, mock_api: MockAPI) -> None:
    answer_in_turn(mock_api, OK)
    await client.ad_groups.unpause("adgrp_xxxxxxxxxxxx", idempotency_key="order-42")
    assert sent_headers(mock_api)[0]["Idempotency-Key"] == "order-42"


@pytest.mark.parametrize("bad_id", ["", "../../me", "adgrp_1/pause", "adgrp?x=1", "%2e%2e"])
async def test_a_bad_id_is_refused_before_anything_is_sent(
    client: WhopClient, mock_api: MockAPI, bad_id: str
) -> None:
    with pytest.raises(ValueError, match="ad_group_id"):
        await client.ad_groups.unpause(bad_id)
    assert mock_api.requests == {}


@pytest.mark.parametrize("shape", SHAPES)
async def test_every_real_shape_is_read(
    client: WhopClient, mock_api: MockAPI, shape: Shape
) -> None:
    answer_in_turn(mock_api, {"payload": ad_group_json(shape=shape)})
    group = await client.ad_groups.unpause("adgrp_xxxxxxxxxxxx")
    assert group.status is whop_async.AdGroupStatus.ACTIVE
    assert group.to_dict() == ad_group_json(shape=shape)


# --- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (301, whop_async.APIStatusError),
        (400, whop_async.BadRequestError),
        (401, whop_async.AuthenticationError),
        (403, whop_async.PermissionDeniedError),
        (404, whop_async.NotFoundError),
        (409, whop_async.ConflictError),
        (422, whop_async.UnprocessableEntityError),
    ],
)
async def test_errors_that_are_not_retried_surface_after_one_request(
    client: WhopClient,
    mock_api: MockAPI,
    status: int,
    error_class: type[whop_async.APIStatusError],
) -> None:
    answer_in_turn(
        mock_api,
        {
            "status": status,
            "payload": {"error": {"type": "t", "message": "no"}},
            "headers": {"X-Request-Id": "req_1"},
        },
    )
    loop = asyncio.get_running_loop()
    with pytest.raises(error_class) as caught:
        await client.ad_groups.unpause("adgrp_xxxxxxxxxxxx")
    assert loop.time() == 0.0  # raised at once: no wait for a retry that never comes
    assert type(caught.value) is error_class
    assert (caught.value.status_code, caught.value.request_id) == (status, "req_1")
    assert len(sent_headers(mock_api)) == 1


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ({"body": "<html>OK</html>"}, "the body is not JSON: <html>OK</html>"),
        ({"payload": [ad_group_json()]}, "expected a JSON object, got list @ $"),
        ({"payload": {"status": "active"}}, "required field missing @ $.id"),
        ({"payload": {"id": "adgrp_xxxxxxxxxxxx"}}, "required field missing @ $.status"),
        ({"body": "[" * 5_000 + "]" * 5_000}, "nested deeper than the parser allows"),
    ],
)
async def test_a_2xx_that_is_not_an_ad_group_says_the_server_accepted_it(
    client: WhopClient, mock_api: MockAPI, answer: dict[str, Any], problem: str
) -> None:
    answer_in_turn(mock_api, {**answer, "status": 201, "headers": {"X-Request-Id": "req_2"}})
    with pytest.raises(whop_async.APIResponseValidationError) as caught:
        await client.ad_groups.unpause("adgrp_xxxxxxxxxxxx")
    error = caught.value
    assert str(error).startswith(
        "the server accepted POST /ad_groups/adgrp_xxxxxxxxxxxx/unpause (201) but its answer"
        " could not be read: "
    )
    assert problem in str(error)
    assert (error.status_code, error.request_id, error.accepted) == (201, "req_2", True)
    assert error.body == answer.get("payload", answer.get("body"))
    assert len(sent_headers(mock_api)) == 1  # carried out: never sent again


async def test_an_error_body_nested_too_deep_is_kept_as_text(
    client: WhopClient, mock_api: MockAPI
) -> None:
    deep = "[" * 5_000 + "]" * 5_000
    answer_in_turn(mock_api, {"status": 404, "body": deep})
    with pytest.raises(whop_async.NotFoundError) as caught:
        await client.ad_groups.unpause("adgrp_xxxxxxxxxxxx")
    assert caught.value.body == deep


# --- retries ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_retryable_statuses_are_retried_until_success(
    client: WhopClient, mock_api: MockAPI, status: int
) -> None:
    answer_in_turn(mock_api, {"status": status}, {"status": status}, OK)
    group = await client.ad_groups.unpause("adgrp_xxxxxxxxxxxx")
    assert group.id == "adgrp_xxxxxxxxxxxx"
    assert len(sent_headers(mock_api)) == 3


async def test_connection_errors_and_timeouts_are_retried(
    client: WhopClient, mock_api: MockAPI
) -> None:
    import aiohttp

    answer_in_turn(
        mock_api,
        {"exception": aiohttp.ServerDisconnectedError()},
        {"exception": TimeoutError()},
        {"exception": aiohttp.ClientConnectionError("reset")},
        OK,
    )
    assert (await client.ad_groups.unpause("adgrp_xxxxxxxxxxxx")).id == "adgrp_xxxxxxxxxxxx"
    assert len(sent_headers(mock_api)) == 4


async def test_after_max_retries_the_last_typed_error_is_raised(
    client: WhopClient, mock_api: MockAPI
) -> None:
    answer_in_turn(mock_api, *[{"status": 503}] * 3, {"status": 502, "body": "gateway"})
    with pytest.raises(whop_async.InternalServerError) as caught:
        await client.ad_groups.unpause("adgrp_xxxxxxxxxxxx")
    assert caught.value.status_code == 502
    assert len(sent_headers(mock_api)) == 4  # the first attempt and max_retries=3 retries


async def test_a_timeout_on_the_last_attempt_surfaces_as_api_timeout_error(
    client: WhopClient, mock_api: MockAPI
) -> None:
    answer_in_turn(mock_api, {"exception": TimeoutError()}, {"exception": TimeoutError()})
    with pytest.raises(whop_async.APITimeoutError, match="timed out after 30 s"):
        await client.ad_groups.unpause("adgrp_xxxxxxxxxxxx", max_retries=1)


@pytest.mark.parametrize(("max_retries", "requests"), [(0, 1), (1, 2), (5, 6)])
async def test_max_retries_can_be_set_per_call(
    client: WhopClient, mock_api: MockAPI, max_retries: int, requests: int
) -> None:
    answer_in_turn(mock_api, *[{"status": 500}] * 6)
    with pytest.raises(whop_async.InternalServerError):
        await client.ad_groups.unpause("adgrp_xxxxxxxxxxxx", max_retries=max_retries)
    assert len(sent_headers(mock_api)) == requests


async def test_backoff_is_full_jitter_doubling_up_to_eight_seconds(
    env: pytest.MonkeyPatch, mock_api: MockAPI
) -> None:
    jitter_at(env, 1.0)  # the top of each jitter range
    answer_in_turn(mock_api, *[{"status": 500}] * 7)
    async with WhopClient(base_url=BASE_URL, max_retries=6) as client:
        with pytest.raises(whop_async.InternalServerError):
            await client.ad_groups.unpause("adgrp_xxxxxxxxxxxx")
    assert waits(mock_api) == pytest.approx([0.5, 1.0, 2.0, 4.0, 8.0, 8.0])


async def test_jitter_scales_the_backoff(env: pytest.MonkeyPatch, mock_api: MockAPI) -> None:
    jitter_at(env, 0.25)
    answer_in_turn(mock_api, {"status": 500}, {"status": 500}, OK)
    async with WhopClient(base_url=BASE_URL) as client:
        await client.ad_groups.unpause("adgrp_xxxxxxxxxxxx")
    assert waits(mock_api) == pytest.approx([0.125, 0.25])


@pytest.mark.parametrize(
    ("answer", "expected_wait"),
    [
        ({"status": 503, "headers": {"Retry-After": "Thu, 01 Jan 2027 00:00:05 GMT"}}, 5.0),
        ({"status": 503, "headers": {"retry-after-ms": "1500"}}, 1.5),
        ({"status": 503, "headers": {"Retry-After": "-4"}}, 0.0),
    ],
)
async def test_the_server_directed_wait_is_slept(
    env: pytest.MonkeyPatch, mock_api: MockAPI, answer: dict[str, Any], expected_wait: float
) -> None:
    # An answer with no Date header: its HTTP-date is read against the local clock.
    env.setattr(time, "time", lambda: 1_798_761_600.0)  # 2027-01-01T00:00:00Z
    answer_in_turn(mock_api, answer, OK)
    async with WhopClient(base_url=BASE_URL) as client:
        await client.ad_groups.unpause("adgrp_xxxxxxxxxxxx")
    assert waits(mock_api) == pytest.approx([expected_wait])


@pytest.mark.parametrize(
    ("answer", "shortest", "longest"),
    [
        ({"status": 429, "headers": {"retry-after-ms": "1500", "Retry-After": "9"}}, 1.5, 1.5),
        # Whole seconds are rounded up: the server may be willing up to a second sooner.
        ({"status": 429, "headers": {"Retry-After": "9"}, "payload": RATE_LIMITED}, 8.0, 9.0),
        ({"status": 429, "payload": RATE_LIMITED}, 11.0, 12.0),
    ],
)
async def test_a_429_is_retried_within_the_wait_the_server_named(
    env: pytest.MonkeyPatch,
    mock_api: MockAPI,
    answer: dict[str, Any],
    shortest: float,
    longest: float,
) -> None:
    answer_in_turn(mock_api, answer, OK)
    async with WhopClient(base_url=BASE_URL) as client:
        await client.ad_groups.unpause("adgrp_xxxxxxxxxxxx")
    [waited] = waits(mock_api)
    assert shortest - 1e-9 <= waited <= longest + 1e-9


async def test_a_wait_above_the_cap_raises_at_once(client: WhopClient, mock_api: MockAPI) -> None:
    answer_in_turn(mock_api, {"status": 429, "headers": {"Retry-After": "600"}}, OK)
    with pytest.raises(whop_async.RateLimitError) as caught:
        await client.ad_groups.unpause("adgrp_xxxxxxxxxxxx")
    assert asyncio.get_running_loop().time() == 0.0
    assert caught.value.retry_after == 600.0
    assert len(sent_headers(mock_api)) == 1


async def test_the_cap_is_configurable(env: pytest.MonkeyPatch, mock_api: MockAPI) -> None:
    answer_in_turn(mock_api, {"status": 429, "payload": RATE_LIMITED}, OK)
    async with WhopClient(base_url=BASE_URL, max_server_wait=10) as client:
        with pytest.raises(whop_async.RateLimitError, match="Try again in 12 seconds"):
            await client.ad_groups.unpause("adgrp_xxxxxxxxxxxx")
    assert asyncio.get_running_loop().time() == 0.0
    assert len(sent_headers(mock_api)) == 1


async def test_each_retry_is_logged_at_info_without_the_key(
    client: WhopClient,
    mock_api: MockAPI,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    jitter_at(monkeypatch, 0.5)
    answer_in_turn(mock_api, {"status": 503, "headers": {"X-Request-Id": "req_7"}}, OK)
    with caplog.at_level(logging.DEBUG, logger="whop_async"):
        await client.ad_groups.unpause("adgrp_xxxxxxxxxxxx")
    retries = [r for r in caplog.records if r.levelno == logging.INFO]
    [retry] = retries
    assert retry.name == "whop_async"
    assert retry.getMessage().startswith(
        "attempt 1 failed, retrying in 0.25 s: InternalServerError: 503 from POST"
    )
    assert "req_7" in retry.getMessage()
    assert (retry.whop_attempt, retry.whop_delay, retry.whop_request_id) == (1, 0.25, "req_7")
    assert API_KEY not in caplog.text
    assert "<redacted>" in caplog.text  # the debug line of each request
    assert waits(mock_api) == [0.25]  # the wait logged is the wait made


# --- cancellation ----------------------------------------------------------------------


async def test_a_call_cancelled_during_backoff_returns_at_once(
    client: WhopClient, mock_api: MockAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    jitter_at(monkeypatch, 1.0)
    loop = asyncio.get_running_loop()
    answer_in_turn(mock_api, *[{"status": 503}] * 4)
    call = asyncio.create_task(client.ad_groups.unpause("adgrp_xxxxxxxxxxxx"))
    await asyncio.sleep(0.25)  # the call backs off for 0.5 s
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert loop.time() == 0.25
    assert len(sent_headers(mock_api)) == 1


async def test_cancelled_error_from_the_network_is_never_retried(
    client: WhopClient, mock_api: MockAPI
) -> None:
    answer_in_turn(mock_api, {"exception": asyncio.CancelledError()}, OK)
    with pytest.raises(asyncio.CancelledError):
        await client.ad_groups.unpause("adgrp_xxxxxxxxxxxx")
    assert asyncio.get_running_loop().time() == 0.0
    assert len(sent_headers(mock_api)) == 1


# --- lifecycle -------------------------------------------------------------------------


async def test_a_closed_client_refuses_calls(env: pytest.MonkeyPatch) -> None:
    client = WhopClient(base_url=BASE_URL)
    async with client:
        pass
    assert client.closed
    with pytest.raises(RuntimeError, match="closed"):
        await client.ad_groups.unpause("adgrp_xxxxxxxxxxxx")
    with pytest.raises(RuntimeError, match="closed"):
        await client.__aenter__()
    await client.close()  # twice is fine


async def test_the_key_never_appears_in_an_errors_message_repr_or_traceback(
    client: WhopClient, mock_api: MockAPI, caplog: pytest.LogCaptureFixture
) -> None:
    import traceback

    import aiohttp

    answer_in_turn(
        mock_api,
        {"exception": aiohttp.ClientConnectionError("reset")},
        {"status": 401, "payload": {"error": {"type": "unauthorized", "message": "Bad key"}}},
    )
    with (
        caplog.at_level(logging.DEBUG, logger="whop_async"),
        pytest.raises(whop_async.AuthenticationError) as caught,
    ):
        await client.ad_groups.unpause("adgrp_xxxxxxxxxxxx")
    shown = "".join(traceback.format_exception(caught.value))
    for text in (shown, repr(caught.value), str(caught.value), caplog.text):
        assert API_KEY not in text


async def test_the_error_after_the_last_retry_does_not_carry_the_first() -> None:
    server = unlimited(fail_first=3)
    with serving(server):
        async with scenario_client(None) as whop:
            with pytest.raises(whop_async.InternalServerError) as failed:
                await whop.ad_groups.unpause("adgrp_1", max_retries=2)
    assert server.requests == 3
    assert failed.value.__context__ is None  # one error in the traceback, not the first too
