"""The journal (--output): what it records, the lock that keeps it to one run, --resume."""

from __future__ import annotations

import asyncio
import collections
import errno
import hashlib
import json
import os
import re
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

import whop_async.cli
from whop_async.testing import FakeWhop, example_ad_group

from .cli_support import (
    CLI,
    ended,
    environment_for,
    journal,
    recording_keys,
    runs,
    sent_once_each,
    shell,
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
        await wait_for_lines(output, 1 + 40)  # its run line, then 40 ids
        process.kill()
        await process.wait()
        # The killed run's pid file stays, naming it; the kernel has released the lock.
        assert (tmp_path / "results.jsonl.pid").read_text() == f"{process.pid}\n"
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
    killed, resumed = runs(output)
    assert (killed["resume"], resumed["resume"]) == (False, True)
    assert resumed["seed"] == killed["seed"]  # the keys of the killed run, for its ids in flight


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


NOT_REGULAR = {
    "a FIFO": ("ids.fifo", "it is a FIFO"),
    "a device": ("/dev/null", "it is a character device"),
    "a socket": ("s.sock", "it is a socket"),
}


@pytest.mark.parametrize("resume", [[], ["--resume"]], ids=["new", "resumed"])
@pytest.mark.parametrize(("output", "kind"), NOT_REGULAR.values(), ids=list(NOT_REGULAR))
async def test_an_output_that_is_not_a_regular_file_is_refused_without_waiting_on_it(
    output: str, kind: str, resume: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    os.mkfifo(tmp_path / "ids.fifo")  # nobody reads it: opening it to write would wait
    monkeypatch.chdir(tmp_path)  # a socket's path must be short
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind("s.sock")
    async with FakeWhop(groups=2) as fake:
        code, _, stderr = await whop_async_cli(
            "unpause", *fake.ids, "--output", output, *resume, fake=fake, cwd=tmp_path
        )
        assert fake.stats.requests == 0
    assert (code, stderr) == (
        2,
        f"whop-async: --output {output}: {kind}; a journal must be a regular file"
        " (--resume reads it back)\n",
    )
    assert sorted(os.listdir(tmp_path)) == ["ids.fifo", "s.sock"]  # nothing made beside


async def test_a_fifo_where_an_earlier_release_kept_its_seed_is_refused_not_waited_on(
    tmp_path: Path,
) -> None:
    output = tmp_path / "results.jsonl"
    output.write_text('{"id":"adgrp_000000000001","ok":false,"accepted":false}\n')
    os.mkfifo(tmp_path / "results.jsonl.idempotency-seed")
    async with FakeWhop(groups=2) as fake:
        code, _, stderr = await whop_async_cli(
            "unpause", *fake.ids, "--output", str(output), "--resume", fake=fake
        )
        assert fake.stats.requests == 0
    assert (code, stderr) == (
        2,
        f"whop-async: --output {output}: cannot read {output}.idempotency-seed: it is a FIFO;"
        " a journal must be a regular file (--resume reads it back)\n",
    )


def test_without_the_cli_extra_a_journal_is_refused_naming_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "filelock", None)  # what makes its import fail
    monkeypatch.setenv("WHOP_API_KEY", "k")
    code = whop_async.cli.main(["unpause", "adgrp_1", "--output", str(tmp_path / "out.jsonl")])
    assert (code, capsys.readouterr().err) == (
        2,
        "whop-async: --output needs the cli extra, whose filelock holds the journal for one"
        " run: pip install 'whop-async[cli]'\n",
    )
    assert os.listdir(tmp_path) == []


FAILING_WRITES = Path(__file__).with_name("failing_writes.py")


@pytest.mark.parametrize("error", ["ENOSPC", "EIO"])
async def test_a_journal_that_fails_mid_run_stops_cleanly_and_resume_finishes_the_job(
    error: str, tmp_path: Path
) -> None:
    output = tmp_path / "results.jsonl"
    async with FakeWhop(groups=100, rate_limit=None) as fake:
        args = ["unpause", *fake.ids, "--output", str(output), "--rate", "0", "--concurrency", "4"]
        process = await asyncio.create_subprocess_exec(
            # The run's own line, then 30 outcomes.
            sys.executable, FAILING_WRITES, str(output), "31", error, *args,
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


def other_names(output: Path) -> dict[Path, str]:
    """Other names for the journal ``output``, each with how a refused run names its
    holder: the pid is found beside the file a name leads to, and a hardlink has none
    beside it."""
    (output.parent / "linked").symlink_to(output.parent)
    (output.parent / "symlink.jsonl").symlink_to(output.name)
    os.link(output, output.parent / "hardlink.jsonl")
    return {
        output.parent / "linked" / output.name: "pid",
        output.parent / "symlink.jsonl": "pid",
        output.parent / "hardlink.jsonl": "",
    }


async def test_a_second_run_on_a_journal_in_use_is_refused_at_once_by_any_name(
    tmp_path: Path,
) -> None:
    output = tmp_path / "results.jsonl"
    pid_file = tmp_path / "results.jsonl.pid"
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
        args = ["unpause", *fake.ids, "--rate", "0"]
        first = await start_cli(
            *args, "--output", str(output), environment=environment,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await wait_until(lambda: pid_file.exists() and runs(output) != [], "the first run's line")
        assert pid_file.read_text() == f"{first.pid}\n"
        held_journal = output.read_bytes()
        seconds = [(output, "pid", []), (output, "pid", ["--resume"])] + [
            (name, holder, ["--resume"]) for name, holder in other_names(output).items()
        ]
        refused = await asyncio.gather(
            *(
                whop_async_cli(*args, "--output", str(name), *again, environment=environment)
                for name, _, again in seconds
            )
        )
        for (name, holder, _), said in zip(seconds, refused, strict=True):
            named = f" (pid {first.pid})" if holder else ""
            assert said == (
                2,
                "",
                f"whop-async: --output {name} is in use by another run{named};"
                " one run per journal: wait for it to end, or give another --output\n",
            )
        assert first.returncode is None  # refused while the first run was still going
        assert output.read_bytes() == held_journal  # the refused runs never touched it
        answering.set()
        _, first_stderr = await ended(first, first.communicate())
        assert first.returncode == 0, first_stderr
        assert sent_once_each(fake, fake.ids)
    assert sorted(record["id"] for record in journal(output)) == fake.ids
    assert not pid_file.exists()  # a run that ends takes its pid away


async def test_an_answer_that_cannot_be_read_fails_the_run_and_resume_sends_it_again(
    tmp_path: Path,
) -> None:
    keys: dict[str, list[str]] = collections.defaultdict(list)

    async def unpause(request: web.Request) -> web.StreamResponse:
        ad_group_id = request.match_info["id"]
        keys[ad_group_id].append(request.headers["Idempotency-Key"])
        if ad_group_id == "adgrp_garbled" and len(keys[ad_group_id]) == 1:
            return web.Response(text="<html>done</html>", content_type="text/html")
        return web.json_response({**example_ad_group(), "id": ad_group_id})

    app = web.Application()
    app.router.add_post("/api/v1/ad_groups/{id}/unpause", unpause)
    output = tmp_path / "results.jsonl"
    args = ["unpause", "adgrp_good", "adgrp_garbled", "--output", str(output), "--rate", "0"]
    async with serve(app) as base_url:
        environment = {"WHOP_API_KEY": "k", "WHOP_BASE_URL": base_url}
        code, _, stderr = await whop_async_cli(*args, environment=environment)
        assert code == 1, stderr  # whether the server carried it out is unknown
        assert "answer unreadable" in stderr
        assert stderr.endswith(
            "whop-async: answered 2xx with something other than an ad group: 1 of 2 ids."
            " Whether Whop carried those out is unknown, so they count as not done (exit 1):"
            " the same command with --resume sends them again with the same Idempotency-Keys,"
            " so Whop replays rather than repeats what it did.\n"
        )
        records = {record["id"]: record for record in journal(output)}
        garbled = records["adgrp_garbled"]
        assert (garbled["ok"], garbled["accepted"], garbled["status_code"]) == (False, True, 200)
        assert "the server accepted" in garbled["message"]
        code, _, stderr = await whop_async_cli(*args, "--resume", environment=environment)
    assert code == 0, stderr
    assert len(keys["adgrp_good"]) == 1  # recorded ok: not sent again
    first_key, again = keys["adgrp_garbled"]
    assert again == first_key  # the same call, so Whop replays it
    assert stderr.startswith(
        f"whop-async: resuming {output}: ids whose answer could not be read are sent again,"
        " with the Idempotency-Keys they were sent with: 1\n"
    )


async def test_a_journal_is_bound_to_the_base_url_and_the_key_it_was_made_with(
    tmp_path: Path,
) -> None:
    output = tmp_path / "results.jsonl"
    async with FakeWhop(groups=3) as sandbox, FakeWhop(groups=3) as live:
        assert sandbox.ids == live.ids  # a journal of one would skip the other's groups
        ids = sandbox.ids
        made = ["unpause", *ids[:2], "--output", str(output), "--rate", "0"]
        assert (await whop_async_cli(*made, fake=sandbox))[0] == 0
        journal_made = output.read_bytes()
        elsewhere = {
            "base URL": ({}, live, f"another base URL than this run's ({live.base_url})"),
            "key": ({"WHOP_API_KEY": "sk_another_key"}, sandbox, "another API key than this run's"),
        }
        for environment, fake, what in elsewhere.values():
            for again in (["--resume"], []):
                code, _, stderr = await whop_async_cli(
                    "unpause", *ids, "--output", str(output), "--rate", "0", *again,
                    fake=fake, environment=environment,
                )  # fmt: skip
                assert (code, stderr) == (
                    2,
                    f"whop-async: --output {output} holds runs made against {what}: a journal"
                    " keeps to one base URL and key, so that --resume never skips ids done"
                    " elsewhere. Nothing was sent; give another --output.\n",
                )
                assert output.read_bytes() == journal_made
        assert (live.stats.requests, sandbox.stats.requests) == (0, 2)
        resumed = ["unpause", *ids, "--output", str(output), "--rate", "0", "--resume"]
        code, _, stderr = await whop_async_cli(*resumed, fake=sandbox)
        assert code == 0, stderr
        assert sent_once_each(sandbox, ids)
    for secret in (sandbox.api_key, "sk_another_key"):
        assert secret not in output.read_text()


async def test_a_journal_of_an_earlier_release_resumes_with_its_seed_and_is_bound_from_then_on(
    tmp_path: Path,
) -> None:
    output = tmp_path / "results.jsonl"
    seed = "5eed" * 8
    fake = FakeWhop(groups=3, rate_limit=None)
    app = fake.app()
    keys = recording_keys(app)
    # As an earlier release left it: outcome lines only, and the seed in a file beside.
    output.write_text(json.dumps({"id": fake.ids[0], "ok": True, "ad_group": {}}) + "\n")
    (tmp_path / "results.jsonl.idempotency-seed").write_text(seed + "\n")
    args = ["unpause", *fake.ids, "--output", str(output), "--rate", "0", "--resume"]
    async with serve(app) as base_url, FakeWhop(groups=3) as elsewhere:
        environment = {"WHOP_API_KEY": fake.api_key, "WHOP_BASE_URL": base_url}
        code, _, stderr = await whop_async_cli(*args, environment=environment)
        assert code == 0, stderr
        assert stderr.startswith(
            f"whop-async: {output} was made by an earlier release, which did not record"
            f" the base URL and key it was made with: resuming it against {base_url},"
            " and bound to it and this key from now on\n"
        )
        # The earlier release's keys, so what it had in flight is replayed.
        assert keys == {
            ad_group_id: [hashlib.sha256(f"{seed}:{ad_group_id}".encode()).hexdigest()[:40]]
            for ad_group_id in fake.ids[1:]
        }
        code, _, stderr = await whop_async_cli(*args, fake=elsewhere)
        assert code == 2
        assert "holds runs made against another base URL" in stderr
        assert elsewhere.stats.requests == 0


# The ids file grows past 512 KB only if the run reads its own lines back: it is then
# stopped (SIGXFSZ) instead of filling the disk.
@pytest.mark.parametrize(
    "given",
    [
        "--file ids.txt --output ids.txt",
        "--file link.txt --output ids.txt",  # a symlink
        "--file hardlink.txt --output ids.txt",
        "--file - --output ids.txt < ids.txt",
        "--file /dev/stdin --output link.txt < hardlink.txt",
    ],
)
async def test_a_journal_that_is_the_file_of_ids_is_refused_before_anything_is_written(
    given: str, tmp_path: Path
) -> None:
    ids = tmp_path / "ids.txt"
    async with FakeWhop(groups=3, rate_limit=None) as fake:
        ids.write_text("".join(f"{ad_group_id}\n" for ad_group_id in fake.ids))
        (tmp_path / "link.txt").symlink_to(ids)
        (tmp_path / "hardlink.txt").hardlink_to(ids)
        code, _, stderr = await shell(
            f"ulimit -f 1024; whop-async unpause {given} --rate 0", fake=fake, cwd=tmp_path
        )
        assert fake.stats.requests == 0
    file, output = given.split(" <")[0].removeprefix("--file ").split(" --output ")
    assert (code, stderr) == (
        2,
        f"whop-async: --file {file} and --output {output} are the same file: the run would"
        " read its own journal back as ids. Nothing was sent; give another --output.\n",
    )
    assert ids.read_text() == "".join(f"{ad_group_id}\n" for ad_group_id in fake.ids)


async def test_resume_skips_the_ids_recorded_ok_and_only_those(tmp_path: Path) -> None:
    output = tmp_path / "results.jsonl"
    async with FakeWhop(groups=8, rate_limit=None) as fake:
        args = ["unpause", "--output", str(output), "--rate", "0", "--quiet"]
        assert (await whop_async_cli(*args, fake.ids[0], fake=fake))[0] == 0
        ok, spaced, cut, cut_short, failed, unreadable, account = fake.ids[1:]
        group = json.dumps(example_ad_group(), separators=(",", ":"))
        with output.open("a") as lines:
            lines.write(
                f'{{"id":"{ok}","ok":true,"ad_group":{group}}}\n'
                + json.dumps({"id": spaced, "ok": True, "ad_group": {}})  # another writer
                + f'\n{{"id":"{cut}","ok":true,"ad_group":{group[:40]}\n'  # a disk full
                f'{{"id":"{cut_short}","ok":tr\n'
                f'{{"id":"{failed}","ok":false,"accepted":false,"message":"true"}}\n'
                f'{{"id":"{unreadable}","ok":false,"accepted":true,"message":"html"}}\n'
                f'{{"account":"acme","id":"{account}","ok":true,"ad_group":{group}}}\n'
            )
        fake.reset()
        code, _, stderr = await whop_async_cli(*args, "--resume", *fake.ids, fake=fake)
        assert code == 0, stderr
        # An ok line cut short still says the id was done; one cut before "true" not.
        assert sent_once_each(fake, [cut_short, failed, unreadable, account])


async def test_a_journal_that_fails_at_a_row_without_an_id_stops_cleanly(tmp_path: Path) -> None:
    output = tmp_path / "results.jsonl"
    table = tmp_path / "ids.csv"
    async with FakeWhop(groups=3, rate_limit=None) as fake:
        table.write_text("name,id\nfirst,\n" + "".join(f"x,{i}\n" for i in fake.ids))
        args = ["unpause", "--file", str(table), "--output", str(output), "--rate", "0"]
        process = await asyncio.create_subprocess_exec(
            # The run's own line, then nothing: the first outcome is the row's.
            sys.executable, FAILING_WRITES, str(output), "1", "ENOSPC", *args,
            env=environment_for(fake), stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, stderr = await process.communicate()
        said = stderr.decode()
        assert process.returncode == 74, said
        assert f"stopped: cannot write {output}" in said
        assert "Traceback" not in said
        code, _, stderr_again = await whop_async_cli(*args, "--resume", fake=fake)
        assert fake.statuses() == {"active": 3}
    assert code == 1, stderr_again  # the row still has no id
    assert "line 2 of" in stderr_again
