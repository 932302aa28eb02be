"""Interruptions: Ctrl-C, and readers that go away mid-run."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from whop_async.testing import FakeWhop

from .cli_support import (
    journal,
    shell,
    start_cli,
    wait_for_lines,
)


async def test_ctrl_c_stops_cleanly_with_every_finished_id_journaled(tmp_path: Path) -> None:
    output = tmp_path / "results.jsonl"
    async with FakeWhop(groups=200, rate_limit=None, latency=0.02) as fake:
        process = await start_cli(
            "unpause", *fake.ids, "--output", str(output), "--rate", "0", "--concurrency", "4",
            fake=fake, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await wait_for_lines(output, 20)
        process.send_signal(signal.SIGINT)
        _, stderr = await process.communicate()
        assert process.returncode == 130
        active = fake.statuses()["active"]
    summary = stderr.decode()
    assert "interrupted: left to do" in summary
    assert "Traceback" not in summary
    records = journal(output)  # every line whole
    assert len(records) <= active
    assert active - len(records) <= 4  # at most the calls in flight


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
