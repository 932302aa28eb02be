"""Every Python example in the README and docs/ runs, against a local stand-in."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .doc_examples import examples, run_python, stand_in


def test_the_pages_have_examples() -> None:
    names = [name for name, _ in examples()]
    assert "README.md#1" in names
    assert len(names) >= 6


TEST_FILE = re.compile(r"# (test_\w+\.py)\n")
PYTEST_SETUP = {
    "conftest.py": 'pytest_plugins = ["whop_async.testing.pytest_plugin"]\n',
    "pytest.ini": "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n",
}


@pytest.mark.parametrize(("name", "code"), examples(), ids=[name for name, _ in examples()])
async def test_example_runs(name: str, code: str, tmp_path: Path) -> None:
    test_file = TEST_FILE.match(code)
    async with stand_in() as fake:
        if test_file is None:
            returncode, _, stderr = await run_python(fake, "-c", code)
        else:  # an example test: run it the way its reader would, with pytest
            for file_name, text in {**PYTEST_SETUP, test_file.group(1): code}.items():
                (tmp_path / file_name).write_text(text)
            returncode, stderr, _ = await run_python(
                fake, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)
            )
    assert returncode == 0, f"{name} failed:\n{stderr}"


@pytest.mark.parametrize(
    ("name", "expected_output"),
    [
        # the quickstart
        ("README.md#1", r"active \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+\+00:00\n"),
        ("README.md#2", r"25 unpaused; 0 failed\n"),  # bulk, paced at Whop's default
        ("README.md#3", r"no such ad group: req_fake\d+\n"),  # catching errors
    ],
)
async def test_the_readme_examples_print_what_they_promise(name: str, expected_output: str) -> None:
    [code] = [code for example_name, code in examples() if example_name == name]
    async with stand_in() as fake:
        _, stdout, _ = await run_python(fake, "-c", code)
    assert re.fullmatch(expected_output, stdout), stdout


async def test_the_unpause_example_script_reports_each_id_and_its_exit_code() -> None:
    script = "docs/examples/unpause_one.py"
    async with stand_in() as fake:
        ok = await run_python(fake, script, "adgrp_1", "adgrp_2")
        partly = await run_python(fake, script, "adgrp_1", "adgrp_doesnotexist", "../x")
    updated = r"\(updated \d{4}-\d\d-\d\d \d\d:\d\d UTC\)"
    assert ok[0] == 0
    assert re.fullmatch(f"adgrp_1: active {updated}\nadgrp_2: active {updated}\n", ok[1])
    returncode, stdout, stderr = partly
    assert returncode == 1
    assert re.fullmatch(f"adgrp_1: active {updated}\n", stdout)
    assert "adgrp_doesnotexist: not unpaused: 404 from POST" in stderr
    assert "../x: not unpaused: ad_group_id must be a Whop id" in stderr
