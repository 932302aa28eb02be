"""The pure layer: no event loop, no sockets."""

from __future__ import annotations

import contextlib
import json
import string
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

import whop_async
from whop_async import _sansio
from whop_async._sansio import Request, Response

NOW = 1_800_000_000.0
UNPAUSE = Request("POST", "/ad_groups/adgrp_1/unpause", "ad_groups.unpause", idempotency_key="k1")
URL = "https://api.whop.com/api/v1/ad_groups/adgrp_1/unpause"


def answer(status: int, body: bytes | str | dict[str, object] = b"", **headers: str) -> Response:
    if isinstance(body, dict):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    return Response(status, CIMultiDict({k.replace("_", "-"): v for k, v in headers.items()}), body)


def whop_error(error_type: str, message: str, code: str | None = None) -> dict[str, object]:
    error: dict[str, object] = {"type": error_type, "message": message}
    if code is not None:
        error["code"] = code
    return {"error": error}


def failure(response: Response) -> whop_async.APIStatusError:
    with pytest.raises(whop_async.APIStatusError) as caught:
        _sansio.decode(UNPAUSE, URL, response, now=lambda: NOW)
    return caught.value


# --- path parameters -------------------------------------------------------------------


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
def test_path_param_rejects_what_could_leave_its_segment(bad_id: object) -> None:
    with pytest.raises(whop_async.InvalidIdError, match="ad_group_id") as caught:
        _sansio.path_param("ad_group_id", bad_id)
    assert repr(bad_id)[:40] in str(caught.value)


@pytest.mark.parametrize("good_id", ["adgrp_xxxxxxxxxxxx", "a", "ADGRP-1_z", "x" * 128])
def test_path_param_accepts_whop_ids_unchanged(good_id: str) -> None:
    assert _sansio.path_param("ad_group_id", good_id) == good_id


@given(st.text())
def test_any_string_is_either_a_single_safe_segment_or_rejected(value: str) -> None:
    try:
        segment = _sansio.path_param("ad_group_id", value)
    except ValueError:
        return
    assert segment == value
    assert set(segment) <= set(string.ascii_letters + string.digits + "_-")


def test_a_very_long_bad_id_is_shortened_in_the_message() -> None:
    with pytest.raises(ValueError, match=r"got '/+\.\.\.$") as caught:
        _sansio.path_param("ad_group_id", "/" * 10_000)
    assert len(str(caught.value)) < 250


# --- headers ---------------------------------------------------------------------------


def test_client_headers_carry_key_accept_and_user_agent() -> None:
    headers = _sansio.client_headers("sk_1", api_version=None, default_headers=None)
    assert headers["Authorization"] == "Bearer sk_1"
    assert headers["Accept"] == "application/json"
    assert headers["User-Agent"].startswith(f"whop_async/{whop_async.__version__} ")
    assert "Api-Version-Date" not in headers


def test_api_version_and_default_headers_are_added() -> None:
    headers = _sansio.client_headers(
        "sk_1", api_version="2026-10-15-1", default_headers={"X-Team": "ads"}
    )
    assert headers["Api-Version-Date"] == "2026-10-15-1"
    assert headers["X-Team"] == "ads"


def test_a_client_wide_idempotency_key_is_refused() -> None:
    with pytest.raises(ValueError, match="per call"):
        _sansio.client_headers("k", api_version=None, default_headers={"idempotency-key": "x"})


def test_request_headers_add_the_call_key_without_touching_the_client_headers() -> None:
    base = {"Authorization": "Bearer k"}
    headers = _sansio.request_headers(base, UNPAUSE)
    assert headers == {"Authorization": "Bearer k", "Idempotency-Key": "k1"}
    assert base == {"Authorization": "Bearer k"}


def test_redacted_headers_hide_the_credential_whatever_its_case() -> None:
    redacted = _sansio.redact_headers({"authorization": "Bearer k", "Accept": "a"})
    assert redacted == {"authorization": "<redacted>", "Accept": "a"}


# --- the key, echoed back --------------------------------------------------------------

# Visible ASCII, as keys are; not '<' or '>', which could make a key of "<redacted>"
# and what follows it.
KEY_CHARACTERS = st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="<>")


def spellings_in_json(character: str) -> list[str]:
    """How a JSON string may hold ``character``."""
    spellings = [f"\\u{ord(character):04x}", f"\\u{ord(character):04X}"]
    if character in '"\\':
        return [*spellings, "\\" + character]
    return [*spellings, character] + (["\\/"] if character == "/" else [])


@given(
    key=st.text(KEY_CHARACTERS, min_size=8, max_size=40),
    around=st.tuples(st.text(max_size=20), st.text(max_size=20)),
    data=st.data(),
)
def test_a_key_echoed_in_any_spelling_leaves_nothing_of_it(
    key: str, around: tuple[str, str], data: st.DataObject
) -> None:
    spelled = "".join(data.draw(st.sampled_from(spellings_in_json(c))) for c in key)
    before, after = (json.dumps(text)[1:-1] for text in around)
    body = f'{{"echo": "{before}{spelled}{after}", "url": "{quote(key, safe="")}"}}'.encode()
    redacted = _sansio.Redactor(key).body(body)
    decoded = json.loads(redacted)  # still JSON
    for text in (redacted.decode(), json.dumps(decoded, ensure_ascii=False)):
        assert key not in text
        assert quote(key, safe="") not in text
    assert "<redacted>" in decoded["echo"]
    assert decoded["url"] == "<redacted>"


@given(st.text(KEY_CHARACTERS, min_size=1, max_size=40), st.binary(max_size=300))
def test_a_body_without_the_key_is_kept_as_it_is(key: str, body: bytes) -> None:
    if key.encode() not in body and b"\\" not in body and quote(key, safe="").encode() not in body:
        assert _sansio.Redactor(key).body(body) is body


@pytest.mark.parametrize("key", ["", " ", "a b", "ключ", "x" * 256, "a\r\nX-Evil: 1"])
def test_malformed_idempotency_keys_are_refused(key: str) -> None:
    with pytest.raises(ValueError, match="idempotency_key"):
        _sansio.check_idempotency_key(key)


def test_fresh_idempotency_keys_differ() -> None:
    assert len({_sansio.new_idempotency_key() for _ in range(100)}) == 100


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
def test_each_status_gets_its_class_and_whop_fields(
    status: int, error_class: type[whop_async.APIStatusError]
) -> None:
    error = failure(
        answer(status, whop_error("some_type", "Something happened.", "c1"), x_request_id="req_9")
    )
    assert type(error) is error_class
    assert (error.status_code, error.error_type, error.error_code) == (status, "some_type", "c1")
    assert (
        error.message
        == f"{status} from POST {UNPAUSE.path}: Something happened. (request id req_9)"
    )
    assert str(error) == error.message
    assert error.request_id == "req_9"
    assert error.body == whop_error("some_type", "Something happened.", "c1")
    assert error.headers["X-Request-Id"] == "req_9"
    assert (error.method, error.url) == ("POST", URL)


def test_an_html_proxy_page_gives_the_right_class_and_a_short_excerpt() -> None:
    page = (
        "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>"
        + "x" * 5000
        + "</body></html>"
    )
    error = failure(answer(502, page, content_type="text/html"))
    assert type(error) is whop_async.InternalServerError
    assert "<html> <head><title>502 Bad Gateway</title></head>" in error.message
    assert len(error.message) < 300
    assert error.body == page
    assert error.error_type is None


def test_an_empty_error_body_says_so() -> None:
    assert "(empty body)" in failure(answer(503)).message


def test_a_2xx_body_that_is_not_json_is_a_validation_error() -> None:
    with pytest.raises(whop_async.APIResponseValidationError, match="not JSON: <html>") as caught:
        _sansio.decode(UNPAUSE, URL, answer(200, "<html>hi</html>"), now=lambda: NOW)
    assert caught.value.status_code == 200


def test_a_2xx_json_body_is_returned_as_data() -> None:
    assert _sansio.decode(UNPAUSE, URL, answer(200, {"id": "x"}), now=lambda: NOW) == {"id": "x"}


@given(status=st.integers(300, 599), body=st.binary(max_size=300))
def test_any_error_answer_becomes_a_status_error(status: int, body: bytes) -> None:
    error = failure(Response(status, CIMultiDict(), body))
    assert error.status_code == status


@given(st.binary(max_size=300))
def test_any_2xx_body_is_data_or_a_validation_error(body: bytes) -> None:
    with contextlib.suppress(whop_async.APIResponseValidationError):
        _sansio.decode(UNPAUSE, URL, Response(200, CIMultiDict(), body), now=lambda: NOW)


# --- the server's wait hint ----------------------------------------------------------------

HTTP_DATE_IN_30_S = format_datetime(datetime.fromtimestamp(NOW + 30, UTC), usegmt=True)
HTTP_DATE_PAST = format_datetime(datetime.fromtimestamp(NOW - 30, UTC), usegmt=True)
WHOP_429 = "Try again in 12 seconds."


WHOLE, MS = _sansio.WHOLE_SECONDS, _sansio.MILLISECONDS


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
        ({"retry-after": "1000000000"}, None, (86_400.0, WHOLE)),
        ({"retry-after": "Fri, 31 Dec 9999 23:59:59 GMT"}, None, (86_400.0, WHOLE)),
        ({}, "Try again in 99999 seconds.", (86_400.0, WHOLE)),
        ({}, "Try again in " + "9" * 400 + " seconds.", None),
        ({}, "Slow down.", None),
        ({}, None, None),
    ],
)
def test_wait_hint_sources_in_order(
    headers: dict[str, str], message: str | None, expected: tuple[float, float] | None
) -> None:
    wait = _sansio.server_wait_hint(CIMultiDict(headers), message, now=NOW)
    assert (wait.seconds, wait.resolution) == expected if wait else expected is None


def http_date(moment: float) -> str:
    return format_datetime(datetime.fromtimestamp(moment, UTC), usegmt=True)


@pytest.mark.parametrize(
    ("retry_after", "date", "expected"),
    [
        # The server's clock far from ours: the pair says 30 s all the same.
        (NOW + 1_000 + 30, NOW + 1_000, 30.0),
        (NOW - 5_000 + 2, NOW - 5_000, 2.0),
        (NOW + 7, NOW + 7, 0.0),
        (NOW - 1, NOW, 0.0),  # before the answer's own date: at once
        (NOW + 2 * 86_400, NOW, 86_400.0),
    ],
)
def test_an_http_date_is_read_against_the_answers_own_date(
    retry_after: float, date: float, expected: float
) -> None:
    headers = CIMultiDict({"Retry-After": http_date(retry_after), "Date": http_date(date)})
    wait = _sansio.server_wait_hint(headers, None, now=NOW + 0.6)
    assert wait == _sansio.ServerWait(expected, WHOLE)


@pytest.mark.parametrize("date", [None, "", "yesterday", "Fri, 31 Dec 9999 23:59:59", "-1"])
def test_without_a_usable_date_an_http_date_is_read_against_the_local_clock(
    date: str | None,
) -> None:
    headers = CIMultiDict({"Retry-After": HTTP_DATE_IN_30_S})
    if date is not None:
        headers["Date"] = date
    wait = _sansio.server_wait_hint(headers, None, now=NOW + 0.25)
    assert wait == _sansio.ServerWait(29.75, WHOLE)


@given(
    sent=st.integers(0, 4_000_000_000),
    wait=st.integers(0, 86_400),
    local=st.floats(0, 4_000_000_000),
)
def test_an_http_date_beside_a_date_gives_whole_seconds_whatever_the_local_clock(
    sent: int, wait: int, local: float
) -> None:
    headers = CIMultiDict({"Retry-After": http_date(sent + wait), "Date": http_date(sent)})
    hint = _sansio.server_wait_hint(headers, None, now=local)
    assert hint == _sansio.ServerWait(float(wait), WHOLE)


def test_a_429_carries_the_wait_from_whops_message() -> None:
    error = failure(answer(429, whop_error("rate_limit_exceeded", WHOP_429)))
    assert isinstance(error, whop_async.RateLimitError)
    assert error.retry_after == 12.0


def test_header_names_are_matched_whatever_their_case() -> None:
    error = failure(answer(503, b"", Retry_After="4"))
    assert error.retry_after == 4.0


@given(
    st.dictionaries(
        st.sampled_from(["retry-after", "retry-after-ms", "x-request-id"]), st.text(max_size=40)
    ),
    st.one_of(st.none(), st.text(max_size=60)),
)
def test_wait_hints_never_raise_and_are_never_negative(
    headers: dict[str, str], message: str | None
) -> None:
    wait = _sansio.server_wait_hint(CIMultiDict(headers), message, now=NOW)
    assert wait is None or 0 <= wait.seconds <= _sansio.LONGEST_WAIT_HINT


def test_idempotency_keys_from_a_forked_child_differ_from_the_parents() -> None:
    import os

    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.write(writer, _sansio.new_idempotency_key().encode())
        os._exit(0)
    os.waitpid(child, 0)
    child_key = os.read(reader, 64).decode()
    parent_key = _sansio.new_idempotency_key()
    assert len(child_key) == len(parent_key) == 32
    assert child_key[:16] != parent_key[:16]
