"""The whop-async command line, driven as an operator drives it: the installed command
in a subprocess, through real pipes, FIFOs, terminals and shells."""

from __future__ import annotations

import ast
import asyncio
import collections
import errno
import json
import os
import pty
import re
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

import whop_async.cli
import whop_async.testing
from whop_async.cli.exits import MEANINGS
from whop_async.testing import FakeWhop, example_ad_group

from .helpers import serve

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
    process = await asyncio.create_subprocess_exec(
        *CLI, *args, env=environment_for(fake, environment), cwd=cwd,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await process.communicate(stdin)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


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
    return [json.loads(line) for line in path.read_text().splitlines()]


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


async def test_ids_from_a_file_a_csv_and_standard_input(tmp_path: Path) -> None:
    async with FakeWhop(groups=6) as fake:
        ids = fake.ids
        plain = tmp_path / "ids.txt"
        plain.write_text(f"# to unpause\n{ids[0]}\n\n  {ids[1]}  \n{ids[0]}\n")
        table = tmp_path / "export.csv"
        table.write_text(f"name,ID,budget\nfirst,{ids[2]},5\nsecond,{ids[3]},7\n")
        assert (await whop_async_cli("unpause", "--file", str(plain), fake=fake))[0] == 0
        assert (await whop_async_cli("unpause", "--file", str(table), fake=fake))[0] == 0
        piped = f"{ids[4]}\n{ids[5]}\n".encode()
        assert (await whop_async_cli("unpause", "--file", "-", fake=fake, stdin=piped))[0] == 0
        assert fake.statuses() == {"active": 6}
        assert fake.stats.attempts[ids[0]] == 1  # a duplicate is unpaused once


async def test_failures_are_journaled_and_exit_1(tmp_path: Path) -> None:
    output = tmp_path / "results.jsonl"
    async with FakeWhop(groups=1) as fake:
        code, _, stderr = await whop_async_cli(
            "unpause", fake.ids[0], "adgrp_missing", "bad/id", "--output", str(output), fake=fake
        )
    assert code == 1
    records = {record["id"]: record for record in journal(output)}
    assert records[fake.ids[0]]["ok"] is True
    missing = records["adgrp_missing"]
    assert (missing["ok"], missing["error"], missing["status_code"]) == (
        False,
        "NotFoundError",
        404,
    )
    assert "not found" in missing["message"]
    assert records["bad/id"]["error"] == "InvalidIdError"
    assert "NotFoundError" in stderr


async def test_the_summary_counts_the_failures_it_does_not_show_and_says_where_they_are(
    tmp_path: Path,
) -> None:
    output = tmp_path / "results.jsonl"
    missing = [f"adgrp_missing{number:03d}" for number in range(30)]
    async with FakeWhop(groups=2, rate_limit=None) as fake:
        args = ["unpause", *fake.ids, *missing, "--rate", "0"]
        code, _, journaled = await whop_async_cli(*args, "--output", str(output), fake=fake)
        _, _, unjournaled = await whop_async_cli(*args, fake=fake)
    assert code == 1
    assert "and 20 more failures in " in journaled
    assert str(output) in journaled.split("and 20 more failures in ")[1]
    assert "and 20 more failures (--output FILE keeps every one)" in unjournaled
    # The full URL, so a base URL missing /api/v1 would show.
    shown = [line for line in journaled.splitlines() if "adgrp_missing" in line]
    assert len(shown) == 10
    assert all(f" [POST {fake.base_url}/ad_groups/adgrp_missing" in line for line in shown)


async def test_a_run_with_nothing_to_do_says_so(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("# nothing yet\n\n")
    async with FakeWhop(groups=3, campaigns=2, rate_limit=None) as fake:
        fake.add_group("adgrp_campaign3", status="active", campaign=3)
        for args, message in [
            (["--file", "empty.txt"], "nothing to unpause: the input was empty"),
            (["--file", "-"], "nothing to unpause: the input was empty"),
            (
                ["--campaign", "adcamp_00000000003"],
                "nothing to unpause: campaign adcamp_00000000003 has no paused ad groups",
            ),
        ]:
            code, _, stderr = await whop_async_cli(
                "unpause", *args, "--rate", "0", fake=fake, cwd=tmp_path, stdin=b""
            )
            assert (code, stderr) == (0, f"whop-async: {message}\n")
        assert fake.stats.attempts == {}


async def test_a_campaign_that_matches_nothing_at_all_exits_1() -> None:
    async with FakeWhop(groups=2, rate_limit=None) as fake:
        unknown = ["--campaign", "adcamp_nosuchthing"]
        code, _, stderr = await whop_async_cli("unpause", *unknown, "--rate", "0", fake=fake)
        assert (code, stderr) == (
            1,
            "whop-async: --campaign adcamp_nosuchthing has no ad groups; is the id right?\n",
        )
        code, _, stderr = await whop_async_cli(
            "unpause", fake.ids[0], *unknown, "--rate", "0", fake=fake
        )
        assert code == 1
        assert stderr.endswith("--campaign adcamp_nosuchthing has no ad groups; is the id right?\n")
        assert fake.statuses() == {"active": 1, "paused": 1}  # the id given still went
        code, stdout, stderr = await whop_async_cli("list", *unknown, fake=fake)
        assert (code, stdout) == (1, "")
        assert stderr == (
            "whop-async: --campaign adcamp_nosuchthing has no ad groups; is the id right?\n"
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


async def test_a_listing_that_fails_mid_run_stops_it_with_a_summary() -> None:
    async def pages(request: web.Request) -> web.StreamResponse:
        if "after" in request.query:
            return web.json_response({"error": {"message": "bad cursor"}}, status=400)
        groups = [{**example_ad_group(), "id": f"adgrp_listed{n}"} for n in range(2)]
        page_info = {"end_cursor": "next", "has_next_page": True}
        return web.json_response({"data": groups, "page_info": page_info})

    async def unpause(request: web.Request) -> web.StreamResponse:
        return web.json_response({**example_ad_group(), "id": request.match_info["id"]})

    app = web.Application()
    app.router.add_get("/api/v1/ad_groups", pages)
    app.router.add_post("/api/v1/ad_groups/{id}/unpause", unpause)
    async with serve(app) as base_url:
        code, _, stderr = await whop_async_cli(
            "unpause", "--campaign", "adcamp_1", "--rate", "0",
            environment={"WHOP_API_KEY": "k", "WHOP_BASE_URL": base_url},
        )  # fmt: skip
    assert code == 1
    assert "Traceback" not in stderr
    assert stderr.endswith(
        "whop-async: stopped: listing the ad groups failed: 400 from GET /ad_groups: bad cursor"
        f" [GET {base_url}/ad_groups?ad_campaign_id=adcamp_1&status=paused&first=100&after=next]\n"
    )


@pytest.mark.parametrize(
    ("args", "environment", "message"),
    [
        (["unpause", "adgrp_1"], {}, "set WHOP_API_KEY"),
        (
            ["unpause", "--file", "/no/such/file"],
            {"WHOP_API_KEY": "k"},
            "--file /no/such/file: cannot read it",
        ),
        (
            ["unpause", "--rate", "-1", "adgrp_1"],
            {"WHOP_API_KEY": "k"},
            "--rate: must be 0 or more",
        ),
        (
            ["unpause", "--rate", "abc", "adgrp_1"],
            {"WHOP_API_KEY": "k"},
            "--rate: expected a whole number of requests per minute, got 'abc'",
        ),
        (["list", "--concurrency", "2"], {}, "unrecognized arguments: --concurrency 2"),
        (["unpause", "--concurrency", "0"], {}, "--concurrency: must be 1 or more, got 0"),
        (["demo", "--fault-rate", "lots"], {}, "--fault-rate: expected a share from 0 to 1"),
        (["unpause", "--redis-url", "nope"], {}, "--redis-url: expected a redis://, rediss://"),
        (
            ["unpause", "--campaign", "adcamp/../x"],
            {"WHOP_API_KEY": "k"},
            "--campaign: ad_campaign_id must be a Whop id",
        ),
        (["unpause", "--bogus"], {"WHOP_API_KEY": "k"}, "unrecognized arguments: --bogus"),
        (["unpause"], {"WHOP_API_KEY": "k"}, "give ids as arguments"),
        (["unpause", "--resume", "adgrp_1"], {"WHOP_API_KEY": "k"}, "--resume needs --output"),
        (
            ["unpause", "--base-url", "nope", "adgrp_1"],
            {"WHOP_API_KEY": "k"},
            "--base-url: base_url must be an http(s) URL",
        ),
        (
            ["list"],
            {"WHOP_API_KEY": "k", "WHOP_BASE_URL": "api.whop.com"},
            "WHOP_BASE_URL: base_url must be an http(s) URL",
        ),
        (
            ["unpause", "adgrp_1"],
            {"WHOP_API_KEY": "sk_pasted_with_a_newline\n"},
            "WHOP_API_KEY: api_key must be printable ASCII",
        ),
        ([], {}, "the following arguments are required"),
        (["fake-server", "--per", "0"], {}, "--per: must be more than 0 seconds"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(
    args: list[str],
    environment: dict[str, str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # In-process, as there are many: the subprocess test below shows the command agrees.
    for name in os.environ:
        if name.startswith("WHOP_"):
            monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    try:
        code = whop_async.cli.main(args)
    except SystemExit as stopped:  # argparse's own usage errors
        code = stopped.code  # type: ignore[assignment]
    stderr = capsys.readouterr().err
    assert code == 2
    assert message in stderr
    assert len(stderr.strip().splitlines()) == 1


async def test_bad_usage_from_the_installed_command_is_one_line_and_exit_2() -> None:
    code, _, stderr = await whop_async_cli("unpause", "--concurrency", "0")
    assert (code, stderr) == (
        2,
        "whop-async unpause: --concurrency: must be 1 or more, got 0 (see --help)\n",
    )


# --- ids from anything a shell hands over ----------------------------------------------


@pytest.mark.parametrize(
    ("command", "count"),
    [
        # Where a counting pass used to swallow all but a few hundred ids.
        ("cat ids.txt | whop-async unpause --file /dev/stdin", 3000),
        ("whop-async unpause --file <(cat ids.txt)", 3000),
        ("cat ids.txt | whop-async unpause --file -", 1000),
        ("whop-async unpause --file /dev/stdin < ids.txt", 1000),  # a regular file
    ],
)
async def test_every_id_a_shell_hands_over_is_sent_exactly_once(
    command: str, count: int, tmp_path: Path
) -> None:
    async with FakeWhop(groups=count, rate_limit=None) as fake:
        (tmp_path / "ids.txt").write_text("".join(f"{i}\n" for i in fake.ids))
        code, _, stderr = await shell(
            f"{command} --rate 0 --quiet --output out.jsonl", fake=fake, cwd=tmp_path
        )
        assert code == 0, stderr
        assert sent_once_each(fake, fake.ids)
    assert len(journal(tmp_path / "out.jsonl")) == count


async def test_ids_through_a_fifo_written_in_pieces_by_another_task(tmp_path: Path) -> None:
    fifo = tmp_path / "ids.fifo"
    os.mkfifo(fifo)
    async with FakeWhop(groups=2000, rate_limit=None) as fake:
        text = "".join(f"{i}\n" for i in fake.ids).encode()

        def write_in_pieces() -> None:
            with open(fifo, "wb") as pipe:  # waits for the command to open it
                for start in range(0, len(text), 1000):  # pieces cut lines anywhere
                    pipe.write(text[start : start + 1000])
                    pipe.flush()

        writer = asyncio.create_task(asyncio.to_thread(write_in_pieces))
        code, _, stderr = await whop_async_cli(
            "unpause", "--file", str(fifo), "--rate", "0", "--quiet", fake=fake
        )
        await writer
        assert code == 0, stderr
        assert sent_once_each(fake, fake.ids)


ID_FILES = {
    "spreadsheet CSV with a byte-order mark": "\ufeffname,ID,budget\r\na,{0},5\r\nb,{1},7\r\n",
    "one-column CSV with an id header": "id\n{0}\n{1}\n",
    "one-column CSV, BOM and CRLF": "\ufeffid\r\n{0}\r\n{1}\r\n",
    "quoted CSV": '"id","name"\n"{0}","a, b"\n"{1}","c"\n',
    "CSV with empty rows": "id,name\n{0},a\n,\n{1},b\n,,\n",
    "plain lines with comments": "# to unpause\n{0}  # the big one\n\n  {1}#why\n{0}\n",
    "plain lines, CRLF, no final line end": "{0}\r\n{1}",
}


@pytest.mark.parametrize("how", ["--file ids.csv", "--file - < <(cat ids.csv)"])
@pytest.mark.parametrize("content", list(ID_FILES.values()), ids=list(ID_FILES))
async def test_each_kind_of_id_file_sends_its_ids_and_nothing_else(
    content: str, how: str, tmp_path: Path
) -> None:
    async with FakeWhop(groups=3, rate_limit=None) as fake:
        (tmp_path / "ids.csv").write_text(content.format(*fake.ids), encoding="utf-8")
        code, _, stderr = await shell(f"whop-async unpause {how} --rate 0", fake=fake, cwd=tmp_path)
        assert code == 0, stderr
        assert sent_once_each(fake, fake.ids[:2])


@pytest.mark.parametrize("command", [[], ["unpause"], ["pause"], ["list"]])
async def test_help_documents_the_environment_the_exit_codes_and_examples(
    command: list[str],
) -> None:
    code, stdout, _ = await whop_async_cli(*command, "--help")
    assert code == 0
    text = " ".join(stdout.split())
    assert "WHOP_API_KEY your Whop API key" in text
    assert "WHOP_BASE_URL the API's base URL" in text
    for exit_code, meaning in MEANINGS.items():
        assert f" {exit_code} {meaning}" in text
    assert "examples: export WHOP_API_KEY=... whop-async unpause" in text


def test_the_docs_give_the_exit_codes_as_help_does() -> None:
    page = (Path(__file__).parent.parent / "docs" / "cli.md").read_text()
    rows = dict(re.findall(r"^\| (\d+) \| (.+) \|$", page, re.MULTILINE))
    assert {int(code): text.replace("`", "") for code, text in rows.items()} == MEANINGS


async def test_a_csv_without_an_id_column_is_bad_usage(tmp_path: Path) -> None:
    table = tmp_path / "export.csv"
    table.write_text("name,budget\nfirst,5\n")
    code, _, stderr = await whop_async_cli(
        "unpause", "--file", str(table), environment={"WHOP_API_KEY": "k"}
    )
    assert (code, stderr.count("\n")) == (2, 1)
    assert "needs an 'id' column" in stderr


async def start_cli(*args: str, fake: FakeWhop, **pipes: Any) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *INTERRUPTIBLE_CLI, *args, env=environment_for(fake), **pipes
    )


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


# --- the output file ---------------------------------------------------------------

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


async def test_the_progress_bar_shows_on_a_terminal() -> None:
    async with FakeWhop(groups=60, rate_limit=None, latency=0.01) as fake:
        screen = await on_a_terminal(
            "unpause", *fake.ids, "--rate", "0", "--concurrency", "2", fake=fake
        )
    assert "unpausing" in screen
    assert "rate-limit waits" in screen
    assert "/60" in screen


async def test_the_bar_has_a_total_only_when_the_input_can_be_counted_without_reading_it(
    tmp_path: Path,
) -> None:
    ids = tmp_path / "ids.txt"
    async with FakeWhop(groups=60, rate_limit=None, latency=0.01) as fake:
        ids.write_text("".join(f"{i}\n" for i in fake.ids))
        args = ("unpause", "--file", "/dev/stdin", "--rate", "0", "--concurrency", "4")
        with ids.open("rb") as regular_file:  # /dev/stdin is then a regular file
            counted = await on_a_terminal(*args, fake=fake, stdin=regular_file)
        fake.reset()
        reader, writer = os.pipe()
        os.write(writer, ids.read_bytes())
        os.close(writer)
        piped = await on_a_terminal(*args, fake=fake, stdin=reader)
        os.close(reader)
        assert sent_once_each(fake, fake.ids)
    assert "/60" in counted
    assert "/?" in piped
    assert "/60" not in piped


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


async def test_list_then_unpause_through_a_pipe(tmp_path: Path) -> None:
    async with FakeWhop(groups=5) as fake:
        _, listed, _ = await whop_async_cli("list", "--status", "paused", fake=fake)
        code, _, _ = await whop_async_cli(
            "unpause", "--file", "-", fake=fake, stdin=listed.encode()
        )
        assert code == 0
        assert fake.statuses() == {"active": 5}


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


async def test_a_wrong_key_stops_the_run_at_once_with_one_line_and_exit_2(tmp_path: Path) -> None:
    output = tmp_path / "results.jsonl"
    ids = tmp_path / "ids.txt"
    async with FakeWhop(groups=400, rate_limit=None) as fake:
        ids.write_text("\n".join(fake.ids) + "\n")
        code, _, stderr = await whop_async_cli(
            "unpause", "--file", str(ids), "--output", str(output), "--rate", "0",
            environment={**environment_for(fake), "WHOP_API_KEY": "sk_wrong_key"},
        )  # fmt: skip
        assert fake.stats.requests <= 2 * 16  # what was in flight, not 400 requests
    assert code == 2, stderr
    [line] = stderr.splitlines()
    assert line.startswith("whop-async: stopped: 401 from POST")
    assert "sk_wrong_key" not in stderr
    assert len(journal(output)) == 400  # every id accounted for, so --resume sends them


async def test_a_base_url_where_nothing_answers_stops_the_run_with_exit_2() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/api/v1"
    ids = [f"adgrp_{number}" for number in range(100)]
    code, _, stderr = await whop_async_cli(
        "unpause", *ids, "--rate", "0",
        environment={"WHOP_API_KEY": "sk_any", "WHOP_BASE_URL": dead},
    )  # fmt: skip
    assert code == 2, stderr
    [line] = stderr.splitlines()
    assert f"stopped: nothing answers at {dead}" in line
