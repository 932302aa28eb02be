"""Many accounts on the command line: --file pairs.csv --keys keys.env, the journal and
--resume per (account, id), and a summary line for each account that failed."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from whop_async.testing import FakeWhop

from .cli_support import journal, shell, whop_async_cli

KEYS = {"acme": "sk_acme_0123456789", "globex": "sk_globex_0123456789"}


def write_keys(folder: Path, keys: dict[str, str], *, mode: int = 0o600) -> Path:
    path = folder / "keys.env"
    path.write_text("# the accounts\n" + "".join(f"{name}={key}\n" for name, key in keys.items()))
    path.chmod(mode)
    return path


def write_pairs(folder: Path, pairs: list[tuple[str, str]]) -> Path:
    path = folder / "pairs.csv"
    path.write_text("account,id\n" + "".join(f"{account},{id_}\n" for account, id_ in pairs))
    return path


def dealt(fake: FakeWhop) -> list[tuple[str, str]]:
    return [(("acme", "globex")[number % 2], id_) for number, id_ in enumerate(fake.ids)]


async def test_pairs_are_unpaused_with_their_accounts_keys_and_journaled_with_them(
    tmp_path: Path,
) -> None:
    output = tmp_path / "out.jsonl"
    async with FakeWhop(groups=10, api_keys=KEYS, rate_limit=None) as fake:
        pairs = write_pairs(tmp_path, dealt(fake))
        args = ["unpause", "--file", str(pairs), "--keys", str(write_keys(tmp_path, KEYS))]
        code, _, stderr = await whop_async_cli(*args, "--output", str(output), fake=fake)
        assert fake.statuses() == {"active": 10}
        assert fake.stats.accounts["acme"].requests == 5
        assert fake.stats.accounts["globex"].requests == 5
    assert code == 0, stderr
    records = journal(output)
    assert sorted((r["account"], r["id"]) for r in records) == sorted(dealt(fake))
    assert all(r["ok"] for r in records)
    assert all(key not in output.read_text() for key in KEYS.values())


async def test_resume_is_exactly_once_per_account_and_id(tmp_path: Path) -> None:
    output = tmp_path / "out.jsonl"
    keys = write_keys(tmp_path, KEYS)
    async with FakeWhop(groups=6, api_keys=KEYS, rate_limit=None) as fake:
        # The same id under both accounts is two pairs; the first run does half.
        first = [("acme", fake.ids[0]), ("globex", fake.ids[0]), ("acme", fake.ids[1])]
        args = ["unpause", "--keys", str(keys), "--output", str(output), "--quiet"]
        code, _, stderr = await whop_async_cli(
            *args, "--file", str(write_pairs(tmp_path, first)), fake=fake
        )
        assert code == 0, stderr
        every = [*first, ("globex", fake.ids[1]), ("acme", fake.ids[2])]
        code, _, stderr = await whop_async_cli(
            *args, "--resume", "--file", str(write_pairs(tmp_path, every)), fake=fake
        )
        assert code == 0, stderr
        requests = {name: stats.requests for name, stats in fake.stats.accounts.items()}
    assert requests == {"acme": 3, "globex": 2}  # each pair once, across both runs
    records = [(r["account"], r["id"]) for r in journal(output) if r["ok"]]
    assert sorted(records) == sorted(every)


async def test_an_account_whose_key_is_refused_is_summed_up_and_the_others_are_done(
    tmp_path: Path,
) -> None:
    async with FakeWhop(
        groups=20, api_keys=KEYS, rate_limit=None, account_revoked_at={"globex": 0.0}
    ) as fake:
        pairs = write_pairs(tmp_path, dealt(fake))
        code, _, stderr = await whop_async_cli(
            "unpause", "--file", str(pairs), "--keys", str(write_keys(tmp_path, KEYS)),
            fake=fake,
        )  # fmt: skip
        assert fake.statuses() == {"active": 10, "paused": 10}
    assert code == 1
    assert "account globex: 10 failed" in stderr
    assert "stopped: 401" in stderr
    assert "account acme" not in stderr
    assert KEYS["globex"] not in stderr


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
async def test_a_keys_file_others_may_read_or_change_is_refused(tmp_path: Path, mode: int) -> None:
    keys = write_keys(tmp_path, KEYS, mode=mode)
    pairs = write_pairs(tmp_path, [("acme", "adgrp_1")])
    code, _, stderr = await whop_async_cli("unpause", "--file", str(pairs), "--keys", str(keys))
    assert code == 2
    assert f"{mode:o}" in stderr
    assert "chmod 600" in stderr
    assert KEYS["acme"] not in stderr


@pytest.mark.parametrize(
    ("keys_text", "pairs_text", "args", "said"),
    [
        ("acme=\n", "account,id\nacme,adgrp_1\n", [], "no key for acme"),
        ("two words=sk_1\n", "account,id\nx,adgrp_1\n", [], "line 1 is not NAME=KEY"),
        ("-acme=sk_1\n", "account,id\nx,adgrp_1\n", [], "account name"),
        ("acme=sk bad\n", "account,id\nacme,adgrp_1\n", [], "printable"),
        ("acme=sk_1\n", "id\nadgrp_1\n", [], "'account' and 'id' columns"),
        ("acme=sk_1\n", "account,id\nacme,adgrp_1\n", ["adgrp_2"], "--keys takes"),
    ],
)
async def test_bad_keys_and_pairs_files_are_one_line_and_exit_2(
    tmp_path: Path, keys_text: str, pairs_text: str, args: list[str], said: str
) -> None:
    keys = tmp_path / "keys.env"
    keys.write_text(keys_text)
    keys.chmod(0o600)
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(pairs_text)
    code, _, stderr = await whop_async_cli(
        "unpause", *args, "--file", str(pairs), "--keys", str(keys)
    )
    assert code == 2
    assert said in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert "sk bad" not in stderr


def rows_of(records: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(record["account"], record["id"]): record for record in records}


# A file, and a stream (read in a thread of its own), named as the command names them.
FILES = {"--file pairs.csv": "pairs.csv", "--file - < <(cat pairs.csv)": "standard input"}


@pytest.mark.parametrize(("how", "name"), FILES.items())
async def test_a_row_without_its_account_or_its_id_is_a_failed_pair_named_by_its_line(
    how: str, name: str, tmp_path: Path
) -> None:
    write_keys(tmp_path, KEYS)
    async with FakeWhop(groups=4, api_keys=KEYS, rate_limit=None) as fake:
        ids = fake.ids
        (tmp_path / "pairs.csv").write_text(
            "id,account,note\n"
            f"{ids[0]},acme,sent\n"
            f"{ids[1]}\n"  # line 3: too short to hold its account
            ",globex,no id\n"  # line 4
            f"{ids[2]},,no account\n"  # line 5
            ",,neither\n"  # line 6
            ",,\n"  # a blank row, as spreadsheets save one: nothing is in it
            f"{ids[3]},globex\n"  # a note is not needed
        )
        code, _, stderr = await shell(
            f"whop-async unpause {how} --keys keys.env --output out.jsonl --rate 0",
            fake=fake, cwd=tmp_path,
        )  # fmt: skip
        assert fake.statuses() == {"active": 2, "paused": 2}
    assert code == 1
    records = rows_of(journal(tmp_path / "out.jsonl"))
    assert set(records) == {
        ("acme", ids[0]), ("globex", ids[3]),
        ("", ids[1]), ("globex", ""), ("", ids[2]), ("", ""),
    }  # fmt: skip
    failed = {key: (r["error"], r["message"]) for key, r in records.items() if not r["ok"]}
    assert failed == {
        ("", ids[1]): ("UnknownAccountError", f"line 3 of {name}: no account"),
        ("globex", ""): ("InvalidIdError", f"line 4 of {name}: no id"),
        ("", ids[2]): ("UnknownAccountError", f"line 5 of {name}: no account"),
        ("", ""): ("InvalidIdError", f"line 6 of {name}: no account and no id"),
    }
    assert re.search(r"failed: UnknownAccountError\W+2\b", stderr)
    assert re.search(r"failed: InvalidIdError\W+2\b", stderr)
    assert f"  {ids[1]}: line 3 of {name}: no account\n" in stderr
    assert f"  line 4 of {name}: no id\n" in stderr  # no id to show before it
    assert "  rows with no account: 3 failed (UnknownAccountError 2, InvalidIdError 1)" in stderr
    assert "  account globex: 1 failed (InvalidIdError 1)" in stderr
    assert "account :" not in stderr


@pytest.mark.parametrize(("how", "name"), FILES.items())
async def test_a_quote_left_open_fails_its_own_line_and_never_swallows_the_lines_after_it(
    how: str, name: str, tmp_path: Path
) -> None:
    write_keys(tmp_path, KEYS)
    async with FakeWhop(groups=5, api_keys=KEYS, rate_limit=None) as fake:
        ids = fake.ids
        (tmp_path / "pairs.csv").write_text(
            "account,id\n"
            f"acme,{ids[0]}\n"
            f'"acme,{ids[1]}\n'  # line 3
            f"acme,{ids[2]}\n"
            f'globex,"{ids[3]}\n'  # line 5
            f"globex,{ids[4]}\n"
        )
        code, _, stderr = await shell(
            f"whop-async unpause {how} --keys keys.env --output out.jsonl --rate 0",
            fake=fake, cwd=tmp_path,
        )  # fmt: skip
        assert fake.statuses() == {"active": 3, "paused": 2}
        assert fake.stats.attempts.keys() == {ids[0], ids[2], ids[4]}
    assert code == 1
    failed = {(r["account"], r["id"]): r for r in journal(tmp_path / "out.jsonl") if not r["ok"]}
    assert set(failed) == {("", f'"acme,{ids[1]}'), ("", f'globex,"{ids[3]}')}
    assert failed[("", f'"acme,{ids[1]}')]["message"] == (
        f"line 3 of {name} is not a CSV row: a quote opened on it is never closed"
        " (a row is one line)"
    )
    assert failed[("", f'globex,"{ids[3]}')]["error"] == "InvalidIdError"
    assert f"line 5 of {name} is not a CSV row" in stderr


async def test_the_header_again_is_skipped_as_a_header(tmp_path: Path) -> None:
    keys = write_keys(tmp_path, KEYS)
    output = tmp_path / "out.jsonl"
    async with FakeWhop(groups=2, api_keys=KEYS, rate_limit=None) as fake:
        pairs = tmp_path / "pairs.csv"
        # Two exports joined with cat: the second one's header is in the middle.
        pairs.write_text(f"account,id\nacme,{fake.ids[0]}\n Account , ID \nglobex,{fake.ids[1]}\n")
        code, _, stderr = await whop_async_cli(
            "unpause", "--file", str(pairs), "--keys", str(keys), "--output", str(output),
            fake=fake,
        )  # fmt: skip
        assert fake.statuses() == {"active": 2}
    assert code == 0, stderr
    assert sorted((r["account"], r["id"]) for r in journal(output)) == [
        ("acme", fake.ids[0]),
        ("globex", fake.ids[1]),
    ]


async def test_an_account_given_twice_in_the_keys_file_is_refused_by_its_name(
    tmp_path: Path,
) -> None:
    keys = tmp_path / "keys.env"
    keys.write_text("acme=sk_acme_first\nglobex=sk_globex_1\nexport acme='sk_acme_second'\n")
    keys.chmod(0o600)
    pairs = write_pairs(tmp_path, [("acme", "adgrp_1")])
    code, stdout, stderr = await whop_async_cli(
        "unpause", "--file", str(pairs), "--keys", str(keys)
    )
    assert (code, stdout) == (2, "")
    assert stderr == (
        f"whop-async: --keys {keys}: acme is given twice (lines 1 and 3); one key per account\n"
    )


async def test_a_key_holding_a_variable_is_refused_not_sent_as_written(tmp_path: Path) -> None:
    keys = tmp_path / "keys.env"
    keys.write_text("acme=sk_acme_1\nglobex=${GLOBEX_KEY}\n")
    keys.chmod(0o600)
    pairs = write_pairs(tmp_path, [("acme", "adgrp_1")])
    async with FakeWhop(groups=1, api_keys=KEYS) as fake:
        code, _, stderr = await whop_async_cli(
            "unpause", "--file", str(pairs), "--keys", str(keys), fake=fake,
            environment={"GLOBEX_KEY": KEYS["globex"]},
        )  # fmt: skip
        assert fake.stats.requests == 0
    assert code == 2
    assert stderr == (
        f"whop-async: --keys {keys}: the key of globex (line 2) holds '${{': keys are taken"
        " as written, never filled in from the environment; write the key itself\n"
    )
