"""The command's spans and metrics, exported as OpenTelemetry's standard environment
variables ask: over OTLP (``OTEL_EXPORTER_OTLP_ENDPOINT``, or ``OTEL_TRACES_EXPORTER`` /
``OTEL_METRICS_EXPORTER`` set to ``otlp``) or to the console (``console``), when the
``otlp`` extra is installed. Otherwise, or with ``OTEL_SDK_DISABLED=true``, nothing
is imported and nothing is said.

The providers are the command's own, handed to its clients, and shut down (their last
spans and metrics sent) when it ends: nothing global is set.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

SERVICE_NAME = "whop-async"
_KNOWN = ("otlp", "console")


@attrs.frozen
class Telemetry:
    """The command's providers: each None when its signal is not exported."""

    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None

    def client_options(self) -> dict[str, Any]:
        """The keyword arguments that send a WhopClient's spans and metrics here."""
        return {"tracer_provider": self.tracer_provider, "meter_provider": self.meter_provider}

    def shutdown(self) -> None:
        """Send what is left, and stop."""
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()


NO_TELEMETRY = Telemetry()


def exporters(environ: Mapping[str, str], signal: str) -> list[str]:
    """The exporters the environment asks for ``signal`` ("traces" or "metrics"):
    those ``OTEL_<SIGNAL>_EXPORTER`` names (comma-separated) that the command knows,
    ``otlp`` and ``console``; without it, ``otlp`` when an OTLP endpoint is set; else
    none: unasked, the command exports nothing."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    named = environ.get(f"OTEL_{signal.upper()}_EXPORTER")
    if named is not None:
        return [name for name in map(str.strip, named.lower().split(",")) if name in _KNOWN]
    endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
    return ["otlp"] if any(environ.get(name) for name in endpoints) else []


@contextlib.contextmanager
def exported(environ: Mapping[str, str] = os.environ) -> Iterator[Telemetry]:
    """The command's telemetry while it runs, as ``environ`` asks; sent at the end."""
    try:
        telemetry = _set_up(environ)
    except ImportError:  # the otlp extra is not installed: nothing is exported
        telemetry = NO_TELEMETRY
    try:
        yield telemetry
    finally:
        # Ctrl-C while the last are sent (to a collector that does not answer, say)
        # drops them: the command has ended, and ends with its own exit code.
        with contextlib.suppress(KeyboardInterrupt):
            telemetry.shutdown()


def _set_up(environ: Mapping[str, str]) -> Telemetry:
    span_exporters = [_span_exporter(name, environ) for name in exporters(environ, "traces")]
    metric_exporters = [_metric_exporter(name, environ) for name in exporters(environ, "metrics")]
    if not span_exporters and not metric_exporters:
        return NO_TELEMETRY
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create()  # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
    tracer_provider = None
    if span_exporters:
        tracer_provider = TracerProvider(resource=resource)
        for span_exporter in span_exporters:
            tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    meter_provider = None
    if metric_exporters:
        readers = [PeriodicExportingMetricReader(exporter) for exporter in metric_exporters]
        meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    return Telemetry(tracer_provider, meter_provider)


def _span_exporter(name: str, environ: Mapping[str, str]) -> SpanExporter:
    if name == "console":  # to stderr: stdout is the command's output
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(out=sys.stderr)
    exporter: SpanExporter = _otlp(environ, "traces", "trace_exporter").OTLPSpanExporter()
    return exporter


def _metric_exporter(name: str, environ: Mapping[str, str]) -> MetricExporter:
    if name == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        return ConsoleMetricExporter(out=sys.stderr)
    exporter: MetricExporter = _otlp(environ, "metrics", "metric_exporter").OTLPMetricExporter()
    return exporter


def _otlp(environ: Mapping[str, str], signal: str, module: str) -> Any:
    """The OTLP exporter module of the protocol asked for: HTTP with protobuf unless
    ``grpc`` is named (its exporter, opentelemetry-exporter-otlp-proto-grpc, is then
    needed too)."""
    protocol = environ.get(
        f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL",
        environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
    )
    transport = "grpc" if protocol.strip().lower() == "grpc" else "http"
    return importlib.import_module(f"opentelemetry.exporter.otlp.proto.{transport}.{module}")
