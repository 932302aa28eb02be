"""whop_async against a bare aiohttp loop (and whop-sdk, when installed), side by side.

"lost" counts ids the server never unpaused; "unconfirmed" counts ids whose call did
not return an ad group to the caller (unpaused or not).

    python bench/run.py [--scenarios open,bucket,window,faults,memory] [--memory-ids N ...]

Each scenario starts whop_async's stand-in server (``whop-async fake-server``) in its own
process on 127.0.0.1, drives the same ids through every client in turn, and prints one
row per client with its ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp

import whop_async

KEY = "sk_bench"
CONCURRENCY = 64
Driver = Callable[[str, list[str]], Awaitable[int]]


# How the stand-in behaves in each scenario: fake-server flags.
SERVER_FLAGS = {
    "open": ["--rate", "0"],
    "bucket": ["--rate", "100", "--per", "1", "--limiter", "bucket", "--burst", "10",
               "--retry-after"],
    "window": ["--rate", "50", "--per", "1"],
    "faults": ["--rate", "0", "--fault-rate", "0.075", "--drop-rate", "0.025", "--seed", "1"],
}  # fmt: skip


@contextlib.asynccontextmanager
async def standin(mode: str) -> AsyncIterator[str]:
    """The stand-in server in another process; yields its root URL."""
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "whop_async", "fake-server", "--port", "0", "--groups", "0",
        "--api-key", KEY, "--accept-any-id", *SERVER_FLAGS[mode],
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


async def bare_aiohttp(base: str, ids: list[str]) -> int:
    """The floor: 64 workers, one POST each, no retries, no parsing beyond json."""
    queue = iter(ids)
    unpaused = 0
    headers = {"Authorization": f"Bearer {KEY}", "Accept": "application/json"}

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal unpaused
        for ad_group_id in queue:
            with contextlib.suppress(aiohttp.ClientError):
                url = f"{base}/api/v1/ad_groups/{ad_group_id}/unpause"
                async with session.post(url, headers=headers) as answer:
                    await answer.json()
                    unpaused += answer.status == 200

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(CONCURRENCY)))
    return unpaused


async def with_whop_async(
    base: str, ids: list[str], rate_limit: whop_async.RateLimit | None = None
) -> int:
    base_url = f"{base}/api/v1"
    async with whop_async.WhopClient(KEY, base_url=base_url, rate_limit=rate_limit) as client:
        result = await client.ad_groups.unpause_many(ids, concurrency=CONCURRENCY)
    return len(result.succeeded)


async def with_whop_sdk(base: str, ids: list[str]) -> int:
    from whop_sdk import AsyncWhop  # type: ignore[import-not-found]
    from whop_sdk.environment import WhopEnvironment  # type: ignore[import-not-found]

    api = f"{base}/api/v1"
    client = AsyncWhop(token=KEY, environment=WhopEnvironment(api=api, vault=api))
    queue = iter(ids)
    unpaused = 0

    async def worker() -> None:
        nonlocal unpaused
        for ad_group_id in queue:
            with contextlib.suppress(Exception):
                await client.ad_groups.unpause(ad_group_id)
                unpaused += 1

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return unpaused


def drivers(told: whop_async.RateLimit | None = None) -> dict[str, Driver]:
    found: dict[str, Driver] = {"bare aiohttp": bare_aiohttp, "whop_async": with_whop_async}
    if told is not None:
        found[f"whop_async, told {told.requests}/{told.per:g}s"] = functools.partial(
            with_whop_async, rate_limit=told
        )
    try:
        import whop_sdk  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        pass
    else:
        found["whop-sdk"] = with_whop_sdk
    return found


SCENARIOS = {
    # mode, ids, the ideal seconds of a perfect client (None: no server limit), and the
    # limit to tell a second whop_async row (rate_limit=...), beside the one that must
    # find it alone (rate_limit=None)
    "open": ("open", 5000, None, None),
    "bucket": ("bucket", 600, (600 - 10) / 100, whop_async.RateLimit(100, per=1.0)),
    "window": ("window", 300, 300 / 50 - 1, whop_async.RateLimit(50, per=1.0, burst=1)),
    "faults": ("faults", 2000, None, None),
}


async def run_once(base: str, mode: str, drive: Driver, ids: list[str]) -> dict[str, float]:
    await server_call(base, "POST", "/_fake/reset")
    if mode == "window":  # start at a window's edge, as a perfect client could
        await asyncio.sleep(1 - time.monotonic() % 1)
    started = time.perf_counter()
    confirmed = await drive(base, ids)
    seconds = time.perf_counter() - started
    stats = await server_call(base, "GET", "/_fake/stats")
    return {"seconds": seconds, "lost": len(ids) - len(stats["attempts"]),
            "unconfirmed": len(ids) - confirmed, "requests": stats["requests"],
            "429s": stats["rate_limited"], "faults": stats["faults"]}  # fmt: skip


async def run_scenario(name: str, rounds: int) -> None:
    """Every client once per round, interleaved; a row shows the fastest round's time
    and the worst round's losses and 429s, so noise cannot flatter either."""
    mode, count, ideal, told = SCENARIOS[name]
    ids = [f"adgrp_{index:08d}" for index in range(count)]
    print(f"\n## {name}: {count} ids, concurrency {CONCURRENCY}, server mode {mode!r}, "
          f"best of {rounds} rounds")  # fmt: skip
    columns = ["client", "seconds", "unpaused/s", "lost (worst)", "unconfirmed (worst)",
               "requests (worst)",
               "429s (worst)", "faults", "vs bare", "vs ideal"]  # fmt: skip
    print("| " + " | ".join(columns) + " |")
    print("|" + " --- |" * len(columns))
    runs: dict[str, list[dict[str, float]]] = {label: [] for label in drivers(told)}
    async with standin(mode) as base:
        for _ in range(rounds):
            for label, drive in drivers(told).items():
                runs[label].append(await run_once(base, mode, drive, ids))
    bare_rate = None
    for label, results in runs.items():
        best = min(results, key=lambda result: result["seconds"])
        worst = max(results, key=lambda r: (r["lost"], r["unconfirmed"], r["429s"]))
        rate = (count - best["lost"]) / best["seconds"]
        bare_rate = bare_rate or rate
        vs_ideal = f"{best['seconds'] / ideal:.2f} x" if ideal else "-"
        share = f"{worst['429s']:.0f} ({worst['429s'] / max(worst['requests'], 1):.1%})"
        row = [label, f"{best['seconds']:.2f}", f"{rate:,.0f}", f"{worst['lost']:.0f}",
               f"{worst['unconfirmed']:.0f}",
               f"{worst['requests']:.0f}", share, f"{worst['faults']:.0f}",
               f"{rate / bare_rate:.2f} x", vs_ideal]  # fmt: skip
        print("| " + " | ".join(row) + " |")


MEMORY_PROBE = """
import asyncio, resource, sys
import whop_async

async def main(count, base):
    ids = (f"adgrp_{index:09d}" for index in range(count))
    done = 0
    async with whop_async.WhopClient("sk_bench", base_url=base, rate_limit=None) as client:
        async for outcome in client.ad_groups.iter_unpause(ids, concurrency=64):
            done += outcome.ok
    print(done, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)

asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
"""


async def run_memory(counts: list[int]) -> None:
    print("\n## memory: iter_unpause over generated ids, peak RSS of the client process")
    print("| ids | unpaused | seconds | peak RSS (MiB) |")
    print("| --- | --- | --- | --- |")
    async with standin("open") as base:
        for count in counts:
            started = time.perf_counter()
            probe = await asyncio.create_subprocess_exec(
                sys.executable, "-c", MEMORY_PROBE, str(count), f"{base}/api/v1",
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            output, _ = await probe.communicate()
            done, peak_kib = output.split()
            print(f"| {count:,} | {int(done):,} | {time.perf_counter() - started:.0f} "
                  f"| {int(peak_kib) / 1024:.0f} |")  # fmt: skip


WORKER = """
import asyncio, sys
import whop_async

async def main(base_url, key, redis_url, first, count):
    limit = whop_async.RateLimit(100, per=1.0, redis_url=redis_url or None)
    ids = [f"adgrp_w{index:09d}" for index in range(first, first + count)]
    async with whop_async.WhopClient(key, base_url=base_url, rate_limit=limit) as client:
        result = await client.ad_groups.unpause_many(ids, concurrency=16)
    print(len(result.succeeded))

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])))
"""


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


async def run_workers(workers: int, each: int) -> None:
    """``workers`` processes, one key, disjoint ids, a server limited to 100/s: each
    pacing alone at 100/s, then all sharing one budget through Redis."""
    print(f"\n## shared budget: {workers} processes x {each} ids, one key, server 100/s burst 10")
    print("| budget | seconds | lost | requests | 429s | vs ideal |")
    print("| --- | --- | --- | --- | --- | --- |")
    ideal = (workers * each - 10) / 100
    async with standin("bucket") as base, redis_server() as redis_url:
        for label, url in (
            ("each process alone (100/s each)", ""),
            ("shared through Redis", redis_url),
        ):
            await server_call(base, "POST", "/_fake/reset")
            started = time.perf_counter()
            processes = [
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-c",
                    WORKER,
                    f"{base}/api/v1",
                    KEY,
                    url,
                    str(n * each),
                    str(each),
                    stdout=asyncio.subprocess.DEVNULL,
                )
                for n in range(workers)
            ]
            for process in processes:
                await process.wait()
            seconds = time.perf_counter() - started
            stats = await server_call(base, "GET", "/_fake/stats")
            share = stats["rate_limited"] / max(stats["requests"], 1)
            print(f"| {label} | {seconds:.2f} | {workers * each - len(stats['attempts'])} "
                  f"| {stats['requests']} | {stats['rate_limited']} ({share:.1%}) "
                  f"| {seconds / ideal:.2f} x |")  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenarios", default="open,bucket,window,faults,shared,memory")
    parser.add_argument("--memory-ids", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
          f"aiohttp {aiohttp.__version__}, whop_async {whop_async.__version__}")  # fmt: skip
    for name in options.scenarios.split(","):
        if name == "memory":
            await run_memory(options.memory_ids)
        elif name == "shared":
            await run_workers(4, 300)
        else:
            await run_scenario(name, options.rounds)


if __name__ == "__main__":
    asyncio.run(main())
