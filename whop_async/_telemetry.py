"""Whether a client reports spans and metrics: with the ``otel`` extra
(opentelemetry-api) installed it does, through ``_otel``; without it, its telemetry is
None and nothing of OpenTelemetry is imported.

The call path asks one thing per call, whether the client's telemetry is None: a
client without the extra pays an attribute check and nothing else.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from . import _sansio
    from ._clock import Clock
    from ._otel import Telemetry


def telemetry_for(
    base_url: str,
    clock: Clock,
    redactor: _sansio.Redactor,
    *,
    tracer_provider: TracerProvider | None,
    meter_provider: MeterProvider | None,
) -> Telemetry | None:
    """A client's telemetry, or None when opentelemetry-api is not installed."""
    telemetry = _telemetry_class()
    if telemetry is None:
        return None
    return telemetry(
        base_url,
        clock,
        redactor,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
    )


@functools.cache
def _telemetry_class() -> type[Telemetry] | None:
    """``_otel.Telemetry``, or None without opentelemetry-api (asked once a process)."""
    try:
        from ._otel import Telemetry
    except ModuleNotFoundError as missing:
        if not (missing.name or "").startswith("opentelemetry"):
            raise
        return None
    return Telemetry
