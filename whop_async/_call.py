"""One logical call's path: engine -> transport -> decode, retried as the policy says.

``Wiring`` is what every call of a client goes through, built once per client;
``Call(wiring, request, options).run(finish)`` makes one call on it and hands its
result to ``finish``. Every coroutine frame between a bulk worker and aiohttp is paid
again each time the request waits for the network, so the path has as few as it can:
the worker, ``run`` (the first attempt inline, tenacity only for retries), the attempt,
the transport.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, TypeVar

import attrs
import tenacity

from . import _sansio
from ._exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    AuthenticationError,
    NotFinishedError,
    RateLimitError,
)
from ._limits import Engine, Patience, Stopped, Ticket, WaitHint, WaitTooLong
from ._options import RequestOptions
from ._retry import CallRetries, RetryPolicy, is_retryable, retry_after, retrying
from ._transport import CouldNotConnect, Transport

if TYPE_CHECKING:
    from ._bulk import BulkRun

T = TypeVar("T")

logger = logging.getLogger("whop_async")


@attrs.frozen(kw_only=True)
class Wiring:
    """What every call of a client goes through.

    Attributes:
        base_url: where requests go.
        headers: the headers of every request, built once.
        timeout: the default seconds an attempt may take.
        policy: how calls retry.
        engine: permits, pacing, the gate, the breaker, the retry budget.
        transport: the HTTP session.
        redactor: removes the key from anything kept of an answer.
        closed: True once the client is closed: nothing is sent after.
    """

    base_url: str
    headers: Mapping[str, str]
    timeout: float
    policy: RetryPolicy
    engine: Engine
    transport: Transport
    redactor: _sansio.Redactor
    closed: Callable[[], bool]


@attrs.frozen
class CallResult:
    """What one call came to: the answer, its JSON data, and how it got there."""

    response: _sansio.Response
    data: object
    retries_taken: int
    elapsed: float


class Call:
    """One logical call, and its state across its attempts. What only a wait or a
    retry needs (its patience, its retry account) is made when first needed: most calls
    succeed at once."""

    __slots__ = (
        "_attempts",
        "_engine",
        "_headers",
        "_last_error",
        "_limiter",
        "_options",
        "_order",
        "_patience_made",
        "_refusals",
        "_request",
        "_retries_made",
        "_started",
        "_url",
        "_wiring",
    )

    def __init__(self, wiring: Wiring, request: _sansio.Request, options: RequestOptions) -> None:
        self._wiring = wiring
        self._request = request
        self._options = options
        self._url = wiring.base_url + request.target
        self._headers = _sansio.request_headers(wiring.headers, request)
        engine = self._engine = wiring.engine
        self._limiter = engine.limiter(request.operation)
        self._started = engine.clock.monotonic()
        # The call's place in the queues, kept by every attempt: a retried call goes
        # ahead of calls that came after it.
        self._order = next(engine.arrivals)
        self._attempts = 0
        self._last_error: APIError | None = None
        self._refusals: list[RateLimitError] = []
        self._patience_made: Patience | None = None
        self._retries_made: CallRetries | None = None

    @property
    def _run(self) -> BulkRun | None:
        return self._options.run

    @property
    def _patience(self) -> Patience:
        patience = self._patience_made
        if patience is None:
            patience = self._patience_made = self._patience_of(self._options.run)
        return patience

    @property
    def _retries(self) -> CallRetries:
        retries = self._retries_made
        if retries is None:
            engine = self._engine
            defers = self._options.run is not None
            retries = self._retries_made = CallRetries(
                allow_retry=engine.allow_retry, defers=defers
            )
        return retries

    def _patience_of(self, run: BulkRun | None) -> Patience:
        own_deadline = self._started + self._wiring.policy.rate_limit_timeout
        if run is None:
            return Patience(deadline=own_deadline)
        return Patience(
            deadline=min(own_deadline, run.deadline),
            outages=True,
            max_outage=run.max_outage,
            stop=run.stopping,
        )

    async def run(self, finish: Callable[[CallResult], T]) -> T:
        """Make the call; what ``finish`` makes of its result.

        Raises:
            APIError: (a subclass) what the last attempt met, after retries.
            NotFinishedError: the call's bulk run stopped before the call was done.
            RuntimeError: the client was closed (before or while the call waited).
        """
        try:
            first_error: APIError | None = None
            try:
                response, data = await self._attempt()
            except APIError as error:
                if not is_retryable(error):
                    raise
                first_error = error
            if first_error is not None:
                # Retried outside the except block: the last error must not carry the
                # first as its context (nor keep its traceback alive in bulk results).
                response, data = await retry_after(first_error, self._attempt, self._retrying)
        except Stopped:
            raise self._not_finished() from None
        except WaitTooLong as too_long:
            raise self._gave_up(too_long) from None
        elapsed = self._engine.clock.monotonic() - self._started
        return finish(CallResult(response, data, self._attempts - 1, elapsed))

    def _retrying(self) -> tenacity.AsyncRetrying:
        options, policy = self._options, self._wiring.policy
        max_retries = policy.max_retries if options.max_retries is None else options.max_retries
        return retrying(policy, self._retries, max_retries, self._sleep)

    async def _sleep(self, seconds: float) -> None:
        stop = self._run.stopping if self._run is not None else None
        await self._engine.sleep(seconds, wake=None, stop=stop)

    async def _attempt(self) -> tuple[_sansio.Response, object]:
        if self._wiring.closed():
            raise RuntimeError("this WhopClient was closed; the call was not sent again")
        run = self._run
        if run is not None and run.stopping.is_set():
            raise Stopped  # a retry whose wait the run's stop cut short
        engine, limiter, request = self._engine, self._limiter, self._request
        retries = self._retries_made
        if retries is not None and retries.deferred_at is not None:
            await engine.answer_after(retries.deferred_at, self._patience)
            retries.deferred_at = None
        # The permit comes first: waiting for it must not eat into the timeout.
        permits = engine.permits
        if not permits.take_now():
            await permits.take()
        try:
            ticket = limiter.try_turn(self._options.run is not None) or await limiter.turn(
                self._order, self._patience
            )
            self._attempts += 1
            debug = logger.isEnabledFor(logging.DEBUG)
            if debug:
                self._log_sending()
            try:
                response = await self._wiring.transport.send(
                    request.method,
                    request.path,
                    self._headers,
                    self._wiring.timeout
                    if self._options.timeout is None
                    else self._options.timeout,
                    request.query_string,
                )
            except APIError as error:
                await self._no_answer(ticket, error)
                raise
            finally:
                limiter.release(ticket)
        finally:
            permits.give_back()
        if debug:
            self._log_answer(response)
        try:
            data = _sansio.decode(
                request,
                self._url,
                response,
                now=engine.clock.time,
                redactor=self._wiring.redactor,
            )
        except APIStatusError as error:
            await self._error_answer(ticket, error)
            raise
        engine.answered(ticket, accepted=True)
        pending = limiter.accepted(ticket)
        if pending is not None:  # awaited only when there is something to await
            await pending
        return response, data

    def _log_sending(self) -> None:
        headers = _sansio.redact_headers(self._headers)
        logger.debug("%s %s %s", self._request.method, self._url, headers)

    def _log_answer(self, response: _sansio.Response) -> None:
        logger.debug(
            "%s %s -> %d (request id %s)",
            self._request.method,
            self._url,
            response.status,
            _sansio.request_id_in(response.headers),
        )

    async def _no_answer(self, ticket: Ticket, error: APIError) -> None:
        self._last_error = error
        engine = self._engine
        engine.failed(ticket, answered=False)
        await _settled(self._limiter.failed(ticket))
        if ticket.breaker_probe and not engine.ever_answered:
            # Every request of this client failed, the breaker's probe too: nothing
            # listens at this address, and every further id would find the same.
            engine.fatal(self._nothing_answers(error))

    async def _error_answer(self, ticket: Ticket, error: APIStatusError) -> None:
        self._last_error = error
        engine, limiter = self._engine, self._limiter
        if isinstance(error, RateLimitError):
            self._retries.refusals += 1
            self._refusals.append(error)
            engine.answered(ticket, accepted=False, rate_limited=True)
            await limiter.refused(
                ticket, WaitHint.of(error.retry_after, error.retry_after_resolution)
            )
        elif error.status_code >= 500:
            engine.failed(ticket, answered=True)
            await _settled(limiter.failed(ticket))
        else:
            engine.answered(ticket, accepted=False)
            await _settled(limiter.accepted(ticket))  # the server took it; it said no
            if isinstance(error, AuthenticationError):
                engine.fatal(error)  # the key is wrong for every call

    def _nothing_answers(self, error: APIError) -> APIConnectionError:
        reason = (
            "no connection could be made" if isinstance(error, CouldNotConnect) else "no answer"
        )
        return APIConnectionError(
            f"nothing answers at {self._wiring.base_url}: {reason} on any attempt (last: {error})",
            method=self._request.method,
            url=self._url,
        )

    def _not_finished(self) -> NotFinishedError:
        assert self._run is not None
        what = f"{self._request.method} {self._request.path}"
        return self._run.not_finished(what, attempted=self._attempts > 0)

    def _gave_up(self, too_long: WaitTooLong) -> APIError | NotFinishedError:
        run = self._run
        if run is not None and too_long.bound == "outage":
            run.stop("outage", self._last_error)
            return self._not_finished()
        if run is not None and run.deadline <= self._patience.deadline:
            run.stop("deadline", None)
            return self._not_finished()
        return self._waited_too_long_for_the_rate_limit(too_long)

    def _waited_too_long_for_the_rate_limit(self, too_long: WaitTooLong) -> RateLimitError:
        """The error of a call whose next turn would come after its deadline: it says
        so, with what its own last 429 said, if it had one."""
        request = self._request
        last = self._refusals[-1] if self._refusals else None
        waited = (
            "" if math.isinf(too_long.wait) else f"; the next turn is {too_long.wait:.1f} s away"
        )
        return RateLimitError(
            f"{request.method} {request.path}: gave up waiting for the rate limit{waited},"
            f" past this call's rate_limit_timeout"
            f" ({self._wiring.policy.rate_limit_timeout:g} s)",
            method=request.method,
            url=self._url,
            status_code=429,
            headers=last.headers if last is not None else {},
            body=last.body if last is not None else None,
            request_id=last.request_id if last is not None else None,
            retry_after=None if math.isinf(too_long.wait) else too_long.wait,
            retry_after_resolution=_sansio.MILLISECONDS,
        )


async def _settled(pending: Awaitable[None] | None) -> None:
    if pending is not None:
        await pending
