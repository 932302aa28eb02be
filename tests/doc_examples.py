"""The README's and docs/' Python examples, and a stand-in and interpreter to run them."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

from whop_async.testing import FakeWhop

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCED_PYTHON = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def examples() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for number, match in enumerate(FENCED_PYTHON.finditer(page.read_text()), 1):
            found.append((f"{page.relative_to(ROOT)}#{number}", match.group(1)))
    return found


# The ids the examples name; any other (adgrp_doesnotexist) is unknown to the stand-in.
EXAMPLE_IDS = ["adgrp_xxxxxxxxxxxx", *(f"adgrp_{number}" for number in range(25))]


def stand_in() -> FakeWhop:
    fake = FakeWhop(rate_limit=None)
    for ad_group_id in EXAMPLE_IDS:
        fake.add_group(ad_group_id)
    return fake


async def run_python(fake: FakeWhop, *args: str) -> tuple[int, str, str]:
    environment = {**os.environ, "WHOP_API_KEY": fake.api_key, "WHOP_BASE_URL": fake.base_url}
    process = await asyncio.create_subprocess_exec(
        sys.executable, *args, env=environment, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()
