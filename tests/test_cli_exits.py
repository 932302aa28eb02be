"""How a run ends: exit codes, the one-line messages and the summary."""

from __future__ import annotations

import asyncio
import os
import re
import socket
from pathlib import Path

import pytest
from aiohttp import web

import whop_async.cli
import whop_async.testing
from whop_async.cli.exits import MEANINGS
from whop_async.testing import FakeWhop, example_ad_group

from .cli_support import (
    ended,
    environment_for,
    journal,
    start_cli,
    whop_async_cli,
)
from .helpers import serve


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


# Fewer ids than calls run at once: each is in flight when the 401 comes.
@pytest.mark.parametrize("count", [3, 400])
async def test_a_wrong_key_stops_the_run_at_once_with_one_line_and_exit_2(
    count: int, tmp_path: Path
) -> None:
    output = tmp_path / "results.jsonl"
    ids = tmp_path / "ids.txt"
    async with FakeWhop(groups=count, rate_limit=None) as fake:
        ids.write_text("\n".join(fake.ids) + "\n")
        code, _, stderr = await whop_async_cli(
            "unpause", "--file", str(ids), "--output", str(output), "--rate", "0",
            environment={**environment_for(fake), "WHOP_API_KEY": "sk_wrong_key"},
        )  # fmt: skip
        assert fake.stats.requests <= 2 * 16  # what was in flight, not 400 requests
    assert code == 2, stderr
    [line] = stderr.splitlines()
    assert line.startswith("whop-async: stopped: WHOP_API_KEY was refused: 401 from POST")
    assert "sk_wrong_key" not in stderr
    assert len(journal(output)) == count  # every id accounted for, so --resume sends them


async def test_list_with_a_wrong_key_is_one_line_and_exit_2() -> None:
    async with FakeWhop(groups=2) as fake:
        code, stdout, stderr = await whop_async_cli(
            "list", environment={**environment_for(fake), "WHOP_API_KEY": "sk_wrong_key"}
        )
    assert (code, stdout) == (2, "")
    [line] = stderr.splitlines()
    assert line.startswith("whop-async: listing failed: WHOP_API_KEY was refused: 401 from GET")


async def test_a_wrong_key_ends_a_run_whose_ids_come_from_a_stream_that_stays_open() -> None:
    reader, writer = os.pipe()
    async with FakeWhop(groups=1) as fake:
        process = await start_cli(
            "unpause", "--file", "-", "--quiet", stdin=reader, stderr=asyncio.subprocess.PIPE,
            environment={**environment_for(fake), "WHOP_API_KEY": "sk_wrong_key"},
        )  # fmt: skip
        os.close(reader)
        os.write(writer, f"{fake.ids[0]}\n".encode())
        _, stderr = await ended(process, process.communicate())
        os.close(writer)
    assert process.returncode == 2
    assert "WHOP_API_KEY was refused" in stderr.decode()


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


async def test_a_base_url_that_answers_every_path_with_a_web_page_is_no_success(
    tmp_path: Path,
) -> None:
    posts = 0

    async def web_page(request: web.Request) -> web.StreamResponse:
        nonlocal posts
        posts += request.method == "POST"
        return web.Response(text="<html><h1>Welcome</h1></html>", content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{anything:.*}", web_page)
    output = tmp_path / "results.jsonl"
    args = ["unpause", "adgrp_1", "adgrp_2", "--output", str(output), "--rate", "0"]
    async with serve(app) as base_url:
        environment = {"WHOP_API_KEY": "k", "WHOP_BASE_URL": base_url}
        code, _, stderr = await whop_async_cli(*args, environment=environment)
        assert code == 1, stderr
        assert (
            "whop-async: answered 2xx with something other than an ad group: 2 of 2 ids"
            f" (every one: is {base_url} Whop's API?)."
        ) in stderr
        assert [record["accepted"] for record in journal(output)] == [True, True]
        code, _, stderr = await whop_async_cli(*args, "--resume", environment=environment)
    assert code == 1, stderr
    assert posts == 4  # the resumed run skipped nothing
