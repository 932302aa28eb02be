"""How a command ends: its exit codes, and the error that ends it with one line."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """What ``whop-async`` exits with."""

    OK = 0
    FAILED = 1
    USAGE = 2
    OUTPUT_FAILED = 74  # sysexits' EX_IOERR
    INTERRUPTED = 130


class UsageError(Exception):
    """Bad usage or configuration: reported in one line, exit 2."""
