"""The ``whop-async`` command line, built on the public API only."""

from __future__ import annotations

import asyncio
import sys
from typing import NoReturn

from .. import WhopError
from .commands import COMMANDS
from .exits import ExitCode, UsageError
from .parser import build_parser

__all__ = ["ExitCode", "main", "run"]


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    options = build_parser().parse_args(argv)
    try:
        return asyncio.run(COMMANDS[options.command](options))
    except UsageError as error:
        print(f"whop-async: {error}", file=sys.stderr)
        return ExitCode.USAGE
    except (WhopError, ValueError) as error:  # configuration the client refused
        print(f"whop-async: {error}", file=sys.stderr)
        return ExitCode.USAGE
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED


def run() -> NoReturn:
    """The ``whop-async`` console script."""
    sys.exit(main())
