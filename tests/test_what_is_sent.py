"""What a client sends and where, checked when it is given: headers that would frame
or route a request are refused (and the connection stays sound for the next call), base
URLs and api_version are checked when the client is made, IPv6 literals work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

import whop_async
from whop_async import WhopClient
from whop_async.testing import run_virtual

from .helpers import BASE_URL, MockAPI, ad_group_json, ipv6_loopback, serve

pytestmark = pytest.mark.usefixtures("env")


class Recorder:
    """An unpause endpoint that records the headers of every request it answers."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        self.app = web.Application()
        self.app.router.add_post("/api/v1/ad_groups/{id}/unpause", self.unpause)

    async def unpause(self, request: web.Request) -> web.Response:
        self.seen.append(dict(request.headers))
        ad_group_id = request.match_info["id"]
        if ad_group_id == "adgrp_missing":
            return web.json_response({"error": {"type": "not_found", "message": "no"}}, status=404)
        return web.json_response(ad_group_json(ad_group_id))


# (name, a value a caller might try): each frames or routes the request.
FRAMING_OR_ROUTING = [
    ("Content-Length", "120"),
    ("content-length", "0"),
    ("Transfer-Encoding", "chunked"),
    ("Trailer", "X-Checksum"),
    ("TE", "trailers"),
    ("Host", "evil.example"),
    ("HOST", "api.whop.com"),
    ("Connection", "Authorization"),
    ("Keep-Alive", "timeout=5"),
    ("Upgrade", "websocket"),
    ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA"),
    ("Expect", "100-continue"),
    ("Proxy-Authorization", "Basic dXNlcjpwYXNz"),
    ("Proxy-Connection", "keep-alive"),
]


@pytest.mark.parametrize(("name", "value"), FRAMING_OR_ROUTING)
async def test_a_header_that_frames_or_routes_is_refused_and_the_next_call_is_unharmed(
    name: str, value: str
) -> None:
    recorder = Recorder()
    async with (
        serve(recorder.app) as base_url,
        WhopClient(base_url=base_url, timeout=2.0, max_retries=0) as client,
    ):
        await client.ad_groups.unpause("adgrp_1")  # a pooled connection to reuse
        with pytest.raises(ValueError, match=f"extra_headers: {name} cannot be set") as caught:
            await client.ad_groups.unpause("adgrp_2", extra_headers={name: value})
        for bulk in (client.ad_groups.unpause_many, client.ad_groups.pause_many):
            with pytest.raises(ValueError, match=f"{name} cannot be set"):
                await bulk(["adgrp_3"], extra_headers={name: value})
        group = await client.ad_groups.unpause("adgrp_4")
    assert value not in str(caught.value) or value in name
    assert group.id == "adgrp_4"
    host = base_url.split("/")[2]
    assert [seen["Host"] for seen in recorder.seen] == [host, host]
    assert all(seen.get("Content-Length", "0") == "0" for seen in recorder.seen)


@pytest.mark.parametrize(("name", "value"), FRAMING_OR_ROUTING)
async def test_a_header_that_frames_or_routes_is_refused_for_every_request_too(
    name: str, value: str
) -> None:
    with pytest.raises(ValueError, match=f"default_headers: {name} cannot be set"):
        WhopClient(base_url=BASE_URL, default_headers={name: value})
    async with WhopClient(base_url=BASE_URL) as client:
        with pytest.raises(ValueError, match=f"default_headers: {name} cannot be set"):
            client.with_options(default_headers={name: value})


@pytest.mark.parametrize(
    "default_headers",
    [
        [("X-Team", "ads")],
        "X-Team: ads",
        {"X-Team": 1},
        {"X-Team": "ads\r\nX-Evil: 1"},
        {"X-Team": "ads\n"},
        {1: "ads"},
        {"X Team": "ads"},
    ],
)
def test_default_headers_that_cannot_be_sent_are_refused_when_the_client_is_made(
    default_headers: object,
) -> None:
    with pytest.raises(ValueError, match="default_headers"):
        WhopClient(base_url=BASE_URL, default_headers=default_headers)  # type: ignore[arg-type]


# --- api_version ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "api_version",
    ["2026-10-15\r\nX-Evil: 1", "2026-10-15-1\n", "2026 10 15", "", "x" * 65, 20261015, b"2026"],
)
def test_an_api_version_that_cannot_be_sent_is_refused_when_the_client_is_made(
    api_version: object,
) -> None:
    with pytest.raises(ValueError, match="api_version must be a dated version"):
        WhopClient(base_url=BASE_URL, api_version=api_version)  # type: ignore[arg-type]


async def test_a_dated_api_version_is_sent(mock_api: MockAPI) -> None:
    url = f"{BASE_URL}/ad_groups/adgrp_1/unpause"
    mock_api.post(url, payload=ad_group_json("adgrp_1"))
    async with WhopClient(base_url=BASE_URL, api_version="2026-10-15-1") as client:
        await client.ad_groups.unpause("adgrp_1")
    [call] = mock_api.sent("POST", url)
    assert call.kwargs["headers"]["Api-Version-Date"] == "2026-10-15-1"


# --- base URLs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "problem"),
    [
        ("ftp://api.whop.com/api/v1", "http"),
        ("api.whop.com/api/v1", "http"),
        ("https://", "with a host"),
        ("https:///api/v1", "with a host"),
        ("https://:443/api/v1", "with a host"),
        ("http://[::1/api/v1", "not a URL"),
        ("http://api.whop.com:99999/api/v1", "port"),
        ("http://api.whop.com:https/api/v1", "port"),
        ("https://api.whop.com/api/v1?debug=1", "query or fragment"),
        ("https://api.whop.com/api/v1?", "query or fragment"),
        ("https://api.whop.com/api/v1#top", "query or fragment"),
        ("https://api.whop.com/api v1", "spaces or control characters"),
        ("https://api.whop.com/api/v1\r\nHost: evil.example", "spaces or control characters"),
        ("https://api.whop.com/\tapi/v1", "spaces or control characters"),
        (b"https://api.whop.com/api/v1", "must be a string"),
        ("http://127.1:8080/api/v1", "IPv4 address as written in full"),
        ("http://010.0.0.1/api/v1", "IPv4 address as written in full"),
    ],
)
def test_a_base_url_that_cannot_be_sent_to_is_refused_when_the_client_is_made(
    base_url: object, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        WhopClient(base_url=base_url)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("base_url", "kept", "sent_to"),
    [
        ("https://api.whop.com/api/v1/", "https://api.whop.com/api/v1", None),
        ("http://[::1]:8080/api/v1", "http://[::1]:8080/api/v1", None),
        ("http://[2001:db8::7]/api", "http://[2001:db8::7]/api", None),
        ("http://127.0.0.1:1", "http://127.0.0.1:1", None),
        (
            "https://bücher.example/api",
            "https://bücher.example/api",
            "https://xn--bcher-kva.example/api",
        ),
    ],
)
@pytest.mark.virtual_time
async def test_a_base_url_that_can_be_sent_to_is_kept_and_used(
    base_url: str, kept: str, sent_to: str | None, mock_api: MockAPI
) -> None:
    async with WhopClient(base_url=base_url, max_retries=0) as client:
        assert client.base_url == kept
        with pytest.raises(whop_async.APIConnectionError) as caught:  # nothing mocked there
            await client.ad_groups.unpause("adgrp_1")
    assert caught.value.url == f"{sent_to or kept}/ad_groups/adgrp_1/unpause"


URL_PARTS = st.tuples(
    st.sampled_from(["http://", "https://", "ftp://", "http:/", ""]),
    st.sampled_from(["", "user@", "user:pw@", "@"]),
    st.one_of(
        st.sampled_from(
            [
                "api.whop.com",
                "127.0.0.1",
                "[::1]",
                "[::1",
                "::1",
                "[fe80::1%25eth0]",
                "[v1.x]",
                "bücher.example",
                "xn--bcher-kva.example",
                "a_b.example",
                "-a.example",
                "a..b",
                "256.1.1.1",
                "",
            ]
        ),
        st.text(max_size=8),
    ),
    st.sampled_from(["", ":", ":0", ":443", ":65535", ":65536", ":-1", ":x"]),
    st.one_of(
        st.sampled_from(["", "/", "/api/v1", "/api/v1/", "/ä", "/%2F", "/a%zz", "//x"]),
        st.text(max_size=8).map(lambda text: "/" + text),
    ),
    st.sampled_from(["", "?", "?a=1", "#f"]),
)


async def one_call_and_a_bulk_run(
    client: WhopClient,
) -> tuple[whop_async.WhopError, whop_async.BulkResult]:
    with MockAPI():  # answers nothing: every call ends in a connection error, sent or not
        async with client:
            with pytest.raises(whop_async.WhopError) as caught:
                await client.ad_groups.unpause("adgrp_1")
            result = await client.ad_groups.unpause_many(["adgrp_1", "adgrp_2"])
    return caught.value, result


@settings(max_examples=100)
@given(URL_PARTS)
def test_a_base_url_is_refused_when_the_client_is_made_or_works_for_every_call(
    parts: tuple[str, ...],
) -> None:
    base_url = "".join(parts)
    try:
        client = WhopClient("sk_test", base_url=base_url, max_retries=0)
    except ValueError:
        return
    error, result = run_virtual(one_call_and_a_bulk_run(client))
    assert isinstance(error, whop_async.APIConnectionError)
    assert error.url.endswith("/ad_groups/adgrp_1/unpause")
    assert set(result.failed) == {"adgrp_1", "adgrp_2"}


# --- IPv6 ------------------------------------------------------------------------------


@asynccontextmanager
async def serve_on_ipv6(app: web.Application) -> AsyncIterator[str]:
    """Run ``app`` on [::1] with a free port; yields its ``/api/v1`` base URL."""
    server = TestServer(app, host="::1")
    await server.start_server()
    try:
        yield f"http://[::1]:{server.port}/api/v1"
    finally:
        await server.close()


@pytest.mark.skipif(not ipv6_loopback(), reason="this machine has no IPv6 loopback")
async def test_an_ipv6_literal_base_url_works_end_to_end() -> None:
    recorder = Recorder()
    async with serve_on_ipv6(recorder.app) as base_url, WhopClient(base_url=base_url) as client:
        group = await client.ad_groups.unpause("adgrp_1")
        result = await client.ad_groups.unpause_many(["adgrp_2", "adgrp_missing"])
        with pytest.raises(whop_async.NotFoundError) as caught:
            await client.ad_groups.unpause("adgrp_missing")
    assert group.id == "adgrp_1"
    assert [group.id for group in result.succeeded] == ["adgrp_2"]
    assert isinstance(result.failed["adgrp_missing"], whop_async.NotFoundError)
    assert caught.value.url == f"{base_url}/ad_groups/adgrp_missing/unpause"
    assert repr(client) == f"WhopClient(base_url={base_url!r})"
    assert {seen["Host"] for seen in recorder.seen} == {base_url.split("/")[2]}
