"""The ``whop-async`` command line, built on the public API only."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import NoReturn

from .. import WhopError
from .commands import COMMANDS, refusal
from .exits import ExitCode, Terminated, UsageError, until_terminated
from .parser import build_parser
from .progress import say
from .telemetry import exported

__all__ = ["ExitCode", "main", "run"]


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    options = build_parser().parse_args(argv)
    with exported() as options.telemetry:  # its spans and metrics, as OTEL_* asks
        return _command(options)


def _command(options: argparse.Namespace) -> int:
    try:
        return asyncio.run(until_terminated(COMMANDS[options.command](options)))
    except UsageError as error:
        say(str(error))
        return ExitCode.USAGE
    except WhopError as error:  # refused before anything was done: the key, the URL
        say(refusal(error))
        return ExitCode.USAGE
    except ValueError as error:  # configuration the client refused
        say(str(error))
        return ExitCode.USAGE
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except Terminated:
        return ExitCode.TERMINATED


def run() -> NoReturn:
    """The ``whop-async`` console script."""
    sys.exit(main())
