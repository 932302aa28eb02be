"""OpenTelemetry spans and metrics of a client's calls (the ``otel`` extra).

Imported only once the application uses OpenTelemetry (``_telemetry`` decides). It
reports to the providers given to the client, else to OpenTelemetry's global ones:
no-ops until the application sets OpenTelemetry up, the application's own from then on.

The spans, under the caller's current span::

    ad_groups.unpause_many              INTERNAL: a bulk run, its counts at the end
      ad_groups.unpause                 INTERNAL: one logical call, its attempts and waits
        POST /ad_groups/{id}/unpause    CLIENT: one per HTTP attempt, by the stable HTTP
                                        client conventions; its traceparent is sent

An Accounts run is one ``ad_groups.unpause_many`` span too, its totals at the end, with
an ``ad_groups.unpause_many.account`` child for each account's part (its counts, its
stop) above that account's calls.

Until the application sets OpenTelemetry up (or gives the client providers), a call is
not traced at all, unless the context it starts in carries something to pass on (an
incoming trace, baggage): it costs a look at that context. Whether OpenTelemetry is
set up is looked at again every second, so a set-up made after the client is picked
up. No metric attribute names an id, a key or a URL.

OpenTelemetry must never break a call: whatever it raises while whop_async makes spans,
records metrics or puts the trace context in a request's headers is caught, said once
on the ``whop_async`` logger, and that kind of telemetry is switched off for the client
(its tracer, meter or propagation replaced by no-ops); the call goes on.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import enum
import logging
import math
import sys
import traceback
from collections.abc import Awaitable, Callable, Coroutine, Mapping, MutableMapping
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from opentelemetry.propagators.textmap import Setter
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, StatusCode

from ._exceptions import (
    APIResponseValidationError,
    APIStatusError,
    RateLimitError,
    ResponseError,
    WhopError,
)
from ._limits import WaitReason
from ._sansio import request_id_in
from ._version import __version__

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter, MeterProvider
    from opentelemetry.trace import Tracer, TracerProvider
    from opentelemetry.util.types import AttributeValue

    from . import _accounts, _sansio
    from ._bulk import BulkRun, CallOne, Deliver
    from ._call import Call
    from ._clock import Clock
    from ._models import AdGroup
    from ._shaping import Finish

T = TypeVar("T")

Attributes = Mapping[str, "AttributeValue"]

logger = logging.getLogger("whop_async")

SCOPE = "whop_async"
# The buckets the conventions advise for http.client.request.duration.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
# Waits run from a pacing interval (ms at a high rate) to a gate or an outage of minutes.
WAIT_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
_DEFAULT_PORTS = {"https": 443, "http": 80}
# How often a client looks again whether OpenTelemetry has been set up.
LOOK_AGAIN = 1.0
# What the API hands out while no global MeterProvider is set. Its class is private:
# should it go, every meter provider counts as set up (calls are then always traced).
_UNSET_METER_PROVIDER: type | tuple[()]
try:
    from opentelemetry.metrics._internal import _ProxyMeterProvider as _UNSET_METER_PROVIDER
except ImportError:  # pragma: no cover - another release of opentelemetry-api
    _UNSET_METER_PROVIDER = ()
_OUTCOMES = ("succeeded", "failed", "unreadable")


class Kind(enum.Enum):
    """What whop_async was doing when OpenTelemetry raised, and what it stops doing."""

    SPANS = ("made or ended a span", "makes no more spans")
    METRICS = ("recorded a metric", "records no more metrics")
    PROPAGATION = ("put the trace context in a request's headers", "sends no trace context")


# The kinds already said at WARNING in this process: a broken set-up fails every client
# alike, and a process that makes a client per task would otherwise say it each time.
_SAID: set[Kind] = set()


def _inject_nothing(*_: object, **__: object) -> None:
    pass


class Telemetry:
    """One client's tracer, meter and instruments, shared by the clients made from it
    with ``with_options``.

    Args:
        base_url: where the client's requests go (``server.address``, ``server.port``).
        clock: the client's clock: durations and waits are measured on it.
        tracer_provider: where spans go (the global provider if None).
        meter_provider: where metrics go (the global provider if None).
    """

    def __init__(
        self,
        base_url: str,
        clock: Clock,
        *,
        tracer_provider: TracerProvider | None,
        meter_provider: MeterProvider | None,
    ) -> None:
        self.clock = clock
        self.base_url = base_url
        self._given = tracer_provider is not None or meter_provider is not None
        self._set_up = self._given
        self._look_again_at = -math.inf
        parts = urlsplit(base_url)
        self.server: dict[str, AttributeValue] = {
            "server.address": parts.hostname or "",
            "server.port": parts.port or _DEFAULT_PORTS.get(parts.scheme, 443),
        }
        # Attribute sets are few (operations, statuses, reasons): each is made once,
        # and found without making anything (a call's objects cost it twice: made, and
        # then traversed by each garbage collection while a bulk run keeps its results).
        self._operations: dict[str, Attributes] = {}
        self._answers: dict[str, dict[object, tuple[str | None, Attributes]]] = {}
        self._waits: dict[tuple[str, WaitReason], Attributes] = {}
        self._routes: dict[str, str] = {}
        self.off: set[Kind] = set()
        self.inject: Callable[..., None] = propagate.inject
        self.tracer: Tracer
        try:
            self.tracer = trace.get_tracer(SCOPE, __version__, tracer_provider=tracer_provider)
        except Exception as error:
            self.switch_off(Kind.SPANS, error)
        try:
            self._instruments(metrics.get_meter(SCOPE, __version__, meter_provider=meter_provider))
        except Exception as error:
            self.switch_off(Kind.METRICS, error)

    def switch_off(self, kind: Kind, error: Exception) -> None:
        """OpenTelemetry raised ``error`` doing ``kind``: no-ops do it from now on, for
        every client on this session.

        Off for good, not skipped for the one call: a provider or processor that raised
        once is broken in its set-up and raises for every call after (each raise, in a
        bulk run, thousands of times over), and a trace that lost some spans at random
        would mislead more than one that has none.
        """
        if kind is Kind.SPANS:
            # A span that does not record, which still passes on an incoming trace.
            self.tracer = trace.NoOpTracer()
        elif kind is Kind.METRICS:
            self._instruments(metrics.NoOpMeter(SCOPE, __version__))
        else:
            self.inject = _inject_nothing
        self.off.add(kind)
        _say(kind, error)

    def _instruments(self, meter: Meter) -> None:
        self.request_duration = meter.create_histogram(
            "http.client.request.duration",
            unit="s",
            description="Duration of HTTP client requests.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.waits = meter.create_histogram(
            "whop.rate_limit.wait",
            unit="s",
            description="Each wait of a call for its turn or between its attempts, by reason.",
            explicit_bucket_boundaries_advisory=WAIT_BUCKETS,
        )
        self.refusals = meter.create_counter(
            "whop.rate_limit.refusals",
            unit="{response}",
            description="Answers of 429 (rate limited).",
        )
        self.active_calls = meter.create_up_down_counter(
            "whop.client.active_calls",
            unit="{call}",
            description="Logical calls in progress: waiting for a turn, in flight or backing off.",
        )
        self.bulk_ids = meter.create_counter(
            "whop.bulk.ids",
            unit="{id}",
            description="Ids a bulk run has finished, by outcome.",
        )

    def watching(self) -> bool:
        """True when calls are to be traced and counted now: OpenTelemetry is set up,
        or the current context holds something to pass on."""
        now = self.clock.monotonic()
        if now >= self._look_again_at:
            self._look_again_at = now + LOOK_AGAIN
            self._set_up = self._given or self._set_up_globally()
        return self._set_up or bool(otel_context.get_current())

    def traced(self, call: Call, finish: Finish[T]) -> Coroutine[None, None, T]:
        """``call`` (what ``finish`` makes of its answer) to await: in its span, counted,
        when watching."""
        if not self.watching():
            return call.run(finish)
        return self._traced(call, finish)

    async def _traced(self, call: Call, finish: Finish[T]) -> T:
        traced = call.trace = CallTrace(self, call.request, call.wiring.redactor)
        try:
            result = await call.run(finish)
        except BaseException as error:
            traced.ended(error)
            raise
        traced.ended(None)
        return result

    def bulk(self, run: BulkRun, operation: str) -> BulkTrace | contextlib.nullcontext[None]:
        """The span and counts of ``run``, a bulk run of ``operation``, when watching:
        to enter around it."""
        if not self.watching():
            return contextlib.nullcontext()
        return BulkTrace(self, run, operation)

    def accounts_run(self, operation: str) -> AccountsTrace | contextlib.nullcontext[None]:
        """The span and counts of an Accounts run of ``operation``, when watching: to
        enter around it."""
        if not self.watching():
            return contextlib.nullcontext()
        return AccountsTrace(self, operation)

    def _set_up_globally(self) -> bool:
        """True once the application has set a global TracerProvider or MeterProvider."""
        # Looking can load a provider named by OTEL_PYTHON_TRACER_PROVIDER (or _METER_),
        # which raises when it cannot be loaded: that kind is then off, and not looked
        # up again.
        if Kind.SPANS not in self.off:
            try:
                if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
                    return True
            except Exception as error:
                self.switch_off(Kind.SPANS, error)
        if Kind.METRICS not in self.off:
            try:
                return not isinstance(metrics.get_meter_provider(), _UNSET_METER_PROVIDER)
            except Exception as error:
                self.switch_off(Kind.METRICS, error)
        return False

    def route(self, request: _sansio.Request) -> str:
        """The route template of ``request``'s path: its ids as ``{id}``."""
        route = self._routes.get(request.operation)
        if route is None:
            route = self._routes[request.operation] = route_of(request.path)
        return route

    def of_operation(self, operation: str) -> Attributes:
        """The metric attributes of ``operation``'s calls."""
        attributes = self._operations.get(operation)
        if attributes is None:
            attributes = self._operations[operation] = {"whop.operation": operation}
        return attributes

    def of_answer(
        self, method: str, status: int | None, error: BaseException | None
    ) -> tuple[str | None, Attributes]:
        """An attempt's ``error.type`` (None for a success) and its duration's
        attributes, as the conventions list them: by its status, or by the class of
        the error that left it without one."""
        answers = self._answers.get(method)
        if answers is None:
            answers = self._answers[method] = {}
        key = status if status is not None else type(error)
        found = answers.get(key)
        if found is None:
            failure = _attempt_error_type(status, error)
            attributes: dict[str, AttributeValue] = {"http.request.method": method, **self.server}
            if status is not None:
                attributes["http.response.status_code"] = status
            if failure is not None:
                attributes["error.type"] = failure
            found = answers[key] = (failure, attributes)
        return found

    def of_wait(self, operation: str, reason: WaitReason) -> Attributes:
        """The attributes of a wait of ``operation``'s calls for ``reason``."""
        attributes = self._waits.get((operation, reason))
        if attributes is None:
            attributes = self._waits[operation, reason] = {
                "whop.operation": operation,
                "whop.rate_limit.reason": reason.value,
            }
        return attributes


def _say(kind: Kind, error: Exception) -> None:
    """Say that ``kind`` is off after ``error``: at WARNING the first time in the
    process, at DEBUG after. Its type and where it was raised, never its message (a
    propagator's message may quote the headers, the key's among them)."""
    doing, stops = kind.value
    frames = traceback.extract_tb(error.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}" if frames else ""
    level = logging.DEBUG if kind in _SAID else logging.WARNING
    _SAID.add(kind)
    logger.log(
        level,
        "OpenTelemetry raised %s%s when whop_async %s: this client %s from now on; its calls go on",
        _qualified(type(error)),
        where,
        doing,
        stops,
    )


def _qualified(kind: type) -> str:
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def route_of(path: str) -> str:
    """A path with its ids as ``{id}``: Whop's paths alternate a collection and an id
    (``/ad_groups/{id}/unpause``), so every second segment is an id."""
    segments = path.split("/")  # "", "ad_groups", id, "unpause"
    return "/".join(
        "{id}" if number % 2 == 0 and number else segment for number, segment in enumerate(segments)
    )


_error_types: dict[type[BaseException], str] = {}


def error_type(error: BaseException) -> str:
    """``error``'s class as ``error.type``: whop_async's public class it is one of
    (``whop_async.APITimeoutError``), else its module and name."""
    kind = type(error)
    name = _error_types.get(kind)
    if name is None:
        public = sys.modules["whop_async"]
        name = next(
            (
                f"whop_async.{cls.__name__}"
                for cls in kind.__mro__
                if getattr(public, cls.__name__, None) is cls
            ),
            f"{kind.__module__}.{kind.__qualname__}",
        )
        _error_types[kind] = name
    return name


class _Replacing(Setter[MutableMapping[str, str]]):
    """Sets a propagated header in place of any spelling of it already there (a
    ``Traceparent`` in a call's extra headers would otherwise be sent beside ours)."""

    def set(self, carrier: MutableMapping[str, str], key: str, value: str) -> None:
        for name in [name for name in carrier if name.lower() == key]:
            del carrier[name]
        carrier[key] = value


_REPLACING = _Replacing()


class CallTrace:
    """One logical call's span (current while it runs, when it records or propagates),
    the span of its attempt in flight, its waits, and its metrics."""

    __slots__ = (
        "_attempt",
        "_by_operation",
        "_hint",
        "_sent_at",
        "_token",
        "_waits",
        "attempts",
        "context",
        "redactor",
        "request",
        "span",
        "telemetry",
    )

    def __init__(
        self, telemetry: Telemetry, request: _sansio.Request, redactor: _sansio.Redactor
    ) -> None:
        self.telemetry = telemetry
        self.request = request
        # Clears the call's credential from anything recorded (a URL carries none,
        # unless a caller put it in a query parameter).
        self.redactor = redactor
        self.attempts = 0
        self._waits: dict[WaitReason, float] | None = None
        self._attempt: Span | None = None
        self._hint: float | None = None
        self._sent_at = 0.0
        self._by_operation = telemetry.of_operation(request.operation)
        try:
            telemetry.active_calls.add(1, self._by_operation)
        except Exception as error:
            telemetry.switch_off(Kind.METRICS, error)
        # The context with the call's span, when it records or propagates: its attempts'
        # parent; current while the call runs, so that its logs name it.
        self.context: otel_context.Context | None = None
        self._token: contextvars.Token[otel_context.Context] | None = None
        span: Span = INVALID_SPAN
        try:
            span = telemetry.tracer.start_span(request.operation, kind=SpanKind.INTERNAL)
            if span.get_span_context().is_valid:
                context = trace.set_span_in_context(span)
                if span.is_recording():
                    span.set_attributes(_call_attributes(request))
                # Last: nothing that can raise comes between attaching and keeping the
                # token that detaches it.
                self._token = otel_context.attach(context)
                self.context = context
        except Exception as error:
            telemetry.switch_off(Kind.SPANS, error)
        self.span = span

    def sending(self, headers: MutableMapping[str, str]) -> None:
        """An attempt starts: its span, and its traceparent in ``headers``."""
        self.attempts += 1
        if self.context is not None:
            self._attempt = self._attempt_span(headers, self.context)
        self._sent_at = self.telemetry.clock.monotonic()

    def _attempt_span(
        self, headers: MutableMapping[str, str], parent: otel_context.Context
    ) -> Span | None:
        telemetry, request = self.telemetry, self.request
        route = telemetry.route(request)
        attributes: dict[str, AttributeValue] = {
            "http.request.method": request.method,
            **telemetry.server,
            "url.full": self.redactor.text(telemetry.base_url + request.target),
            "url.template": route,
        }
        if self.attempts > 1:
            attributes["http.request.resend_count"] = self.attempts - 1
        try:
            span = telemetry.tracer.start_span(
                f"{request.method} {route}",
                context=parent,
                kind=SpanKind.CLIENT,
                attributes=attributes,
            )
        except Exception as error:
            telemetry.switch_off(Kind.SPANS, error)
            return None
        try:
            telemetry.inject(headers, trace.set_span_in_context(span, parent), _REPLACING)
        except Exception as error:
            telemetry.switch_off(Kind.PROPAGATION, error)
        return span

    def sent(self, response: _sansio.Response | None, error: BaseException | None) -> None:
        """The attempt ended: answered (``response``; ``error`` when it is not a
        success), or with no answer (``error`` alone)."""
        telemetry = self.telemetry
        seconds = telemetry.clock.monotonic() - self._sent_at
        status = response.status if response is not None else None
        if status is None and isinstance(error, ResponseError):
            status = error.status_code
        failure, attributes = telemetry.of_answer(self.request.method, status, error)
        refused = isinstance(error, RateLimitError)
        try:
            telemetry.request_duration.record(seconds, attributes)
            if refused:
                telemetry.refusals.add(1, self._by_operation)
        except Exception as broken:
            telemetry.switch_off(Kind.METRICS, broken)
        if isinstance(error, RateLimitError):
            self._hint = error.retry_after
        span, self._attempt = self._attempt, None
        if span is None:
            return
        try:
            if span.is_recording():
                _answered(span, response, error, status, failure)
            span.end()
        except Exception as broken:
            telemetry.switch_off(Kind.SPANS, broken)

    def waited(self, reason: WaitReason, seconds: float) -> None:
        """The call waited ``seconds`` for ``reason``."""
        if seconds <= 0:
            return
        if self._waits is None:
            self._waits = {}
        self._waits[reason] = self._waits.get(reason, 0.0) + seconds
        telemetry = self.telemetry
        try:
            telemetry.waits.record(seconds, telemetry.of_wait(self.request.operation, reason))
        except Exception as error:
            telemetry.switch_off(Kind.METRICS, error)

    def ended(self, error: BaseException | None) -> None:
        """The call ended: with ``error``, or its answer (None)."""
        telemetry = self.telemetry
        try:
            telemetry.active_calls.add(-1, self._by_operation)
        except Exception as broken:
            telemetry.switch_off(Kind.METRICS, broken)
        span = self.span
        try:
            if span.is_recording():
                waits = self._waits or {}
                span.set_attribute("whop.attempts", self.attempts)
                span.set_attribute("whop.rate_limit.waited", sum(waits.values(), 0.0))
                for reason, seconds in waits.items():
                    span.set_attribute(f"whop.rate_limit.wait.{reason.value}", seconds)
                if self._hint is not None:
                    span.set_attribute("whop.rate_limit.hint", self._hint)
                if error is not None:
                    _failed(span, error)
            span.end()
        except Exception as broken:
            telemetry.switch_off(Kind.SPANS, broken)
        finally:
            # Left attached, the call's span would parent whatever its caller does next.
            if self._token is not None:
                otel_context.detach(self._token)


def _call_attributes(request: _sansio.Request) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {"whop.operation": request.operation}
    segments = request.path.split("/")
    if len(segments) > 2 and segments[1] == "ad_groups":
        attributes["whop.ad_group.id"] = segments[2]
    return attributes


def _failed(span: Span, error: BaseException) -> None:
    """Mark ``span`` as ended by ``error``: its type, the exception, the status."""
    span.set_attribute("error.type", error_type(error))
    if isinstance(error, Exception):
        span.record_exception(error)
    span.set_status(StatusCode.ERROR, str(error) or None)


def _attempt_error_type(status: int | None, error: BaseException | None) -> str | None:
    """``error.type`` of an attempt: its status when 4xx or 5xx, else the class of the
    error that left it without an answer; None for a success."""
    if status is not None:
        return str(status) if status >= 400 else None
    return None if error is None else error_type(error)


def _answered(
    span: Span,
    response: _sansio.Response | None,
    error: BaseException | None,
    status: int | None,
    failure: str | None,
) -> None:
    """What the attempt's span records of its end, as the conventions say: the status
    code, and Error with ``error.type`` for 4xx, 5xx and no answer."""
    if status is not None:
        span.set_attribute("http.response.status_code", status)
    request_id = None
    if isinstance(error, ResponseError):
        request_id = error.request_id
    elif response is not None:
        request_id = request_id_in(response.headers)
    if request_id is not None:
        span.set_attribute("whop.request_id", request_id)
    if isinstance(error, APIStatusError) and error.retry_after is not None:
        span.set_attribute("whop.retry_after", error.retry_after)
    if failure is not None:
        span.set_attribute("error.type", failure)
        # The status code says why when there is one; without it, the error does.
        span.set_status(StatusCode.ERROR, None if status is not None else str(error) or None)


class _RunTrace:
    """A bulk run's span (its calls' parent) and its outcomes, counted."""

    def __init__(self, telemetry: Telemetry, operation: str, name: str) -> None:
        self._telemetry = telemetry
        self._operation = operation
        self.counts: collections.Counter[str] = collections.Counter()
        # By the error's class (NoneType for a success): its outcome and attributes.
        self._outcomes: dict[type, tuple[str, Attributes]] = {}
        self.span: Span = INVALID_SPAN
        self.context: otel_context.Context | None = None
        try:
            self.span = telemetry.tracer.start_span(
                name, kind=SpanKind.INTERNAL, attributes={"whop.operation": operation}
            )
            self.context = trace.set_span_in_context(self.span)
        except Exception as error:
            telemetry.switch_off(Kind.SPANS, error)

    def worker_context(self) -> contextvars.Context:
        """A context for one of the run's workers: the run's span current in it."""
        context = contextvars.copy_context()
        if self.context is not None:
            try:
                context.run(otel_context.attach, self.context)
            except Exception as error:
                self._telemetry.switch_off(Kind.SPANS, error)
        return context

    def _count(self, error: WhopError | None) -> str:
        """Count an id's outcome: in the run's span, and in ``whop.bulk.ids``."""
        found = self._outcomes.get(type(error))
        if found is None:
            found = self._outcomes[type(error)] = self._outcome(error)
        outcome, attributes = found
        self.counts[outcome] += 1
        try:
            self._telemetry.bulk_ids.add(1, attributes)
        except Exception as broken:
            self._telemetry.switch_off(Kind.METRICS, broken)
        return outcome

    def _outcome(self, error: WhopError | None) -> tuple[str, Attributes]:
        if error is None:
            outcome, failure = "succeeded", None
        elif isinstance(error, APIResponseValidationError):
            outcome, failure = "unreadable", None
        else:
            outcome, failure = "failed", error_type(error)
        attributes: dict[str, AttributeValue] = {
            "whop.operation": self._operation,
            "whop.bulk.outcome": outcome,
        }
        if failure is not None:
            attributes["error.type"] = failure
        return outcome, attributes

    def _end(
        self, error: BaseException | None, attributes: Attributes, stopped: str | None
    ) -> None:
        """End the span with the run's counts and ``attributes``: in error when the run
        raised ``error`` or ``stopped`` (how) before every id was done."""
        span = self.span
        try:
            if span.is_recording():
                for outcome in _OUTCOMES:
                    span.set_attribute(f"whop.bulk.{outcome}", self.counts[outcome])
                span.set_attributes(attributes)
                # Closed by its reader (an iter_unpause left early) is no failure of the run.
                if error is not None and not isinstance(error, GeneratorExit):
                    _failed(span, error)
                elif stopped is not None:
                    span.set_attribute("error.type", "whop_async.NotFinishedError")
                    span.set_status(StatusCode.ERROR, stopped)
            span.end()
        except Exception as broken:
            self._telemetry.switch_off(Kind.SPANS, broken)


class BulkTrace(_RunTrace):
    """A client's bulk run's span (its calls' parent) and its outcomes, counted; or an
    account's part of an Accounts run."""

    def __init__(self, telemetry: Telemetry, run: BulkRun, operation: str) -> None:
        super().__init__(telemetry, operation, f"{operation}_many")
        self.run = run

    def __enter__(self) -> BulkTrace:
        self.run.trace = self
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        reason = self.run.reason
        if reason is None:
            self._end(error, {}, None)
        else:
            self._end(error, {"whop.bulk.stop_reason": reason.value}, f"stopped: {reason.value}")

    def counting(self, deliver: Deliver) -> Deliver:
        """``deliver``, each outcome counted on its way."""

        def counted(
            index: int, ad_group_id: str, group: AdGroup | None, error: WhopError | None
        ) -> Awaitable[object] | None:
            self._count(error)
            return deliver(index, ad_group_id, group, error)

        return counted

    def calling(self, call: CallOne) -> CallOne:
        """``call``, each of its calls made in this run's span. An Accounts run's
        workers serve every account, so they cannot start in one account's span."""
        telemetry, context = self._telemetry, self.context
        if context is None or not self.span.get_span_context().is_valid:
            return call

        async def in_span(ad_group_id: str) -> AdGroup:
            try:
                token = otel_context.attach(context)
            except Exception as error:
                telemetry.switch_off(Kind.SPANS, error)
                return await call(ad_group_id)
            try:
                return await call(ad_group_id)
            finally:
                otel_context.detach(token)

        return in_span


class AccountsTrace(_RunTrace):
    """An Accounts run's one span, its totals, and a child span for each account's part
    (its calls' parent) with that account's counts and stop."""

    def __init__(self, telemetry: Telemetry, operation: str) -> None:
        super().__init__(telemetry, operation, f"{operation}_many")
        self._parts: dict[str, BulkTrace] = {}

    def __enter__(self) -> AccountsTrace:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        parts = len(self._parts)
        stopped = sum(part.run.reason is not None for part in self._parts.values())
        how = f"stopped: {stopped} of {parts} accounts" if stopped else None
        self._end(error, {"whop.bulk.accounts": parts}, how)

    def joined(self, account: str, run: BulkRun, call: CallOne) -> CallOne:
        """``account`` joined the run with its part ``run`` (whose span its client made,
        a child of the run's since the run's workers start it): its span named and
        marked as the account's part; ``call``, its calls made in that span."""
        part = run.trace
        if part is None:
            return call
        self._parts[account] = part
        try:
            part.span.update_name(f"{self._operation}_many.account")
            part.span.set_attribute("whop.account", account)
        except Exception as error:
            self._telemetry.switch_off(Kind.SPANS, error)
        return part.calling(call)

    def counting(self, deliver: _accounts.Deliver) -> _accounts.Deliver:
        """``deliver``, each outcome counted on its way: in the run's totals, in its
        account's part, and in ``whop.bulk.ids``."""

        def counted(
            index: int,
            account: str,
            ad_group_id: str,
            group: AdGroup | None,
            error: WhopError | None,
        ) -> Awaitable[object] | None:
            outcome = self._count(error)
            part = self._parts.get(account)
            if part is not None:  # none for a pair naming no account
                part.counts[outcome] += 1
            return deliver(index, account, ad_group_id, group, error)

        return counted
