"""CPU per call, as the difference between a run of N ids and one of 5N ids.

    python bench/cpu.py [--ids 2000] [--rounds 5] [--clients a,b]
    python bench/cpu.py --otel    # what OpenTelemetry costs: the three otel rows alone
    python bench/cpu.py --otel --instructions --ids 500 --rounds 1   # the same, counted

Each run is a fresh process driving N (or 5N) unpauses through one client against the
stand-in server (``whop-async fake-server``, no limit) in its own process; its CPU is
the child's user + sys time from rusage. Interpreter start-up and imports cost the same
in both runs, so ``(cpu(5N) - cpu(N)) / 4N`` is what one call costs and nothing else.
The clients run interleaved, round after round, and each figure is the median of the
rounds: CPU time repeats within about 10 % on a busy machine where wall-clock
throughput moves by 30 %.

``--instructions`` counts instead the user-space instructions of each child under
valgrind's cachegrind (slower by about 50 times, and the same from run to run within
0.5 %): a difference of a few per cent, lost in CPU time's noise, shows there. The
kernel's share of a call (the sockets) is not counted, so a share of instructions
overstates the same share of CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.abc
import os
import re
import resource
import statistics
import sys
from collections.abc import Awaitable, Callable

import aiohttp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import KEY, OPEN_FLAGS, standin

import whop_async

CONCURRENCY = 64
FAR_ABOVE = whop_async.RateLimit(10**6, per=1.0, burst=10**4)  # on, never reached


async def _bare(base: str, ids: list[str], loads: Callable[[bytes], object]) -> int:
    headers = {"Authorization": f"Bearer {KEY}", "Accept": "application/json"}
    done = 0
    queue = iter(ids)
    async with aiohttp.ClientSession() as session:

        async def worker() -> None:
            nonlocal done
            for ad_group_id in queue:
                url = f"{base}/api/v1/ad_groups/{ad_group_id}/unpause"
                async with session.post(url, headers=headers) as answer:
                    loads(await answer.read())
                    done += answer.status == 200

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return done


async def bare_json(base: str, ids: list[str]) -> int:
    """A bare aiohttp loop decoding with the json module."""
    import json

    return await _bare(base, ids, json.loads)


async def bare_orjson(base: str, ids: list[str]) -> int:
    """A bare aiohttp loop decoding with orjson (what whop_async uses when installed)."""
    import orjson

    return await _bare(base, ids, orjson.loads)


async def unpause_many(base: str, ids: list[str]) -> int:
    """whop_async's bulk unpause, rate limiter on (far above the load)."""
    async with whop_async.WhopClient(KEY, base_url=f"{base}/api/v1", rate_limit=FAR_ABOVE) as c:
        result = await c.ad_groups.unpause_many(ids, concurrency=CONCURRENCY)
    return len(result.succeeded)


class _OpenTelemetryNotInstalled(importlib.abc.MetaPathFinder):
    """Makes ``opentelemetry`` unimportable, as it is without the otel extra."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.split(".")[0] == "opentelemetry":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


async def unpause_many_without_otel(base: str, ids: list[str]) -> int:
    """unpause_many as without the otel extra (opentelemetry cannot be imported)."""
    sys.meta_path.insert(0, _OpenTelemetryNotInstalled())
    return await unpause_many(base, ids)


async def unpause_many_otel_imported(base: str, ids: list[str]) -> int:
    """unpause_many in an application that imports OpenTelemetry's API (for its own
    spans, say) and sets nothing up."""
    import opentelemetry.metrics
    import opentelemetry.trace  # noqa: F401

    return await unpause_many(base, ids)


async def unpause_many_otel_imported_untraced(base: str, ids: list[str]) -> int:
    """The row above with whop_async's telemetry off (a private switch, here only to be
    measured): what importing OpenTelemetry costs the application by itself."""
    import opentelemetry.metrics
    import opentelemetry.trace  # noqa: F401

    from whop_async import _telemetry

    _telemetry._installed = lambda: False  # type: ignore[method-assign]
    return await unpause_many(base, ids)


async def unpause_many_with_sdk(base: str, ids: list[str]) -> int:
    """unpause_many with the OpenTelemetry SDK set up: every span recorded and batched
    to an exporter that drops it (the export's own cost, its encoding and I/O, is not
    counted), every metric aggregated."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Dropped(SpanExporter):
        def export(self, spans: object) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Dropped()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    try:
        async with whop_async.WhopClient(
            KEY,
            base_url=f"{base}/api/v1",
            rate_limit=FAR_ABOVE,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
        ) as c:
            result = await c.ad_groups.unpause_many(ids, concurrency=CONCURRENCY)
    finally:
        tracer_provider.shutdown()
        meter_provider.shutdown()
    return len(result.succeeded)


async def unpause_each(base: str, ids: list[str]) -> int:
    """whop_async's single unpause, from 64 tasks."""
    done = 0
    queue = iter(ids)
    async with whop_async.WhopClient(KEY, base_url=f"{base}/api/v1", rate_limit=FAR_ABOVE) as c:

        async def worker() -> None:
            nonlocal done
            for ad_group_id in queue:
                await c.ad_groups.unpause(ad_group_id)
                done += 1

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return done


async def _through_transport(base: str, ids: list[str], *, models: bool) -> int:
    # whop_async's own layers, one at a time: private modules, here only to be measured.
    from whop_async import _json, _sansio
    from whop_async._converter import structure
    from whop_async._transport import Transport

    transport = Transport(f"{base}/api/v1")
    common = _sansio.client_headers(KEY, api_version=None, default_headers=None)
    done = 0
    queue = iter(ids)

    async def worker() -> None:
        nonlocal done
        for ad_group_id in queue:
            path = f"/ad_groups/{_sansio.path_param('ad_group_id', ad_group_id)}/unpause"
            headers = {**common, "Idempotency-Key": _sansio.new_idempotency_key()}
            answer = await transport.send("POST", path, headers, 30.0)
            data = _json.loads(answer.body)
            if models:
                structure(data, whop_async.AdGroup, source=answer.body)
            done += answer.status == 200

    try:
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    finally:
        await transport.close()
    return done


async def transport_only(base: str, ids: list[str]) -> int:
    """whop_async's transport and decoder alone (private modules)."""
    return await _through_transport(base, ids, models=False)


async def transport_and_models(base: str, ids: list[str]) -> int:
    """whop_async's transport, decoder and models (private modules)."""
    return await _through_transport(base, ids, models=True)


CLIENTS: dict[str, Callable[[str, list[str]], Awaitable[int]]] = {
    "bare aiohttp + json": bare_json,
    "bare aiohttp + orjson": bare_orjson,
    "transport only": transport_only,
    "+ models": transport_and_models,
    "whop_async unpause_many": unpause_many,
    "whop_async unpause from 64 tasks": unpause_each,
    "unpause_many, no otel extra": unpause_many_without_otel,
    "unpause_many, otel extra, unused": unpause_many,
    "unpause_many, otel imported, not set up": unpause_many_otel_imported,
    "unpause_many, otel imported, telemetry off": unpause_many_otel_imported_untraced,
    "unpause_many, otel SDK set up": unpause_many_with_sdk,
}
OTEL = [label for label in CLIENTS if label.startswith("unpause_many, ")]


def probe(label: str, base: str, count: int, tag: str) -> None:
    """The child: drive ``count`` ids through the client named ``label``."""
    ids = [f"adgrp_{tag}{index:09d}" for index in range(count)]
    done = asyncio.run(CLIENTS[label](base, ids))
    if done != count:
        raise SystemExit(f"{label}: {done} of {count} returned an ad group")


async def child_cpu(label: str, base: str, count: int, tag: str) -> float:
    """CPU seconds (user + sys) of a fresh process driving ``count`` ids."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--probe", label, base, str(count), tag
    )
    if await child.wait() != 0:
        raise SystemExit(f"{label} failed")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


async def child_instructions(label: str, base: str, count: int, tag: str) -> float:
    """Thousands of user-space instructions of a fresh process driving ``count`` ids,
    as cachegrind counts them."""
    child = await asyncio.create_subprocess_exec(
        "valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
        sys.executable, __file__, "--probe", label, base, str(count), tag,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, report = await child.communicate()
    counted = re.search(rb"I\s+refs:\s+([\d,]+)", report)
    if child.returncode != 0 or counted is None:
        raise SystemExit(f"{label} failed: {report.decode(errors='replace')[-2000:]}")
    return int(counted.group(1).replace(b",", b"")) / 1000


async def main(count: int, rounds: int, labels: list[str], *, instructions: bool) -> None:
    measure = child_instructions if instructions else child_cpu
    unit = "thousand instructions" if instructions else "CPU (us)"
    per_call: dict[str, list[float]] = {label: [] for label in labels}
    async with standin(OPEN_FLAGS) as base:
        for number in range(rounds):
            for label in labels:
                small = await measure(label, base, count, f"{number}s")
                large = await measure(label, base, 5 * count, f"{number}l")
                per_call[label].append((large - small) / (4 * count) * (1 if instructions else 1e6))
    medians = {label: statistics.median(values) for label, values in per_call.items()}
    what = "instructions" if instructions else "cpu"
    print(
        f"\n## {unit} per call: ({what}(5N) - {what}(N)) / 4N, N = {count:,},"
        f" median of {rounds} rounds\n"
    )
    print(f"| client | {unit} a call | rounds | vs bare orjson | vs bare json |")
    print("| --- | --- | --- | --- | --- |")
    for label, value in medians.items():
        spread = ", ".join(f"{v:.0f}" for v in per_call[label])
        orjson_ratio = value / medians.get("bare aiohttp + orjson", value)
        json_ratio = value / medians.get("bare aiohttp + json", value)
        print(f"| {label} | {value:.0f} | {spread} | {orjson_ratio:.2f} x | {json_ratio:.2f} x |")
    no_extra, imported, untraced = OTEL[0], OTEL[2], OTEL[3]
    if no_extra in per_call:
        others = [label for label in OTEL[1:] if label in per_call and label != untraced]
        _versus(no_extra, per_call, others)
    if imported in per_call and untraced in per_call:
        _versus(untraced, per_call, [imported])


def _versus(base: str, per_call: dict[str, list[float]], others: list[str]) -> None:
    """Each of ``others`` against ``base``, round by round (the runs of a round are
    interleaved, so a round's ratio is less noisy than the ratio of medians)."""
    print(f"\n## Against {base}: the median of each round's ratio\n")
    print("| client | more a call | rounds |")
    print("| --- | --- | --- |")
    for label in others:
        pairs = zip(per_call[label], per_call[base], strict=True)
        ratios = [value / reference for value, reference in pairs]
        spread = ", ".join(f"{ratio - 1:+.1%}" for ratio in ratios)
        print(f"| {label} | {statistics.median(ratios) - 1:+.1%} | {spread} |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--probe":
        probe(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", type=int, default=2000, help="N (2000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (5)")
    parser.add_argument("--clients", help="comma-separated client names (all)")
    parser.add_argument("--otel", action="store_true", help="the OpenTelemetry rows alone")
    parser.add_argument(
        "--instructions", action="store_true", help="count instructions (valgrind) not CPU"
    )
    options = parser.parse_args()
    chosen = options.clients.split(",") if options.clients else list(CLIENTS)
    if options.otel:
        chosen = OTEL
    asyncio.run(main(options.ids, options.rounds, chosen, instructions=options.instructions))
