"""What a client sends, checked when it is given: headers that would frame or route a
request are refused (and the connection stays sound for the next call)."""

from __future__ import annotations

import pytest
from aiohttp import web

from whop_async import WhopClient

from .helpers import BASE_URL, ad_group_json, serve

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
