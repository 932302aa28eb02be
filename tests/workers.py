"""Worker processes sharing one budget through Redis, for the tests and the bench.

    python -m tests.workers BASE_URL API_KEY REDIS FIRST COUNT RATE CONCURRENCY

A worker makes its client and connects (one retrieve, so that its first unpause meets
a warm connection, as a worker that has been running would), says ``ready``, waits for
a line on stdin, unpauses ``adgrp_<FIRST>`` to ``adgrp_<FIRST + COUNT - 1>``, says
``done`` and the wall-clock time its last one ended, and exits 0 when every one
succeeded. Started apart and released together, the workers' run measures the shared
budget, not how long 32 interpreters take to start on two cores; ``cold`` ones start
unpausing at once instead.
"""

from __future__ import annotations

import asyncio
import contextlib
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
    cold: bool = False,
) -> list[asyncio.subprocess.Process]:
    """``workers`` workers with ``each`` ids apiece (from ``adgrp_000000000001``), all
    ready to go (``cold``: already going)."""
    pipe = asyncio.subprocess.PIPE
    processes = []
    for number in range(workers):
        arguments = [base_url, api_key, redis_url, 1 + number * each, each, rate, concurrency]
        command = [sys.executable, "-m", "tests.workers", *map(str, arguments), str(int(cold))]
        processes.append(
            await asyncio.create_subprocess_exec(*command, cwd=ROOT, stdin=pipe, stdout=pipe)
        )
    for process in processes:
        assert process.stdout is not None
        if not cold:
            assert await process.stdout.readline() == b"ready\n"
    return processes


def release(processes: list[asyncio.subprocess.Process]) -> None:
    """Let ``processes`` go, together (cold ones are going already)."""
    for process in processes:
        assert process.stdin is not None
        process.stdin.write(b"go\n")
        process.stdin.close()


async def run(processes: list[asyncio.subprocess.Process]) -> list[int]:
    """Release ``processes`` together; their exit codes."""
    release(processes)
    return [await process.wait() for process in processes]


async def last_done(processes: list[asyncio.subprocess.Process]) -> float:
    """The wall-clock time the last of ``processes`` ended its last unpause."""
    ends = []
    for process in processes:
        assert process.stdout is not None
        said = (await process.stdout.read()).split()
        ends.append(float(said[said.index(b"done") + 1]))
    return max(ends)


async def _work(
    base_url: str, api_key: str, redis_url: str, numbers: list[int], cold: bool
) -> bool:
    import time

    import whop_async

    first, count, rate, at_once = numbers
    limit = whop_async.RateLimit(rate, per=1.0, redis=redis_url or None)
    these = ids(first, count)
    async with whop_async.WhopClient(api_key, base_url=base_url, rate_limit=limit) as client:
        if not cold:
            with contextlib.suppress(whop_async.NotFoundError):  # stand-ins that make ids
                await client.ad_groups.retrieve(these[0])  # as they are unpaused
            print("ready", flush=True)
            await asyncio.to_thread(sys.stdin.readline)
        result = await client.ad_groups.unpause_many(these, concurrency=at_once)
        print("done", time.time(), flush=True)
    return result.ok


if __name__ == "__main__":
    base_url, api_key, redis_url, *numbers, cold = sys.argv[1:]
    ok = asyncio.run(_work(base_url, api_key, redis_url, [*map(int, numbers)], cold == "1"))
    sys.exit(0 if ok else 1)
