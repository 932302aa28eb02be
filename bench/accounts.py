"""Many accounts: 200 accounts at 10 requests a second each, through one Accounts.

    python bench/accounts.py [--accounts 200] [--ids 50] [--concurrency 200]

The stand-in (``whop-async fake-server`` with a ``--key`` per account, each limited to
10 a second in a token bucket of 10, as Whop's 600 a minute) runs in its own process;
this process is the client. It runs the pairs twice, interleaved by account: clean, then
with one account whose requests hang and one in an outage (timeout 2 s, max_outage
10 s, so they end within the run). It prints, for each: aggregate throughput against
the ideal (every account at 10/s), CPU per call of this process, and each account's
finish time against the median; then how much later each untroubled account finished
in the troubled run; then the memory an idle account holds (10,000 accounts that each
made a call, measured in a fresh process).

Not a test: figures for bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import statistics
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator

import whop_async

RATE = 10  # requests a second per account and operation (Whop's 600 a minute)
HUNG, OUT = "acct000", "acct001"


def names(count: int) -> list[str]:
    return [f"acct{number:03d}" for number in range(count)]


def key_of(name: str) -> str:
    return f"sk_bench_{name}"


@contextlib.asynccontextmanager
async def standin(accounts: list[str], flags: list[str]) -> AsyncIterator[str]:
    """The stand-in in another process; yields its base URL."""
    keys = [part for name in accounts for part in ("--key", f"{name}={key_of(name)}")]
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "whop_async", "fake-server", "--port", "0", "--groups", "0",
        "--accept-any-id", "--limiter", "bucket", "--burst", "10", "--rate", str(RATE),
        "--per", "1", *keys, *flags,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert server.stdout is not None
    base_url = (await server.stdout.readline()).decode().strip().partition("=")[2]
    await server.stdout.readline()
    try:
        yield base_url.strip("'")
    finally:
        server.terminate()
        await server.wait()


async def run(accounts: list[str], ids: int, concurrency: int, trouble: bool) -> dict[str, float]:
    """Each account's finish time (seconds), and the run's totals under "".."""
    flags = ["--account-hang", f"{HUNG}=0,inf", "--account-outage", f"{OUT}=0,inf"]
    async with standin(accounts, flags if trouble else []) as base_url:
        keys = {name: key_of(name) for name in accounts}
        limit = whop_async.RateLimit(RATE, per=1.0)
        pairs = [(name, f"adgrp_{n:012d}") for n in range(ids) for name in accounts]
        finished: dict[str, float] = {}
        calls = 0
        async with whop_async.Accounts(
            keys, base_url=base_url, rate_limit=limit, timeout=2.0
        ) as everyone:
            cpu, start = time.process_time(), time.monotonic()
            async for outcome in everyone.iter_unpause(
                pairs, concurrency=concurrency, max_outage=10.0
            ):
                calls += 1
                assert outcome.account is not None
                finished[outcome.account] = time.monotonic() - start
            finished[""] = time.monotonic() - start
            finished["cpu"] = time.process_time() - cpu
            finished["calls"] = calls
            finished["requests"] = everyone.stats.answered
        return finished


def report(title: str, accounts: list[str], ids: int, result: dict[str, float]) -> None:
    good = [name for name in accounts if name not in (HUNG, OUT)]
    ends = [result[name] for name in good]
    median = statistics.median(ends)
    done = len(good) * ids
    ideal = (ids - 10) / RATE  # a burst of 10, then 10 a second
    print(f"\n### {title}")
    print("| figure | value |\n| --- | --- |")
    print(f"| untroubled accounts' ids | {done:,} in {max(ends):.2f} s |")
    print(
        f"| their throughput | {done / max(ends):,.0f}/s (ideal {done / ideal:,.0f}/s:"
        f" {ideal / max(ends):.2f} x) |"
    )
    print(f"| slowest account against the ideal ({ideal:.1f} s) | {max(ends) / ideal:.2f} x |")
    print(f"| CPU of this process per call | {result['cpu'] / result['calls'] * 1e6:.0f} us |")
    print(
        f"| finish times against the median ({median:.2f} s) |"
        f" {min(ends) / median:.3f} to {max(ends) / median:.3f} x |"
    )
    if HUNG in result:
        print(f"| hung and out accounts ended at | {result[HUNG]:.1f} s, {result[OUT]:.1f} s |")


def vm_rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


async def idle_memory(count: int) -> None:
    """RSS an idle account holds: ``count`` accounts, each one call, then idle."""
    async with (
        standin(["acme"], ["--rate", "0"]) as base_url,
        whop_async.Accounts(base_url=base_url) as everyone,
    ):
        gc.collect()
        tracemalloc.start()
        before, heap = vm_rss(), tracemalloc.get_traced_memory()[0]
        for number in range(count):
            everyone.add(f"a{number}", key_of("acme"))
        made = vm_rss()
        for number in range(count):
            await everyone[f"a{number}"].ad_groups.unpause("adgrp_000000000001")
        busy = vm_rss()
        await asyncio.sleep(7)  # idle: budgets at rest are forgotten
        gc.collect()
        idle, idle_heap = vm_rss(), tracemalloc.get_traced_memory()[0] - heap
    mib = 2**20
    rows = [
        ("accounts", f"{count:,}"),
        ("RSS growth when made", f"{(made - before) / mib:.1f} MiB"),
        ("after one call each", f"{(busy - before) / mib:.1f} MiB"),
        ("idle 7 s later", f"{(idle - before) / mib:.1f} MiB"),
        (
            "of which Python objects alive",
            f"{idle_heap / mib:.1f} MiB, {idle_heap / count:,.0f} B each",
        ),
    ]
    print("\n### memory: accounts that each made one call, then went idle (tracemalloc on)")
    print("| figure | value |\n| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--ids", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--idle-accounts", type=int, default=10_000)
    options = parser.parse_args()
    accounts = names(options.accounts)
    print(f"{os.cpu_count()} cores; {options.accounts} accounts x {options.ids} ids,"
          f" concurrency {options.concurrency}")  # fmt: skip
    clean = await run(accounts, options.ids, options.concurrency, trouble=False)
    report("clean", accounts, options.ids, clean)
    troubled = await run(accounts, options.ids, options.concurrency, trouble=True)
    report(f"one account hanging ({HUNG}), one out ({OUT})", accounts, options.ids, troubled)
    good = [name for name in accounts if name not in (HUNG, OUT)]
    later = [troubled[name] / clean[name] for name in good]
    slowest = max(troubled[n] for n in good), max(clean[n] for n in good)
    print(
        "\nuntroubled accounts, troubled run against clean:"
        f" median {statistics.median(later):.3f} x, worst {max(later):.3f} x;"
        f" slowest account {slowest[0]:.2f} s against {slowest[1]:.2f} s"
    )
    await idle_memory(options.idle_accounts)


if __name__ == "__main__":
    asyncio.run(main())
