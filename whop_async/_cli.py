"""The ``whop-async`` command line, built on the public API only."""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import csv
import hashlib
import json
import os
import secrets
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, NoReturn

from . import AdGroupList, AdGroupStatus, Outcome, RateLimit, WhopClient, WhopError
from ._bulk import Ids
from ._version import __version__
from .testing import FakeWhop

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
except ImportError:  # the "cli" extra is not installed: plain output, no progress bar
    Console = None  # type: ignore[assignment,misc]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
WHOP_RATE_PER_MINUTE = 600


class UsageError(Exception):
    """Bad usage or configuration: reported in one line, exit 2."""


# --- ids -----------------------------------------------------------------------------


class IdFile:
    """Ids from a file or standard input, read lazily: one per line (blank lines and
    ``#`` comments skipped), or a CSV whose header has an ``id`` column."""

    def __init__(self, path: str) -> None:
        self._path = path
        self.name = "standard input" if path == "-" else path
        try:
            self._stream: IO[str] = sys.stdin if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115
        except OSError as error:
            raise UsageError(f"cannot read {path}: {error.strerror}") from None
        self._lines = self._meaningful_lines()
        first = next(self._lines, None)
        self._first: str | None = first
        self._column: int | None = None
        if first is not None and "," in first:
            header = [name.strip().lower() for name in next(csv.reader([first]))]
            if "id" not in header:
                raise UsageError(f"{self.name}: a CSV needs an 'id' column, found {header}")
            self._column = header.index("id")
            self._first = None

    def _meaningful_lines(self) -> Iterator[str]:
        for line in self._stream:
            stripped = line.strip()
            if stripped and not stripped.startswith("#"):
                yield stripped

    def __iter__(self) -> Iterator[str]:
        if self._first is not None:
            yield self._first
        if self._column is None:
            yield from self._lines
            return
        for row in csv.reader(self._lines):
            if len(row) > self._column:
                yield row[self._column].strip()

    def count(self, skip: set[str]) -> int | None:
        """How many ids of a regular file are not in ``skip`` (a second, quick pass);
        None for standard input, which can be read only once."""
        if self._stream is sys.stdin:
            return None
        again = IdFile(self._path)
        try:
            return sum(1 for ad_group_id in again if ad_group_id not in skip)
        finally:
            again.close()

    def close(self) -> None:
        """Close the file (standard input stays open)."""
        if self._stream is not sys.stdin:
            self._stream.close()


# --- the journal: one JSON line per finished id ----------------------------------------


def already_done(path: Path) -> tuple[set[str], int]:
    """Ids a journal records as accepted by the server, and how many of those had an
    answer that could not be read (the change was made; sending again would only
    replay it). A line cut short by a kill is ignored."""
    done: set[str] = set()
    unreadable = 0
    if not path.exists():
        return done, unreadable
    with path.open(encoding="utf-8") as journal:
        for line in journal:
            with contextlib.suppress(ValueError, TypeError, KeyError):
                record = json.loads(line)
                if record["ok"] is True or record.get("accepted") is True:
                    done.add(record["id"])
                    unreadable += record["ok"] is not True
    return done, unreadable


def journal_keys(path: Path, *, resume: bool) -> Callable[[str], str]:
    """Idempotency keys tied to a journal: a resumed run sends each id the key of the run
    it resumes, so a call that reached Whop before a kill is replayed, not repeated.

    The seed lives beside the journal; a run that does not resume draws a new one.
    """
    seed_file = path.with_name(path.name + ".idempotency-seed")
    if resume and seed_file.exists():
        seed = seed_file.read_text(encoding="utf-8").strip()
    else:
        seed = secrets.token_hex(16)
        seed_file.write_text(seed + "\n", encoding="utf-8")

    def key(ad_group_id: str) -> str:
        return hashlib.sha256(f"{seed}:{ad_group_id}".encode()).hexdigest()[:40]

    return key


def open_journal(path: Path) -> IO[str]:
    """Open for appending, starting on a fresh line if a kill cut the last one short."""
    cut_short = path.exists() and path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")
    journal = path.open("a", encoding="utf-8")
    if cut_short:
        journal.write("\n")
    return journal


# --- a run ---------------------------------------------------------------------------


class Run:
    """Counts and shows one run: a progress bar on a terminal, a summary at the end."""

    def __init__(
        self,
        client: WhopClient,
        verb: str,
        total: int | None,
        *,
        quiet: bool,
        skipped: Callable[[], int] = lambda: 0,
    ) -> None:
        self.client = client
        self.verb = verb
        self.total = total
        self.done = 0
        self.unreadable = 0
        self.failures: collections.Counter[str] = collections.Counter()
        self.failed_examples: list[str] = []
        self.skipped = skipped
        self.started = time.monotonic()
        show = not quiet and Console is not None and sys.stderr.isatty()
        self._progress = _progress_bar() if show else None
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
        if outcome.ok:
            self.done += 1
        elif outcome.accepted:
            self.unreadable += 1
        else:
            self.failures[type(outcome.error).__name__] += 1
            if len(self.failed_examples) < 10:
                self.failed_examples.append(f"{outcome.id}: {outcome.error}")
        if self._progress is not None and self._task is not None:
            elapsed = max(time.monotonic() - self.started, 1e-9)
            self._progress.update(
                self._task,
                advance=1,
                failed=sum(self.failures.values()),
                waits=self.client.stats.rate_limited,
                rate=f"{self.finished / elapsed:,.0f}/s",
            )

    @property
    def finished(self) -> int:
        return self.done + self.unreadable + sum(self.failures.values())

    def summary(self, *, interrupted: bool) -> None:
        elapsed = time.monotonic() - self.started
        rows = [
            (f"{self.verb}d", f"{self.done:,}"),
            *(
                [(f"{self.verb}d, answer unreadable", f"{self.unreadable:,}")]
                if self.unreadable
                else []
            ),
            *((f"failed: {name}", f"{count:,}") for name, count in self.failures.most_common()),
            ("skipped (already done)", f"{self.skipped():,}"),
            ("rate-limit waits (429)", f"{self.client.stats.rate_limited:,}"),
            ("time", f"{elapsed:.1f} s ({self.finished / max(elapsed, 1e-9):,.0f}/s)"),
        ]
        if interrupted:
            left = "unknown" if self.total is None else f"{self.total - self.finished:,}"
            rows.append(("interrupted: left to do", left))
        _print_table(f"whop-async {self.verb}", rows)
        for example in self.failed_examples:
            print(f"  {example}", file=sys.stderr)

    def exit_code(self) -> int:
        # An unreadable 2xx was still carried out: it does not make the run fail.
        return EXIT_FAILED if self.failures else EXIT_OK


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
        console=Console(stderr=True),
        refresh_per_second=8,
    )


def _print_table(title: str, rows: list[tuple[str, str]]) -> None:
    if Console is None:
        print(title, file=sys.stderr)
        for name, value in rows:
            print(f"  {name}: {value}", file=sys.stderr)
        return
    table = Table(title=title, show_header=False)
    for name, value in rows:
        table.add_row(name, value)
    Console(stderr=True).print(table)


async def run_bulk(
    client: WhopClient,
    verb: str,
    ids: Ids,
    *,
    total: int | None,
    concurrency: int,
    journal: IO[str] | None,
    quiet: bool,
    skipped: Callable[[], int] = lambda: 0,
    keys: Callable[[str], str] | None = None,
) -> int:
    """Unpause (or pause) ``ids``, journaling and showing each outcome; the exit code.

    Interrupted, it still prints the summary (with what is left), then lets the
    cancellation go on: every finished id is already in the journal.
    """
    run = Run(client, verb, total, quiet=quiet, skipped=skipped)
    many = client.ad_groups.unpause_many if verb == "unpause" else client.ad_groups.pause_many

    def finished(outcome: Outcome) -> None:
        if journal is not None:
            journal.write(outcome.to_json() + "\n")
            journal.flush()
        run.record(outcome)

    interrupted = False
    try:
        with run:
            await many(ids, concurrency=concurrency, on_outcome=finished, idempotency_key=keys)
    except asyncio.CancelledError:
        interrupted = True
        raise
    finally:
        run.summary(interrupted=interrupted)
    return run.exit_code()


# --- commands ------------------------------------------------------------------------


class SkipDone:
    """The ids of every source in turn (plain or async, ids or ad groups), less those
    already done, counting the skips."""

    def __init__(self, sources: list[Iterable[str] | AdGroupList], done: set[str]) -> None:
        self._sources, self._done = sources, done
        self.skipped = 0

    async def __aiter__(self) -> AsyncIterator[str]:
        for source in self._sources:
            if isinstance(source, AdGroupList):
                async for group in source:
                    if self._keep(group.id):
                        yield group.id
            else:
                for ad_group_id in source:
                    if self._keep(ad_group_id):
                        yield ad_group_id

    def _keep(self, ad_group_id: str) -> bool:
        if ad_group_id in self._done:
            self.skipped += 1
            return False
        return True


def api_key_from_environment() -> str:
    api_key = os.environ.get("WHOP_API_KEY")
    if not api_key:
        raise UsageError("set WHOP_API_KEY to your Whop API key (it is never taken as a flag)")
    return api_key


def client_from(options: argparse.Namespace) -> WhopClient:
    if options.redis_url and not options.rate:
        raise UsageError("--redis-url shares the --rate budget; it needs a --rate above 0")
    rate_limit = (
        RateLimit(options.rate, per=60.0, redis_url=options.redis_url) if options.rate else None
    )
    return WhopClient(api_key_from_environment(), base_url=options.base_url, rate_limit=rate_limit)


# The groups a campaign-wide run acts on: unpause what is paused, pause what is active.
_CAMPAIGN_STATUS = {"unpause": AdGroupStatus.PAUSED, "pause": AdGroupStatus.ACTIVE}


async def change_status_command(options: argparse.Namespace) -> int:
    verb = options.verb
    if not options.ids and options.file is None and options.campaign is None:
        raise UsageError(
            "give ids as arguments, --file PATH (--file - for standard input), or --campaign"
        )
    if options.resume and options.output is None:
        raise UsageError("--resume needs --output, the journal to resume from")
    client = client_from(options)
    output = Path(options.output) if options.output else None
    done, unreadable = already_done(output) if options.resume and output is not None else (set(), 0)
    if unreadable:
        print(
            f"whop-async: {unreadable:,} ids in {output} were accepted by the server with an"
            " answer that could not be read; they count as done and are not sent again",
            file=sys.stderr,
        )
    total: int | None = sum(1 for ad_group_id in options.ids if ad_group_id not in done)
    sources: list[Iterable[str] | AdGroupList] = [options.ids]
    id_file = IdFile(options.file) if options.file is not None else None
    if id_file is not None:
        sources.append(id_file)
        counted = id_file.count(done)
        total = None if counted is None or total is None else total + counted
    if options.campaign is not None:
        status = _CAMPAIGN_STATUS[verb]
        sources.append(client.ad_groups.list(ad_campaign_id=options.campaign, status=status))
        total = None  # a listing's length is known only at its end
    ids = SkipDone(sources, done)
    journal = open_journal(output) if output is not None else None
    try:
        async with client:
            return await run_bulk(
                client,
                verb,
                ids,
                total=total,
                concurrency=options.concurrency,
                journal=journal,
                quiet=options.quiet,
                skipped=lambda: ids.skipped,
                keys=journal_keys(output, resume=options.resume) if output else None,
            )
    finally:
        if journal is not None:
            journal.close()
        if id_file is not None:
            id_file.close()


async def list_command(options: argparse.Namespace) -> int:
    async with client_from(options) as client:
        listing = client.ad_groups.list(
            ad_campaign_id=options.campaign, status=options.status, page_size=100
        )
        try:
            async for group in listing:
                print(group.to_json() if options.json else group.id, flush=True)
        except WhopError as error:
            print(f"whop-async: listing failed: {error}", file=sys.stderr)
            return EXIT_FAILED
    return EXIT_OK


async def demo_command(options: argparse.Namespace) -> int:
    per_minute = options.rate
    fake = FakeWhop(
        groups=options.groups,
        rate_limit=max(1, per_minute // 60),
        per=1.0,
        fault_rate=options.fault_rate * 0.75,
        drop_rate=options.fault_rate * 0.25,
        seed=7,
    )
    async with fake:
        print(
            f"A stand-in Whop API at {fake.base_url} holds {options.groups:,} paused ad groups;"
            f" it allows {per_minute:,} requests a minute and fails"
            f" {options.fault_rate:.0%} of them on purpose.",
            file=sys.stderr,
        )
        limit = RateLimit(per_minute, per=60.0) if per_minute else None
        async with WhopClient(fake.api_key, base_url=fake.base_url, rate_limit=limit) as client:
            paused = client.ad_groups.list(status=AdGroupStatus.PAUSED, page_size=100)
            code = await run_bulk(
                client,
                "unpause",
                paused,
                total=len(fake.ids),
                concurrency=16,
                journal=None,
                quiet=False,
            )
        active = fake.statuses()["active"]
        print(
            f"Checked on the server: {active:,} of {options.groups:,} ad groups are active"
            f" ({fake.stats.requests:,} requests, {fake.stats.rate_limited:,} answered 429,"
            f" {fake.stats.faults:,} failed on purpose).",
            file=sys.stderr,
        )
    return code if active == options.groups else EXIT_FAILED


async def fake_server_command(options: argparse.Namespace) -> int:
    fake = FakeWhop.from_arguments(options)
    async with fake:
        print(f"WHOP_BASE_URL={fake.base_url}", flush=True)
        print(f"WHOP_API_KEY={fake.api_key}", flush=True)
        await asyncio.Event().wait()
    return EXIT_OK  # pragma: no cover - it runs until interrupted


# --- parsing -------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, no usage block: the exit code says it was usage.
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see --help)\n")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _share(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def _add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rate",
        type=_non_negative,
        default=WHOP_RATE_PER_MINUTE,
        help="requests per minute per operation (600; 0: no pacing)",
    )
    parser.add_argument("--base-url", help="API base URL (default: WHOP_BASE_URL, then Whop's)")
    parser.add_argument(
        "--redis-url",
        help="share the rate budget with every process using this Redis (the redis extra)",
    )


def _add_change_status_parser(commands: Any, verb: str) -> None:
    campaign_status = _CAMPAIGN_STATUS[verb].value
    command = commands.add_parser(verb, help=f"{verb} ad groups by id, file or campaign")
    command.add_argument("ids", nargs="*", metavar="ID", help="ad-group ids")
    command.add_argument(
        "--file", metavar="PATH", help="ids, one per line or a CSV with an id column; - for stdin"
    )
    command.add_argument(
        "--campaign", metavar="ID", help=f"every {campaign_status} group of this campaign"
    )
    command.add_argument("--output", metavar="PATH", help="append one JSON line per finished id")
    command.add_argument(
        "--resume", action="store_true", help="skip ids already recorded ok in --output"
    )
    command.add_argument("--concurrency", type=_positive, default=16, help="calls at once (16)")
    _add_connection_arguments(command)
    command.add_argument("--quiet", action="store_true", help="no progress bar")
    command.set_defaults(run=change_status_command, verb=verb)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="whop-async", description="Unpause (and pause) Whop ad groups in bulk.")
    parser.add_argument("--version", action="version", version=f"whop-async {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    for verb in ("unpause", "pause"):
        _add_change_status_parser(commands, verb)

    listing = commands.add_parser("list", help="print the ids (or JSON lines) of ad groups")
    listing.add_argument("--campaign", metavar="ID", help="only this campaign's groups")
    listing.add_argument("--status", help="only groups in this status, e.g. paused")
    listing.add_argument("--json", action="store_true", help="a JSON line per group, not its id")
    _add_connection_arguments(listing)
    listing.set_defaults(run=list_command)

    demo = commands.add_parser(
        "demo", help="unpause paused groups of a local stand-in; no key needed"
    )
    demo.add_argument("--groups", type=_positive, default=2000, help="paused ad groups (2000)")
    demo.add_argument(
        "--fault-rate", type=_share, default=0.03, help="share of requests failed on purpose (0.03)"
    )
    demo.add_argument(
        "--rate", type=_non_negative, default=12_000, help="requests per minute (12000)"
    )
    demo.set_defaults(run=demo_command)

    fake = commands.add_parser("fake-server", help="run the stand-in Whop API until Ctrl-C")
    FakeWhop.add_arguments(fake)
    fake.set_defaults(run=fake_server_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    options = build_parser().parse_args(argv)
    try:
        code: int = asyncio.run(options.run(options))
        return code
    except UsageError as error:
        print(f"whop-async: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (WhopError, ValueError) as error:  # configuration the client refused
        print(f"whop-async: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def run() -> NoReturn:
    """The ``whop-async`` console script."""
    sys.exit(main())
