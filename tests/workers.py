"""Worker processes sharing one budget through Redis, for the tests and the bench.

    python -m tests.workers BASE_URL API_KEY REDIS FIRST COUNT RATE CONCURRENCY

A worker makes its client and connects (one retrieve, so that its first unpause meets
a warm connection, as a worker that has been running would), says ``ready``, waits for
a line on stdin, unpauses ``adgrp_<FIRST>`` to ``adgrp_<FIRST + COUNT - 1>`` and exits
0 when every one succeeded. Started apart and released together, the workers' run
measures the shared budget, not how long 32 interpreters take to start.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def ids(first: int, count: int) -> list[str]:
    return [f"adgrp_{number:012d}" for number in range(first, first + count)]


async def start(
    base_url: str,
    api_key: str,
    redis_url: str,
    *,
    workers: int,
    each: int,
    rate: int,
    concurrency: int = 16,
) -> list[asyncio.subprocess.Process]:
    """``workers`` workers with ``each`` ids apiece (from ``adgrp_000000000001``), all
    ready to go."""
    pipe = asyncio.subprocess.PIPE
    processes = []
    for number in range(workers):
        arguments = [base_url, api_key, redis_url, 1 + number * each, each, rate, concurrency]
        command = [sys.executable, "-m", "tests.workers", *map(str, arguments)]
        processes.append(
            await asyncio.create_subprocess_exec(*command, cwd=ROOT, stdin=pipe, stdout=pipe)
        )
    for process in processes:
        assert process.stdout is not None
        assert await process.stdout.readline() == b"ready\n"
    return processes


def release(processes: list[asyncio.subprocess.Process]) -> None:
    """Let ``processes`` go, together."""
    for process in processes:
        assert process.stdin is not None
        process.stdin.write(b"go\n")


async def run(processes: list[asyncio.subprocess.Process]) -> list[int]:
    """Release ``processes`` together; their exit codes."""
    release(processes)
    return [await process.wait() for process in processes]


async def _work(
    base_url: str, api_key: str, redis_url: str, first: int, count: int, rate: int, at_once: int
) -> bool:
    import whop_async

    limit = whop_async.RateLimit(rate, per=1.0, redis=redis_url)
    these = ids(first, count)
    async with whop_async.WhopClient(api_key, base_url=base_url, rate_limit=limit) as client:
        await client.ad_groups.retrieve(these[0])
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        result = await client.ad_groups.unpause_many(these, concurrency=at_once)
    return result.ok


if __name__ == "__main__":
    base_url, api_key, redis_url, *numbers = sys.argv[1:]
    first, count, rate, at_once = map(int, numbers)
    ok = asyncio.run(_work(base_url, api_key, redis_url, first, count, rate, at_once))
    sys.exit(0 if ok else 1)
