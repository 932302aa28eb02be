"""The key, and any password, nowhere whop_async keeps or shows: not in an error nor
in anything it chains to, not in an answer handed back (2xx included), not in a journal
line, a log or a traceback's locals; a base URL holding a password is refused without
showing it. Through clients against raw sockets, local servers, the stand-in (FakeWhop)
and mocked answers; hypothesis tries keys and spellings of them."""

from __future__ import annotations

import asyncio
import json
import logging
import traceback
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote, unquote

import aiohttp
import pytest
from aiohttp import web
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import whop_async
from whop_async import WhopClient
from whop_async.testing import FakeWhop, run_virtual

from .helpers import BASE_URL, MockAPI, http_answer, read_request_head, serve, serve_raw

# A key with characters that percent-encoding and JSON escaping change.
KEY = "sk_live/ab+cd=ef_0123456789"


def spellings(key: str = KEY) -> list[str]:
    """The ways a server may echo the key: as sent, percent-encoded, and escaped in a
    JSON string (every character as \\uXXXX, upper and lower case, and '/' as '\\/')."""
    return [
        key,
        quote(key, safe=""),
        "".join(f"\\u{ord(character):04x}" for character in key),
        "".join(f"\\u{ord(character):04X}" for character in key),
        key.replace("/", "\\/"),
    ]


def reachable_from(root: object, limit: int = 20_000) -> Iterator[object]:
    """Every object reachable from ``root`` through what an error or answer exposes:
    exceptions' cause, context and args, attributes, and the items of containers."""
    seen: set[int] = set()
    pending = [root]
    while pending and len(seen) < limit:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        if isinstance(item, BaseException):
            pending += [item.__cause__, item.__context__, *item.args]
        if isinstance(item, Mapping):
            pending += [*item.keys(), *item.values()]
        elif isinstance(item, (list, tuple, set, frozenset)):
            pending += list(item)
        if hasattr(item, "__dict__") and not isinstance(item, type):
            pending += list(vars(item).values())
        for name in getattr(type(item), "__slots__", ()):
            pending.append(getattr(item, name, None))


def assert_no_key_reachable_from(root: object, secrets: list[str] | None = None) -> None:
    for item in reachable_from(root):
        text = item.decode(errors="replace") if isinstance(item, bytes) else repr(item)
        for secret in spellings() if secrets is None else secrets:
            assert secret not in text, f"a secret is in {type(item).__name__}: {text[:300]}"


# --- errors without an answer, and what they chain to -------------------------------


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An answer aiohttp cannot parse: its error keeps the request, headers and all."""
    await read_request_head(reader)
    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    await writer.drain()


async def quoting_the_key(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A malformed answer whose bad line quotes the request's Authorization header."""
    head = await read_request_head(reader)
    authorization = next(line for line in head.split(b"\r\n") if line.startswith(b"Authorization"))
    writer.write(b"HTTP/1.1 200 OK\r\n" + authorization.replace(b": ", b" ") + b"\r\n\r\n")
    await writer.drain()


async def bad_header(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request_head(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: nine\r\n\r\n")
    await writer.drain()


async def cut_short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request_head(reader)
    writer.write(http_answer(200, b'{"id": "adgrp_1", "status": "active"}')[:-10])
    await writer.drain()


async def hangs_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request_head(reader)


async def never_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request_head(reader)
    await reader.read()  # until the client, timed out, closes the connection


@pytest.mark.parametrize(
    "handle",
    [garbage, quoting_the_key, bad_header, cut_short, hangs_up],
    ids=lambda handle: handle.__name__,
)
async def test_a_connection_error_chains_to_nothing_that_holds_the_key(handle: object) -> None:
    async with (
        serve_raw(handle) as base_url,  # type: ignore[arg-type]
        WhopClient(KEY, base_url=base_url, max_retries=0) as client,
    ):
        with pytest.raises(whop_async.APIConnectionError) as caught:
            await client.ad_groups.unpause("adgrp_1")
    assert not isinstance(caught.value, whop_async.APITimeoutError)  # answered, badly
    assert_no_key_reachable_from(caught.value)
    assert caught.value.message.startswith("POST http://127.0.0.1:")


@pytest.mark.virtual_time
async def test_a_timeout_chains_to_nothing_that_holds_the_key() -> None:
    async with (
        serve_raw(never_answers) as base_url,
        WhopClient(KEY, base_url=base_url, max_retries=0, timeout=5.0) as client,
    ):
        with pytest.raises(whop_async.APITimeoutError) as caught:
            await client.ad_groups.unpause("adgrp_1")
    assert_no_key_reachable_from(caught.value)
    assert caught.value.message.startswith("POST http://127.0.0.1:")


async def test_a_refused_connection_chains_to_nothing_that_holds_the_key() -> None:
    async with serve_raw(hangs_up) as base_url:
        pass  # closed: nothing listens at its port any more
    async with WhopClient(KEY, base_url=base_url, max_retries=0) as client:
        with pytest.raises(whop_async.APIConnectionError, match="could not connect") as caught:
            await client.ad_groups.unpause("adgrp_1")
    assert_no_key_reachable_from(caught.value)


async def errors_of_every_kind(answer: dict[str, Any]) -> list[whop_async.WhopError]:
    """The errors of one unpause, and of one in a bulk run, answered ``answer`` (retried
    once, in virtual time)."""
    url = f"{BASE_URL}/ad_groups/adgrp_1/unpause"
    with MockAPI() as mocked:
        mocked.post(url, repeat=True, **answer)
        async with WhopClient(KEY, base_url=BASE_URL, max_retries=1) as client:
            with pytest.raises(whop_async.WhopError) as caught:
                await client.ad_groups.unpause("adgrp_1")
            result = await client.ad_groups.unpause_many(["adgrp_1"])
    return [caught.value, *result.failed.values(), *result.unreadable.values()]


@pytest.mark.virtual_time
@pytest.mark.parametrize(
    "answer",
    [
        {"status": 404, "payload": {"error": {"type": "not_found", "message": "No such group."}}},
        {"status": 503},
        {"status": 200, "payload": {"status": "active"}},  # not an ad group
        {"exception": aiohttp.ClientConnectionError("reset")},
        {"exception": TimeoutError()},
    ],
    ids=["404", "503", "2xx not an ad group", "reset", "timeout"],
)
async def test_a_traceback_shown_with_its_locals_holds_no_key(answer: dict[str, Any]) -> None:
    # As error trackers record an error: every frame's variables, through repr.
    for error in await errors_of_every_kind(answer):
        shown = traceback.TracebackException.from_exception(error, capture_locals=True)
        assert_no_key_reachable_from("".join(shown.format()))


# --- answers that echo the key --------------------------------------------------------


def echoing_app() -> web.Application:
    """Ad groups that echo the key in every spelling, in the body and in headers; a 400
    and a 2xx that is not an ad group that do the same."""

    def echoes(request: web.Request) -> dict[str, str]:
        key = request.headers["Authorization"].removeprefix("Bearer ")
        return {f"echo_{number}": spelling for number, spelling in enumerate(spellings(key))}

    def body_with(fields: dict[str, object], request: web.Request) -> str:
        listed = ", ".join(f'"{name}": "{value}"' for name, value in echoes(request).items())
        return json.dumps(fields)[:-1] + f", {listed}}}"

    def answer(request: web.Request, status: int, fields: dict[str, object]) -> web.Response:
        key = request.headers["Authorization"].removeprefix("Bearer ")
        return web.Response(
            status=status,
            text=body_with(fields, request),
            content_type="application/json",
            headers={
                "X-Echo": request.headers["Authorization"],
                "X-Echo-Encoded": quote(key, safe=""),
                "X-Request-Id": f"req_{key}",
            },
        )

    async def unpause(request: web.Request) -> web.Response:
        ad_group_id = request.match_info["id"]
        if ad_group_id == "adgrp_refused":
            return answer(request, 400, {"error": {"type": "bad", "message": "no"}})
        if ad_group_id == "adgrp_unreadable":
            return answer(request, 200, {"status": "active"})  # no id
        return answer(request, 200, {"id": ad_group_id, "status": "active"})

    app = web.Application()
    app.router.add_post("/api/v1/ad_groups/{id}/unpause", unpause)
    return app


async def test_a_2xx_that_echoes_the_key_keeps_it_nowhere(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, logger="whop_async"):
        async with serve(echoing_app()) as base_url, WhopClient(KEY, base_url=base_url) as client:
            group = await client.ad_groups.unpause("adgrp_1")
            raw = await client.ad_groups.with_raw_response.unpause("adgrp_2")
            lines: list[str] = []
            result = await client.ad_groups.unpause_many(
                ["adgrp_3", "adgrp_refused", "adgrp_unreadable"],
                on_outcome=lambda outcome: lines.append(outcome.to_json()),
            )
    assert group.to_dict()["echo_0"] == "<redacted>"
    assert raw.headers["X-Echo"] == "Bearer <redacted>"
    kept: list[object] = [
        group,
        group.to_dict(),
        group.to_json(),
        raw,
        repr(raw),
        dict(raw.headers),
        raw.content,
        raw.parse().to_dict(),
        raw.request_id,
        result,
        lines,
        caplog.text,
    ]
    assert_no_key_reachable_from(kept)
    assert [json.loads(line)["id"] for line in lines] == [
        "adgrp_3",
        "adgrp_refused",
        "adgrp_unreadable",
    ]
    assert result.failed["adgrp_refused"].body["echo_2"] == "<redacted>"  # type: ignore[attr-defined]


async def test_the_stand_in_echoing_the_key_in_every_answer_finds_it_kept_nowhere(
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong_key = "sk_wrong/0123456789"
    with caplog.at_level(logging.DEBUG, logger="whop_async"):
        async with FakeWhop(groups=2, rate_limit=1, echo_key=True, api_key=KEY) as fake:
            async with WhopClient(KEY, base_url=fake.base_url, max_server_wait=0) as client:
                group = await client.ad_groups.unpause(fake.ids[0])
                with pytest.raises(whop_async.RateLimitError) as limited:
                    await client.ad_groups.unpause(fake.ids[1])
                with pytest.raises(whop_async.NotFoundError) as missing:
                    await client.ad_groups.retrieve("adgrp_nosuchgroup")
            async with WhopClient(wrong_key, base_url=fake.base_url) as client:
                with pytest.raises(whop_async.AuthenticationError) as refused:
                    await client.ad_groups.unpause(fake.ids[1])
    assert group.to_dict()["echo"] == {"authorization": "Bearer <redacted>"}
    errors = [limited.value, missing.value, refused.value]
    assert all("(Authorization: Bearer <redacted>)" in str(error) for error in errors)
    kept = [group, group.to_dict(), group.to_json(), *errors, caplog.text]
    assert_no_key_reachable_from(kept, [*spellings(), *spellings(wrong_key)])


# --- any key, however an answer spells it ----------------------------------------------

# Visible ASCII, as keys are; not '<' or '>', which could make a key of "<redacted>"
# and what follows it.
KEY_CHARACTERS = st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="<>")
# What a JSON string holds without an escape.
UNESCAPED = st.characters(exclude_categories=("Cc", "Cs"), exclude_characters='"\\')


def spellings_in_json(character: str) -> list[str]:
    """How a JSON string may hold ``character``."""
    escaped = [f"\\u{ord(character):04x}", f"\\u{ord(character):04X}"]
    # A URL echoed back may percent-encode any character, in either case.
    escaped += [f"%{ord(character):02x}", f"%{ord(character):02X}"]
    if character in '"\\':
        return [*escaped, "\\" + character]
    return [*escaped, character] + (["\\/"] if character == "/" else [])


def kept_of(
    key: str, body: bytes
) -> tuple[whop_async.AdGroup, whop_async.RawResponse[whop_async.AdGroup], whop_async.WhopError]:
    """What a client with ``key`` keeps of ``body``: answered to an unpause with 200 (the
    ad group, and the raw response) and with 404 (the error)."""

    async def unpause() -> tuple[
        whop_async.AdGroup, whop_async.RawResponse[whop_async.AdGroup], whop_async.WhopError
    ]:
        with MockAPI() as mocked:
            mocked.post(f"{BASE_URL}/ad_groups/adgrp_1/unpause", body=body, repeat=True)
            mocked.post(f"{BASE_URL}/ad_groups/adgrp_2/unpause", status=404, body=body)
            async with WhopClient(key, base_url=BASE_URL, max_retries=0) as client:
                group = await client.ad_groups.unpause("adgrp_1")
                raw = await client.ad_groups.with_raw_response.unpause("adgrp_1")
                with pytest.raises(whop_async.NotFoundError) as caught:
                    await client.ad_groups.unpause("adgrp_2")
        return group, raw, caught.value

    return run_virtual(unpause())


@settings(max_examples=50)
@given(
    key=st.text(KEY_CHARACTERS, min_size=8, max_size=40),
    around=st.tuples(st.text(max_size=20), st.text(max_size=20)),
    with_url=st.booleans(),
    data=st.data(),
)
def test_a_key_echoed_in_any_spelling_leaves_nothing_of_it(
    key: str, around: tuple[str, str], with_url: bool, data: st.DataObject
) -> None:
    spelled = "".join(data.draw(st.sampled_from(spellings_in_json(c))) for c in key)
    before, after = (json.dumps(text)[1:-1] for text in around)
    echoes = f'"echo": "{before}{spelled}{after}"'
    if with_url:
        echoes += f', "url": "{quote(key, safe="")}"'
    body = f'{{"id": "adgrp_1", "status": "active", {echoes}}}'.encode()
    group, raw, error = kept_of(key, body)
    assert isinstance(error, whop_async.NotFoundError)
    shown = [
        group.to_json(),
        raw.content.decode(),
        json.dumps(group.to_dict(), ensure_ascii=False),
        json.dumps(error.body, ensure_ascii=False),
        str(error),
    ]
    for text in shown:
        assert key not in text
        assert quote(key, safe="") not in text
    for decoded in (group.to_dict(), json.loads(raw.content), error.body):  # still JSON
        assert "<redacted>" in decoded["echo"]
        assert decoded.get("url", "<redacted>") == "<redacted>"


@pytest.mark.parametrize(
    ("key", "spelled"),
    [
        # "%" by a JSON escape and a "0" after it percent-encoded: read back, "%00" was a NUL.
        ("0000%000", "\\u0030\\u0030\\u0030\\u0030\\u0025\\u0030\\u0030%30"),
        # A backslash percent-encoded, then "%" by a JSON escape: read back, "%41" was "A".
        ("sk\\%41x", "sk%5C\\u002541x"),
    ],
)
def test_a_key_holding_an_escape_character_is_found_in_a_spelling_that_mixes_escapes(
    key: str, spelled: str
) -> None:
    body = f'{{"id": "adgrp_1", "status": "active", "echo": "{spelled}"}}'.encode()
    group, raw, error = kept_of(key, body)
    for decoded in (group.to_dict(), json.loads(raw.content), error.body):
        assert decoded["echo"] == "<redacted>"


@settings(max_examples=50)
@given(key=st.text(KEY_CHARACTERS, min_size=1, max_size=40), note=st.text(UNESCAPED, max_size=40))
def test_a_body_without_the_key_is_kept_as_it_is(key: str, note: str) -> None:
    fields = {"id": "adgrp_1", "status": "active", "note": note}
    body = json.dumps(fields, ensure_ascii=False).encode()
    assume(key not in unquote(body.decode()) and quote(key, safe="").encode() not in body)
    group, raw, error = kept_of(key, body)
    assert raw.content == body  # byte for byte
    assert group.to_json() == body.decode()
    assert isinstance(error, whop_async.NotFoundError)
    assert error.body == fields


# --- passwords in the base URL ----------------------------------------------------------


@pytest.mark.parametrize(
    "base_url",
    [
        "https://user:hunter2@api.whop.example/api/v1",
        "https://hunter2@api.whop.example/api/v1",
        "https://user:hunter2@[::1]:8080/api/v1",
        "http://user:hunter2@api.whop.example:notaport/api/v1?x=hunter2",
    ],
)
def test_a_base_url_with_a_password_is_refused_without_showing_it(
    env: pytest.MonkeyPatch, base_url: str
) -> None:
    with pytest.raises(ValueError, match="user name or password") as caught:
        WhopClient(base_url=base_url)
    assert_no_key_reachable_from(caught.value, ["hunter2"])
    env.setenv("WHOP_BASE_URL", base_url)
    with pytest.raises(ValueError, match="user name or password") as caught:
        WhopClient()
    assert_no_key_reachable_from(caught.value, ["hunter2"])
