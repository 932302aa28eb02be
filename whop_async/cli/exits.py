"""How a command ends: its exit codes, the error that ends it with one line, and
SIGTERM, which ends it as Ctrl-C does: what is running is cancelled, so a run prints its
summary with what is left to do, every finished id already journaled."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import signal
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any


class ExitCode(enum.IntEnum):
    """What ``whop-async`` exits with."""

    OK = 0
    FAILED = 1
    USAGE = 2
    OUTPUT_FAILED = 74  # sysexits' EX_IOERR
    INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command Ctrl-C ended
    TERMINATED = 143  # 128 + SIGTERM


# What each code means, as --help and docs/cli.md say it.
MEANINGS = {
    ExitCode.OK: "every id unpaused (or paused), or nothing to do",
    ExitCode.FAILED: (
        "some ids failed, or were answered 2xx with something other than an ad group"
        " (see the summary and the output file; --resume sends them again), or the"
        " --campaign or --status asked for matched nothing at all"
    ),
    ExitCode.USAGE: (
        "bad usage or configuration: no key, a bad flag, an unreadable --file, an unusable"
        " --output (or the very file --file names), one in use by another run or one made"
        " against another base URL or key (one line, nothing sent); or a wrong key or a"
        " base URL where nothing answers (for 10 s, or a name that does not resolve), which"
        " stop the run"
    ),
    ExitCode.OUTPUT_FAILED: (
        "the journal could not be written mid-run (a full disk, an I/O error): stopped"
        " cleanly, --resume is safe"
    ),
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C): the summary says what is left to do",
    ExitCode.TERMINATED: (
        "stopped by SIGTERM (a service manager, a container's stop, kill): as for Ctrl-C,"
        " the summary says what is left to do"
    ),
}


class UsageError(Exception):
    """Bad usage or configuration: reported in one line, exit 2."""


class Terminated(Exception):
    """The command was stopped by SIGTERM."""


async def until_terminated(command: Coroutine[Any, Any, int]) -> int:
    """Run ``command``; SIGTERM cancels it.

    Raises:
        Terminated: SIGTERM stopped it, once it had wound down.
    """
    task = asyncio.current_task()
    assert task is not None  # always: this runs as asyncio.run's main task
    terminated = False

    def stop() -> None:
        nonlocal terminated
        terminated = True
        task.cancel()

    with _on_sigterm(stop):
        try:
            return await command
        except asyncio.CancelledError:
            if terminated:
                raise Terminated from None
            raise


@contextlib.contextmanager
def _on_sigterm(callback: Callable[[], None]) -> Iterator[None]:
    """Call ``callback`` in the event loop on SIGTERM, within the block."""
    # Only the main thread can take signals. A command started with SIGTERM ignored
    # (as nohup ignores SIGHUP) keeps it ignored.
    ignored = signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    if ignored or threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    restore: Callable[[], object]
    try:
        loop.add_signal_handler(signal.SIGTERM, callback)
        restore = functools.partial(loop.remove_signal_handler, signal.SIGTERM)
    except NotImplementedError:  # Windows' event loops: a plain handler, in the main thread
        previous = signal.signal(
            signal.SIGTERM, lambda _signal, _frame: loop.call_soon_threadsafe(callback)
        )
        restore = functools.partial(signal.signal, signal.SIGTERM, previous)
    try:
        yield
    finally:
        restore()
