"""A client's spans and metrics: OpenTelemetry's, through ``_otel``, from the moment the
application uses OpenTelemetry; nothing before.

Without the ``otel`` extra (opentelemetry-api) a client has no telemetry at all (None):
the call path reads one attribute per call, and nothing of OpenTelemetry is imported.
With it, nothing is imported either until the application imports OpenTelemetry itself
(to set it up, or to carry a trace in) or gives the client providers: until then a call
costs a look at the clock, and whether OpenTelemetry is in use is looked at again once
a second.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import math
import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from . import _otel
    from ._bulk import BulkRun
    from ._call import Call
    from ._clock import Clock
    from ._otel import AccountsTrace
    from ._shaping import Finish

T = TypeVar("T")

# How often a client looks again whether the application uses OpenTelemetry.
LOOK_AGAIN = 1.0
# Imported by every part of OpenTelemetry's API (traces, metrics, propagation, baggage).
_IN_USE = "opentelemetry.context"


def telemetry_for(
    base_url: str,
    clock: Clock,
    *,
    tracer_provider: TracerProvider | None,
    meter_provider: MeterProvider | None,
) -> Telemetry | None:
    """The telemetry of the clients on one session, or None when opentelemetry-api is
    not installed."""
    if tracer_provider is None and meter_provider is None and not _installed():
        return None
    return Telemetry(
        base_url, clock, tracer_provider=tracer_provider, meter_provider=meter_provider
    )


@functools.cache
def _installed() -> bool:
    """Whether opentelemetry-api can be imported (asked once a process; nothing of it is
    imported to know)."""
    try:
        return importlib.util.find_spec("opentelemetry") is not None
    except (ImportError, ValueError):  # blocked, or an entry of None in sys.modules
        return False


class Telemetry:
    """The telemetry of the clients on one session (a client and those made from it
    with ``with_options``, or an Accounts' clients): ``_otel.Telemetry`` once the
    application uses OpenTelemetry, nothing before."""

    def __init__(
        self,
        base_url: str,
        clock: Clock,
        *,
        tracer_provider: TracerProvider | None,
        meter_provider: MeterProvider | None,
    ) -> None:
        self._base_url, self._clock = base_url, clock
        self._otel: _otel.Telemetry | None = None
        self._look_again_at = -math.inf
        if tracer_provider is not None or meter_provider is not None:
            self._otel = self._made(tracer_provider, meter_provider)

    def traced(self, call: Call, finish: Finish[T]) -> Coroutine[None, None, T]:
        """``call`` (what ``finish`` makes of its answer) to await, traced and counted
        when OpenTelemetry is in use."""
        otel = self._otel or self._in_use()
        return call.run(finish) if otel is None else otel.traced(call, finish)

    def bulk(self, run: BulkRun, operation: str) -> contextlib.AbstractContextManager[object]:
        """What to enter around ``run``, a bulk run of ``operation``: its span and
        counts, when OpenTelemetry is in use."""
        otel = self._otel or self._in_use()
        return contextlib.nullcontext() if otel is None else otel.bulk(run, operation)

    def accounts_run(
        self, operation: str
    ) -> contextlib.AbstractContextManager[AccountsTrace | None]:
        """What to enter around an Accounts run of ``operation``: its span, its
        accounts' spans and its counts, when OpenTelemetry is in use."""
        otel = self._otel or self._in_use()
        return contextlib.nullcontext() if otel is None else otel.accounts_run(operation)

    def _in_use(self) -> _otel.Telemetry | None:
        now = self._clock.monotonic()
        if now < self._look_again_at:
            return None
        self._look_again_at = now + LOOK_AGAIN
        if _IN_USE not in sys.modules:
            return None
        self._otel = self._made(None, None)
        return self._otel

    def _made(
        self, tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None
    ) -> _otel.Telemetry | None:
        try:
            from ._otel import Telemetry
        except ModuleNotFoundError as missing:  # a part of OpenTelemetry's API is missing
            if not (missing.name or "").startswith("opentelemetry"):
                raise
            self._look_again_at = math.inf
            return None
        return Telemetry(
            self._base_url,
            self._clock,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
        )
