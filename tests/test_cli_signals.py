"""Interruptions: Ctrl-C, SIGTERM, and readers that go away mid-run."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import pytest

from whop_async.testing import FakeWhop

from .cli_support import (
    CLI,
    ended,
    environment_for,
    journal,
    journaled,
    never_left_running,
    shell,
    start_cli,
    wait_for_lines,
    wait_until,
)

# Ctrl-C, and SIGTERM as a service manager, a container's stop or kill sends it.
STOPS = {"Ctrl-C": (signal.SIGINT, 130), "SIGTERM": (signal.SIGTERM, 143)}


@pytest.mark.parametrize(("stop", "exit_code"), STOPS.values(), ids=list(STOPS))
async def test_a_stop_ends_the_run_cleanly_with_every_finished_id_journaled(
    stop: signal.Signals, exit_code: int, tmp_path: Path
) -> None:
    output = tmp_path / "results.jsonl"
    async with FakeWhop(groups=200, rate_limit=None, latency=0.02) as fake:
        process = await start_cli(
            "unpause", *fake.ids, "--output", str(output), "--rate", "0", "--concurrency", "4",
            fake=fake, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await wait_for_lines(output, 20)
        process.send_signal(stop)
        _, stderr = await ended(process, process.communicate())
        assert process.returncode == exit_code
        active = fake.statuses()["active"]
    summary = stderr.decode()
    assert "interrupted: left to do" in summary
    assert "Traceback" not in summary
    records = journal(output)  # every line whole
    assert len(records) <= active
    assert active - len(records) <= 4  # at most the calls in flight
    left = int(re.search(r"interrupted: left to do\W+([\d,]+)", summary).group(1))  # type: ignore[union-attr]
    assert left == 200 - len(records)


async def test_a_command_started_with_sigterm_ignored_keeps_it_ignored() -> None:
    async with FakeWhop(groups=200, rate_limit=None, latency=0.02) as fake:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c",
            "import os, signal, sys; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
            " os.execv(sys.argv[1], sys.argv[1:])",
            *CLI, "unpause", *fake.ids, "--rate", "0", "--concurrency", "2",
            env=environment_for(fake), stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await wait_until(lambda: fake.stats.requests >= 5, "the run under way")
        process.send_signal(signal.SIGTERM)
        _, stderr = await ended(process, process.communicate())
        assert process.returncode == 0, stderr.decode()
        assert fake.statuses() == {"active": 200}


async def test_sigterm_ends_the_fake_server_as_ctrl_c_does() -> None:
    process = await start_cli(
        "fake-server", "--port", "0", "--groups", "1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    await process.stdout.readline()  # serving
    process.send_signal(signal.SIGTERM)
    _, stderr = await ended(process, process.communicate())
    assert (process.returncode, stderr) == (143, b"")


@pytest.mark.parametrize(
    "command",
    [
        # More than a pipe holds: the reader leaves while the command still writes.
        "whop-async list --rate 0 | head -1",
        "whop-async list --json --rate 0 | head -1",
        "whop-async --help | head -1",
    ],
)
async def test_a_command_whose_reader_goes_away_exits_quietly(command: str) -> None:
    async with FakeWhop(groups=5000, rate_limit=None) as fake:
        code, stdout, stderr = await shell(f"set -o pipefail; {command}", fake=fake)
    assert (code, stderr) == (0, "")
    assert len(stdout.splitlines()) == 1


async def test_a_run_whose_stderr_reader_is_gone_keeps_its_own_exit_code() -> None:
    reader, writer = os.pipe()
    os.close(reader)  # every write to it fails with EPIPE
    async with FakeWhop(groups=2) as fake:
        process = await start_cli("unpause", *fake.ids, fake=fake, stderr=writer)
        os.close(writer)
        assert await process.wait() == 0
        assert fake.statuses() == {"active": 2}


@pytest.mark.parametrize("waiting", ["a pipe kept open", "a FIFO nobody opens"])
@pytest.mark.parametrize(("stop", "exit_code"), STOPS.values(), ids=list(STOPS))
async def test_a_stop_while_the_ids_wait_for_their_writer_ends_the_run_at_once(
    waiting: str, stop: signal.Signals, exit_code: int, tmp_path: Path
) -> None:
    output = tmp_path / "results.jsonl"
    reader, writer = os.pipe()
    fifo = tmp_path / "ids.fifo"
    os.mkfifo(fifo)
    async with FakeWhop(groups=2, rate_limit=None) as fake:
        if waiting == "a pipe kept open":
            args, stdin = ["--file", "-"], reader
            os.write(writer, f"{fake.ids[0]}\n".encode())
        else:
            args, stdin = [fake.ids[0], "--file", str(fifo)], asyncio.subprocess.DEVNULL
        process = await start_cli(
            "unpause", *args, "--output", str(output), "--quiet",
            fake=fake, stdin=stdin, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        os.close(reader)
        async with never_left_running(process):
            # Journaled, not only unpaused: a stop cancels a call whose answer is on its
            # way, and that id is left to do (a resume sends it again, with its key).
            await wait_until(lambda: journaled(output) == [fake.ids[0]], "the first id journaled")
            process.send_signal(stop)
            _, stderr = await ended(process, process.communicate())
        os.close(writer)
    said = stderr.decode()
    assert process.returncode == exit_code, said
    assert "interrupted: left to do" in said
    assert "Traceback" not in said
    assert [record["id"] for record in journal(output)] == [fake.ids[0]]


# A sitecustomize that holds the command where it imports whop_async, until a signal
# comes: where a stop in its first few tenths of a second finds it.
HELD_AT_IMPORT = """
import os, signal, sys

class HoldWhopAsync:
    def find_spec(self, name, path=None, target=None):
        if name == "whop_async":
            sys.meta_path.remove(self)
            os.write(1, b"importing whop_async\\n")
            signal.pause()

sys.meta_path.insert(0, HoldWhopAsync())
"""


@pytest.mark.parametrize(("stop", "exit_code"), STOPS.values(), ids=list(STOPS))
async def test_a_stop_while_the_command_starts_is_one_line(
    stop: signal.Signals, exit_code: int, tmp_path: Path
) -> None:
    (tmp_path / "sitecustomize.py").write_text(HELD_AT_IMPORT)
    process = await start_cli(
        "unpause", "adgrp_1", environment={"PYTHONPATH": str(tmp_path)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    async with never_left_running(process):
        assert await process.stdout.readline() == b"importing whop_async\n"
        process.send_signal(stop)
        _, stderr = await ended(process, process.communicate())
    assert (process.returncode, stderr.decode()) == (
        exit_code,
        "whop-async: stopped before anything was sent\n",
    )
