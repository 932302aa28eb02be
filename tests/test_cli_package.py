"""What the command line is built on, and how it is started."""

from __future__ import annotations

import ast
import asyncio
import sys
from pathlib import Path

import whop_async.cli
import whop_async.testing


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
