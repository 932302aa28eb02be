"""The journal (--output): what it records, the lock that keeps it to one run, --resume."""

from __future__ import annotations

import asyncio
import errno
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from whop_async.testing import FakeWhop, example_ad_group

from .cli_support import (
    CLI,
    environment_for,
    journal,
    sent_once_each,
    start_cli,
    wait_for_lines,
    wait_until,
    whop_async_cli,
    without_root_powers,
)
from .helpers import serve


async def test_unpause_ids_writes_a_journal_and_exits_0(tmp_path: Path) -> None:
    output = tmp_path / "results.jsonl"
    async with FakeWhop(groups=3) as fake:
        code, _, stderr = await whop_async_cli(
            "unpause", *fake.ids, "--output", str(output), fake=fake
        )
        assert fake.statuses() == {"active": 3}
    assert code == 0, stderr
    records = sorted(journal(output), key=lambda r: r["id"])
    assert [(r["id"], r["ok"]) for r in records] == [(i, True) for i in fake.ids]
    # The whole answer, as the server sent it (today's shape: no platform, budget_amount).
    assert records[0]["ad_group"] == {
        **example_ad_group("docs-2026-11"),
        **{key: records[0]["ad_group"][key] for key in ("id", "title", "updated_at",
                                                         "created_at", "ad_campaign")},
    }  # fmt: skip
    assert records[0]["ad_group"]["status"] == "active"
    assert "unpaused" in stderr


async def test_a_run_killed_halfway_resumes_without_unpausing_anything_twice(
    tmp_path: Path,
) -> None:
    output = tmp_path / "results.jsonl"
    async with FakeWhop(groups=120, rate_limit=None, latency=0.02) as fake:
        args = ["unpause", *fake.ids, "--output", str(output), "--rate", "0", "--concurrency", "8"]
        process = await start_cli(*args, "--quiet", fake=fake, stderr=asyncio.subprocess.DEVNULL)
        await wait_for_lines(output, 40)
        process.kill()
        await process.wait()
        # The killed run's lock file stays, naming it; the kernel has released the lock.
        assert (tmp_path / "results.jsonl.lock").read_text() == f"{process.pid}\n"
        done_before = {record["id"] for record in journal(output) if record["ok"]}
        assert 40 <= len(done_before) < 120
        code, _, stderr = await whop_async_cli(*args, "--resume", "--quiet", fake=fake)
        assert code == 0, stderr
        assert fake.statuses() == {"active": 120}
        assert set(fake.stats.attempts) == set(fake.ids)
        assert max(fake.stats.attempts.values()) == 1  # in flight at the kill: replayed
    records = journal(output)
    assert {record["id"] for record in records} == set(fake.ids)
    assert f"{len(done_before)}" in stderr  # the summary counts the skipped ids


OUTPUT_PROBLEMS = {
    "a missing folder": ("missing/out.jsonl", "the folder missing does not exist"),
    "a folder": ("folder", "it is a folder; give the journal a file name"),
    "a path under a file": ("a-file/out.jsonl", "a-file is a file, not a folder"),
}


@pytest.mark.parametrize(("output", "reason"), OUTPUT_PROBLEMS.values(), ids=list(OUTPUT_PROBLEMS))
async def test_an_unusable_output_is_one_line_naming_it_and_exit_2_before_anything_is_sent(
    output: str, reason: str, tmp_path: Path
) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "a-file").write_text("")
    async with FakeWhop(groups=2) as fake:
        code, _, stderr = await whop_async_cli(
            "unpause", *fake.ids, "--output", output, fake=fake, cwd=tmp_path
        )
        assert fake.stats.requests == 0
    assert code == 2
    assert stderr == f"whop-async: --output {output}: {reason}\n"


async def test_an_output_folder_that_is_not_writable(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    os.mkdir(locked, 0o555)
    output = locked / "out.jsonl"
    async with FakeWhop(groups=2) as fake:
        process = await asyncio.create_subprocess_exec(
            *without_root_powers(), *CLI, "unpause", *fake.ids, "--output", str(output),
            env=environment_for(fake), stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, stderr = await process.communicate()
        assert fake.stats.requests == 0
    assert process.returncode == 2
    assert stderr.decode() == f"whop-async: --output {output}: not writable (Permission denied)\n"


FAILING_WRITES = Path(__file__).with_name("failing_writes.py")


@pytest.mark.parametrize("error", ["ENOSPC", "EIO"])
async def test_a_journal_that_fails_mid_run_stops_cleanly_and_resume_finishes_the_job(
    error: str, tmp_path: Path
) -> None:
    output = tmp_path / "results.jsonl"
    async with FakeWhop(groups=100, rate_limit=None) as fake:
        args = ["unpause", *fake.ids, "--output", str(output), "--rate", "0", "--concurrency", "4"]
        process = await asyncio.create_subprocess_exec(
            sys.executable, FAILING_WRITES, str(output), "30", error, *args,
            env=environment_for(fake), stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, stderr = await process.communicate()
        said = stderr.decode()
        assert process.returncode == 74, said
        assert len(journal(output)) == 30
        unpaused = int(re.search(r"unpaused\W+([\d,]+)", said).group(1))  # type: ignore[union-attr]
        assert unpaused > 30  # the groups it did unpause, not "unpaused 0"
        assert said.endswith(
            f"whop-async: stopped: cannot write {output} ({os.strerror(getattr(errno, error))}):"
            f" {unpaused} ids finished, 30 of them recorded. Once it can be written, the same"
            " command with --resume is safe: it skips what is recorded and sends the rest with"
            " this run's Idempotency-Keys, so Whop replays rather than repeats what it already"
            " did.\n"
        )
        assert "Traceback" not in said
        code, _, stderr = await whop_async_cli(*args, "--resume", fake=fake)
        assert code == 0, stderr
        assert fake.statuses() == {"active": 100}
        assert max(fake.stats.attempts.values()) == 1  # unrecorded ones were replayed
    assert sorted(record["id"] for record in journal(output)) == fake.ids


async def test_a_second_run_on_a_journal_in_use_is_refused_at_once(tmp_path: Path) -> None:
    output = tmp_path / "results.jsonl"
    lock, seed = tmp_path / "results.jsonl.lock", tmp_path / "results.jsonl.idempotency-seed"
    answering = asyncio.Event()

    @web.middleware
    async def held(request: web.Request, handler: Any) -> web.StreamResponse:
        await answering.wait()
        return await handler(request)  # type: ignore[no-any-return]

    fake = FakeWhop(groups=40, rate_limit=None)
    app = fake.app()
    app.middlewares.insert(0, held)
    async with serve(app) as base_url:
        environment = {"WHOP_API_KEY": fake.api_key, "WHOP_BASE_URL": base_url}
        args = ["unpause", *fake.ids, "--output", str(output), "--rate", "0"]
        first = await asyncio.create_subprocess_exec(
            *CLI, *args, env=environment_for(environment=environment),
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await wait_until(lambda: lock.exists() and lock.read_text() == f"{first.pid}\n", "lock")
        await wait_until(lambda: fake.stats.requests == 0 and seed.exists(), "first run sending")
        first_seed = seed.read_text()
        for again in ([], ["--resume"]):
            code, _, stderr = await whop_async_cli(*args, *again, environment=environment)
            assert code == 2
            assert stderr == (
                f"whop-async: --output {output} is in use by another run (pid {first.pid});"
                " one run per journal: wait for it to end, or give another --output\n"
            )
        assert first.returncode is None  # refused while the first run was still going
        assert seed.read_text() == first_seed  # the refused runs never touched it
        answering.set()
        _, first_stderr = await first.communicate()
        assert first.returncode == 0, first_stderr
        assert sent_once_each(fake, fake.ids)
    assert sorted(record["id"] for record in journal(output)) == fake.ids


async def test_an_accepted_answer_that_cannot_be_read_is_journaled_apart_and_not_redone(
    tmp_path: Path,
) -> None:
    sent: list[str] = []

    async def unpause(request: web.Request) -> web.StreamResponse:
        ad_group_id = request.match_info["id"]
        sent.append(ad_group_id)
        if ad_group_id == "adgrp_garbled":
            return web.Response(text="<html>done</html>", content_type="text/html")
        return web.json_response({**example_ad_group(), "id": ad_group_id})

    app = web.Application()
    app.router.add_post("/api/v1/ad_groups/{id}/unpause", unpause)
    output = tmp_path / "results.jsonl"
    args = ["unpause", "adgrp_good", "adgrp_garbled", "--output", str(output), "--rate", "0"]
    async with serve(app) as base_url:
        environment = {"WHOP_API_KEY": "k", "WHOP_BASE_URL": base_url}
        code, _, stderr = await whop_async_cli(*args, environment=environment)
        assert code == 0, stderr  # the server carried out both
        assert "answer unreadable" in stderr
        records = {record["id"]: record for record in journal(output)}
        garbled = records["adgrp_garbled"]
        assert (garbled["ok"], garbled["accepted"], garbled["status_code"]) == (False, True, 200)
        assert "the server accepted" in garbled["message"]
        code, _, stderr = await whop_async_cli(*args, "--resume", environment=environment)
    assert code == 0, stderr
    assert sorted(sent) == ["adgrp_garbled", "adgrp_good"]  # the resumed run sent nothing
    assert "1 ids in" in stderr
    assert "not sent again" in stderr
