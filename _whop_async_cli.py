"""The ``whop-async`` console script: Ctrl-C and SIGTERM are taken from its first
instant.

Importing whop_async (aiohttp and all) takes a few tenths of a second, before any of
the command's code runs. A stop then would end the command with a traceback (Ctrl-C)
or a bare death by the signal (SIGTERM). Taken here, before that import, it ends the
command as a stop does at any moment before anything is sent: one line, exit 130 or
143. This module imports nothing of whop_async until it has done so; the command is
``whop_async.cli.main``.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from types import FrameType
from typing import NoReturn

_INTERRUPTED = 130  # 128 + SIGINT
_TERMINATED = 143  # 128 + SIGTERM


class _Terminated(BaseException):
    """SIGTERM came before the command's event loop took it over."""


def _terminated(_signal: int, _frame: FrameType | None) -> NoReturn:
    raise _Terminated


def run() -> NoReturn:
    """Run ``whop-async`` with the arguments it was given, and exit with its code."""
    # A command started with SIGTERM ignored keeps it ignored.
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminated)
    try:
        from whop_async.cli import main

        code = main()
    except KeyboardInterrupt:  # Ctrl-C, until asyncio.run takes it over
        code = _stopped(_INTERRUPTED)
    except _Terminated:
        code = _stopped(_TERMINATED)
    sys.exit(code)


def _stopped(code: int) -> int:
    with contextlib.suppress(OSError):  # the reader of stderr may be gone
        print("whop-async: stopped before anything was sent", file=sys.stderr, flush=True)
    return code
