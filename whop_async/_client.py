"""WhopClient: configuration, and the session and engine every call goes through."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import re
from collections.abc import Coroutine, Iterator, Mapping
from types import TracebackType
from typing import TypeVar, cast
from urllib.parse import urlsplit

import attrs

from . import _sansio
from ._bulk import BulkRun
from ._call import Call, CallResult, Wiring
from ._clock import Clock
from ._converter import ShapeError, structure
from ._exceptions import WhopError
from ._limits import ClientStats, Engine, RateLimit
from ._logs import log_to_stderr_if_asked
from ._options import NO_OPTIONS, RequestOptions, checked_max_retries, checked_timeout
from ._response import RAW_REQUESTED, RawResponse, SentRequest
from ._retry import RetryPolicy
from ._transport import CONNECTION_LIMIT, Session, Transport
from .resources.ad_groups import AdGroups

T = TypeVar("T")

logger = logging.getLogger("whop_async")

# Whop's documented budget: 600 requests per minute per operation and key.
WHOP_RATE_LIMIT = RateLimit(600, per=60.0)

API_KEY_ENV = "WHOP_API_KEY"
# What fits in an Authorization header as it is sent: visible ASCII, no spaces.
_API_KEY = re.compile(r"[\x21-\x7e]+")
BASE_URL_ENV = "WHOP_BASE_URL"


class WhopClient:
    """An async client for Whop's ad-group API.

    Use it as an async context manager, which opens the HTTP session inside the running
    event loop and closes it on exit:

        async with WhopClient() as client:
            group = await client.ad_groups.unpause("adgrp_xxxxxxxxxxxx")

    Args:
        api_key: a Whop API key; defaults to the ``WHOP_API_KEY`` environment variable.
        base_url: defaults to ``WHOP_BASE_URL``, then ``https://api.whop.com/api/v1``.
        timeout: seconds one attempt may take, connecting and reading included (30).
        max_retries: retried failures allowed per call (3).
        max_server_wait: a server-directed wait longer than this many seconds is not
            slept through: the call raises at once, and other calls wait only for a
            short probe to find out whether the server meant it (120).
        rate_limit: the proactive budget per operation, shared by every call of this
            client; defaults to Whop's ``RateLimit(600, per=60.0)``. A ceiling: when the
            server refuses sooner, calls slow to what it accepts. None: the limit is
            found from the server's refusals.
        rate_limit_timeout: how long one call may wait for the rate limit in all (its
            turns, the gate after a 429), counted from its start, before it raises
            RateLimitError (600 s).
        session: an aiohttp ClientSession to use instead of an owned one; it is never
            closed by the client.
        api_version: sent as ``Api-Version-Date`` when set; the API's original shapes
            are used otherwise.
        default_headers: extra headers for every request.

    Raises:
        WhopError: no API key was given and ``WHOP_API_KEY`` is not set.
        ValueError: an argument is out of range, or the key holds a space, a control
            character (CR, LF, NUL...) or a non-ASCII character (it is never echoed).
    """

    ad_groups: AdGroups
    """Ad-group operations: ``unpause``, ``unpause_many``, ``iter_unpause``."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        max_server_wait: float = 120.0,
        rate_limit: RateLimit | None = WHOP_RATE_LIMIT,
        rate_limit_timeout: float = 600.0,
        session: Session | None = None,
        api_version: str | None = None,
        default_headers: Mapping[str, str] | None = None,
        _clock: Clock | None = None,
    ) -> None:
        api_key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        if not api_key:
            raise WhopError(
                f"no API key: pass api_key= or set the {API_KEY_ENV} environment variable"
            )
        self.base_url = _checked_base_url(
            base_url or os.environ.get(BASE_URL_ENV) or _sansio.DEFAULT_BASE_URL
        )
        self.timeout = checked_timeout(timeout)
        headers = _sansio.client_headers(
            _checked_api_key(api_key), api_version=api_version, default_headers=default_headers
        )
        clock = _clock or Clock()
        max_server_wait = _checked_non_negative("max_server_wait", max_server_wait)
        log_to_stderr_if_asked()
        self._closed = False
        self._root = self  # the client that owns the session and the engine
        self._wiring = Wiring(
            base_url=self.base_url,
            headers=headers,
            timeout=self.timeout,
            policy=RetryPolicy(
                max_retries=checked_max_retries(max_retries),
                max_server_wait=max_server_wait,
                rate_limit_timeout=_checked_non_negative("rate_limit_timeout", rate_limit_timeout),
                clock=clock,
            ),
            engine=Engine(
                rate_limit,
                clock,
                max_in_flight=CONNECTION_LIMIT,
                budget_key=_budget_key(api_key, self.base_url),
                max_server_wait=max_server_wait,
            ),
            transport=Transport(self.base_url, session),
            redactor=_sansio.Redactor(api_key),
            closed=lambda: self.closed,
        )
        self.ad_groups = AdGroups(self)

    def __repr__(self) -> str:
        return f"WhopClient(base_url={self.base_url!r})"

    async def __aenter__(self) -> WhopClient:
        self._ensure_open()
        self._wiring.transport.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def stats(self) -> ClientStats:
        """How many answers this client has had, and how many were 429s."""
        return self._wiring.engine.stats

    @property
    def closed(self) -> bool:
        """True once ``close()`` has run (on this client, or on the client it was
        derived from with ``with_options``); a closed client cannot be reopened."""
        return self._closed or self._root._closed

    async def close(self) -> None:
        """Close the owned HTTP session (a borrowed one stays open) and any connection
        to a shared budget. A client made by ``with_options`` closes only itself: the
        session and engine are its parent's. Safe to call twice."""
        self._closed = True
        if self._root is self:
            await self._wiring.transport.close()
            await self._wiring.engine.close()

    def with_options(
        self,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        rate_limit_timeout: float | None = None,
        default_headers: Mapping[str, str] | None = None,
    ) -> WhopClient:
        """A client with other defaults for a few calls, on this client's session,
        rate budget and engine (one budget per key, always).

            slow = client.with_options(timeout=120, max_retries=5)
            await slow.ad_groups.unpause("adgrp_...")

        It shares this client's HTTP session, its rate limiting (pacing, the gate
        after a 429, the adapted rate), its outage breaker and its retry budget, so its
        calls and this client's never compete for the same limit. Closing it closes
        only it; closing this client closes both. An option left as None keeps this
        client's setting.

        Args:
            timeout: seconds each attempt may take.
            max_retries: retried failures per call (429s not counted).
            rate_limit_timeout: how long one call may wait for the rate limit.
            default_headers: headers added to (or replacing) this client's on every
                request; ``Authorization`` and ``Idempotency-Key`` cannot be set.

        Raises:
            ValueError: an option is out of range.
            RuntimeError: this client is closed.
        """
        self._ensure_open()
        wiring = self._wiring
        policy = wiring.policy
        changed = attrs.evolve(
            wiring,
            timeout=wiring.timeout if timeout is None else checked_timeout(timeout),
            headers={
                **wiring.headers,
                **dict(_sansio.extra_headers(default_headers, where="default_headers")),
            },
            policy=attrs.evolve(
                policy,
                max_retries=(
                    policy.max_retries if max_retries is None else checked_max_retries(max_retries)
                ),
                rate_limit_timeout=(
                    policy.rate_limit_timeout
                    if rate_limit_timeout is None
                    else _checked_non_negative("rate_limit_timeout", rate_limit_timeout)
                ),
            ),
        )
        return WhopClient._derived(self, changed)

    @classmethod
    def _derived(cls, parent: WhopClient, wiring: Wiring) -> WhopClient:
        client = cls.__new__(cls)
        client.base_url = parent.base_url
        client.timeout = wiring.timeout
        client._closed = False
        client._root = parent._root
        client._wiring = attrs.evolve(wiring, closed=lambda: client.closed)
        client.ad_groups = AdGroups(client)
        return client

    def _send(
        self, request: _sansio.Request, cast_to: type[T], options: RequestOptions = NO_OPTIONS
    ) -> Coroutine[None, None, T]:
        """One logical call with retries, to await: its answer structured into
        ``cast_to`` (or, within ``with_raw_response``, a RawResponse).

        Not a coroutine itself, nor are the resource methods that hand it on, so a bulk
        worker awaits the call with no frame between (see _call.py).
        """
        self._ensure_open()
        call = Call(self._wiring, request, options)
        return call.run(functools.partial(self._answer, request, cast_to))

    def _answer(self, request: _sansio.Request, cast_to: type[T], result: CallResult) -> T:
        if RAW_REQUESTED.get():
            return cast(T, self._raw(request, cast_to, result))
        return self._structured(request, cast_to, result.response, result.data)

    def _structured(
        self, request: _sansio.Request, cast_to: type[T], response: _sansio.Response, data: object
    ) -> T:
        try:
            return structure(data, cast_to, source=response.body)
        except ShapeError as problem:
            raise _sansio.validation_error(
                request,
                self.base_url + request.target,
                response,
                str(problem),
                redactor=self._wiring.redactor,
            ) from None

    def _raw(
        self, request: _sansio.Request, cast_to: type[T], result: CallResult
    ) -> RawResponse[T]:
        response = result.response
        sent = _sansio.request_headers(self._wiring.headers, request)
        return RawResponse(
            status_code=response.status,
            headers=response.headers,
            request_id=_sansio.request_id_in(response.headers),
            http_request=SentRequest(
                method=request.method,
                url=self.base_url + request.target,
                headers=_sansio.redact_headers(sent),
            ),
            elapsed=result.elapsed,
            retries_taken=result.retries_taken,
            content=response.body,
            parse=functools.partial(self._structured, request, cast_to, response, result.data),
        )

    @contextlib.contextmanager
    def _bulk_run(self, *, deadline: float | None, max_outage: float) -> Iterator[BulkRun]:
        """A bulk run's bounds and stop, told of errors that would fail every call."""
        run = BulkRun(
            self._wiring.engine.clock,
            deadline=_checked_optional_seconds("deadline", deadline),
            max_outage=_checked_non_negative("max_outage", max_outage),
        )
        with self._wiring.engine.listening_for_fatal(lambda error: run.stop("fatal", error)):
            yield run

    def _ensure_open(self) -> None:
        if self.closed:
            raise RuntimeError("this WhopClient is closed; create a new one")


def _budget_key(api_key: str, base_url: str) -> str:
    """A name for this key's budget that does not reveal the key."""
    return hashlib.sha256(f"{api_key}\n{base_url}".encode()).hexdigest()[:24]


def _checked_api_key(api_key: str) -> str:
    if not _API_KEY.fullmatch(api_key):
        # Never shown: a key pasted with a newline is still a key.
        raise ValueError(
            "api_key must be printable ASCII without spaces; it holds a control character"
            " (CR, LF, NUL, ...), a space or a non-ASCII character"
        )
    return api_key


def _checked_optional_seconds(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if not (isinstance(value, (int, float)) and value > 0):
        raise ValueError(f"{name} must be a positive number of seconds or None, got {value!r}")
    return float(value)


def _checked_base_url(base_url: str) -> str:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"base_url must not have a query or fragment, got {base_url!r}")
    return base_url.rstrip("/")


def _checked_non_negative(name: str, value: float) -> float:
    if not (isinstance(value, (int, float)) and value >= 0):
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)
