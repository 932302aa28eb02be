"""Every Python example in the README and docs/ runs, against a local stand-in."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from .helpers import API_KEY, serve, unpause_app

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCED_PYTHON = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def examples() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for number, match in enumerate(FENCED_PYTHON.finditer(page.read_text()), 1):
            found.append((f"{page.relative_to(ROOT)}#{number}", match.group(1)))
    return found


async def run_python(base_url: str, *args: str) -> tuple[int, str, str]:
    environment = {**os.environ, "WHOP_API_KEY": API_KEY, "WHOP_BASE_URL": base_url}
    process = await asyncio.create_subprocess_exec(
        sys.executable, *args, env=environment, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def test_the_pages_have_examples() -> None:
    names = [name for name, _ in examples()]
    assert "README.md#1" in names
    assert len(names) >= 6


@pytest.mark.parametrize(("name", "code"), examples(), ids=[name for name, _ in examples()])
async def test_example_runs(name: str, code: str) -> None:
    async with serve(unpause_app()) as base_url:
        returncode, _, stderr = await run_python(base_url, "-c", code)
    assert returncode == 0, f"{name} failed:\n{stderr}"


@pytest.mark.parametrize(
    ("name", "expected_output"),
    [
        ("README.md#1", "active 2023-12-01 05:00:00.401000+00:00\n"),  # the quickstart
        ("README.md#2", "25 unpaused; 0 failed\n"),  # bulk, paced at Whop's default
        ("README.md#3", "no such ad group: req_404\n"),  # catching errors
    ],
)
async def test_the_readme_examples_print_what_they_promise(name: str, expected_output: str) -> None:
    [code] = [code for example_name, code in examples() if example_name == name]
    async with serve(unpause_app()) as base_url:
        _, stdout, _ = await run_python(base_url, "-c", code)
    assert stdout == expected_output


async def test_the_unpause_example_script_reports_each_id_and_its_exit_code() -> None:
    script = "docs/examples/unpause_one.py"
    async with serve(unpause_app()) as base_url:
        ok = await run_python(base_url, script, "adgrp_1", "adgrp_2")
        partly = await run_python(base_url, script, "adgrp_1", "adgrp_doesnotexist", "../x")
    assert ok == (0, "adgrp_1: active (updated 2023-12-01 05:00 UTC)\n"
                     "adgrp_2: active (updated 2023-12-01 05:00 UTC)\n", "")  # fmt: skip
    returncode, stdout, stderr = partly
    assert returncode == 1
    assert stdout == "adgrp_1: active (updated 2023-12-01 05:00 UTC)\n"
    assert "adgrp_doesnotexist: not unpaused: 404 from POST" in stderr
    assert "../x: not unpaused: ad_group_id must be a Whop id" in stderr
