"""What goes on the wire and what comes back, through a client over a mocked API: ids
in the path, headers, Idempotency-Keys, each status's error, the server's wait hints.

Each error is read as a user meets it: raised by a call that does not retry it (no
retries left, or a wait beyond the cap), in virtual time.
"""

from __future__ import annotations

import json
import os
import string
import time
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import whop_async
from whop_async import WhopClient
from whop_async.testing import run_virtual

from .helpers import API_KEY, BASE_URL, MockAPI, ad_group_json

NOW = 1_800_000_000.0
PATH = "/ad_groups/adgrp_1/unpause"
URL = f"{BASE_URL}{PATH}"
A_DAY = 86_400.0
# A wait longer than any cap: the call that meets it raises at once, whatever the status.
BEYOND_THE_CAP = {"Retry-After": "100000"}

pytestmark = [pytest.mark.virtual_time, pytest.mark.usefixtures("env")]


def whop_error(error_type: str, message: str, code: str | None = None) -> dict[str, object]:
    error: dict[str, object] = {"type": error_type, "message": message}
    if code is not None:
        error["code"] = code
    return {"error": error}


def as_body(body: bytes | str | dict[str, object]) -> bytes:
    if isinstance(body, dict):
        body = json.dumps(body)
    return body.encode() if isinstance(body, str) else body


async def failure(
    mock_api: MockAPI,
    status: int,
    body: bytes | str | dict[str, object] = b"",
    headers: dict[str, str] | None = None,
) -> whop_async.APIStatusError:
    """The error an unpause raises when the server answers ``status`` with ``body``."""
    mock_api.post(URL, status=status, body=as_body(body), headers=headers)
    async with WhopClient(base_url=BASE_URL, max_retries=0) as whop:
        with pytest.raises(whop_async.APIStatusError) as caught:
            await whop.ad_groups.unpause("adgrp_1")
    return caught.value


def answered(status: int, body: bytes, headers: dict[str, str] | None = None) -> object:
    """What an unpause returns or raises when the server answers ``status`` with
    ``body``, and how many requests it made (in a fresh event loop, for hypothesis)."""

    async def unpause() -> object:
        with MockAPI() as mocked:
            mocked.post(URL, status=status, body=body, headers=headers)
            async with WhopClient(API_KEY, base_url=BASE_URL, max_retries=0) as whop:
                try:
                    return await whop.ad_groups.unpause("adgrp_1")
                except whop_async.WhopError as error:
                    return error
                finally:
                    assert len(mocked.sent("POST", URL)) == 1

    return run_virtual(unpause())


# --- ids in the path -------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_id",
    [
        "",
        " ",
        "adgrp_1 ",
        "\tadgrp",
        "a/b",
        "../x",
        "a?b",
        "a#b",
        "a%2Fb",
        ".",
        "..",
        "a.b",
        "adgrp_\n",
        "адгрп",
        "x" * 129,
        None,
        12,
        b"adgrp_1",
    ],
)
async def test_an_id_that_could_leave_its_path_segment_is_refused_unsent(
    mock_api: MockAPI, bad_id: object
) -> None:
    async with WhopClient(base_url=BASE_URL) as whop:
        with pytest.raises(whop_async.InvalidIdError, match="ad_group_id") as caught:
            await whop.ad_groups.unpause(bad_id)  # type: ignore[arg-type]
    assert repr(bad_id)[:40] in str(caught.value)
    assert mock_api.requests == {}


@pytest.mark.parametrize("good_id", ["adgrp_xxxxxxxxxxxx", "a", "ADGRP-1_z", "x" * 128])
async def test_a_whop_id_goes_into_the_path_unchanged(mock_api: MockAPI, good_id: str) -> None:
    url = f"{BASE_URL}/ad_groups/{good_id}/unpause"
    mock_api.post(url, payload=ad_group_json(good_id))
    async with WhopClient(base_url=BASE_URL) as whop:
        await whop.ad_groups.unpause(good_id)
    assert len(mock_api.sent("POST", url)) == 1


def unpaused_at(value: str) -> str | None:
    """The path an unpause of ``value`` was sent to, or None when it was refused unsent."""

    async def unpause() -> str | None:
        with MockAPI() as mocked:
            mocked.post(f"{BASE_URL}/ad_groups/{value}/unpause", payload=ad_group_json())
            async with WhopClient(API_KEY, base_url=BASE_URL) as whop:
                try:
                    await whop.ad_groups.unpause(value)
                except whop_async.InvalidIdError:
                    assert mocked.requests == {}
                    return None
            [(_, url)] = mocked.requests
            return str(url.path)

    return run_virtual(unpause())


@settings(max_examples=50)
@given(st.text())
def test_any_string_is_sent_as_one_safe_segment_or_refused(value: str) -> None:
    path = unpaused_at(value)
    if path is not None:
        assert path == f"/api/v1/ad_groups/{value}/unpause"
        assert set(value) <= set(string.ascii_letters + string.digits + "_-")


async def test_a_very_long_bad_id_is_shortened_in_the_message(mock_api: MockAPI) -> None:
    async with WhopClient(base_url=BASE_URL) as whop:
        with pytest.raises(ValueError, match=r"got '/+\.\.\.$") as caught:
            await whop.ad_groups.unpause("/" * 10_000)
    assert len(str(caught.value)) < 250


# --- headers and Idempotency-Keys ------------------------------------------------------


def test_a_client_wide_idempotency_key_is_refused() -> None:
    with pytest.raises(ValueError, match="per call"):
        WhopClient(base_url=BASE_URL, default_headers={"idempotency-key": "x"})


async def test_a_calls_own_key_is_its_alone(mock_api: MockAPI) -> None:
    mock_api.post(URL, payload=ad_group_json("adgrp_1"), repeat=True)
    async with WhopClient(base_url=BASE_URL) as whop:
        await whop.ad_groups.unpause("adgrp_1", idempotency_key="k1")
        await whop.ad_groups.unpause("adgrp_1")
    first, second = (call.kwargs["headers"] for call in mock_api.sent("POST", URL))
    assert first["Idempotency-Key"] == "k1"
    assert second["Idempotency-Key"] not in ("k1", "")


@pytest.mark.parametrize("key", ["", " ", "a b", "ключ", "x" * 256, "a\r\nX-Evil: 1"])
async def test_malformed_idempotency_keys_are_refused_unsent(mock_api: MockAPI, key: str) -> None:
    async with WhopClient(base_url=BASE_URL) as whop:
        with pytest.raises(ValueError, match="idempotency_key"):
            await whop.ad_groups.unpause("adgrp_1", idempotency_key=key)
    assert mock_api.requests == {}


async def test_fresh_idempotency_keys_differ(mock_api: MockAPI) -> None:
    mock_api.post(URL, payload=ad_group_json("adgrp_1"), repeat=True)
    async with WhopClient(base_url=BASE_URL) as whop:
        for _ in range(100):
            await whop.ad_groups.unpause("adgrp_1")
    keys = {call.kwargs["headers"]["Idempotency-Key"] for call in mock_api.sent("POST", URL)}
    assert len(keys) == 100
    assert all(len(key) == 32 for key in keys)


def key_of_one_unpause() -> str:
    async def unpause() -> str:
        with MockAPI() as mocked:
            mocked.post(URL, payload=ad_group_json("adgrp_1"))
            async with WhopClient(API_KEY, base_url=BASE_URL) as whop:
                await whop.ad_groups.unpause("adgrp_1")
            [call] = mocked.sent("POST", URL)
            key: str = call.kwargs["headers"]["Idempotency-Key"]
            return key

    return run_virtual(unpause())


def test_idempotency_keys_from_a_forked_child_differ_from_the_parents() -> None:
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.write(writer, key_of_one_unpause().encode())
        os._exit(0)
    os.waitpid(child, 0)
    child_key = os.read(reader, 64).decode()
    parent_key = key_of_one_unpause()  # the parent's next key, as the child's was
    assert len(child_key) == len(parent_key) == 32
    assert child_key != parent_key


# --- status to error -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (301, whop_async.APIStatusError),
        (307, whop_async.APIStatusError),
        (400, whop_async.BadRequestError),
        (401, whop_async.AuthenticationError),
        (403, whop_async.PermissionDeniedError),
        (404, whop_async.NotFoundError),
        (408, whop_async.APIStatusError),
        (409, whop_async.ConflictError),
        (410, whop_async.APIStatusError),
        (422, whop_async.UnprocessableEntityError),
        (429, whop_async.RateLimitError),
        (500, whop_async.InternalServerError),
        (502, whop_async.InternalServerError),
        (503, whop_async.InternalServerError),
        (504, whop_async.InternalServerError),
        (599, whop_async.InternalServerError),
    ],
)
async def test_each_status_gets_its_class_and_whop_fields(
    mock_api: MockAPI, status: int, error_class: type[whop_async.APIStatusError]
) -> None:
    body = whop_error("some_type", "Something happened.", "c1")
    error = await failure(mock_api, status, body, {"X-Request-Id": "req_9", **BEYOND_THE_CAP})
    assert type(error) is error_class
    assert (error.status_code, error.error_type, error.error_code) == (status, "some_type", "c1")
    assert error.message == f"{status} from POST {PATH}: Something happened. (request id req_9)"
    assert str(error) == error.message
    assert error.request_id == "req_9"
    assert error.body == body
    assert error.headers["X-Request-Id"] == "req_9"
    assert (error.method, error.url) == ("POST", URL)


async def test_an_html_proxy_page_gives_the_right_class_and_a_short_excerpt(
    mock_api: MockAPI,
) -> None:
    page = (
        "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>"
        + "x" * 5000
        + "</body></html>"
    )
    error = await failure(mock_api, 502, page, {"Content-Type": "text/html"})
    assert type(error) is whop_async.InternalServerError
    assert "<html> <head><title>502 Bad Gateway</title></head>" in error.message
    assert len(error.message) < 300
    assert error.body == page
    assert error.error_type is None


async def test_an_empty_error_body_says_so(mock_api: MockAPI) -> None:
    assert "(empty body)" in (await failure(mock_api, 503)).message


@settings(max_examples=50)
@given(status=st.integers(300, 599), body=st.binary(max_size=300))
def test_any_error_answer_becomes_a_status_error(status: int, body: bytes) -> None:
    error = answered(status, body, BEYOND_THE_CAP)
    assert isinstance(error, whop_async.APIStatusError)
    assert error.status_code == status


@settings(max_examples=50)
@given(st.binary(max_size=300))
def test_any_2xx_body_is_an_ad_group_or_a_validation_error(body: bytes) -> None:
    outcome = answered(200, body)
    assert isinstance(outcome, (whop_async.AdGroup, whop_async.APIResponseValidationError))


# --- the server's wait hint ------------------------------------------------------------

HTTP_DATE_IN_30_S = format_datetime(datetime.fromtimestamp(NOW + 30, UTC), usegmt=True)
HTTP_DATE_PAST = format_datetime(datetime.fromtimestamp(NOW - 30, UTC), usegmt=True)
WHOP_429 = "Try again in 12 seconds."
WHOLE, MS = 1.0, 0.001


@pytest.mark.parametrize(
    ("headers", "message", "expected"),
    [
        ({"retry-after-ms": "1500"}, None, (1.5, MS)),
        ({"retry-after-ms": "250", "retry-after": "9"}, WHOP_429, (0.25, MS)),
        ({"retry-after-ms": "-5"}, None, (0.0, MS)),
        ({"retry-after-ms": "soon", "retry-after": "7"}, None, (7.0, WHOLE)),
        ({"retry-after-ms": "nan", "retry-after": "7"}, None, (7.0, WHOLE)),
        ({"retry-after": "7"}, WHOP_429, (7.0, WHOLE)),
        ({"retry-after": "2.5"}, None, (2.5, MS)),
        ({"retry-after": "-3"}, None, (0.0, MS)),
        ({"retry-after": HTTP_DATE_IN_30_S}, None, (30.0, WHOLE)),
        ({"retry-after": HTTP_DATE_PAST}, None, (0.0, WHOLE)),
        ({"retry-after": "whenever"}, WHOP_429, (12.0, WHOLE)),
        ({}, WHOP_429, (12.0, WHOLE)),
        ({}, "Try again in 1 second.", (1.0, WHOLE)),
        ({}, "Rate limited. try again in 0.5 seconds", (0.5, MS)),
        ({"retry-after": "1" * 400}, None, None),
        ({"retry-after": "1000000000"}, None, (A_DAY, WHOLE)),
        ({"retry-after": "Fri, 31 Dec 9999 23:59:59 GMT"}, None, (A_DAY, WHOLE)),
        ({}, "Try again in 99999 seconds.", (A_DAY, WHOLE)),
        ({}, "Try again in " + "9" * 400 + " seconds.", None),
        ({}, "Slow down.", None),
        ({}, None, None),
    ],
)
async def test_wait_hint_sources_in_order(
    mock_api: MockAPI,
    env: pytest.MonkeyPatch,
    headers: dict[str, str],
    message: str | None,
    expected: tuple[float, float] | None,
) -> None:
    # No Date header: an HTTP-date is read against the local clock.
    env.setattr(time, "time", lambda: NOW)
    body = whop_error("unavailable", message) if message is not None else b""
    error = await failure(mock_api, 503, body, headers)
    if expected is None:
        assert error.retry_after is None
    else:
        assert (error.retry_after, error.retry_after_resolution) == expected


async def test_a_429_carries_the_wait_from_whops_message(mock_api: MockAPI) -> None:
    mock_api.post(URL, status=429, payload=whop_error("rate_limit_exceeded", WHOP_429))
    async with WhopClient(base_url=BASE_URL, max_server_wait=10) as whop:
        with pytest.raises(whop_async.RateLimitError) as caught:
            await whop.ad_groups.unpause("adgrp_1")
    assert (caught.value.retry_after, caught.value.retry_after_resolution) == (12.0, WHOLE)


async def test_header_names_are_matched_whatever_their_case(mock_api: MockAPI) -> None:
    error = await failure(mock_api, 503, b"", {"RETRY-AFTER": "4"})
    assert error.retry_after == 4.0


@settings(max_examples=50)
@given(
    st.dictionaries(
        st.sampled_from(["retry-after", "retry-after-ms", "x-request-id"]), st.text(max_size=40)
    ),
    st.one_of(st.none(), st.text(max_size=60)),
)
def test_wait_hints_never_raise_and_are_never_negative(
    headers: dict[str, str], message: str | None
) -> None:
    body = json.dumps(whop_error("unavailable", message)) if message is not None else ""
    error = answered(503, body.encode(), headers)
    assert isinstance(error, whop_async.InternalServerError)
    assert error.retry_after is None or 0 <= error.retry_after <= A_DAY
