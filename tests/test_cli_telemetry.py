"""The command line's spans and metrics: sent over OTLP, or to the console, when the
standard OTEL_* variables ask for them and the otlp extra is installed; not a word
otherwise."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
import sys
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from whop_async.testing import FakeWhop

from .cli_support import CLI, ended, environment_for


class Collector:
    """An OTLP/HTTP receiver on 127.0.0.1: what arrived at /v1/traces and /v1/metrics."""

    def __init__(self) -> None:
        self.traces: list[ExportTraceServiceRequest] = []
        self.metrics: list[ExportMetricsServiceRequest] = []
        self.url = ""

    async def _traces(self, request: web.Request) -> web.Response:
        self.traces.append(ExportTraceServiceRequest.FromString(await request.read()))
        return web.Response(content_type="application/x-protobuf")

    async def _metrics(self, request: web.Request) -> web.Response:
        self.metrics.append(ExportMetricsServiceRequest.FromString(await request.read()))
        return web.Response(content_type="application/x-protobuf")

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Collector]:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        app.router.add_post("/v1/metrics", self._metrics)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        self.url = str(server.make_url("")).rstrip("/")
        try:
            yield self
        finally:
            await server.close()

    def span_names(self) -> collections.Counter[str]:
        return collections.Counter(
            span.name
            for request in self.traces
            for resource in request.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        )

    def metric_names(self) -> set[str]:
        return {
            metric.name
            for request in self.metrics
            for resource in request.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
        }

    def service_names(self) -> set[str]:
        return {
            attribute.value.string_value
            for request in self.traces
            for resource in request.resource_spans
            for attribute in resource.resource.attributes
            if attribute.key == "service.name"
        }


async def command(
    *args: str, fake: FakeWhop, otel: dict[str, str], python: list[str] | None = None
) -> tuple[int, str, str]:
    """The command run to its end with only the OTEL_* variables of ``otel``."""
    environment = {
        name: value for name, value in environment_for(fake).items() if not name.startswith("OTEL_")
    }
    process = await asyncio.create_subprocess_exec(
        *(python or CLI), *args, env=environment | otel,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await ended(process, process.communicate())
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_a_run_is_sent_over_otlp_when_an_endpoint_is_set() -> None:
    async with FakeWhop(groups=3, rate_limit=None) as fake, Collector().running() as collector:
        code, _, stderr = await command(
            "unpause", *fake.ids, fake=fake, otel={"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url}
        )
    assert code == 0, stderr
    assert collector.span_names() == {
        "ad_groups.unpause_many": 1,
        "ad_groups.unpause": 3,
        "POST /ad_groups/{id}/unpause": 3,
    }
    assert collector.service_names() == {"whop-async"}
    assert {
        "http.client.request.duration",
        "whop.client.active_calls",
        "whop.bulk.ids",
    } <= collector.metric_names()


async def test_the_console_exporter_writes_to_stderr_and_leaves_stdout_alone() -> None:
    async with FakeWhop(groups=2, rate_limit=None) as fake:
        code, stdout, stderr = await command(
            "list",
            fake=fake,
            otel={"OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "none"},
        )
    assert code == 0, stderr
    assert sorted(stdout.split()) == fake.ids  # newest first
    assert '"name": "GET /ad_groups"' in stderr
    assert '"name": "ad_groups.list"' in stderr


async def test_unasked_or_told_none_the_command_sends_and_says_nothing() -> None:
    async with FakeWhop(groups=2, rate_limit=None) as fake, Collector().running() as collector:
        quiet = await command("unpause", *fake.ids, fake=fake, otel={})
        fake.reset()
        told_none = await command(
            "unpause",
            *fake.ids,
            fake=fake,
            otel={
                "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
                "OTEL_TRACES_EXPORTER": "none",
                "OTEL_METRICS_EXPORTER": "none",
            },
        )
        fake.reset()
        disabled = await command(
            "unpause",
            *fake.ids,
            fake=fake,
            otel={"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_SDK_DISABLED": "true"},
        )
    assert quiet[0] == told_none[0] == disabled[0] == 0
    # The same summary, whatever its figures and their widths: not a word more.
    said = {re.sub(r"[^A-Za-z]", "", stderr) for _, _, stderr in (quiet, told_none, disabled)}
    assert len(said) == 1
    assert (collector.traces, collector.metrics) == ([], [])


WITHOUT_THE_EXPORTER = """
import importlib.abc, sys

class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.startswith(("opentelemetry.exporter", "opentelemetry.sdk")):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NotInstalled())
from whop_async.cli import run
sys.argv[0] = "whop-async"
run()
"""


async def test_without_the_otlp_extra_an_endpoint_changes_nothing() -> None:
    async with FakeWhop(groups=2, rate_limit=None) as fake, Collector().running() as collector:
        code, _, stderr = await command(
            "unpause",
            *fake.ids,
            fake=fake,
            otel={"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url},
            python=[sys.executable, "-c", WITHOUT_THE_EXPORTER],
        )
    assert code == 0, stderr
    assert "OTEL" not in stderr
    assert "opentelemetry" not in stderr
    assert (collector.traces, collector.metrics) == ([], [])
