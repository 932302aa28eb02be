"""OpenTelemetry that raises (a broken provider, span processor, exemplar filter or
propagator) never breaks a call or a bulk run: whop_async says so once, on its logger,
and goes on without that kind of telemetry. The SDK is real; what is broken in it is
what an application could have set up."""

from __future__ import annotations

import logging
import textwrap
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import AlwaysOnExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import whop_async
from whop_async import _otel
from whop_async.testing import FakeWhop

from .helpers import Traceparents, python_alone

KEY = "sk_fault_0123456789abcdef"


class BrokenTracerProvider(TracerProvider):
    def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("tracer provider broken")


class BrokenMeterProvider(MeterProvider):
    def get_meter(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("meter provider broken")


class RaisingProcessor(SpanProcessor):
    """Raises when a span starts, or when it ends; counts the spans it was shown."""

    def __init__(self, *, on_start: bool = False, on_end: bool = False) -> None:
        self.raise_on_start, self.raise_on_end = on_start, on_end
        self.started = 0

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.started += 1
        if self.raise_on_start:
            raise RuntimeError("processor on_start broken")

    def on_end(self, span: ReadableSpan) -> None:
        if self.raise_on_end:
            raise RuntimeError("processor on_end broken")


class RaisingExemplarFilter(AlwaysOnExemplarFilter):
    """Asked by the SDK at every measurement: every add and record raises."""

    def should_sample(self, *args: Any, **kwargs: Any) -> bool:
        raise ValueError("exemplar filter broken")


class CarelessPropagator(TraceContextTextMapPropagator):
    """Raises with the headers it was given in its message, the key's among them."""

    def inject(self, carrier: Any, context: Any = None, setter: Any = None) -> None:
        raise ValueError(f"cannot inject into {dict(carrier)}")


@pytest.fixture(autouse=True)
def nothing_said_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    # whop_async says each kind once a process: each test starts as a fresh process.
    monkeypatch.setattr(_otel, "_SAID", set())


def client_of(fake: FakeWhop, **options: Any) -> whop_async.WhopClient:
    """A client of ``fake``, unlimited, with ``options`` (its providers)."""
    return whop_async.WhopClient(KEY, base_url=fake.base_url, rate_limit=None, **options)


@pytest.fixture
async def fake() -> AsyncIterator[FakeWhop]:
    async with FakeWhop(groups=8, api_key=KEY, rate_limit=None) as server:
        yield server


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "whop_async" and record.levelno == logging.WARNING
    ]


def metric_names(reader: InMemoryMetricReader) -> set[str]:
    data = reader.get_metrics_data()
    return {
        metric.name
        for resource in (data.resource_metrics if data is not None else [])
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }


async def every_kind_of_call(client: whop_async.WhopClient, fake: FakeWhop) -> None:
    """A call, a call that fails on its own, a bulk run: each as if all were well."""
    assert (await client.ad_groups.unpause(fake.ids[0])).id == fake.ids[0]
    with pytest.raises(whop_async.NotFoundError):
        await client.ad_groups.unpause("adgrp_unknown")
    result = await client.ad_groups.unpause_many(fake.ids[1:5])
    assert len(result.succeeded) == 4
    outcomes = [outcome async for outcome in client.ad_groups.iter_unpause(fake.ids[5:])]
    assert all(outcome.ok for outcome in outcomes)


async def test_a_tracer_provider_that_raises_leaves_the_calls_untraced_and_counted(
    fake: FakeWhop, reader: InMemoryMetricReader, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "whop_async")
    meter_provider = MeterProvider(metric_readers=[reader])
    for _ in range(2):  # a second client, as broken, is not said again
        client = client_of(
            fake, tracer_provider=BrokenTracerProvider(), meter_provider=meter_provider
        )
        async with client:
            await every_kind_of_call(client, fake)

    assert {"http.client.request.duration", "whop.bulk.ids"} <= metric_names(reader)
    [warning] = warnings_of(caplog)
    assert warning.startswith("OpenTelemetry raised RuntimeError at ")
    assert "in get_tracer when whop_async made or ended a span" in warning
    assert "this client makes no more spans from now on; its calls go on" in warning
    assert "tracer provider broken" not in warning  # its type, never its message
    meter_provider.shutdown()


async def test_a_meter_provider_that_raises_leaves_the_calls_uncounted_and_traced(
    fake: FakeWhop, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    client = client_of(fake, tracer_provider=tracer_provider, meter_provider=BrokenMeterProvider())
    async with client:
        await every_kind_of_call(client, fake)

    names = [span.name for span in exporter.get_finished_spans()]
    assert names.count("ad_groups.unpause") == 9
    assert names.count("ad_groups.unpause_many") == 2
    [warning] = warnings_of(caplog)
    assert "when whop_async recorded a metric" in warning
    assert "this client records no more metrics" in warning


async def test_a_span_processor_that_raises_switches_the_client_s_spans_off_not_its_metrics(
    fake: FakeWhop, reader: InMemoryMetricReader, caplog: pytest.LogCaptureFixture
) -> None:
    processor = RaisingProcessor(on_start=True)
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(processor)
    meter_provider = MeterProvider(metric_readers=[reader])
    client = client_of(fake, tracer_provider=tracer_provider, meter_provider=meter_provider)
    async with client:
        await every_kind_of_call(client, fake)
        await every_kind_of_call(client.with_options(timeout=5), fake)

    # Off for good from the first raise: not asked again, call after call.
    assert processor.started == 1
    assert "whop.bulk.ids" in metric_names(reader)
    [warning] = warnings_of(caplog)
    assert "in on_start when whop_async made or ended a span" in warning
    meter_provider.shutdown()


async def test_a_span_that_raises_as_it_ends_leaves_the_caller_s_span_current(
    fake: FakeWhop, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "whop_async")
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(RaisingProcessor(on_end=True))
    theirs = TracerProvider().get_tracer("the application")
    client = client_of(fake, tracer_provider=tracer_provider)
    async with client:
        with theirs.start_as_current_span("the application's") as span:
            await client.ad_groups.unpause(fake.ids[0])
            # The call's span raised again as it ended: it is no longer current.
            assert trace.get_current_span() is span
            await client.ad_groups.unpause(fake.ids[1])

    said = [
        (record.levelno, record.getMessage().split(" at ")[0])
        for record in caplog.records
        if record.name == "whop_async" and record.getMessage().startswith("OpenTelemetry")
    ]
    # The attempt's span raised first, then the call's: said once, then quietly.
    assert said == [
        (logging.WARNING, "OpenTelemetry raised RuntimeError"),
        (logging.DEBUG, "OpenTelemetry raised RuntimeError"),
    ]


async def test_a_metric_that_raises_as_it_is_recorded_switches_metrics_off_not_spans(
    fake: FakeWhop, reader: InMemoryMetricReader, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[reader], exemplar_filter=RaisingExemplarFilter())
    client = client_of(fake, tracer_provider=tracer_provider, meter_provider=meter_provider)
    async with client:
        await every_kind_of_call(client, fake)

    [run, _] = [s for s in exporter.get_finished_spans() if s.name == "ad_groups.unpause_many"]
    assert dict(run.attributes or {})["whop.bulk.succeeded"] == 4
    [warning] = warnings_of(caplog)
    assert warning.startswith("OpenTelemetry raised ValueError at ")
    assert "in should_sample when whop_async recorded a metric" in warning
    meter_provider.shutdown()


async def test_a_propagator_that_raises_stops_the_trace_context_never_the_calls_nor_says_the_key(
    fake: FakeWhop, caplog: pytest.LogCaptureFixture
) -> None:
    sent = Traceparents()
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    was = propagate.get_global_textmap()
    propagate.set_global_textmap(CarelessPropagator())
    try:
        async with (
            aiohttp.ClientSession(trace_configs=[sent.trace]) as session,
            client_of(fake, session=session, tracer_provider=tracer_provider) as client,
        ):
            await every_kind_of_call(client, fake)
    finally:
        propagate.set_global_textmap(was)

    assert sent.seen == [None] * 9
    names = [span.name for span in exporter.get_finished_spans()]
    assert names.count("POST /ad_groups/{id}/unpause") == 9  # the spans go on
    [warning] = warnings_of(caplog)
    assert "when whop_async put the trace context in a request's headers" in warning
    assert "this client sends no trace context from now on" in warning
    assert KEY not in caplog.text


GLOBAL_SET_UP_LATER = textwrap.dedent(
    """
    import asyncio, logging
    import whop_async
    from opentelemetry import trace
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from whop_async.testing import FakeWhop

    class Raising(SpanProcessor):
        def on_start(self, span, parent_context=None):
            raise RuntimeError("processor on_start broken")

    said = []
    handler = logging.Handler()
    handler.emit = lambda record: said.append((record.levelname, record.getMessage()[:30]))
    logging.getLogger("whop_async").addHandler(handler)

    async def main():
        async with FakeWhop(groups=30, rate_limit=None) as fake:
            async with whop_async.WhopClient(
                fake.api_key, base_url=fake.base_url, rate_limit=None
            ) as client:
                await client.ad_groups.unpause(fake.ids[0])
                provider = TracerProvider()
                provider.add_span_processor(Raising())
                trace.set_tracer_provider(provider)
                await asyncio.sleep(1.1)  # the client looks again once a second
                await client.ad_groups.unpause(fake.ids[1])
                result = await client.ad_groups.unpause_many(fake.ids[2:])
                return len(result.succeeded)

    print(asyncio.run(main()), said)
    """
)


def test_a_global_set_up_whose_spans_raise_made_after_the_client_breaks_none_of_its_calls() -> None:
    # In a process of its own: OpenTelemetry's global provider can be set once.
    done = python_alone(GLOBAL_SET_UP_LATER)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "28 [('WARNING', 'OpenTelemetry raised RuntimeEr')]\n"


PROVIDERS_THAT_CANNOT_LOAD = textwrap.dedent(
    """
    import asyncio
    import opentelemetry.trace
    import whop_async
    from whop_async.testing import FakeWhop

    async def main():
        async with FakeWhop(groups=3, rate_limit=None) as fake:
            async with whop_async.WhopClient(
                fake.api_key, base_url=fake.base_url, rate_limit=None
            ) as client:
                await client.ad_groups.unpause(fake.ids[0])
                result = await client.ad_groups.unpause_many(fake.ids[1:])
                return len(result.succeeded)

    print(asyncio.run(main()))
    """
)


def test_global_providers_named_by_the_environment_that_cannot_load_break_no_call() -> None:
    done = python_alone(
        PROVIDERS_THAT_CANNOT_LOAD,
        OTEL_PYTHON_TRACER_PROVIDER="no_such_provider",
        OTEL_PYTHON_METER_PROVIDER="no_such_provider",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "2\n"
