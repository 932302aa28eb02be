"""Helpers shared by the command-line tests: the installed command in a subprocess, as
an operator runs it, and ways to watch it."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import pty
import shutil
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web

from whop_async.testing import FakeWhop

T = TypeVar("T")

# The console script pip installed beside this interpreter.
BIN = Path(sys.executable).parent
CLI = [str(BIN / "whop-async")]


# The command as a terminal starts it, with Ctrl-C (SIGINT) at its default, even when
# these tests run in the background, where a shell starts them with SIGINT ignored.
INTERRUPTIBLE_CLI = [
    sys.executable, "-c",
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL);"
    " os.execv(sys.argv[1], sys.argv[1:])",
    *CLI,
]  # fmt: skip


def environment_for(
    fake: FakeWhop | None = None, environment: dict[str, str] | None = None
) -> dict[str, str]:
    """The test's environment without WHOP_ settings, the command on PATH, and the
    key and base URL of ``fake``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHOP_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    if fake is not None:
        env |= {"WHOP_API_KEY": fake.api_key, "WHOP_BASE_URL": fake.base_url}
    return env | (environment or {})


async def whop_async_cli(
    *args: str,
    fake: FakeWhop | None = None,
    stdin: bytes | None = None,
    environment: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> tuple[int, str, str]:
    """Run the installed command to its end: its exit code, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        *CLI, *args, env=environment_for(fake, environment), cwd=cwd,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await ended(process, process.communicate(stdin))
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


# Far beyond what any command here takes, short of pytest's own timeout: a command that
# hangs fails its test with a message, and is not left running.
HUNG = 45.0


async def ended(process: asyncio.subprocess.Process, waiting: Awaitable[T]) -> T:
    """``waiting`` (the process's end), or a failed test if the process hangs."""
    try:
        async with asyncio.timeout(HUNG):
            return await waiting
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"the command was still running after {HUNG:.0f} s") from None


async def shell(
    script: str, *, fake: FakeWhop | None = None, cwd: Path | None = None
) -> tuple[int, str, str]:
    """Run ``script`` with bash, as an operator would type it."""
    process = await asyncio.create_subprocess_exec(
        "bash", "-c", script, env=environment_for(fake), cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def sent_once_each(fake: FakeWhop, ids: list[str]) -> bool:
    """Whether the server saw exactly ``ids``, each once, and nothing else."""
    return fake.stats.attempts == collections.Counter(ids) and fake.stats.requests == len(ids)


def journal(path: Path) -> list[dict[str, Any]]:
    """The outcome records of a journal (every line whole), without its run lines."""
    return [record for record in _lines(path) if "run" not in record]


def journaled(path: Path) -> list[str]:
    """The ids of the outcomes a journal holds so far, while its run may still write
    (a line not yet ended is not read)."""
    if not path.exists():
        return []
    text = path.read_text()
    whole = text[: text.rfind("\n") + 1]
    records = [json.loads(line) for line in whole.splitlines()]
    return [record["id"] for record in records if "run" not in record]


def runs(path: Path) -> list[dict[str, Any]]:
    """What the run lines of a journal say of each run."""
    return [record["run"] for record in _lines(path) if "run" in record]


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def start_cli(
    *args: str,
    fake: FakeWhop | None = None,
    environment: dict[str, str] | None = None,
    **pipes: Any,
) -> asyncio.subprocess.Process:
    """Start the installed command, interruptible as on a terminal."""
    return await asyncio.create_subprocess_exec(
        *INTERRUPTIBLE_CLI, *args, env=environment_for(fake, environment), **pipes
    )


@contextlib.asynccontextmanager
async def never_left_running(process: asyncio.subprocess.Process) -> AsyncIterator[None]:
    """Kill ``process`` if the block ends before it has: a test that fails while it
    waits leaves no command behind (one blocked on a FIFO would stay forever)."""
    try:
        yield
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def recording_keys(app: web.Application) -> dict[str, list[str]]:
    """Record the Idempotency-Key of every request ``app`` is sent, by ad-group id."""
    keys: dict[str, list[str]] = collections.defaultdict(list)

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        if "id" in request.match_info:
            keys[request.match_info["id"]].append(request.headers["Idempotency-Key"])
        return await handler(request)  # type: ignore[no-any-return]

    app.middlewares.insert(0, record)
    return keys


async def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.01)


def lines_in(path: Path) -> int:
    return path.read_text().count("\n") if path.exists() else 0


async def wait_for_lines(path: Path, count: int) -> None:
    await wait_until(lambda: lines_in(path) >= count, f"{path} has {count} lines")


async def on_a_terminal(*args: str, fake: FakeWhop, stdin: Any = None) -> str:
    """What the command shows on a terminal (its stderr), once it has exited 0."""
    controller, terminal = pty.openpty()
    process = await start_cli(
        *args, fake=fake, stdin=stdin, stderr=terminal, stdout=asyncio.subprocess.DEVNULL
    )
    os.close(terminal)
    shown = bytearray()
    loop = asyncio.get_running_loop()
    while True:
        try:
            chunk = await loop.run_in_executor(None, os.read, controller, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        shown += chunk
    await process.wait()
    os.close(controller)
    assert process.returncode == 0, shown.decode(errors="replace")
    return shown.decode(errors="replace")


def without_root_powers() -> list[str]:
    """A prefix that runs a command without root's power to write anywhere; nothing
    for anyone else."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("root writes anywhere, and setpriv (util-linux) is missing to drop that")
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}"]
