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


# What each code means, as --help and docs/cli.md say it.
MEANINGS = {
    ExitCode.OK: "every id unpaused (or paused), or nothing to do",
    ExitCode.FAILED: (
        "some ids failed (see the summary and the output file), or the --campaign or"
        " --status asked for matched nothing at all"
    ),
    ExitCode.USAGE: (
        "bad usage or configuration: no key, a bad flag, an unreadable --file, an unusable"
        " --output or one in use by another run (one line, nothing sent); or a wrong key"
        " or a base URL where nothing answers, which stop the run at once"
    ),
    ExitCode.OUTPUT_FAILED: (
        "the journal could not be written mid-run (a full disk, an I/O error): stopped"
        " cleanly, --resume is safe"
    ),
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C): the summary says what is left to do",
}


class UsageError(Exception):
    """Bad usage or configuration: reported in one line, exit 2."""
