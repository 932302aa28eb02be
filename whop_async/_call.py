"""One logical call's path: a turn of the engine, the transport, decode; retried as the
policy says.

``Wiring`` is what every call of a client goes through, built once per client;
``Calls`` is what resources ask of a client (a call, a bulk run). Every coroutine frame
between a bulk worker and aiohttp is paid again each time the request waits for the
network, so the path has as few as it can: the worker, ``Call.run``, the attempt, the
transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import weakref
from collections.abc import Coroutine, Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import attrs

from . import _sansio
from ._bulk import BulkRun
from ._clock import Clock
from ._credentials import Tokens
from ._exceptions import (
    APIError,
    AuthenticationError,
    NotFinishedError,
    RateLimitError,
    StopReason,
    TokenProviderError,
)
from ._limits import Bound, Closed, Engine, Patience, Stopped, WaitReason, WaitTooLong
from ._options import NO_OPTIONS, RequestOptions
from ._retry import CallRetries, RetryPolicy, is_retryable
from ._shaping import finish_as
from ._transport import Transport

if TYPE_CHECKING:
    from ._otel import CallTrace
    from ._shaping import Finish
    from ._telemetry import Telemetry

T = TypeVar("T")

logger = logging.getLogger("whop_async")


class Lifetime:
    """Whether a client is open: closed by its own ``close()``, or by its parent's.

    ``closing`` wakes every call of the client that waits. It is made when a call first
    waits, so a client that never waits (most clients of many accounts, most of the
    time) holds a few words here, not an event.
    """

    __slots__ = ("__weakref__", "_children", "_closed", "_closing", "_parent")

    def __init__(self, parent: Lifetime | None = None) -> None:
        self._parent = parent
        self._closed = False
        self._closing: asyncio.Event | None = None
        self._children: weakref.WeakSet[Lifetime] | None = None

    @property
    def closed(self) -> bool:
        """True once closed, or once its parent is."""
        return self._closed or (self._parent is not None and self._parent.closed)

    @property
    def closing(self) -> asyncio.Event:
        """Set once closed: what a waiting call watches."""
        closing = self._closing
        if closing is None:
            closing = self._closing = asyncio.Event()
            if self.closed:
                closing.set()
            elif self._parent is not None:
                self._parent._watched_by(self)
        return closing

    def _watched_by(self, child: Lifetime) -> None:
        """Wake ``child``'s waiting calls when this lifetime closes."""
        if self._children is None:
            self._children = weakref.WeakSet()
            if self._parent is not None:
                self._parent._watched_by(self)
        self._children.add(child)

    def close(self) -> None:
        """Close this lifetime and every one derived from it."""
        self._closed = True
        if self._closing is not None:
            self._closing.set()
        for child in list(self._children or ()):
            child.close()

    def child(self) -> Lifetime:
        """A lifetime that ends with this one, or before."""
        return Lifetime(self)


@attrs.frozen(kw_only=True)
class Wiring:
    """What every call of a client goes through.

    Attributes:
        base_url: where requests go.
        headers: the headers of every request, built once (``Authorization`` but with
            a token provider).
        timeout: the default seconds an attempt may take.
        rate_limit_timeout: how long a call may wait for the rate limit in all.
        policy: how calls retry.
        engine: turns: pacing, the gate, the breaker, the retry budget, permits.
        transport: the HTTP session.
        redactor: removes the key from anything kept of an answer.
        clock: time and chance.
        lifetime: open until the client is closed: nothing is sent after.
        tokens: the token provider's tokens, asked for each attempt once its turn has
            come (None: a key).
        telemetry: spans and metrics of its calls (None without the otel extra).
    """

    base_url: str
    headers: Mapping[str, str]
    timeout: float
    rate_limit_timeout: float
    policy: RetryPolicy
    engine: Engine
    transport: Transport
    redactor: _sansio.Redactor
    clock: Clock
    lifetime: Lifetime
    tokens: Tokens | None = None
    telemetry: Telemetry | None = None


class CallResult(NamedTuple):
    """How one call got its answer."""

    retries_taken: int
    elapsed: float


# After a 401, a token provider is asked again at once, then after these pauses, for a
# token other than the one refused: a provider may learn of a refresh a little after the
# server (a cache, a secret store's replication). A call renews at most _RENEWALS times:
# a key rotated every few seconds still leaves each call its attempts.
_RENEWAL_PAUSES = (0.0, 0.1, 0.2, 0.4, 0.8)
_RENEWALS = 3

# One finisher per answer type, for every client: a client holds none of its own.
_FINISHERS: dict[type, Finish[Any]] = {}


class Calls:
    """What resources ask of a client: calls, and bulk runs to hold them."""

    def __init__(self, wiring: Wiring) -> None:
        self.wiring = wiring

    def send(
        self, request: _sansio.Request, cast_to: type[T], options: RequestOptions = NO_OPTIONS
    ) -> Coroutine[None, None, T]:
        """One logical call with retries, to await: its answer as a ``cast_to`` (or,
        within ``with_raw_response``, a RawResponse).

        Not a coroutine itself, so a bulk worker awaits the call with no frame between.

        Raises:
            RuntimeError: the client is closed.
        """
        wiring = self.wiring
        if wiring.lifetime.closed:
            raise RuntimeError("this WhopClient is closed; create a new one")
        finish = _FINISHERS.get(cast_to)
        if finish is None:
            finish = _FINISHERS[cast_to] = finish_as(cast_to)
        call = Call(wiring, request, options)
        if wiring.telemetry is None:
            return call.run(finish)
        return wiring.telemetry.traced(call, finish)

    @contextlib.contextmanager
    def bulk_run(
        self, *, operation: str, deadline: float | None, max_outage: float
    ) -> Iterator[BulkRun]:
        """A bulk run of ``operation``: its bounds and stop, told of errors that would
        fail every call, and its telemetry."""
        engine, telemetry = self.wiring.engine, self.wiring.telemetry
        run = BulkRun(self.wiring.clock, deadline=deadline, max_outage=max_outage)
        with (
            engine.listening_for_fatal(lambda error: run.stop(StopReason.FATAL, error)),
            contextlib.nullcontext() if telemetry is None else telemetry.bulk(run, operation),
        ):
            yield run


class Call:
    """One logical call, and its state across its attempts. What only a wait or a
    retry needs (its patience) is made when first needed: most calls succeed at once."""

    __slots__ = (
        "_attempts",
        "_failed_at",
        "_headers",
        "_last_error",
        "_options",
        "_patience",
        "_probed_outage",
        "_renewals",
        "_started",
        "_token",
        "order",
        "outages",
        "request",
        "trace",
        "wiring",
    )

    def __init__(self, wiring: Wiring, request: _sansio.Request, options: RequestOptions) -> None:
        self.wiring = wiring
        self.request = request
        self._options = options
        self._headers = _sansio.request_headers(wiring.headers, request)
        self._started = wiring.clock.monotonic()
        # The call's place in the queues, kept by every attempt: a retried call goes
        # ahead of calls that came after it.
        self.order = next(wiring.engine.arrivals)
        self.outages = options.run is not None
        self._attempts = 0
        self._failed_at: int | None = None
        self._last_error: APIError | None = None
        self._patience: Patience | None = None
        self._probed_outage = False
        self._token: str | None = None
        # A token provider's call is made once more after a 401 with a new token.
        self._renewals = 0 if wiring.tokens is None else _RENEWALS
        self.trace: CallTrace | None = None

    @property
    def patience(self) -> Patience:
        """The call's bounds: its rate_limit_timeout, its run's deadline and stop, its
        client's close."""
        patience = self._patience
        if patience is None:
            wiring, run = self.wiring, self._options.run
            deadline = self._started + wiring.rate_limit_timeout
            closing = wiring.lifetime.closing
            if run is None:
                patience = Patience(own_deadline=deadline, closing=closing)
            else:
                patience = Patience(
                    own_deadline=deadline,
                    run_deadline=run.deadline,
                    outages=True,
                    max_outage=run.max_outage,
                    downtime_before=wiring.engine.breaker.downtime(wiring.clock.monotonic()),
                    stop=run.stopping,
                    closing=closing,
                )
            self._patience = patience
        return patience

    def failed_on_its_own(self, accepted: int) -> bool:
        """True when the server accepted others since this call first failed."""
        if self._failed_at is None:
            self._failed_at = accepted
            return False
        return accepted > self._failed_at

    async def run(self, finish: Finish[T]) -> T:
        """Make the call; what ``finish`` makes of its result.

        Raises:
            APIError: (a subclass) what the last attempt met, after retries.
            TokenProviderError: the token provider failed; nothing was sent.
            NotFinishedError: the call's bulk run stopped before the call was done.
            RuntimeError: the client was closed (before or while the call waited).
        """
        try:
            try:
                # Most calls end here: one attempt, and no retrier made.
                return finish(await self._attempt(), self)
            except APIError as error:
                if not is_retryable(error):
                    raise
                first = error
            # Out of the except block: the last error must not carry the first as its
            # context (nor keep its traceback alive in bulk results).
            async for attempt in await self._retries().after_first(first):
                with attempt:
                    return finish(await self._attempt(), self)
        except Stopped:
            raise self._not_finished() from None
        except WaitTooLong as too_long:
            raise self._gave_up(too_long) from None
        except (AuthenticationError, TokenProviderError) as error:
            refused = error
        else:  # pragma: no cover
            raise AssertionError("unreachable: tenacity raises the last error")
        # Out of the except block, for the same reason as above.
        if isinstance(refused, AuthenticationError) and await self._renewed():
            return await self.run(finish)
        # Every call of the account would meet it: its bulk runs stop.
        self.wiring.engine.fatal(refused)
        raise refused

    async def _renewed(self) -> bool:
        """After a 401: True when the token provider hands over another token than the
        refused one, asked at once and again over about a second and a half."""
        if self.wiring.tokens is None or not self._renewals:
            return False
        self._renewals -= 1
        refused = self._token
        try:
            for pause in _RENEWAL_PAUSES:
                if pause:
                    await self._sleep(pause)
                if await self._fresh_token() != refused:
                    return True
        except (TokenProviderError, Stopped, WaitTooLong, RuntimeError):
            pass  # the 401 is what the call met
        return False

    async def _fresh_token(self) -> str:
        """The provider's token, waited for no longer than an attempt may take, nor past
        the call's run's deadline: a provider that never answers holds nothing up.

        Raises:
            TokenProviderError: the provider failed, or handed over nothing in time.
            Stopped: the run's deadline passed meanwhile.
        """
        tokens, run, closing = self.wiring.tokens, self._options.run, self.wiring.lifetime.closing
        assert tokens is not None
        limit = self._timeout
        if run is not None:
            limit = min(limit, max(0.0, run.deadline - self.wiring.clock.monotonic()))
        asked = asyncio.ensure_future(tokens.token())
        # The provider's answer, or whichever comes first of the client's close, the
        # run's stop, and the limit: a call of a removed account ends with it.
        ends = [asyncio.ensure_future(closing.wait())]
        if run is not None:
            ends.append(asyncio.ensure_future(run.stopping.wait()))
        try:
            await asyncio.wait([asked, *ends], timeout=limit, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for end in (asked, *ends):
                end.cancel()
        if asked.done() and not asked.cancelled():
            token = asked.result()
            self._use(token)
            return token
        if closing.is_set():
            raise Closed
        if run is not None and run.past_deadline():
            raise Stopped
        raise tokens.too_slow(limit)

    @property
    def _timeout(self) -> float:
        timeout = self._options.timeout
        return self.wiring.timeout if timeout is None else timeout

    def result(self) -> CallResult:
        """How the call got its answer: retries taken, seconds elapsed."""
        elapsed = self.wiring.clock.monotonic() - self._started
        return CallResult(self._attempts - 1, elapsed)

    def _retries(self) -> CallRetries:
        options, policy = self._options, self.wiring.policy
        max_retries = policy.max_retries if options.max_retries is None else options.max_retries
        engine = self.wiring.engine
        return CallRetries(
            policy,
            max_retries,
            lambda: engine.retry_wait(defers=self.outages),
            self._sleep,
            lambda: self._probed_outage,
        )

    def waited(self, reason: WaitReason, seconds: float) -> None:
        """Told of each wait, for a turn or between attempts: for the call's telemetry."""
        if self.trace is not None:
            self.trace.waited(reason, seconds)

    async def _sleep(self, seconds: float) -> None:
        started = self.wiring.clock.monotonic()
        try:
            await self.wiring.engine.sleep(seconds, None, self.patience)
        finally:
            self.waited(WaitReason.BACKOFF, self.wiring.clock.monotonic() - started)

    async def _attempt(self) -> tuple[_sansio.Response, object]:
        wiring, request = self.wiring, self.request
        if wiring.lifetime.closed:
            raise RuntimeError("this WhopClient was closed; the call was not sent again")
        run = self._options.run
        if run is not None and run.stopping.is_set():
            raise Stopped  # a retry whose wait the run's stop cut short
        async with wiring.engine.turn(request.operation, self) as turn:
            if wiring.tokens is not None:
                # Asked once the turn has come: a call that waited for the rate limit
                # sends the token of now, not of when it started waiting.
                await self._fresh_token()
            self._attempts += 1
            self._probed_outage = turn.ticket.breaker_probe
            trace = self.trace
            if trace is not None:  # the attempt's span starts; its traceparent is sent
                trace.sending(self._headers)
            debug = logger.isEnabledFor(logging.DEBUG)
            if debug:
                self._log_sending()
            response: _sansio.Response | None = None
            try:
                response = await wiring.transport.send(
                    request.method,
                    request.path,
                    self._headers,
                    self._timeout,
                    request.query_string,
                    wiring.redactor,
                )
                if debug:
                    self._log_answer(response)
                data = _sansio.decode(
                    request,
                    wiring.base_url,
                    response,
                    now=wiring.clock.time,
                    redactor=wiring.redactor,
                )
            except BaseException as error:
                if isinstance(error, APIError):
                    self._last_error = error
                if trace is not None:
                    trace.sent(response, error)
                raise
            if trace is not None:
                trace.sent(response, None)
            return response, data

    def _use(self, token: str) -> None:
        """Send ``token`` from this attempt on (the call's headers are its own copy)."""
        if token != self._token:
            self._token = token
            self._headers["Authorization"] = f"Bearer {token}"

    @property
    def _url(self) -> str:
        return self.wiring.base_url + self.request.target

    def _log_sending(self) -> None:
        headers = _sansio.redact_headers(self._headers)
        logger.debug("%s %s %s", self.request.method, self._url, headers)

    def _log_answer(self, response: _sansio.Response) -> None:
        logger.debug(
            "%s %s -> %d (request id %s)",
            self.request.method,
            self._url,
            response.status,
            _sansio.request_id_in(response.headers),
        )

    def _not_finished(self) -> NotFinishedError:
        run = self._options.run
        assert run is not None
        what = f"{self.request.method} {self.request.path}"
        return run.not_finished(what, attempted=self._attempts > 0)

    def _gave_up(self, too_long: WaitTooLong) -> APIError | NotFinishedError:
        run = self._options.run
        if run is not None and too_long.bound is Bound.OUTAGE:
            run.stop(StopReason.OUTAGE, self._last_error)
            return self._not_finished()
        if run is not None and too_long.bound is Bound.RUN:
            run.stop(StopReason.DEADLINE, None)
            return self._not_finished()
        error = self._waited_too_long_for_the_rate_limit(too_long)
        if run is not None and too_long.refused:
            # The server refused everything for this call's whole rate_limit_timeout:
            # every other id would wait as long.
            run.stop(StopReason.RATE_LIMIT, error)
        return error

    def _waited_too_long_for_the_rate_limit(self, too_long: WaitTooLong) -> RateLimitError:
        """The error of a call whose next turn would come after its deadline: it says
        so, with what its own last 429 said, if it had one."""
        request = self.request
        last = self._last_error if isinstance(self._last_error, RateLimitError) else None
        waited = (
            "" if math.isinf(too_long.wait) else f"; the next turn is {too_long.wait:.1f} s away"
        )
        return RateLimitError(
            f"{request.method} {request.path}: gave up waiting for the rate limit{waited},"
            f" past this call's rate_limit_timeout"
            f" ({self.wiring.rate_limit_timeout:g} s)",
            method=request.method,
            url=self._url,
            status_code=429,
            headers=last.headers if last is not None else {},
            body=last.body if last is not None else None,
            request_id=last.request_id if last is not None else None,
            retry_after=None if math.isinf(too_long.wait) else too_long.wait,
            retry_after_resolution=_sansio.MILLISECONDS,
        )
