"""WhopClient: configuration, session lifecycle, and one call's path through the layers."""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Awaitable, Mapping
from types import TracebackType
from typing import TypeVar
from urllib.parse import urlsplit

import attrs

from . import _sansio
from ._clock import Clock
from ._converter import ShapeError, structure
from ._exceptions import APIError, APIStatusError, RateLimitError, WhopError
from ._limits import (
    ClientStats,
    Engine,
    OperationLimiter,
    RateLimit,
    Ticket,
    WaitHint,
    WaitTooLong,
)
from ._retry import RetryPolicy, call_with_retries
from ._transport import CONNECTION_LIMIT, Session, Transport
from .resources.ad_groups import AdGroups

T = TypeVar("T")

logger = logging.getLogger("whop_async")

# Whop's documented budget: 600 requests per minute per operation and key.
WHOP_RATE_LIMIT = RateLimit(600, per=60.0)

_DEFAULT = object()

API_KEY_ENV = "WHOP_API_KEY"
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
            slept through: the call raises at once (120).
        rate_limit: the proactive budget per operation, shared by every call of this
            client; defaults to Whop's ``RateLimit(600, per=60.0)``. None sends unpaced
            until the first 429, then adapts.
        rate_limit_timeout: how long one call keeps retrying 429s, counted from its
            first one, before it raises RateLimitError (600 s).
        session: an aiohttp ClientSession to use instead of an owned one; it is never
            closed by the client.
        api_version: sent as ``Api-Version-Date`` when set; the API's original shapes
            are used otherwise.
        default_headers: extra headers for every request.

    Raises:
        WhopError: no API key was given and ``WHOP_API_KEY`` is not set.
        ValueError: an argument is out of range.
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
        self.timeout = _checked_timeout(timeout)
        self._headers = _sansio.client_headers(
            api_key, api_version=api_version, default_headers=default_headers
        )
        clock = _clock or Clock()
        max_server_wait = _checked_non_negative("max_server_wait", max_server_wait)
        self._engine = Engine(
            rate_limit,
            clock,
            max_in_flight=CONNECTION_LIMIT,
            budget_key=_budget_key(api_key, self.base_url),
            max_server_wait=max_server_wait,
        )
        self._retry_policy = RetryPolicy(
            max_retries=_checked_max_retries(max_retries),
            max_server_wait=max_server_wait,
            rate_limit_timeout=_checked_non_negative("rate_limit_timeout", rate_limit_timeout),
            budget=self._engine.retry_budget,
            clock=clock,
        )
        self._policies: dict[int, RetryPolicy] = {}
        self._transport = Transport(self.base_url, session)
        self._closed = False
        self.ad_groups = AdGroups(self)

    def __repr__(self) -> str:
        return f"WhopClient(base_url={self.base_url!r})"

    async def __aenter__(self) -> WhopClient:
        self._ensure_open()
        self._transport.open()
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
        return self._engine.stats

    @property
    def closed(self) -> bool:
        """True once ``close()`` has run; a closed client cannot be reopened."""
        return self._closed

    async def close(self) -> None:
        """Close the owned HTTP session (a borrowed one stays open) and any connection
        to a shared budget. Safe to call twice."""
        self._closed = True
        await self._transport.close()
        await self._engine.close()

    async def _send(
        self,
        request: _sansio.Request,
        cast_to: type[T],
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> T:
        """Send one logical call with retries and structure its answer into ``cast_to``."""
        self._ensure_open()
        url = self.base_url + request.target
        query_string = request.query_string
        headers = _sansio.request_headers(self._headers, request)
        attempt_timeout = self.timeout if timeout is None else _checked_timeout(timeout)
        policy = self._retry_policy if max_retries is None else self._policy_for(max_retries)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s %s %s", request.method, url, _sansio.redact_headers(headers))

        engine = self._engine
        limiter = engine.limiter(request.operation)
        clock = policy.clock
        order = engine.next_order()
        deadline = clock.monotonic() + policy.rate_limit_timeout
        refusals: list[RateLimitError] = []

        async def attempt() -> tuple[_sansio.Response, object]:
            # The permit comes first: waiting for it must not eat into the timeout.
            async with engine.permits:
                ticket = limiter.try_turn() or await limiter.turn(order, deadline)
                try:
                    response = await self._transport.send(
                        request.method, request.path, headers, attempt_timeout, query_string
                    )
                except APIError:
                    await _settled(limiter.failed(ticket))
                    raise
                finally:
                    limiter.release(ticket)
            try:
                data = _sansio.decode(request, url, response, now=clock.time())
            except APIStatusError as error:
                await self._refused_or_failed(limiter, ticket, error, refusals)
                raise
            engine.count_answer(rate_limited=False)
            await _settled(limiter.accepted(ticket))
            return response, data

        try:
            response, data = await call_with_retries(attempt, policy)
        except WaitTooLong as too_long:
            raise _gave_up_waiting(request, url, refusals, too_long, policy) from None
        try:
            return structure(data, cast_to)
        except ShapeError as problem:
            raise _sansio.validation_error(request, url, response, str(problem)) from None

    async def _refused_or_failed(
        self,
        limiter: OperationLimiter,
        ticket: Ticket,
        error: APIStatusError,
        refusals: list[RateLimitError],
    ) -> None:
        refused = isinstance(error, RateLimitError)
        self._engine.count_answer(rate_limited=refused)
        if isinstance(error, RateLimitError):
            refusals.append(error)
            hint = WaitHint.of(error.retry_after, error.retry_after_resolution)
            await limiter.refused(ticket, hint)
        else:
            await _settled(limiter.failed(ticket))

    def _policy_for(self, max_retries: int) -> RetryPolicy:
        # Bulk calls pass max_retries on every call: build each variant once.
        checked = _checked_max_retries(max_retries)
        policy = self._policies.get(checked)
        if policy is None:
            policy = self._policies[checked] = attrs.evolve(self._retry_policy, max_retries=checked)
        return policy

    def _ensure_open(self) -> None:
        if self._closed:
            raise RuntimeError("this WhopClient is closed; create a new one")


async def _settled(pending: Awaitable[None] | None) -> None:
    if pending is not None:
        await pending


def _gave_up_waiting(
    request: _sansio.Request,
    url: str,
    refusals: list[RateLimitError],
    too_long: WaitTooLong,
    policy: RetryPolicy,
) -> RateLimitError:
    """The error of a call whose next turn would come after its deadline: its own last
    429, or one that says so when the wait was set by other calls' refusals."""
    message = (
        f"{request.method} {request.path}: gave up waiting for the rate limit; the next"
        f" turn is {too_long.wait:.1f} s away, past this call's rate_limit_timeout"
        f" ({policy.rate_limit_timeout:g} s)"
    )
    last = refusals[-1] if refusals else None
    return RateLimitError(
        message,
        method=request.method,
        url=url,
        status_code=429,
        headers=last.headers if last is not None else {},
        body=last.body if last is not None else None,
        request_id=last.request_id if last is not None else None,
        retry_after=too_long.wait,
        retry_after_resolution=_sansio.MILLISECONDS,
    )


def _budget_key(api_key: str, base_url: str) -> str:
    """A name for this key's budget that does not reveal the key."""
    return hashlib.sha256(f"{api_key}\n{base_url}".encode()).hexdigest()[:24]


def _checked_base_url(base_url: str) -> str:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"base_url must not have a query or fragment, got {base_url!r}")
    return base_url.rstrip("/")


def _checked_timeout(timeout: float) -> float:
    if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


def _checked_max_retries(max_retries: int) -> int:
    if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 0:
        raise ValueError(f"max_retries must be a whole number >= 0, got {max_retries!r}")
    return max_retries


def _checked_non_negative(name: str, value: float) -> float:
    if not (isinstance(value, (int, float)) and value >= 0):
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)
