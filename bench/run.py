"""whop_async against a bare aiohttp loop (and whop-sdk, when installed), side by side,
against servers that limit and fail the ways real ones do.

"lost" counts ids the server never unpaused; "unconfirmed" counts ids whose call did
not return an ad group to the caller (unpaused or not).

    python bench/run.py [--scenarios bucket-ra,window-m,...] [--rounds N] [--memory-ids N ...]

Each scenario starts whop_async's stand-in server (``whop-async fake-server``) in its own
process on 127.0.0.1, drives the same ids through every client in turn, and prints one
row per client with its ratios. Each heading says the scenario's target.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp

import whop_async

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests import workers  # the worker processes the tests run too

KEY = "sk_bench"
CONCURRENCY = 64


@dataclasses.dataclass
class Run:
    """What one client did: how many calls returned an ad group, and when (seconds
    after the client started)."""

    confirmed: int = 0
    stamps: list[float] = dataclasses.field(default_factory=list)
    started: float = dataclasses.field(default_factory=time.perf_counter)

    def confirm(self) -> None:
        self.confirmed += 1
        self.stamps.append(time.perf_counter() - self.started)


Driver = Callable[[str, list[str]], Awaitable[Run]]


@dataclasses.dataclass(frozen=True)
class Phases:
    """A limit that changes mid-run: our rate in each span (seconds into the run), and
    how long after ``back_at`` it takes to stay within 10 % of ``limit`` a second."""

    spans: dict[str, tuple[float, float]]
    back_at: float
    limit: float


@dataclasses.dataclass(frozen=True)
class Scenario:
    """A server (fake-server flags), the ids driven through it, and the ideal: the
    seconds of a perfect client, counting the server's opening allowance as instant
    (None: no server limit)."""

    title: str
    target: str
    flags: list[str]
    ids: int
    ideal: float | None
    told: whop_async.RateLimit | None = None  # a second whop_async row, told this limit
    sdk: bool = False  # a whop-sdk row too, when it is installed
    phases: Phases | None = None


OPEN_FLAGS = ["--rate", "0"]  # no server limit: throughput, scaling, memory
BUCKET = ["--rate", "100", "--per", "1", "--limiter", "bucket", "--burst", "10"]
TOLD_100 = whop_async.RateLimit(100, per=1.0)
LIMITED = "0 lost; <= {x} x ideal; 429s <= 10 % discovering, <= 5 % told"
RECOVERS = "; within 10 % of the limit <= 10 s after it comes back"

SCENARIOS = {
    "bucket-ms": Scenario("token bucket 100/s, burst 10, retry-after-ms", LIMITED.format(x=1.3),
                          [*BUCKET, "--hint", "retry-after-ms"], 600, (600 - 10) / 100,
                          TOLD_100, sdk=True),
    "bucket-ra": Scenario("token bucket 100/s, burst 10, Retry-After in whole seconds",
                          LIMITED.format(x=1.3), [*BUCKET, "--hint", "retry-after"], 600,
                          (600 - 10) / 100, TOLD_100),
    "window-s": Scenario("Whop-style fixed window, 50 per 1 s, only the message as a hint",
                         LIMITED.format(x="1.3 (told: 1.5)"), ["--rate", "50", "--per", "1"],
                         300, 300 / 50 - 1, whop_async.RateLimit(50, per=1.0, burst=1),
                         sdk=True),
    "window-m": Scenario("Whop-style fixed window scaled down, 300 per 10 s, message only",
                         LIMITED.format(x="1.3 (told: 1.5)"), ["--rate", "300", "--per", "10"],
                         900, 900 / 300 * 10 - 10, whop_async.RateLimit(300, per=10.0, burst=1)),
    "sliding": Scenario("sliding log, 100 in any 1 s, message only", LIMITED.format(x=1.3),
                        ["--rate", "100", "--per", "1", "--limiter", "sliding"], 600,
                        (600 - 100) / 100, TOLD_100),
    "nohint": Scenario("token bucket 100/s, burst 10, 429s with no hint at all",
                       LIMITED.format(x=1.5), [*BUCKET, "--hint", "none"], 600,
                       (600 - 10) / 100, TOLD_100),
    "stricter": Scenario("token bucket 50/s, burst 10, message only; told 100/s",
                         LIMITED.format(x=1.3), ["--rate", "50", "--per", "1", "--limiter",
                         "bucket", "--burst", "10"], 600, (600 - 10) / 50, TOLD_100),
    "neighbour": Scenario("token bucket 100/s, burst 10, message only; a neighbour takes "
                          "40/s for the first 5 s", LIMITED.format(x=1.5) + RECOVERS,
                          [*BUCKET, "--neighbour-rate", "40", "--neighbour-for", "5"], 1500,
                          5 + (1500 - 10 - 5 * 60) / 100, TOLD_100,
                          phases=Phases({"before (/s)": (1, 5)}, back_at=5, limit=100)),
    "drop": Scenario("token bucket 100/s, burst 10, message only; 50/s from 3 s to 7 s",
                     LIMITED.format(x=1.5) + RECOVERS, [*BUCKET, "--limit-drop", "3,4,2"],
                     1500, 7 + (1500 - 10 - 3 * 100 - 4 * 50) / 100, TOLD_100,
                     phases=Phases({"before (/s)": (1, 3), "during (/s)": (3, 7)}, back_at=7,
                                   limit=100)),
    "outage": Scenario("token bucket 100/s, burst 10, retry-after-ms; down (HTML 503s) "
                       "from 1 s to 7 s", "all succeed; <= outage + normal run + a few "
                       "seconds; extra requests <= about half the ids",
                       [*BUCKET, "--hint", "retry-after-ms", "--outage", "1,6"], 300,
                       6 + (300 - 2 * 10) / 100, TOLD_100),  # a burst at the start and after
    "retries": Scenario("no limit; 20 of 255 ids fail twice (503), 2 % dropped connections",
                        "all succeed", ["--rate", "0", "--fail-first", "2",
                        "--fail-first-ids", ",".join(f"adgrp_{n:08d}" for n in range(0, 255, 13)),
                        "--drop-rate", "0.02", "--seed", "1"], 255, None),
    "faults": Scenario("10 % injected 500/502/503 and dropped connections", "0 lost",
                       ["--rate", "0", "--fault-rate", "0.075", "--drop-rate", "0.025",
                        "--seed", "1"], 2000, None, sdk=True),
}  # fmt: skip
# The names these scenarios had before the servers could send other hints.
ALIASES = {"bucket": "bucket-ms", "window": "window-s"}


@contextlib.asynccontextmanager
async def standin(flags: list[str]) -> AsyncIterator[str]:
    """The stand-in server in another process; yields its root URL."""
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "whop_async", "fake-server", "--port", "0", "--groups", "0",
        "--api-key", KEY, "--accept-any-id", *flags,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert server.stdout is not None
    base_url = (await server.stdout.readline()).decode().strip().partition("=")[2]
    try:
        yield base_url.removesuffix("/api/v1")
    finally:
        server.terminate()
        await server.wait()


async def server_call(base: str, method: str, path: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.request(method, base + path) as r:
        answer: dict[str, Any] = await r.json()
        return answer


async def bare_aiohttp(base: str, ids: list[str]) -> Run:
    """The floor: 64 workers, one POST each, no retries, no parsing beyond json."""
    queue = iter(ids)
    run = Run()
    headers = {"Authorization": f"Bearer {KEY}", "Accept": "application/json"}

    async def worker(session: aiohttp.ClientSession) -> None:
        for ad_group_id in queue:
            with contextlib.suppress(aiohttp.ClientError):
                url = f"{base}/api/v1/ad_groups/{ad_group_id}/unpause"
                async with session.post(url, headers=headers) as answer:
                    await answer.json()
                    if answer.status == 200:
                        run.confirm()

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(CONCURRENCY)))
    return run


async def with_whop_async(
    base: str, ids: list[str], rate_limit: whop_async.RateLimit | None = None
) -> Run:
    run = Run()

    def record(outcome: whop_async.Outcome) -> None:
        if outcome.ok:
            run.confirm()

    base_url = f"{base}/api/v1"
    async with whop_async.WhopClient(KEY, base_url=base_url, rate_limit=rate_limit) as client:
        await client.ad_groups.unpause_many(ids, concurrency=CONCURRENCY, on_outcome=record)
    return run


async def with_whop_sdk(base: str, ids: list[str]) -> Run:
    from whop_sdk import AsyncWhop  # type: ignore[import-not-found]
    from whop_sdk.environment import WhopEnvironment  # type: ignore[import-not-found]

    api = f"{base}/api/v1"
    client = AsyncWhop(token=KEY, environment=WhopEnvironment(api=api, vault=api))
    queue = iter(ids)
    run = Run()

    async def worker() -> None:
        for ad_group_id in queue:
            with contextlib.suppress(Exception):
                await client.ad_groups.unpause(ad_group_id)
                run.confirm()

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return run


def told_label(limit: whop_async.RateLimit) -> str:
    return f"whop_async, told {limit.requests}/{limit.per:g}s"


def drivers(scenario: Scenario) -> dict[str, Driver]:
    found: dict[str, Driver] = {
        "bare aiohttp": bare_aiohttp,
        "whop_async, rate_limit=None": with_whop_async,
    }
    if scenario.told is not None:
        found[told_label(scenario.told)] = functools.partial(
            with_whop_async, rate_limit=scenario.told
        )
    if scenario.sdk:
        try:
            import whop_sdk  # type: ignore[import-not-found]  # noqa: F401
        except ImportError:
            pass
        else:
            found["whop-sdk"] = with_whop_sdk
    return found


async def run_once(base: str, drive: Driver, ids: list[str]) -> dict[str, Any]:
    await server_call(base, "POST", "/_fake/reset")  # and the server's clock starts again
    started = time.perf_counter()
    run = await drive(base, ids)
    seconds = time.perf_counter() - started
    stats = await server_call(base, "GET", "/_fake/stats")
    return {"seconds": seconds, "lost": len(ids) - len(stats["attempts"]),
            "unconfirmed": len(ids) - run.confirmed, "requests": stats["requests"],
            "429s": stats["rate_limited"], "5xx": stats["faults"] + stats["outage"],
            "stamps": run.stamps}  # fmt: skip


def rate_between(stamps: list[float], start: float, end: float) -> float:
    """Calls confirmed a second in ``[start, end)``; 0 for a run that ended before it."""
    if end <= start:
        return 0.0
    return sum(start <= stamp < end for stamp in stamps) / (end - start)


def recovery(stamps: list[float], phases: Phases) -> float | None:
    """Seconds after the limit came back until every later whole second (to the last
    full one of the run) saw at least 90 % of the limit; None if it never did."""
    last = max(stamps, default=0.0) - 1
    starts = [phases.back_at + step / 10 for step in range(int((last - phases.back_at) * 10))]
    recovered = None
    for start in starts:
        if rate_between(stamps, start, start + 1) < 0.9 * phases.limit:
            recovered = None
        elif recovered is None:
            recovered = start - phases.back_at
    return recovered


def phase_cells(results: list[dict[str, Any]], phases: Phases) -> list[str]:
    """Our rate in each span and the recovery, of the round that recovered slowest."""
    worst = max(results, key=lambda result: recovery(result["stamps"], phases) or 1e9)
    stamps = worst["stamps"]
    spans = [*phases.spans.values(), (phases.back_at, max(stamps, default=phases.back_at + 1))]
    back = recovery(stamps, phases)
    return [*(f"{rate_between(stamps, *span):.0f}" for span in spans),
            "never" if back is None else f"{back:.1f} s"]  # fmt: skip


async def run_scenario(name: str, rounds: int) -> None:
    """Every client once per round, interleaved; a row shows the fastest round's time
    and the worst round's losses and 429s, so noise cannot flatter either."""
    scenario = SCENARIOS[name]
    ids = [f"adgrp_{index:08d}" for index in range(scenario.ids)]
    ideal = f"{scenario.ideal:.1f} s" if scenario.ideal else "-"
    print(f"\n## {name}: {scenario.title}; {scenario.ids} ids, concurrency {CONCURRENCY}, "
          f"best of {rounds} rounds (ideal {ideal})")  # fmt: skip
    print(f"Target: {scenario.target}.\n")
    columns = ["client", "seconds", "unpaused/s", "lost (worst)", "unconfirmed (worst)",
               "requests (worst)", "extra requests", "429s (worst)", "5xx and drops",
               "vs bare", "vs ideal"]  # fmt: skip
    if scenario.phases is not None:
        columns += [*scenario.phases.spans, "after (/s)", "back within 10 % after (worst)"]
    print("| " + " | ".join(columns) + " |")
    print("|" + " --- |" * len(columns))
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label in drivers(scenario)}
    async with standin(scenario.flags) as base:
        for _ in range(rounds):
            for label, drive in drivers(scenario).items():
                runs[label].append(await run_once(base, drive, ids))
    bare_rate = None
    for label, results in runs.items():
        best = min(results, key=lambda result: result["seconds"])
        worst = max(results, key=lambda r: (r["lost"], r["unconfirmed"], r["429s"]))
        rate = (scenario.ids - best["lost"]) / best["seconds"]
        bare_rate = bare_rate or rate
        vs_ideal = f"{best['seconds'] / scenario.ideal:.2f} x" if scenario.ideal else "-"
        share = f"{worst['429s']} ({worst['429s'] / max(worst['requests'], 1):.1%})"
        row = [label, f"{best['seconds']:.2f}", f"{rate:,.0f}", str(worst["lost"]),
               str(worst["unconfirmed"]), str(worst["requests"]),
               str(worst["requests"] - scenario.ids), share, str(worst["5xx"]),
               f"{rate / bare_rate:.2f} x", vs_ideal]  # fmt: skip
        if scenario.phases is not None:
            row += phase_cells(results, scenario.phases)
        print("| " + " | ".join(row) + " |")


# --- throughput, layer by layer -------------------------------------------------------
#
# Each row adds one layer of whop_async to the one before, against the same server,
# interleaved round by round, so a reader sees what each costs. "transport only" and
# "+ models" use whop_async's private modules: they exist to be measured, not used.

FAR_ABOVE = whop_async.RateLimit(10**6, per=1.0, burst=10**4)  # on, never reached


def _worker_loop(ids: list[str], call: Callable[[str], Awaitable[object]]) -> Awaitable[object]:
    """64 workers taking ids from one queue, each awaiting ``call`` per id."""
    queue = iter(ids)

    async def worker() -> None:
        for ad_group_id in queue:
            await call(ad_group_id)

    return asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


async def bare_orjson(base: str, ids: list[str]) -> Run:
    """The bare loop with the JSON decoder whop_async uses when orjson is installed."""
    import orjson

    run = Run()
    headers = {"Authorization": f"Bearer {KEY}", "Accept": "application/json"}
    async with aiohttp.ClientSession() as session:

        async def unpause(ad_group_id: str) -> None:
            url = f"{base}/api/v1/ad_groups/{ad_group_id}/unpause"
            async with session.post(url, headers=headers) as answer:
                orjson.loads(await answer.read())
                if answer.status == 200:
                    run.confirm()

        await _worker_loop(ids, unpause)
    return run


async def _through_transport(base: str, ids: list[str], *, models: bool) -> Run:
    from whop_async import _json, _sansio
    from whop_async._converter import structure
    from whop_async._transport import Transport

    run = Run()
    transport = Transport(f"{base}/api/v1")
    common = _sansio.client_headers(KEY, api_version=None, default_headers=None)

    async def unpause(ad_group_id: str) -> None:
        path = f"/ad_groups/{_sansio.path_param('ad_group_id', ad_group_id)}/unpause"
        headers = {**common, "Idempotency-Key": _sansio.new_idempotency_key()}
        answer = await transport.send("POST", path, headers, 30.0)
        data = _json.loads(answer.body)
        if models:
            structure(data, whop_async.AdGroup, source=answer.body)
        if answer.status == 200:
            run.confirm()

    try:
        await _worker_loop(ids, unpause)
    finally:
        await transport.close()
    return run


async def single_calls(base: str, ids: list[str]) -> Run:
    """Every layer of one call (engine, retries, options), but no bulk call."""
    run = Run()
    client = whop_async.WhopClient(KEY, base_url=f"{base}/api/v1", rate_limit=FAR_ABOVE)
    async with client:

        async def unpause(ad_group_id: str) -> None:
            await client.ad_groups.unpause(ad_group_id)
            run.confirm()

        await _worker_loop(ids, unpause)
    return run


async def bulk_call(
    base: str, ids: list[str], rate_limit: whop_async.RateLimit | None = FAR_ABOVE
) -> Run:
    """``unpause_many``, asked for nothing but its result."""
    run = Run()
    async with whop_async.WhopClient(KEY, base_url=f"{base}/api/v1", rate_limit=rate_limit) as c:
        result = await c.ad_groups.unpause_many(ids, concurrency=CONCURRENCY)
    run.confirmed = len(result.succeeded)
    return run


async def bulk_call_stdlib_json(base: str, ids: list[str]) -> Run:
    """``unpause_many`` as installed without the ``fast`` extra: the standard library's
    json, to compare with the bare loop's json."""
    from whop_async import _json

    fast, _json.loads = _json.loads, _json.stdlib_loads
    try:
        return await bulk_call(base, ids)
    finally:
        _json.loads = fast


LAYERS: dict[str, Driver] = {
    "bare aiohttp (json)": bare_aiohttp,
    "bare aiohttp, orjson": bare_orjson,
    "whop_async transport only": functools.partial(_through_transport, models=False),
    "+ models (cattrs, frozen AdGroup)": functools.partial(_through_transport, models=True),
    "+ engine, retries, options (unpause)": single_calls,
    "+ bulk (unpause_many, limit far above)": bulk_call,
    "+ bulk, rate_limit=None": functools.partial(bulk_call, rate_limit=None),
    "+ bulk, limit far above, stdlib json (no fast extra)": bulk_call_stdlib_json,
}


async def measured(base: str, drive: Driver, ids: list[str]) -> tuple[float, float, int]:
    """Ids a second, CPU microseconds of this process an id, and how many calls
    returned an ad group (whop-sdk's unpause the groups but fail to read the answers)."""
    await server_call(base, "POST", "/_fake/reset")
    started, cpu = time.perf_counter(), time.process_time()
    run = await drive(base, ids)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return len(ids) / seconds, cpu / len(ids) * 1e6, run.confirmed


def _bare_with_the_same_decoder(label: str) -> str:
    """The bare row that decodes as ``label`` does: whop_async's rows use orjson when the
    ``fast`` extra is installed; whop-sdk and the stdlib row use the standard library."""
    from whop_async import _json

    same_as_json = "json" in label or label.startswith("whop-sdk") or _json.fast_loads is None
    return "bare aiohttp (json)" if same_as_json else "bare aiohttp, orjson"


async def run_throughput(rounds: int, count: int) -> None:
    print(f"\n## open: no server limit; {count:,} ids a round, concurrency {CONCURRENCY}, "
          f"median of {rounds} interleaved rounds; CPU is the client process's")  # fmt: skip
    print("Target: whop_async (unpause_many, limit on) >= 0.9 x bare's throughput, CPU a "
          "call <= 1.15 x bare's. \"same decoder\" compares with the bare row that decodes "
          "JSON as the row does.\n")  # fmt: skip
    print("| client | ids/s | vs bare | same decoder | CPU an id (us) | vs bare | same decoder "
          "| returned an ad group (worst) |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    drivers = dict(LAYERS)
    with contextlib.suppress(ImportError):
        import whop_sdk  # type: ignore[import-not-found]  # noqa: F401

        drivers["whop-sdk (a tenth of the ids)"] = with_whop_sdk
    figures: dict[str, list[tuple[float, float, int]]] = {label: [] for label in drivers}
    async with standin(OPEN_FLAGS) as base:
        for number in range(rounds):
            for label, drive in drivers.items():
                ids = [f"adgrp_{number:02d}{index:08d}" for index in range(count)]
                if label.startswith("whop-sdk"):
                    ids = ids[: count // 10]
                figures[label].append(await measured(base, drive, ids))
    rates = {
        label: statistics.median(rate for rate, _, _ in rows) for label, rows in figures.items()
    }
    cpus = {label: statistics.median(cpu for _, cpu, _ in rows) for label, rows in figures.items()}
    bare = "bare aiohttp (json)"
    for label, rows in figures.items():
        same = _bare_with_the_same_decoder(label)
        worst = min(confirmed for _, _, confirmed in rows)
        of = count // 10 if label.startswith("whop-sdk") else count
        print(f"| {label} | {rates[label]:,.0f} | {rates[label] / rates[bare]:.2f} x "
              f"| {rates[label] / rates[same]:.2f} x | {cpus[label]:.0f} "
              f"| {cpus[label] / cpus[bare]:.2f} x | {cpus[label] / cpus[same]:.2f} x "
              f"| {worst:,} of {of:,} |")  # fmt: skip


BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
SCALING_PROBE = """
import asyncio, sys
sys.path.insert(0, sys.argv[1])
import run

async def main(base, count):
    ids = [f"adgrp_s{index:09d}" for index in range(count)]
    bare, _, _ = await run.measured(base, run.bare_aiohttp, ids)
    ours, _, _ = await run.measured(base, run.bulk_call, ids)
    print(bare, ours)

asyncio.run(main(sys.argv[2], int(sys.argv[3])))
"""


async def run_scaling(counts: list[int]) -> None:
    """Per-id time of unpause_many and the bare loop as the run grows, each size in a
    fresh process: what earlier sections left on this process's heap (whop-sdk's
    modules, for one) would make every garbage collection of a long run slower."""
    print("\n## scaling: time a id as the run grows (no server limit, concurrency 64)")
    print("Target: whop_async's time a id flat from the smallest run to the largest.\n")
    print("| ids | bare aiohttp (us an id) | whop_async unpause_many (us an id) | vs bare |")
    print("| --- | --- | --- | --- |")
    async with standin(OPEN_FLAGS) as base:
        for count in counts:
            probe = await asyncio.create_subprocess_exec(
                sys.executable, "-c", SCALING_PROBE, BENCH_DIR, base, str(count),
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            output, _ = await probe.communicate()
            bare, ours = (float(word) for word in output.split())
            print(f"| {count:,} | {1e6 / bare:.0f} | {1e6 / ours:.0f} | {ours / bare:.2f} x |")


# A service: one unpause every 200 ms for 20 s against a bucket of 10/s (burst 10),
# Whop's message as the hint. At 2 s a neighbour bursts 60 requests in 0.3 s, emptying
# the bucket, so a call or two meet a stray 429 whose hint (1 s) overstates the wait.
SERVICE_FLAGS = [
    "--rate",
    "10",
    "--per",
    "1",
    "--limiter",
    "bucket",
    "--burst",
    "10",
    "--neighbour-rate",
    "200",
    "--neighbour-from",
    "2",
    "--neighbour-for",
    "0.3",
]
SERVICE_CALLS, SERVICE_EVERY = 100, 0.2  # fmt: skip


async def service_latencies(base: str, rate_limit: whop_async.RateLimit | None) -> list[float]:
    latencies: list[float] = []
    base_url = f"{base}/api/v1"
    async with whop_async.WhopClient(KEY, base_url=base_url, rate_limit=rate_limit) as client:

        async def call(ad_group_id: str) -> None:
            started = time.perf_counter()
            with contextlib.suppress(whop_async.WhopError):
                await client.ad_groups.unpause(ad_group_id)
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        calls = []
        for number in range(SERVICE_CALLS):
            calls.append(asyncio.create_task(call(f"adgrp_s{number:08d}")))
            await asyncio.sleep(started + (number + 1) * SERVICE_EVERY - time.perf_counter())
        await asyncio.gather(*calls)
    return latencies


async def run_service(rounds: int) -> None:
    print(f"\n## service: one unpause every {SERVICE_EVERY * 1000:.0f} ms for "
          f"{SERVICE_CALLS * SERVICE_EVERY:.0f} s, server bucket 10/s (burst 10, message "
          "only), a neighbour's burst empties it at 2 s; worst of "
          f"{rounds} rounds")  # fmt: skip
    print("Target: p99 <= 50 ms even after a stray 429.\n")
    print("| client | calls ok | p50 (ms) | p99 (ms) | longest (ms) | requests | 429s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    clients = {
        "whop_async, rate_limit=None": None,
        "whop_async, told 600/60s (Whop's)": whop_async.RateLimit(600, per=60.0),
    }
    async with standin(SERVICE_FLAGS) as base:
        for label, limit in clients.items():
            rows = []
            for _ in range(rounds):
                await server_call(base, "POST", "/_fake/reset")
                latencies = sorted(await service_latencies(base, limit))
                stats = await server_call(base, "GET", "/_fake/stats")
                p99 = statistics.quantiles(latencies, n=100)[98]
                rows.append((p99, len(latencies), statistics.median(latencies), latencies[-1],
                             stats["requests"], stats["rate_limited"]))  # fmt: skip
            p99, ok, p50, longest, requests, limited = max(rows)
            print(f"| {label} | {ok} | {p50 * 1000:.1f} | {p99 * 1000:.1f} "
                  f"| {longest * 1000:.0f} | {requests} | {limited} |")  # fmt: skip


# A fresh client's first attempt meets a 429: another program with the same key has
# just spent the window (3 per 0.3 s), which ends 300 ms later. Each hint says so its way.
SINGLE_FLAGS = ["--rate", "3", "--per", "0.3", "--neighbour-rate", "10", "--neighbour-for", "0.3"]
SINGLE_HINTS = {
    "retry-after": ("Retry-After: 1", 1.0),
    "retry-after-ms": ("retry-after-ms: 300", 0.3),
    "message": ("Try again in 1 seconds.", 1.0),
    "none": ("none", 0.0),
}


async def single_wait(
    base: str, rate_limit: whop_async.RateLimit | None
) -> tuple[float, dict[str, Any]]:
    """How long one call of a fresh client took, and what the server saw."""
    await server_call(base, "POST", "/_fake/reset")
    base_url = f"{base}/api/v1"
    async with whop_async.WhopClient(KEY, base_url=base_url, rate_limit=rate_limit) as client:
        started = time.perf_counter()
        await client.ad_groups.unpause("adgrp_single")
        waited = time.perf_counter() - started
    return waited, await server_call(base, "GET", "/_fake/stats")


async def run_single(rounds: int) -> None:
    print(f"\n## single: a fresh client's first attempt meets a 429; the server's true wait "
          f"is 300 ms; worst of {rounds} rounds")  # fmt: skip
    print("Target: the call waits <= the hint + 0.5 s (<= 0.5 s with no hint).\n")
    print("| hint | client | waited (s) | target (s) | requests | 429s |")
    print("| --- | --- | --- | --- | --- | --- |")
    clients = {"rate_limit=None": None, "told 10/1s": whop_async.RateLimit(10, per=1.0)}
    for hint, (said, seconds) in SINGLE_HINTS.items():
        async with standin([*SINGLE_FLAGS, "--hint", hint]) as base:
            for label, limit in clients.items():
                waits = [await single_wait(base, limit) for _ in range(rounds)]
                waited, stats = max(waits, key=lambda wait: wait[0])
                print(f"| {said} | {label} | {waited:.2f} | {seconds + 0.5:.1f} "
                      f"| {stats['requests']} | {stats['rate_limited']} |")  # fmt: skip


MEMORY_PROBE = """
import asyncio, sys, tracemalloc
import whop_async
from whop_async import _json
from whop_async._converter import structure

async def main(mode, count, base):
    ids = (f"adgrp_{index:09d}" for index in range(count))
    done = 0
    async with whop_async.WhopClient("sk_bench", base_url=base, rate_limit=None) as client:
        if mode == "iter":
            async for outcome in client.ad_groups.iter_unpause(ids, concurrency=64):
                done += outcome.ok
        else:
            result = await client.ad_groups.unpause_many(ids, concurrency=64)
            done = len(result.succeeded)
            body = result.succeeded[0].to_json().encode()
    # VmHWM, not ru_maxrss: on Linux the latter keeps the bench's own peak from before
    # the exec that started this process.
    with open("/proc/self/status") as status:
        peak_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    each = 0
    if mode == "many":  # what one result holds, measured apart, each with its own answer
        answers = [bytes(bytearray(body)) for _ in range(1000)]
        tracemalloc.start()
        kept = [structure(_json.loads(answer), whop_async.AdGroup, source=answer)
                for answer in answers]
        each = (tracemalloc.get_traced_memory()[0] + sum(map(sys.getsizeof, answers))) // len(kept)
    print(done, peak_kib, each)

asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
"""


async def memory_probe(base: str, mode: str, count: int) -> tuple[int, float, int, float]:
    """Unpaused, peak RSS (MiB), bytes one AdGroup result holds, seconds."""
    started = time.perf_counter()
    probe = await asyncio.create_subprocess_exec(
        sys.executable, "-c", MEMORY_PROBE, mode, str(count), f"{base}/api/v1",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    output, _ = await probe.communicate()
    done, peak_kib, each = (int(word) for word in output.split())
    return done, peak_kib / 1024, each, time.perf_counter() - started


async def run_memory(counts: list[int], many_counts: list[int]) -> None:
    print("\n## memory: peak RSS of the client process")
    print("Target: iter_unpause flat as the ids grow; unpause_many the results plus a "
          "constant.\n")  # fmt: skip
    print("| call | ids | unpaused | seconds | peak RSS (MiB) | growth an id (KiB) "
          "| one result holds (KiB) |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    async with standin(OPEN_FLAGS) as base:
        for mode, mode_counts in (("iter", counts), ("many", many_counts)):
            first: tuple[int, float] | None = None
            for count in mode_counts:
                done, peak, each, seconds = await memory_probe(base, mode, count)
                growth = "-" if first is None else (
                    f"{(peak - first[1]) * 1024 / (count - first[0]):.2f}")  # fmt: skip
                first = first or (count, peak)
                held = f"{each / 1024:.2f}" if each else "-"
                call = "iter_unpause" if mode == "iter" else "unpause_many"
                print(f"| {call} | {count:,} | {done:,} | {seconds:.0f} | {peak:.0f} "
                      f"| {growth} | {held} |")  # fmt: skip


@contextlib.asynccontextmanager
async def redis_server() -> AsyncIterator[str]:
    """A throwaway redis-server on a free port."""
    probe = await asyncio.start_server(lambda *_: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    server = await asyncio.create_subprocess_exec(
        "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no", stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    await asyncio.sleep(0.3)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        await server.wait()


# What clients send Redis themselves (every other command a script's own).
CLIENT_COMMANDS = ("evalsha", "eval", "hello", "client|setinfo", "auth", "select", "ping")


async def redis_counters(redis_url: str) -> tuple[int, int, int]:
    """Scripts run, round trips (every command a client sent), bytes in and out, so far."""
    import redis.asyncio

    async with redis.asyncio.Redis.from_url(redis_url) as client:
        commands = await client.info("commandstats")
        stats = await client.info("stats")

    def calls(*names: str) -> int:
        return sum(commands.get(f"cmdstat_{name}", {}).get("calls", 0) for name in names)

    traffic = stats["total_net_input_bytes"] + stats["total_net_output_bytes"]
    return calls("evalsha", "eval"), calls(*CLIENT_COMMANDS), traffic


async def run_workers(counts: list[int], ids: int) -> None:
    """``ids`` split between worker processes on one key, a server limited to 100/s:
    each worker pacing alone at 100/s, then all sharing one budget through Redis, started
    apart and released together (and once started cold, all at once)."""
    print(f"\n## shared budget: {ids:,} ids split between worker processes, one key, "
          "server 100/s burst 10")  # fmt: skip
    print("Target: 0 lost; <= 1.1 x ideal and <= 2 % 429s with any number of workers; "
          "Redis round trips per unpause a small constant.\n")  # fmt: skip
    print("| workers | budget | span (s) | vs ideal | wall with exits (s) | lost | requests "
          "| 429s | Redis scripts per unpause | Redis round trips per unpause "
          "| Redis bytes per unpause |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    ideal = (ids - 10) / 100
    runs = [(counts[0], "each process alone (100/s each)", False, False)]
    runs += [(count, "shared through Redis", True, False) for count in counts]
    runs.append((counts[-1], "shared, started cold", True, True))
    async with standin(SCENARIOS["bucket-ms"].flags) as base, redis_server() as redis_url:
        for count, label, shared, cold in runs:
            await server_call(base, "POST", "/_fake/reset")
            before = await redis_counters(redis_url)
            started = time.time()  # a cold run's starts are its run
            processes = await workers.start(
                f"{base}/api/v1", KEY, redis_url if shared else "", workers=count,
                each=ids // count, rate=100, cold=cold,
            )  # fmt: skip
            if not cold:
                started = time.time()
            codes = await workers.run(processes)
            wall = time.time() - started
            span = await workers.last_done(processes) - started
            after = await redis_counters(redis_url)
            scripts, trips, traffic = (a - b for a, b in zip(after, before, strict=True))
            stats = await server_call(base, "GET", "/_fake/stats")
            unpaused = len(stats["attempts"])
            unpauses = stats["requests"] - (0 if cold else count)  # each warm worker's retrieve
            share = stats["rate_limited"] / max(unpauses, 1)
            per = (f"{scripts / ids:.2f} | {trips / ids:.2f} | {traffic / ids:,.0f}"
                   if shared else "- | - | -")  # fmt: skip
            print(f"| {count} | {label} | {span:.2f} | {span / ideal:.2f} x | {wall:.2f} "
                  f"| {ids - unpaused} | {unpauses} | {stats['rate_limited']} ({share:.1%}) "
                  f"| {per} |")  # fmt: skip
            assert codes == [0] * count or not shared, codes


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    everything = ["open", *SCENARIOS, "scaling", "service", "single", "shared", "memory"]
    parser.add_argument("--scenarios", default=",".join(everything),
                        help=f"any of {', '.join(everything)} (bucket and window: the "
                             "old names of bucket-ms and window-s)")  # fmt: skip
    parser.add_argument("--memory-ids", type=int, nargs="+", default=[100_000, 1_000_000],
                        help="iter_unpause's runs (memory)")  # fmt: skip
    parser.add_argument("--many-ids", type=int, nargs="+", default=[10_000, 100_000],
                        help="unpause_many's runs (memory)")  # fmt: skip
    parser.add_argument("--scaling-ids", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--open-ids", type=int, default=4_000, help="ids a round of open")
    parser.add_argument("--shared-workers", type=int, nargs="+", default=[4, 16, 32],
                        help="worker processes of each shared run (shared)")  # fmt: skip
    parser.add_argument("--shared-ids", type=int, default=1_280, help="ids of a shared run")
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
          f"aiohttp {aiohttp.__version__}, whop_async {whop_async.__version__}")  # fmt: skip
    for name in options.scenarios.split(","):
        name = ALIASES.get(name, name)
        if name == "open":
            await run_throughput(max(options.rounds, 5), options.open_ids)
        elif name == "scaling":
            await run_scaling(options.scaling_ids)
        elif name == "memory":
            await run_memory(options.memory_ids, options.many_ids)
        elif name == "shared":
            await run_workers(options.shared_workers, options.shared_ids)
        elif name == "service":
            await run_service(options.rounds)
        elif name == "single":
            await run_single(options.rounds)
        else:
            await run_scenario(name, options.rounds)


if __name__ == "__main__":
    asyncio.run(main())
