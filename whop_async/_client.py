"""WhopClient: a client's options, its session and engine, and its lifetime."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

import attrs

from . import _sansio
from ._call import Calls, Lifetime, Wiring
from ._clock import Clock
from ._credentials import ApiKey, Tokens
from ._exceptions import WhopError
from ._limits import ClientStats, Engine, RateLimit
from ._logs import log_to_stderr_if_asked
from ._options import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_SERVER_WAIT,
    DEFAULT_RATE_LIMIT_TIMEOUT,
    DEFAULT_TIMEOUT,
    WHOP_RATE_LIMIT,
    ClientOptions,
)
from ._retry import RetryPolicy
from ._telemetry import Telemetry, telemetry_for
from ._transport import CONNECTION_LIMIT, Session, Transport
from .resources.ad_groups import AdGroups

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

API_KEY_ENV = "WHOP_API_KEY"


class WhopClient:
    """An async client for Whop's ad-group API.

    Use it as an async context manager, which opens the HTTP session inside the running
    event loop and closes it on exit:

        async with WhopClient() as client:
            group = await client.ad_groups.unpause("adgrp_xxxxxxxxxxxx")

    Args:
        api_key: a Whop API key, or a token provider: a callable that returns one (or an
            awaitable of one), asked for each attempt once its turn has come, so it
            must cache (see "Many accounts"); defaults to the ``WHOP_API_KEY``
            environment variable.
        account: a name for the account the key belongs to: its budget's name in Redis
            (instead of a hash of the key), and named in a token provider's errors.
            A token provider whose budget is shared through Redis needs one.
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
        tracer_provider: where the spans of its calls go, with the ``otel`` extra
            installed; OpenTelemetry's global provider by default (see Observability).
        meter_provider: where its metrics go; OpenTelemetry's global provider by default.

    Raises:
        WhopError: no API key was given and ``WHOP_API_KEY`` is not set.
        ValueError: an argument is out of range, or the key holds a space, a control
            character (CR, LF, NUL...) or a non-ASCII character (it is never echoed).
    """

    _owns_engine = False
    _owns_session = False

    ad_groups: AdGroups
    """Ad-group operations: ``unpause``, ``unpause_many``, ``iter_unpause``..."""

    def __init__(
        self,
        api_key: ApiKey | None = None,
        *,
        account: str | None = None,
        base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_server_wait: float = DEFAULT_MAX_SERVER_WAIT,
        rate_limit: RateLimit | None = WHOP_RATE_LIMIT,
        rate_limit_timeout: float = DEFAULT_RATE_LIMIT_TIMEOUT,
        session: Session | None = None,
        api_version: str | None = None,
        default_headers: Mapping[str, str] | None = None,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        api_key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        if not api_key:
            raise WhopError(
                f"no API key: pass api_key= or set the {API_KEY_ENV} environment variable"
            )
        options = ClientOptions(
            api_key=api_key,
            account=account,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            max_server_wait=max_server_wait,
            rate_limit=rate_limit,
            rate_limit_timeout=rate_limit_timeout,
            api_version=api_version,
            default_headers=default_headers,
        )
        log_to_stderr_if_asked()
        shared = SharedSession.new(
            options.base_url,
            session,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
        )
        self._wire(options, shared, Lifetime())
        self._owns_session = True

    def _wire(
        self,
        options: ClientOptions,
        shared: SharedSession,
        lifetime: Lifetime,
        of: Wiring | None = None,
    ) -> None:
        """Wire the client: with the engine and credential of ``of`` (a client of the
        same credential), else its own."""
        if of is None:
            engine = Engine(
                options.rate_limit,
                shared.clock,
                permits=shared.permits,
                budget_key=options.budget_name(),
                max_server_wait=options.max_server_wait,
                base_url=options.base_url,
            )
            self._owns_engine = True
            key = options.api_key
            if isinstance(key, str):
                tokens, redactor = None, _sansio.Redactor(key)
            else:
                tokens = Tokens(key, options.account)
                redactor = tokens.redactor
        else:
            engine, tokens, redactor = of.engine, of.tokens, of.redactor
        self._options = options
        self._shared = shared
        self._calls = Calls(
            Wiring(
                base_url=options.base_url,
                headers=options.headers(),
                timeout=options.timeout,
                rate_limit_timeout=options.rate_limit_timeout,
                policy=RetryPolicy(
                    max_retries=options.max_retries,
                    max_server_wait=options.max_server_wait,
                    random=engine.clock.random,
                ),
                engine=engine,
                transport=shared.transport,
                redactor=redactor,
                clock=engine.clock,
                lifetime=lifetime,
                tokens=tokens,
                telemetry=shared.telemetry,
            )
        )
        self.ad_groups = AdGroups(self._calls)

    def __repr__(self) -> str:
        account = "" if self.account is None else f", account={self.account!r}"
        return f"WhopClient(base_url={self.base_url!r}{account})"

    @property
    def account(self) -> str | None:
        """The account's name, when given."""
        return self._options.account

    @property
    def base_url(self) -> str:
        """Where this client's requests go."""
        return self._options.base_url

    @property
    def timeout(self) -> float:
        """Seconds one attempt may take, by default."""
        return self._options.timeout

    async def __aenter__(self) -> WhopClient:
        if self.closed:
            raise RuntimeError("this WhopClient is closed; create a new one")
        self._calls.wiring.transport.open()
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
        """How many answers this client's budget has had (every client of the same
        credential made by ``with_options`` counts), and how many were 429s."""
        return self._calls.wiring.engine.stats

    @property
    def closed(self) -> bool:
        """True once ``close()`` has run (on this client, or on the client it was
        derived from with ``with_options``); a closed client cannot be reopened."""
        return self._calls.wiring.lifetime.closed

    async def close(self) -> None:
        """Close the owned HTTP session (a borrowed one stays open) and any connection
        to a shared budget; calls of this client that wait end with RuntimeError, and
        nothing more is sent. A client made by ``with_options`` closes only itself
        (and its budget's connection to Redis, for another credential): the session is
        its parent's. Safe to call twice."""
        wiring = self._calls.wiring
        wiring.lifetime.close()
        if self._owns_session:
            await wiring.transport.close()
        if self._owns_engine:
            await wiring.engine.close()

    def with_options(
        self,
        *,
        api_key: ApiKey | None = None,
        account: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        rate_limit_timeout: float | None = None,
        default_headers: Mapping[str, str] | None = None,
    ) -> WhopClient:
        """A client with other defaults for a few calls, or for another credential, on
        this client's HTTP session and connection pool.

            slow = client.with_options(timeout=120, max_retries=5)
            await slow.ad_groups.unpause("adgrp_...")
            globex = client.with_options(api_key=globex_key, account="globex")

        With the same credential it shares this client's rate limiting (pacing, the
        gate after a 429, the adapted rate), its outage breaker and its retry budget,
        so its calls and this client's never compete for the same limit. With
        ``api_key`` (another key, or a token provider) it has a budget of its own per
        operation, gate, breaker and retry budget, since Whop counts each credential
        apart; it is cheap to make (a few microseconds). Either way its calls' spans and
        metrics go where this client's go. Closing it closes only it; closing this
        client closes both. An argument left None keeps this client's setting.

        Args:
            api_key: another credential: a key, or a token provider (see
                ``WhopClient``).
            account: the name of ``api_key``'s account (see ``WhopClient``).
            timeout: seconds each attempt may take.
            max_retries: retried failures per call (429s not counted).
            rate_limit_timeout: how long one call may wait for the rate limit.
            default_headers: headers added to (or replacing) this client's on every
                request; ``Authorization`` and ``Idempotency-Key`` cannot be set.

        Raises:
            ValueError: an option is out of range; ``account`` without ``api_key``.
            RuntimeError: this client is closed.
        """
        if self.closed:
            raise RuntimeError("this WhopClient is closed; create a new one")
        changes: dict[str, Any] = {
            name: value
            for name, value in (
                ("timeout", timeout),
                ("max_retries", max_retries),
                ("rate_limit_timeout", rate_limit_timeout),
            )
            if value is not None
        }
        if default_headers is not None:
            merged = dict(self._options.default_headers)
            merged.update(_sansio.extra_headers(default_headers, where="default_headers"))
            changes["default_headers"] = merged
        if account is not None and api_key is None:
            raise ValueError("account= names the account of api_key=: give both")
        same_credential = api_key is None or (
            api_key == self._options.api_key and account == self._options.account
        )
        if not same_credential:
            changes |= {"api_key": api_key, "account": account}
        options = attrs.evolve(self._options, **changes)  # checked as the constructor checks
        wiring = self._calls.wiring
        derived = object.__new__(WhopClient)
        derived._wire(
            options,
            self._shared,
            wiring.lifetime.child(),
            of=wiring if same_credential else None,
        )
        return derived


def client_on(
    shared: SharedSession, options: ClientOptions, lifetime: Lifetime
) -> tuple[WhopClient, Calls]:
    """A client of ``options``' credential on a session others share (an Accounts'):
    its own budget (engine), closed with ``lifetime``; and its calls, for bulk runs
    made on its behalf."""
    client = object.__new__(WhopClient)
    client._wire(options, shared, lifetime)
    return client, client._calls


@attrs.frozen
class SharedSession:
    """What the clients of every account on one HTTP session share: the session, the
    permits that keep requests in flight within its connection pool, the clock, and
    where their spans and metrics go."""

    transport: Transport
    permits: asyncio.Semaphore
    clock: Clock
    telemetry: Telemetry | None

    @classmethod
    def new(
        cls,
        base_url: str,
        session: Session | None,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> SharedSession:
        """A shared session at ``base_url``: ``session`` borrowed, else one owned."""
        clock = Clock()
        telemetry = telemetry_for(
            base_url, clock, tracer_provider=tracer_provider, meter_provider=meter_provider
        )
        return cls(
            Transport(base_url, session), asyncio.Semaphore(CONNECTION_LIMIT), clock, telemetry
        )
