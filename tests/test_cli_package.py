"""What the command line is built on, how it is started, and where it runs."""

from __future__ import annotations

import ast
import asyncio
import signal
import sys
from pathlib import Path

import pytest

import whop_async.cli
import whop_async.testing
from whop_async.testing import FakeWhop

from .cli_support import ended, environment_for, wait_until


def test_the_command_line_is_built_on_the_public_api_only() -> None:
    public = {None: set(whop_async.__all__), "testing": set(whop_async.testing.__all__)}
    for module in Path(whop_async.cli.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 2:  # from whop_async
                names = {alias.name for alias in node.names}
                assert names <= public.get(node.module, set()), (module.name, node.module, names)


async def test_python_dash_m_runs_the_same_command() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "whop_async", "--version", stdout=asyncio.subprocess.PIPE
    )
    stdout, _ = await process.communicate()
    assert (process.returncode, stdout.decode()) == (0, f"whop-async {whop_async.__version__}\n")


# The command line as it runs on Windows, as far as Linux can play it.
AS_ON_WINDOWS = Path(__file__).with_name("as_on_windows.py")


async def test_the_command_line_runs_where_there_is_no_fcntl() -> None:
    async with FakeWhop(groups=2) as fake:
        process = await asyncio.create_subprocess_exec(
            sys.executable, AS_ON_WINDOWS, "unpause", *fake.ids, env=environment_for(fake),
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, stderr = await ended(process, process.communicate())
        assert process.returncode == 0, stderr.decode()
        assert fake.statuses() == {"active": 2}


async def test_sigterm_is_handled_where_the_event_loop_cannot_add_signal_handlers() -> None:
    async with FakeWhop(groups=300, rate_limit=None, latency=0.02) as fake:
        process = await asyncio.create_subprocess_exec(
            sys.executable, AS_ON_WINDOWS, "unpause", *fake.ids, "--rate", "0",
            "--concurrency", "4", env=environment_for(fake), stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await wait_until(lambda: fake.stats.requests >= 20, "the run under way")
        process.send_signal(signal.SIGTERM)
        _, stderr = await ended(process, process.communicate())
    said = stderr.decode()
    assert process.returncode == 143, said
    assert "interrupted: left to do" in said
    assert "Traceback" not in said


async def test_main_runs_in_any_thread(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WHOP_API_KEY", "k")
    # Signals go to the main thread alone; a command run elsewhere goes without them.
    code = await asyncio.to_thread(whop_async.cli.main, ["unpause"])
    assert (code, capsys.readouterr().err) == (
        2,
        "whop-async: give ids as arguments, --file PATH (--file - for standard input),"
        " or --campaign\n",
    )
