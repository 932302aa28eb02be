"""Ids from whatever a shell hands over: files, CSVs, standard input, pipes and FIFOs,
each id sent exactly once."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import pytest

from whop_async.testing import FakeWhop

from .cli_support import (
    ended,
    journal,
    never_left_running,
    on_a_terminal,
    sent_once_each,
    shell,
    start_cli,
    wait_until,
    whop_async_cli,
)


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


async def test_ids_from_a_stream_are_sent_as_they_arrive_the_arguments_first() -> None:
    reader, writer = os.pipe()
    async with FakeWhop(groups=3, rate_limit=None) as fake:
        process = await start_cli(
            "unpause", fake.ids[0], "--file", "-", "--rate", "0", "--quiet",
            fake=fake, stdin=reader, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        os.close(reader)
        async with never_left_running(process):
            await wait_until(lambda: fake.stats.requests == 1, "the argument sent, none written")
            for count, ad_group_id in enumerate(fake.ids[1:], 2):
                os.write(writer, f"{ad_group_id}\n".encode())  # the stream stays open
                await wait_until(lambda: fake.stats.requests == count, f"{ad_group_id} sent")  # noqa: B023
            os.close(writer)
            _, stderr = await ended(process, process.communicate())
        assert process.returncode == 0, stderr.decode()
        assert sent_once_each(fake, fake.ids)


ID_FILES = {
    "spreadsheet CSV with a byte-order mark": "\ufeffname,ID,budget\r\na,{0},5\r\nb,{1},7\r\n",
    "one-column CSV with an id header": "id\n{0}\n{1}\n",
    "one-column CSV, BOM and CRLF": "\ufeffid\r\n{0}\r\n{1}\r\n",
    "one-column CSV in double quotes": '"id"\n"{0}"\n"{1}"\n',
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


async def test_a_csv_without_an_id_column_is_bad_usage(tmp_path: Path) -> None:
    table = tmp_path / "export.csv"
    table.write_text("name,budget\nfirst,5\n")
    code, _, stderr = await whop_async_cli(
        "unpause", "--file", str(table), environment={"WHOP_API_KEY": "k"}
    )
    assert (code, stderr.count("\n")) == (2, 1)
    assert "needs an 'id' column" in stderr


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


async def test_list_then_unpause_through_a_pipe(tmp_path: Path) -> None:
    async with FakeWhop(groups=5) as fake:
        _, listed, _ = await whop_async_cli("list", "--status", "paused", fake=fake)
        code, _, _ = await whop_async_cli(
            "unpause", "--file", "-", fake=fake, stdin=listed.encode()
        )
        assert code == 0
        assert fake.statuses() == {"active": 5}


@pytest.mark.parametrize("how", ["--file ids.txt", "--file - < <(cat ids.txt)"])
async def test_a_line_or_an_id_too_long_is_one_id_shown_shortened_and_the_run_goes_on(
    how: str, tmp_path: Path
) -> None:
    async with FakeWhop(groups=1, rate_limit=None) as fake:
        (tmp_path / "ids.txt").write_bytes(
            b"a" * 20_000_000 + b"\n" + b"b" * 200 + b"\n" + f"{fake.ids[0]}\n".encode()
        )
        code, _, stderr = await shell(
            f"whop-async unpause {how} --output out.jsonl --rate 0 --quiet", fake=fake,
            cwd=tmp_path,
        )  # fmt: skip
        assert fake.statuses() == {"active": 1}
    assert code == 1
    records = {record["id"]: record for record in journal(tmp_path / "out.jsonl")}
    assert set(records) == {"a" * 100 + "...", "b" * 100 + "...", fake.ids[0]}
    assert records["a" * 100 + "..."]["error"] == "InvalidIdError"
    assert len(stderr) < 2000


async def test_a_stream_whose_csv_has_no_id_column_stops_the_run_after_the_arguments() -> None:
    async with FakeWhop(groups=1) as fake:
        code, _, stderr = await whop_async_cli(
            "unpause", fake.ids[0], "--file", "-", "--quiet", fake=fake,
            stdin=b"name,budget\nfirst,5\n",
        )  # fmt: skip
        assert fake.statuses() == {"active": 1}
    assert code == 2
    assert stderr.endswith(
        "whop-async: standard input: a CSV needs an 'id' column in its first line,"
        " found ['name', 'budget']\n"
    )


@pytest.mark.parametrize(
    ("how", "name"),
    [("--file ids.csv", "ids.csv"), ("--file - < <(cat ids.csv)", "standard input")],
)
async def test_a_csv_row_without_an_id_or_with_a_quote_left_open_fails_by_its_line(
    how: str, name: str, tmp_path: Path
) -> None:
    async with FakeWhop(groups=4, rate_limit=None) as fake:
        ids = fake.ids
        (tmp_path / "ids.csv").write_text(
            "name,id\n"
            f"a,{ids[0]}\n"
            f'"b,{ids[1]}\n'  # line 3: the csv module took every line after it into one field
            "c\n"  # line 4: too short to hold an id
            "d,\n"  # line 5
            ",\n"  # a blank row, as spreadsheets save one
            f"e,{ids[2]}\n"
            f"f,{ids[3]}\n"
        )
        code, _, stderr = await shell(
            f"whop-async unpause {how} --output out.jsonl --rate 0", fake=fake, cwd=tmp_path
        )
        assert fake.stats.attempts.keys() == {ids[0], ids[2], ids[3]}
    assert code == 1
    records = journal(tmp_path / "out.jsonl")
    assert sorted((r["id"], r["error"], r["message"]) for r in records if not r["ok"]) == [
        ("", "InvalidIdError", f"line 4 of {name}: no id"),
        ("", "InvalidIdError", f"line 5 of {name}: no id"),
        (
            f'"b,{ids[1]}',
            "InvalidIdError",
            f"line 3 of {name} is not a CSV row: a quote opened on it is never closed"
            " (a row is one line)",
        ),
    ]
    assert all("account" not in record for record in records)
    assert re.search(r"failed: InvalidIdError\W+3\b", stderr)


async def test_a_csv_whose_lines_end_with_a_carriage_return_alone_is_one_line_exit_2(
    tmp_path: Path,
) -> None:
    table = tmp_path / "export.csv"
    table.write_bytes(b"name,id\rfirst,adgrp_1\rsecond,adgrp_2\r")  # as old Mac spreadsheets save
    code, _, stderr = await whop_async_cli(
        "unpause", "--file", str(table), environment={"WHOP_API_KEY": "k"}
    )
    assert (code, stderr) == (
        2,
        f"whop-async: {table}: its first line is not a CSV header: it holds a carriage return"
        " (lines end with LF or CRLF)\n",
    )
