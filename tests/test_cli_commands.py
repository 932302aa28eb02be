"""The commands as an operator sees them: list, pause, campaigns, the progress bar, demo
and fake-server."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

from whop_async.testing import FakeWhop, example_ad_group

from .cli_support import (
    INTERRUPTIBLE_CLI,
    journal,
    on_a_terminal,
    shell,
    whop_async_cli,
)


async def test_list_with_an_unknown_status_warns_and_exits_1_when_nothing_matches() -> None:
    async with FakeWhop(groups=2, rate_limit=None) as fake:
        code, stdout, stderr = await whop_async_cli("list", "--status", "bogus", fake=fake)
        assert (code, stdout) == (1, "")
        assert stderr.splitlines() == [
            "whop-async: --status bogus is not one of active, paused, inactive, in_review,"
            " rejected, flagged, duplicating; asking the API anyway",
            "whop-async: no ad groups are bogus",
        ]
        fake.add_group("adgrp_newstatus", status="archived")  # a status newer than the client
        code, stdout, _ = await whop_async_cli("list", "--status", "archived", fake=fake)
        assert (code, stdout) == (0, "adgrp_newstatus\n")
        code, stdout, stderr = await whop_async_cli("list", "--status", "active", fake=fake)
    assert (code, stdout, stderr) == (0, "", "whop-async: no ad groups matched\n")


async def test_the_progress_bar_shows_on_a_terminal() -> None:
    async with FakeWhop(groups=60, rate_limit=None, latency=0.01) as fake:
        screen = await on_a_terminal(
            "unpause", *fake.ids, "--rate", "0", "--concurrency", "2", fake=fake
        )
    assert "unpausing" in screen
    assert "rate-limit waits" in screen
    assert "/60" in screen


async def test_quiet_or_piped_output_shows_no_bar() -> None:
    async with FakeWhop(groups=2) as fake:
        code, _, stderr = await whop_async_cli("unpause", *fake.ids, fake=fake)
    assert code == 0
    assert "unpausing" not in stderr


async def test_the_demo_needs_no_key_and_checks_the_server() -> None:
    code, _, stderr = await whop_async_cli("demo", "--groups", "150", "--fault-rate", "0.05")
    assert code == 0, stderr
    assert "Checked on the server: 150 of 150 ad groups are active" in stderr


async def test_the_fake_server_prints_lines_to_paste_into_a_shell_and_serves_until_ctrl_c(
    tmp_path: Path,
) -> None:
    process = await asyncio.create_subprocess_exec(
        *INTERRUPTIBLE_CLI, "fake-server", "--port", "0", "--groups", "2", "--rate", "0",
        "--api-key", "sk_test_$key's\"&;",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    pasted = [(await process.stdout.readline()).decode() for _ in range(2)]
    assert pasted[0].startswith("export WHOP_BASE_URL=http://127.0.0.1:")
    assert pasted[1].startswith("export WHOP_API_KEY=")
    code, stdout, stderr = await shell(
        "".join(pasted) + "whop-async list && whop-async unpause adgrp_000000000001", cwd=tmp_path
    )
    process.send_signal(signal.SIGINT)
    await process.wait()
    assert code == 0, stderr
    assert stdout.split() == ["adgrp_000000000002", "adgrp_000000000001"]
    assert process.returncode == 130


async def test_unpause_a_whole_campaign(tmp_path: Path) -> None:
    output = tmp_path / "results.jsonl"
    async with FakeWhop(groups=30, campaigns=2) as fake:
        code, _, stderr = await whop_async_cli(
            "unpause", "--campaign", "adcamp_00000000002", "--output", str(output), fake=fake
        )
        statuses = {ad_group_id: fake.status_of(ad_group_id) for ad_group_id in fake.ids}
    assert code == 0, stderr
    assert {statuses[i] for i in fake.ids[1::2]} == {"active"}
    assert {statuses[i] for i in fake.ids[0::2]} == {"paused"}
    assert {record["id"] for record in journal(output)} == set(fake.ids[1::2])


async def test_pause_mirrors_unpause_with_journal_and_resume(tmp_path: Path) -> None:
    output = tmp_path / "paused.jsonl"
    async with FakeWhop(groups=4, status="active") as fake:
        args = ["pause", *fake.ids[:3], "--output", str(output)]
        assert (await whop_async_cli(*args, fake=fake))[0] == 0
        assert fake.statuses() == {"paused": 3, "active": 1}
        code, _, stderr = await whop_async_cli(*args, "--resume", fake=fake)
        assert max(fake.stats.attempts.values()) == 1  # the resumed run had nothing left
    assert code == 0
    assert {record["ad_group"]["status"] for record in journal(output)} == {"paused"}
    assert stderr == (
        f"whop-async: nothing to pause: all 3 ids are already recorded as done in {output}\n"
    )


async def test_list_prints_ids_or_json_lines_for_piping() -> None:
    async with FakeWhop(groups=6, campaigns=2) as fake:
        fake.add_group("adgrp_liveone000", status="active", campaign=2)
        code, stdout, _ = await whop_async_cli(
            "list", "--campaign", "adcamp_00000000002", "--status", "paused", fake=fake
        )
        assert code == 0
        assert stdout.split() == list(reversed(fake.ids[1:6:2]))
        code, stdout, _ = await whop_async_cli("list", "--json", fake=fake)
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert code == 0
    assert [line["id"] for line in lines] == list(reversed(fake.ids))
    assert lines[0]["status"] == "active"
    assert set(lines[0]) == set(example_ad_group("docs-2026-11"))  # every field, as sent
