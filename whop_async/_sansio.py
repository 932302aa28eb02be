"""The pure request/response layer: no I/O, no event loop, no aiohttp.

It builds what goes on the wire and turns what comes back, ``(status, headers, body)``,
into JSON data or a typed error, including the server's hint of how long to wait.
"""

from __future__ import annotations

import ipaddress
import itertools
import math
import os
import platform
import re
from collections.abc import Callable, Collection, Mapping
from email.utils import parsedate_to_datetime
from typing import Any, AnyStr, NamedTuple, TypeVar
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import attrs
from multidict import CIMultiDict

from . import _json
from ._exceptions import (
    APIResponseValidationError,
    APIStatusError,
    InvalidIdError,
    ResponseError,
    status_error_class,
)
from ._version import __version__

_E = TypeVar("_E", bound=ResponseError)

DEFAULT_BASE_URL = "https://api.whop.com/api/v1"

# Whop ids are a prefix and a random tail, e.g. "adgrp_xxxxxxxxxxxx". Nothing outside this
# alphabet can be an id, and nothing inside it can leave its path segment.
_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")
# Idempotency-Key: up to 255 bytes (Whop); visible ASCII only so it can never split a header.
_IDEMPOTENCY_KEY_PATTERN = re.compile(r"[\x21-\x7e]{1,255}")
_TRY_AGAIN_PATTERN = re.compile(r"try again in (\d+(?:\.\d+)?) seconds?", re.IGNORECASE)
_REQUEST_ID_HEADERS = ("x-request-id", "request-id")
_EXCERPT_CHARS = 200


class Request(NamedTuple):
    """One logical API call: what to send, before any retry (a tuple: one is made per
    call).

    ``operation`` names the rate budget it draws on (Whop limits each operation apart).
    ``query`` holds (name, value) pairs, encoded when sent.
    ``idempotency_key`` is set for POSTs; every attempt of the call sends the same one.
    ``headers`` are the call's own, beside the client's (see ``extra_headers``).
    """

    method: str
    path: str
    operation: str
    idempotency_key: str | None = None
    query: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def query_string(self) -> str:
        """The query, percent-encoded ("" when there is none)."""
        return urlencode(self.query) if self.query else ""

    @property
    def target(self) -> str:
        """Path and query, as they go after the base URL."""
        return f"{self.path}?{self.query_string}" if self.query else self.path


class Response(NamedTuple):
    """One HTTP answer, body read in full, or ``cut_short`` at the most the transport
    reads. ``headers`` is case-insensitive."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    cut_short: bool = False


def user_agent() -> str:
    """The User-Agent whop_async sends: itself first, then the runtime it stands on."""
    return f"whop_async/{__version__} Python/{platform.python_version()}"


def path_param(name: str, value: object) -> str:
    """Check an id that goes into a URL path and return it, ready for the path.

    The id alphabet is a subset of RFC 3986's unreserved characters, so an accepted id
    is its own escaped form: checking is escaping, at no cost per call.

    Raises:
        InvalidIdError: (a ValueError) naming the value, when it is not a Whop id.
    """
    if isinstance(value, str) and _ID_PATTERN.fullmatch(value):
        return value
    raise InvalidIdError(
        f"{name} must be a Whop id (letters, digits, '_' and '-', 1 to 128 characters),"
        f" got {_shown(value)}"
    )


def _shown(value: object) -> str:
    """``repr(value)``, cut to 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_idempotency_key(key: str) -> str:
    """Return ``key`` when it can be sent as an Idempotency-Key, else raise ValueError."""
    if isinstance(key, str) and _IDEMPOTENCY_KEY_PATTERN.fullmatch(key):
        return key
    raise ValueError(f"idempotency_key must be 1 to 255 visible ASCII characters, not {key!r}")


class _KeyMint:
    """Idempotency keys: a random prefix per process and a counter.

    Unique, which is all a key must be, without a system call per key (``os.urandom``
    was a tenth of the client's time in bulk runs). A forked child draws a new prefix.
    """

    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._counter = itertools.count()

    def new(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"


_key_mint = _KeyMint()
os.register_at_fork(after_in_child=_key_mint.reseed)


def new_idempotency_key() -> str:
    """A fresh key for one logical call: 32 hex characters, unique across processes."""
    return _key_mint.new()


# What fits in an Authorization header as it is sent: visible ASCII, no spaces.
_API_KEY = re.compile(r"[\x21-\x7e]+")


def checked_api_key(api_key: object, name: str = "api_key") -> str:
    """``api_key``, if it can be sent as a bearer key.

    Raises:
        ValueError: it holds a space, a control character or a non-ASCII character
            (the message never shows it: a key pasted with a newline is still a key).
    """
    if not (isinstance(api_key, str) and _API_KEY.fullmatch(api_key)):
        raise ValueError(
            f"{name} must be printable ASCII without spaces; it holds a control character"
            " (CR, LF, NUL, ...), a space or a non-ASCII character"
        )
    return api_key


def check_base_url(base_url: object) -> str:
    """``base_url`` without a trailing slash, when requests can be sent under it: an
    http(s) URL with a host (a name, an IPv4 address, or an IPv6 one in brackets) and an
    optional port and path; no user name or password, query, fragment, space or control
    character.

    Userinfo is refused rather than used: Whop authenticates with the key alone, aiohttp
    would turn ``user:password@`` into a second Authorization header (which it refuses
    beside ours, mid-call), and a URL is shown in errors and ``repr(client)``. Credentials
    for a proxy belong to the ``session=`` that goes through it.

    Raises:
        ValueError: saying what is wrong, never showing a password or a query.
    """
    if not isinstance(base_url, str):
        raise ValueError(f"base_url must be a string, got {type(base_url).__name__}")
    if _UNSENDABLE_IN_URL.search(base_url):
        raise ValueError("base_url must not hold spaces or control characters (CR, LF...)")
    try:
        parts = urlsplit(base_url)
    except ValueError as error:  # an unclosed "[" of an IPv6 address
        raise ValueError(f"base_url is not a URL: {error}") from None
    if "@" in parts.netloc:
        raise ValueError(
            "base_url must not hold a user name or password (user:password@); the key is"
            " the credential, and a proxy's go to the session= you pass"
        )
    shown = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"base_url must be an http(s) URL with a host, got {shown!r}")
    if parts.query or parts.fragment or base_url.endswith(("?", "#")):
        raise ValueError(f"base_url must not have a query or fragment: {shown!r}")
    try:
        parts.port  # noqa: B018 - read to check it: a port that is not 0-65535 raises
    except ValueError:
        raise ValueError(
            f"base_url has a port that is not a number from 0 to 65535: {shown!r}"
        ) from None
    host = parts.hostname
    if host.replace(".", "").isdigit() and _canonical_ipv4(host) != host:
        # aiohttp sends to no other form (127.1, 010.0.0.1): every call would fail.
        raise ValueError(
            f"base_url's host {host!r} is not an IPv4 address as written in full, like"
            f" {_canonical_ipv4(host) or '127.0.0.1'!r}"
        )
    return base_url.rstrip("/")


def _canonical_ipv4(host: str) -> str | None:
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        return None


# Spaces and control characters: urlsplit drops tabs and newlines without a word.
_UNSENDABLE_IN_URL = re.compile(r"[\x00-\x20\x7f]")
# Api-Version-Date: a dated version such as 2026-10-15-1; visible ASCII, one token.
_API_VERSION = re.compile(r"[\x21-\x7e]{1,64}")


def check_api_version(api_version: object) -> str:
    """``api_version`` when it can be sent as Api-Version-Date: a string of 1 to 64
    visible ASCII characters, such as ``"2026-10-15-1"``.

    Raises:
        ValueError: it is not (a CR or LF would split the header).
    """
    if isinstance(api_version, str) and _API_VERSION.fullmatch(api_version):
        return api_version
    raise ValueError(
        "api_version must be a dated version such as '2026-10-15-1' (1 to 64 visible ASCII"
        f" characters), got {_shown(api_version)}"
    )


class Headers(dict[str, str]):
    """A request's headers, whose repr hides the credential: a traceback shown with its
    locals (as error trackers record them) shows every frame's headers."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(redact_headers(self))


def client_headers(
    api_key: str | None,
    *,
    api_version: str | None,
    default_headers: Mapping[str, str] | None,
) -> Headers:
    """The headers every request of a client carries, built once per client, and so
    checked when the client is made.

    Raises:
        ValueError: ``api_version`` or ``default_headers`` cannot be sent (see
            ``check_api_version`` and ``extra_headers``).
    """
    # Without a key (a token provider's client), each attempt adds its token's.
    headers = Headers() if api_key is None else Headers(Authorization=f"Bearer {api_key}")
    headers["Accept"] = "application/json"
    headers["User-Agent"] = user_agent()
    if api_version is not None:
        headers["Api-Version-Date"] = check_api_version(api_version)
    headers.update(extra_headers(default_headers, where="default_headers"))
    return headers


def request_headers(base: Mapping[str, str], request: Request) -> Headers:
    """The headers of one call: the client's, its own, and its Idempotency-Key."""
    headers = Headers(base)
    headers.update(request.headers)
    if request.idempotency_key is not None:
        headers["Idempotency-Key"] = request.idempotency_key
    return headers


# Headers a caller cannot set, each with the reason its refusal gives. The client's own:
# set here they would replace the key, or make two calls share an Idempotency-Key (the
# API answers the second one 400). Then those that frame or route a request, which
# aiohttp and its connection pool own: a caller's value would desync the pooled
# connection (a Content-Length of 120 on a request without a body makes the server read
# the next request as this one's body, and that call fails 400) or send it elsewhere.
_REFUSED_HEADERS = {
    "authorization": "the client's key goes there: pass api_key=",
    "idempotency-key": "it is set per call: pass idempotency_key=",
    "content-length": "it frames the body; a wrong one desyncs the pooled connection",
    "transfer-encoding": "it frames the body; beside Content-Length it smuggles requests",
    "trailer": "it announces fields after a chunked body, and no call sends one",
    "te": "it negotiates the connection's transfer codings, which aiohttp reads",
    "host": "it routes the request to a server: that is base_url's",
    "connection": "the connection pool governs the connection (and proxies drop the headers"
    " it names)",
    "keep-alive": "the connection pool governs the connection",
    "upgrade": "it would switch the connection to another protocol",
    "http2-settings": "it belongs to an Upgrade to HTTP/2",
    "expect": "it makes the server wait for a body that no call sends",
}
# Proxy-Authorization, Proxy-Connection...: meant for a proxy, and sent to Whop instead.
_PROXY_HEADERS = "it is meant for a proxy: pass a session= configured for one"
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")


def extra_headers(headers: Mapping[str, str] | None, *, where: str) -> tuple[tuple[str, str], ...]:
    """Headers a caller adds (``where`` names the argument), checked before anything is
    sent: names that are HTTP tokens, values with no CR, LF or NUL, none the client's,
    none that frame or route the request (Content-Length, Transfer-Encoding, Host,
    Connection, Upgrade, Expect, TE, Trailer, Keep-Alive, HTTP2-Settings, Proxy-*).

    Raises:
        ValueError: naming the header (never showing a value).
    """
    if headers is None:
        return ()
    if not isinstance(headers, Mapping):
        raise ValueError(f"{where} must map header names to values, got {type(headers).__name__}")
    checked = []
    for name, value in headers.items():
        if not (isinstance(name, str) and _HEADER_NAME.fullmatch(name)):
            raise ValueError(f"{where}: {name!r} is not a header name")
        lowered = name.lower()
        refused = _REFUSED_HEADERS.get(lowered)
        if refused is None and lowered.startswith("proxy-"):
            refused = _PROXY_HEADERS
        if refused is not None:
            raise ValueError(f"{where}: {name} cannot be set here; {refused}")
        if not (isinstance(value, str) and _HEADER_VALUE.fullmatch(value)):
            raise ValueError(
                f"{where}: the value of {name} must be a string without control characters"
                " (CR, LF, NUL...)"
            )
        checked.append((name, value))
    return tuple(checked)


def extra_query(
    query: Mapping[str, str] | None, *, reserved: Collection[str] = ()
) -> tuple[tuple[str, str], ...]:
    """Query parameters a caller adds, checked: none of the operation's own
    (``reserved``), every name and value a string.

    Raises:
        ValueError: a parameter the operation sets itself, or one that is not a string.
    """
    checked = []
    for name, value in (query or {}).items():
        if name in reserved:
            raise ValueError(f"extra_query: {name!r} is set by the operation itself")
        if not (isinstance(name, str) and isinstance(value, str)):
            raise ValueError(f"extra_query: {name!r} must map a string to a string")
        checked.append((name, value))
    return tuple(checked)


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A copy fit for logs: the credential is replaced."""
    return {
        name: "<redacted>" if name.lower() == "authorization" else value
        for name, value in headers.items()
    }


REDACTED = "<redacted>"


class Redactor:
    """Removes a secret from what a server sends back, before whop_async keeps any of it.

    A secret is found in the forms a server may echo it: as sent (also inside
    ``Bearer <key>``), percent-encoded, and inside a JSON string however it is escaped
    there (``\\u0073k_...``), so what is kept, decoded or not, never holds it.

    Cheap to make (a client per account makes one): the patterns that find every
    spelling of a secret cost a millisecond to compile, so they are compiled only for an
    answer that holds a secret as it is, or an escape (a backslash, a percent sign):
    Whop's answers hold neither. Only the patterns read escapes right: decoding an
    answer's escapes first cannot tell "%4" before a key spelt "F%79" from "Oy".
    """

    __slots__ = ("_byte_forms", "_forms", "_patterns")

    def __init__(self, *secrets: str) -> None:
        self.use(*secrets)

    def use(self, *secrets: str) -> None:
        """Clear these secrets from now on, instead of those before (a token
        provider's latest tokens)."""
        forms = sorted(
            {form for secret in secrets if secret for form in _forms_of(secret)},
            key=len,
            reverse=True,
        )
        self._forms = tuple(forms)
        self._byte_forms = tuple(form.encode() for form in forms)
        self._patterns: tuple[re.Pattern[str], re.Pattern[bytes]] | None = None

    def _compiled(self) -> tuple[re.Pattern[str], re.Pattern[bytes]]:
        patterns = self._patterns
        if patterns is None:
            pattern = "|".join(_spellings_in_json(form) for form in self._forms)
            patterns = self._patterns = (re.compile(pattern), re.compile(pattern.encode()))
        return patterns

    def text(self, text: str) -> str:
        """``text`` with every form of the secrets replaced."""
        if not _may_hold(text, self._forms, _TEXT_ESCAPES):
            return text
        return self._compiled()[0].sub(REDACTED, text)

    def body(self, body: bytes) -> bytes:
        """``body`` itself when it holds no secret (found by a search of its bytes, with
        nothing built), else a copy with every form of the secrets replaced: a JSON body
        is decoded, cleared and encoded again (replacing bytes could cut an escape in
        two), any other is cleared as bytes."""
        if not _may_hold(body, self._byte_forms, _BYTE_ESCAPES):
            return body
        pattern = self._compiled()[1]
        if pattern.search(body) is None:  # escapes, but none that spells a secret
            return body
        try:
            value = _json.loads(body)
        except ValueError:
            return pattern.sub(_REDACTED_BYTES, body)
        return _json.encoded(self._cleared(value))

    def _cleared(self, value: object) -> object:
        # Recursion is safe: decoded JSON is at most _json.MAX_DEPTH deep.
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self._cleared(item) for item in value]
        if isinstance(value, dict):
            return {self.text(name): self._cleared(item) for name, item in value.items()}
        return value

    def headers(self, headers: Mapping[str, str]) -> Mapping[str, str]:
        """``headers`` themselves when they hold no secret, else a copy without them."""
        forms = self._forms
        if not forms:
            return headers
        # One search of every name and value at once: most answers hold no secret.
        every = "\n".join(itertools.chain.from_iterable(headers.items()))
        if not _may_hold(every, forms, _TEXT_ESCAPES):
            return headers
        text = self.text
        return CIMultiDict((text(name), text(value)) for name, value in headers.items())

    def response(self, response: Response) -> Response:
        """``response`` itself when it holds no secret, else a copy without them."""
        body = self.body(response.body)
        headers = self.headers(response.headers)
        if body is response.body and headers is response.headers:
            return response
        return response._replace(headers=headers, body=body)


_REDACTED_BYTES = REDACTED.encode()


def _forms_of(secret: str) -> tuple[str, ...]:
    return (secret, quote(secret, safe=""))


def _spellings_in_json(form: str) -> str:
    """A pattern for ``form`` as it is, or written with JSON's escapes in a string."""
    return "".join(_spellings_of_character(character) for character in form)


def _spellings_of_character(character: str) -> str:
    # Any character may be written \uXXXX (hex digits in either case); '"', '\' and '/'
    # also as a backslash and themselves. A secret is ASCII, so no surrogate pairs.
    code = "".join(f"[{digit}{digit.upper()}]" for digit in f"{ord(character):04x}")
    # ...and percent-encoded, as a URL echoed back may hold it.
    spellings = [re.escape(character), rf"\\u{code}", "%" + code[-8:]]
    if character in '"\\/':
        spellings.append(re.escape("\\" + character))
    return f"(?:{'|'.join(spellings)})"


# What starts an escape: JSON's backslash, and a percent-encoding's sign.
_TEXT_ESCAPES = ("\\", "%")
_BYTE_ESCAPES = (b"\\", b"%")


def _may_hold(text: AnyStr, forms: tuple[AnyStr, ...], escapes: tuple[AnyStr, ...]) -> bool:
    """True when ``text`` holds one of ``forms`` as it is, or an escape (JSON's, or a
    percent-encoding) that may spell one: only then is a secret's every spelling
    looked for."""
    # Loops, not any(): no generator made per answer.
    for form in forms:
        if form in text:
            return True
    if not forms:
        return False
    for escape in escapes:  # noqa: SIM110 - a loop, as above
        if escape in text:
            return True
    return False


NO_SECRETS = Redactor()


def decode(
    request: Request,
    base_url: str,
    response: Response,
    *,
    now: Callable[[], float],
    redactor: Redactor = NO_SECRETS,
) -> object:
    """Turn an answer into JSON data, or raise the typed error it stands for.

    Args:
        base_url: where ``request`` was sent (named by its errors).
        now: the wall-clock time (Unix seconds), asked only to read an HTTP-date
            Retry-After of an answer without a ``Date``.
        redactor: removes the client's key from anything an error keeps of the answer.

    Raises:
        APIStatusError: (a subclass per status) for any non-2xx answer.
        APIResponseValidationError: for a 2xx body that is not JSON, or JSON nested
            more than 128 levels deep.
    """
    if 200 <= response.status < 300:
        if response.cut_short:
            problem = f"the body is larger than {len(response.body) // 2**20} MiB; not read"
            url = base_url + request.target
            raise validation_error(request, url, response, problem, redactor=redactor)
        try:
            return _json.loads(response.body)
        except _json.TooDeep as too_deep:
            problem = f"the body is {too_deep}"
        except ValueError:
            problem = f"the body is not JSON: {_excerpt(response.body)}"
        url = base_url + request.target
        raise validation_error(request, url, response, problem, redactor=redactor)
    url = base_url + request.target
    raise status_error(request, url, response, now=now(), redactor=redactor)


def validation_error(
    request: Request,
    url: str,
    response: Response,
    problem: str,
    *,
    redactor: Redactor = NO_SECRETS,
) -> APIResponseValidationError:
    """The error for a 2xx answer that does not have the expected shape: the server
    accepted the request, so the message says so before what could not be read."""
    response = redactor.response(response)
    return _response_error(
        APIResponseValidationError,
        redactor.text(
            f"the server accepted {request.method} {request.path} ({response.status}) but"
            f" its answer could not be read: {problem}"
        ),
        request,
        url,
        response,
        _body_for_error(response.body),
    )


def status_error(
    request: Request,
    url: str,
    response: Response,
    *,
    now: float,
    redactor: Redactor = NO_SECRETS,
) -> APIStatusError:
    """The typed error for a non-2xx answer, with Whop's error fields and wait hint."""
    response = redactor.response(response)
    # An answer cut short is no JSON, and too large to keep whole in an error.
    body = _excerpt(response.body) if response.cut_short else _body_for_error(response.body)
    error_type, message, error_code = _whop_error_fields(body)
    detail = message if message is not None else _excerpt(response.body)
    wait = server_wait_hint(response.headers, message, now=now)
    return _response_error(
        status_error_class(response.status),
        f"{response.status} from {request.method} {request.path}: {detail}",
        request,
        url,
        response,
        body,
        error_type=error_type,
        error_code=error_code,
        retry_after=None if wait is None else wait.seconds,
        retry_after_resolution=WHOLE_SECONDS if wait is None else wait.resolution,
    )


def _response_error(
    error_class: type[_E],
    description: str,
    request: Request,
    url: str,
    response: Response,
    body: object,
    **details: Any,
) -> _E:
    request_id = request_id_in(response.headers)
    if request_id is not None:
        description = f"{description} (request id {request_id})"
    return error_class(
        description,
        method=request.method,
        url=url,
        status_code=response.status,
        headers=response.headers,
        body=body,
        request_id=request_id,
        **details,
    )


# A wait longer than a day is no wait an API means: it is kept as a day, which is
# longer than any cap a caller sets, so it is distrusted rather than slept through.
LONGEST_WAIT_HINT = 86_400.0
WHOLE_SECONDS = 1.0
MILLISECONDS = 0.001


@attrs.frozen
class ServerWait:
    """How long the server asked to wait, and how precisely it said so: ``resolution``
    is 1.0 for whole seconds (servers round up: the true wait may be up to a second
    shorter), 0.001 for milliseconds."""

    seconds: float
    resolution: float


def server_wait_hint(
    headers: Mapping[str, str], message: str | None, *, now: float
) -> ServerWait | None:
    """The wait the server asked for, or None when it gave no usable hint.

    Sources in order: ``retry-after-ms``, ``Retry-After`` (seconds or an HTTP-date),
    then Whop's "Try again in N seconds." message. A hint in the past means 0; one that
    is not a number is ignored; one longer than a day is kept as a day.

    An HTTP-date is read against the answer's own ``Date`` when it has one: both are
    the server's clock, so a local clock that is off does not change the wait, and the
    wait is whole seconds like any other (``Retry-After: 2``). Without ``Date`` it is
    read against ``now``, the local clock.
    """
    milliseconds = _finite_number(headers.get("retry-after-ms"))
    if milliseconds is not None:
        return _wait(milliseconds / 1000, MILLISECONDS)
    retry_after = headers.get("retry-after")
    if retry_after is not None:
        wait = _retry_after(retry_after, headers.get("date"), now=now)
        if wait is not None:
            return wait
    if message is not None:
        match = _TRY_AGAIN_PATTERN.search(message)
        if match:
            return _wait_in_seconds(match.group(1))
    return None


def _wait(seconds: float, resolution: float) -> ServerWait:
    return ServerWait(min(LONGEST_WAIT_HINT, max(0.0, seconds)), resolution)


def _wait_in_seconds(text: str) -> ServerWait | None:
    seconds = _finite_number(text)
    if seconds is None:
        return None
    return _wait(seconds, WHOLE_SECONDS if text.strip().isdigit() else MILLISECONDS)


def _retry_after(value: str, date: str | None, *, now: float) -> ServerWait | None:
    in_seconds = _wait_in_seconds(value)
    if in_seconds is not None:
        return in_seconds
    moment = _http_date(value)
    if moment is None:
        return None
    sent = _http_date(date) if date is not None else None
    return _wait(moment - (now if sent is None else sent), WHOLE_SECONDS)


def _http_date(value: str) -> float | None:
    """An HTTP-date as Unix seconds, or None when it is not one (or has no zone)."""
    try:
        moment = parsedate_to_datetime(value)
        return moment.timestamp() if moment.tzinfo is not None else None
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _finite_number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _body_for_error(body: bytes) -> object:
    try:
        return _json.loads(body)
    except ValueError:
        return body.decode("utf-8", errors="replace")


def _whop_error_fields(body: object) -> tuple[str | None, str | None, str | None]:
    """Whop's ``{"error": {"type", "message", "code"}}``, each None when absent."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, None, None
    return (
        _str_or_none(error.get("type")),
        _str_or_none(error.get("message")),
        _str_or_none(error.get("code")),
    )


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _excerpt(body: bytes) -> str:
    """A short one-line view of a body, e.g. an HTML error page from a proxy."""
    text = " ".join(body.decode("utf-8", errors="replace").split())
    if not text:
        return "(empty body)"
    return text if len(text) <= _EXCERPT_CHARS else text[: _EXCERPT_CHARS - 3] + "..."


def request_id_in(headers: Mapping[str, str]) -> str | None:
    """The server's request id header (``X-Request-Id``, then ``Request-Id``), if any."""
    for name in _REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return value
    return None
