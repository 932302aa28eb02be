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
from ._exceptions import APIError, NotFinishedError, RateLimitError, StopReason
from ._limits import Bound, Engine, Patience, Stopped, WaitReason, WaitTooLong
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
    ``closing`` wakes every call of the client that waits."""

    def __init__(self, parent: Lifetime | None = None) -> None:
        self.closing = asyncio.Event()
        self._children: weakref.WeakSet[Lifetime] = weakref.WeakSet()
        if parent is not None:
            parent._children.add(self)
            if parent.closed:
                self.close()

    @property
    def closed(self) -> bool:
        """True once closed."""
        return self.closing.is_set()

    def close(self) -> None:
        """Close this lifetime and every one derived from it."""
        self.closing.set()
        for child in list(self._children):
            child.close()

    def child(self) -> Lifetime:
        """A lifetime that ends with this one, or before."""
        return Lifetime(self)


@attrs.frozen(kw_only=True)
class Wiring:
    """What every call of a client goes through.

    Attributes:
        base_url: where requests go.
        headers: the headers of every request, built once.
        timeout: the default seconds an attempt may take.
        rate_limit_timeout: how long a call may wait for the rate limit in all.
        policy: how calls retry.
        engine: turns: pacing, the gate, the breaker, the retry budget, permits.
        transport: the HTTP session.
        redactor: removes the key from anything kept of an answer.
        clock: time and chance.
        lifetime: open until the client is closed: nothing is sent after.
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
    telemetry: Telemetry | None = None


class CallResult(NamedTuple):
    """How one call got its answer."""

    retries_taken: int
    elapsed: float


class Calls:
    """What resources ask of a client: calls, and bulk runs to hold them."""

    def __init__(self, wiring: Wiring) -> None:
        self.wiring = wiring
        self._finishers: dict[type, Finish[Any]] = {}

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
        finish = self._finishers.get(cast_to)
        if finish is None:
            finish = self._finishers[cast_to] = finish_as(cast_to)
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
        "_started",
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
                patience = Patience(deadline=deadline, closing=closing)
            else:
                patience = Patience(
                    deadline=min(deadline, run.deadline),
                    outages=True,
                    max_outage=run.max_outage,
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
        raise AssertionError("unreachable: tenacity raises the last error")  # pragma: no cover

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
                    wiring.timeout if self._options.timeout is None else self._options.timeout,
                    request.query_string,
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
        if run is not None and run.deadline <= self.patience.deadline:
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
