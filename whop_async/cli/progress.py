"""What a run shows: a progress bar on a terminal, and a summary at the end."""

from __future__ import annotations

import collections
import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

from .. import (
    Accounts,
    APIError,
    AuthenticationError,
    NotFinishedError,
    Outcome,
    WhopClient,
    WhopError,
)
from .exits import ExitCode

try:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.table import Table

    class _StderrConsole(Console):
        """rich on stderr, going quiet once its reader has gone (rich's own way is to
        exit 1, which would hide the run's exit code)."""

        def __init__(self) -> None:
            super().__init__(stderr=True)

        def on_broken_pipe(self) -> None:
            silence(sys.stderr)

except ImportError:  # the "cli" extra is not installed: plain output, no progress bar
    _StderrConsole = None  # type: ignore[assignment,misc]


# Failures listed by the summary; the journal holds every one.
FAILURES_SHOWN = 10


class Run:
    """Counts and shows one run: a progress bar on a terminal, a summary at the end."""

    def __init__(
        self,
        client: WhopClient | Accounts,
        verb: str,
        total: int | None,
        *,
        quiet: bool,
        skipped: Callable[[], int] = lambda: 0,
        output: Path | None = None,
    ) -> None:
        self.client = client
        self.verb = verb
        self.total = total
        self.output = output
        self.done = 0
        self.unreadable = 0
        self.failures: collections.Counter[str] = collections.Counter()
        self.failed_examples: list[str] = []
        # With many accounts: each account's failures, and why it stopped, if it did.
        self.account_failures: dict[str, collections.Counter[str]] = {}
        self.account_stops: dict[str, str] = {}
        # Why the run stopped early, if it did: an error every id would meet (a wrong
        # key, an address where nothing answers), or its deadline or a long outage.
        self.fatal: WhopError | None = None
        self.stopped: NotFinishedError | None = None
        self.skipped = skipped
        self.started = time.monotonic()
        on_a_terminal = not quiet and _StderrConsole is not None and sys.stderr.isatty()
        self._progress = _progress_bar() if on_a_terminal else None
        self._task = (
            self._progress.add_task(f"{verb[:-1]}ing", total=total, failed=0, waits=0, rate="")
            if self._progress
            else None
        )

    def __enter__(self) -> Run:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def record(self, outcome: Outcome) -> None:
        if outcome.account is not None:
            self._record_account(outcome)
        elif self.fatal is None and self.stopped is None:
            self._record_stop(outcome.error)
        if outcome.ok:
            self.done += 1
        elif outcome.accepted:
            self.unreadable += 1
        else:
            self.failures[outcome.error_name or "?"] += 1
            if outcome.error is not None and len(self.failed_examples) < FAILURES_SHOWN:
                why = described(outcome.error)
                # A row of --file with no id has its line number in its message instead.
                self.failed_examples.append(f"{outcome.id}: {why}" if outcome.id else why)
        if self._progress is not None and self._task is not None:
            elapsed = max(time.monotonic() - self.started, 1e-9)
            self._progress.update(
                self._task,
                advance=1,
                failed=sum(self.failures.values()),
                waits=self.client.stats.rate_limited,
                rate=f"{self.finished / elapsed:,.0f}/s",
            )

    def _record_stop(self, error: WhopError | None) -> None:
        """Why the library stopped the run, once. A wrong key stops it at the first
        401: the ids then in flight end with a 401 of their own, those not yet sent
        with NotFinishedError. Either says why, so a run of a few ids, all in flight,
        ends as a run of many does."""
        if isinstance(error, AuthenticationError):
            self.fatal = error
        elif isinstance(error, NotFinishedError):
            if error.reason == "fatal":
                self.fatal = error.cause if isinstance(error.cause, WhopError) else error
            else:
                self.stopped = error

    @property
    def stopping(self) -> bool:
        """Whether the run is stopping early."""
        return self.fatal is not None or self.stopped is not None

    def _record_account(self, outcome: Outcome) -> None:
        """An account's failure, and its stop (a 401, a failing token provider): the
        other accounts run on, so the run is not stopped."""
        error = outcome.error
        if outcome.accepted or outcome.account is None:
            return
        failures = self.account_failures.setdefault(outcome.account, collections.Counter())
        failures[outcome.error_name or "?"] += 1
        if isinstance(error, NotFinishedError) and outcome.account not in self.account_stops:
            cause = error.cause
            why = described(cause) if isinstance(cause, WhopError) else str(error)
            self.account_stops[outcome.account] = why

    @property
    def finished(self) -> int:
        return self.done + self.unreadable + sum(self.failures.values())

    def summary(self, *, interrupted: bool = False) -> None:
        elapsed = time.monotonic() - self.started
        rows = [
            (f"{self.verb}d", f"{self.done:,}"),
            *(
                [("answer unreadable (not done)", f"{self.unreadable:,}")]
                if self.unreadable
                else []
            ),
            *((f"failed: {name}", f"{count:,}") for name, count in self.failures.most_common()),
            ("skipped (already done)", f"{self.skipped():,}"),
            ("rate-limit waits (429)", f"{self.client.stats.rate_limited:,}"),
            ("time", f"{elapsed:.1f} s ({self.finished / max(elapsed, 1e-9):,.0f}/s)"),
            *([("every outcome", str(self.output))] if self.output is not None else []),
        ]
        if interrupted:
            left = "unknown" if self.total is None else f"{self.total - self.finished:,}"
            rows.append(("interrupted: left to do", left))
        _print_table(f"whop-async {self.verb}", rows)
        for example in self.failed_examples:
            show(f"  {example}")
        hidden = sum(self.failures.values()) - len(self.failed_examples)
        if hidden:
            where = f"in {self.output}" if self.output else "(--output FILE keeps every one)"
            show(f"  and {hidden:,} more failures {where}")
        for account, failures in sorted(self.account_failures.items()):
            counts = ", ".join(f"{name} {count:,}" for name, count in failures.most_common())
            stop = self.account_stops.get(account)
            named = f"account {account}" if account else "rows with no account"
            show(f"  {named}: {sum(failures.values()):,} failed ({counts})")
            if stop is not None:
                show(f"    stopped: {stop}")
        if self.unreadable:
            say(self._unreadable_explained())

    def _unreadable_explained(self) -> str:
        """What a 2xx that is not an ad group means, and what to do: Whop may have
        carried the call out, or the base URL may not be Whop's API at all."""
        suspect = (
            f" (every one: is {self.client.base_url} Whop's API?)"
            if self.unreadable == self.finished
            else ""
        )
        again = (
            "the same command with --resume sends them again with the same Idempotency-Keys,"
            " so Whop replays rather than repeats what it did."
            if self.output is not None
            else "give --output to keep a journal, whose --resume sends such ids again with the"
            " same Idempotency-Keys."
        )
        return (
            "answered 2xx with something other than an ad group:"
            f" {self.unreadable:,} of {self.finished:,} ids{suspect}. Whether Whop carried"
            f" those out is unknown, so they count as not done (exit 1): {again}"
        )

    def exit_code(self) -> int:
        return ExitCode.FAILED if self.failures or self.unreadable else ExitCode.OK


def _progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TextColumn("[red]{task.fields[failed]} failed"),
        TextColumn("[yellow]{task.fields[waits]} rate-limit waits"),
        TimeRemainingColumn(),
        console=_StderrConsole(),
        refresh_per_second=8,
    )


def _print_table(title: str, rows: list[tuple[str, str]]) -> None:
    if _StderrConsole is None:
        show("\n".join([title, *(f"  {name}: {value}" for name, value in rows)]))
        return
    table = Table(title=title, show_header=False)
    for name, value in rows:
        table.add_row(name, value)
    _StderrConsole().print(table)


def described(error: WhopError) -> str:
    """An error's message, with the full URL of its request: a wrong base URL then
    shows, where the path alone would pass for a missing ad group."""
    if isinstance(error, APIError) and error.url not in str(error):
        return f"{error} [{error.method} {error.url}]"
    return str(error)


def say(message: str) -> None:
    """One message on stderr, named like every message of the command."""
    show(f"whop-async: {message}")


def show(text: str) -> None:
    """A line on stderr."""
    with reader_may_leave(sys.stderr):
        print(text, file=sys.stderr, flush=True)


@contextlib.contextmanager
def reader_may_leave(stream: TextIO) -> Iterator[None]:
    """Writes to ``stream`` in the block go nowhere once its reader has gone (``|
    head``) instead of raising: the command's own exit code stands."""
    try:
        yield
    except BrokenPipeError:
        silence(stream)


def silence(stream: TextIO) -> None:
    """Point ``stream`` at /dev/null once its reader has gone, so that nothing written
    later (Python's flush at exit included) fails; as Python's docs advise for SIGPIPE,
    which Python ignores so that closed sockets raise instead of killing the process."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, stream.fileno())
    os.close(devnull)
