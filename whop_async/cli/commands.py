"""The commands: unpause and pause, list, demo and fake-server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shlex
import sys
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Sequence,
)
from pathlib import Path
from typing import Any

from .. import (
    BULK_CONCURRENCY,
    Accounts,
    AdGroup,
    AdGroupList,
    AdGroupStatus,
    AuthenticationError,
    NotFinishedError,
    Outcome,
    RateLimit,
    WhopClient,
    WhopError,
)
from ..testing import FakeWhop
from .exits import ExitCode, UsageError
from .ids import IdFile
from .journal import Done, Journal, JournalWriteError
from .progress import Run, described, reader_may_leave, say, show, silence

Ids = Iterable[str | AdGroup] | AsyncIterable[str | AdGroup]


async def run_bulk(
    client: WhopClient | Accounts,
    verb: str,
    ids: Iterable[Any] | AsyncIterable[Any],  # ids, or (account, id) pairs for Accounts
    *,
    total: int | None,
    concurrency: int,
    journal: Journal | None,
    quiet: bool,
    skipped: Callable[[], int] = lambda: 0,
    keys: Callable[..., str] | None = None,
    on_stop: Callable[[], None] = lambda: None,
) -> int:
    """Unpause (or pause) ``ids``, journaling and showing each outcome; the exit code.

    Each way a run can end is one branch here, with its summary and its exit code.
    Interrupted, it prints the summary (with what is left), then lets the cancellation
    go on: every finished id is already in the journal. ``on_stop`` is called once the
    library stops the run early.
    """
    run = Run(
        client,
        verb,
        total,
        quiet=quiet,
        skipped=skipped,
        output=None if journal is None else journal.path,
    )
    # iter_*, not *_many: nothing is kept per id, however many ids stream through.
    each: Callable[..., AsyncIterator[Outcome]]
    if isinstance(client, Accounts):
        each = client.iter_unpause if verb == "unpause" else client.iter_pause
    else:
        each = client.ad_groups.iter_unpause if verb == "unpause" else client.ad_groups.iter_pause

    def finished(outcome: Outcome) -> None:
        stopping = run.stopping
        run.record(outcome)
        if journal is not None:
            journal.write(outcome)
        if run.stopping and not stopping:
            on_stop()

    if isinstance(ids, Sources):
        ids.on_failed_row = finished

    try:
        with run:
            async for _ in each(
                ids, concurrency=concurrency, on_outcome=finished, idempotency_key=keys
            ):
                pass
    except asyncio.CancelledError:
        run.summary(interrupted=True)
        raise
    except JournalWriteError as error:
        run.summary()
        say(
            f"stopped: {error}: {run.finished:,} ids finished, {error.written:,} of them"
            " recorded. Once it can be written, the same command with --resume is safe: it"
            " skips what is recorded and sends the rest with this run's Idempotency-Keys, so"
            " Whop replays rather than repeats what it already did."
        )
        return ExitCode.OUTPUT_FAILED
    except WhopError as error:  # not an id's: the listing that was feeding the run
        if not run.finished:
            raise  # refused before anything was done: one line, like any refusal
        run.summary()
        say(f"stopped: listing the ad groups failed: {described(error)}")
        return ExitCode.FAILED
    if run.fatal is not None:
        return stopped_by(run, run.fatal)
    if run.stopped is not None:
        return stopped_early(run, run.stopped)
    if run.finished:  # a run that sent nothing has no table: its caller says why
        run.summary()
    return run.exit_code()


def stopped_by(run: Run, cause: WhopError) -> int:
    """The library stopped the run at an error every id would meet (a wrong key, an
    address where nothing answers): one line and exit 2, after the table only if
    anything was done."""
    if run.done or run.unreadable:
        run.summary()
    say(f"stopped: {refusal(cause)}. Nothing more was sent; fix that, then run {_again(run)}.")
    return ExitCode.USAGE


def stopped_early(run: Run, stop: NotFinishedError) -> int:
    """The library stopped the run at its deadline or after a long outage: the table
    and a line."""
    run.summary()
    say(f"stopped: {stop}. Run {_again(run)} to take up what was left.")
    return ExitCode.FAILED


def _again(run: Run) -> str:
    return "the same command" + (" with --resume" if run.output is not None else "")


def refusal(error: WhopError) -> str:
    """An error that ends a command, as ``described``; a refused key names where the
    command took it from."""
    if isinstance(error, AuthenticationError):
        return f"WHOP_API_KEY was refused: {described(error)}"
    return described(error)


class Sources:
    """The ids of every source in turn (arguments, a file, a campaign's listing), less
    those already done; it counts what it read, so a run that sends nothing can say
    why. A file that cannot be read ends the ids, in-flight calls finishing, and is
    kept in ``refused``. A row of a file that holds no id (or pair) to send is not
    handed out: its failed Outcome goes to ``on_failed_row``, as the library's go to
    ``on_outcome``, so it is journaled and counted like any failed id."""

    def __init__(
        self, sources: Sequence[Iterable[Done] | IdFile | AdGroupList], done: set[Done]
    ) -> None:
        self._sources, self._done = sources, done
        self.read = 0
        self.skipped = 0
        self.listed = 0
        self.listing_ended = False
        self.refused: UsageError | None = None
        self.on_failed_row: Callable[[Outcome], None] = _unexpected
        self._passed = 0

    async def __aiter__(self) -> AsyncIterator[Any]:
        for source in self._sources:
            if isinstance(source, AdGroupList):
                async for group in source:
                    self.listed += 1
                    if self._keep(group.id):
                        yield group.id
                self.listing_ended = True
            elif isinstance(source, IdFile):
                try:
                    async for item in source:
                        if isinstance(item, Outcome):
                            self.read += 1
                            self.on_failed_row(item)
                        elif self._keep(item):
                            yield item
                            continue
                        self._passed += 1
                        if not self._passed % _PASSED_AT_ONCE:
                            await asyncio.sleep(0)  # Ctrl-C and SIGTERM, between them
                except UsageError as error:
                    self.refused = error
                    return
            else:
                for ad_group_id in source:
                    if self._keep(ad_group_id):
                        yield ad_group_id

    def stop(self) -> None:
        """Wait for no more ids from a stream: the run has stopped."""
        for source in self._sources:
            if isinstance(source, IdFile):
                source.stop()

    @property
    def handed_out(self) -> int:
        return self.read - self.skipped

    def _keep(self, ad_group_id: Done) -> bool:
        self.read += 1
        if ad_group_id in self._done:
            self.skipped += 1
            return False
        return True


# Ids already done, or failed rows, that a file may hold in a row, all passed over
# without a look at the event loop: a few milliseconds.
_PASSED_AT_ONCE = 10_000


def _unexpected(outcome: Outcome) -> None:  # pragma: no cover - run_bulk sets its own
    raise AssertionError(f"a failed row outside a run: {outcome}")


def api_key_from_environment() -> str:
    api_key = os.environ.get("WHOP_API_KEY")
    if not api_key:
        raise UsageError("set WHOP_API_KEY to your Whop API key (it is never taken as a flag)")
    return api_key


def client_from(options: argparse.Namespace, api_key: str) -> WhopClient:
    if options.redis_url and not options.rate:
        raise UsageError("--redis-url shares the --rate budget; it needs a --rate above 0")
    rate_limit = (
        RateLimit(options.rate, per=60.0, redis_url=options.redis_url) if options.rate else None
    )
    try:
        return WhopClient(
            api_key,
            base_url=options.base_url,
            rate_limit=rate_limit,
            **options.telemetry.client_options(),
        )
    except ValueError as error:  # the key or the base URL: its message names which
        if str(error).startswith("api_key"):
            source = "WHOP_API_KEY"
        else:
            source = "--base-url" if options.base_url else "WHOP_BASE_URL"
        raise UsageError(f"{source}: {error}") from None


def listing_from(
    client: WhopClient, campaign: str | None, status: AdGroupStatus | str | None
) -> AdGroupList:
    try:
        return client.ad_groups.list(ad_campaign_id=campaign, status=status, page_size=100)
    except ValueError as error:  # InvalidIdError: not a Whop id
        raise UsageError(f"--campaign: {error}") from None


async def campaign_is_missing(client: WhopClient, campaign: str) -> bool:
    """Whether a campaign has no ad group at all, in any status: a wrong id, most
    likely. False when that cannot be told (the check failed)."""
    try:
        async for _ in client.ad_groups.list(ad_campaign_id=campaign, page_size=1):
            return False
    except WhopError:
        return False
    return True


async def change_status_command(options: argparse.Namespace) -> int:
    if options.keys is not None:
        return await accounts_command(options)
    if not options.ids and options.file is None and options.campaign is None:
        raise UsageError(
            "give ids as arguments, --file PATH (--file - for standard input), or --campaign"
        )
    if options.resume and options.output is None:
        raise UsageError("--resume needs --output, the journal to resume from")
    api_key = api_key_from_environment()
    client = client_from(options, api_key)
    with contextlib.ExitStack() as stack:
        with _stopped_before_anything_is_sent():
            id_file = _id_file(options, stack)
            journal = await _journal(options, stack, id_file, base_url=client.base_url, key=api_key)
            ids, total = await _ids_to_do(options, client, id_file, journal)
        async with client:
            code = await run_bulk(
                client,
                options.command,
                ids,
                total=total,
                concurrency=options.concurrency,
                journal=journal,
                quiet=options.quiet,
                skipped=lambda: ids.skipped,
                keys=None if journal is None else journal.idempotency_key,
                on_stop=ids.stop,
            )
            listed_nothing = ids.listing_ended and not ids.listed
            missing = listed_nothing and await campaign_is_missing(client, options.campaign)
    if ids.refused is not None:
        say(str(ids.refused))
        return ExitCode.USAGE
    if missing:
        say(f"--campaign {options.campaign} has no ad groups; is the id right?")
        return ExitCode.FAILED if code == ExitCode.OK else code
    if not ids.handed_out:
        say(f"nothing to {options.command}: {_why_nothing(options, ids)}")
    return code


# What a journal of many accounts is bound to instead of one key: its keys may change (a
# rotated key is the same account), and it is never resumed by a run of one key.
_MANY_ACCOUNTS = "many accounts (--keys)"


async def accounts_command(options: argparse.Namespace) -> int:
    """unpause (or pause) the (account, id) pairs of ``--file``, each with its account's
    key from ``--keys``."""
    if options.ids or options.campaign is not None or options.file is None:
        raise UsageError(
            "--keys takes its (account, id) pairs from --file PATH (a CSV with account and"
            " id columns), not from arguments or --campaign"
        )
    if options.resume and options.output is None:
        raise UsageError("--resume needs --output, the journal to resume from")
    accounts = accounts_from(options, keys_from(options.keys))
    with contextlib.ExitStack() as stack:
        with _stopped_before_anything_is_sent():
            pairs = stack.enter_context(contextlib.closing(IdFile(options.file, accounts=True)))
            journal = await _journal(
                options, stack, pairs, base_url=accounts.base_url, key=_MANY_ACCOUNTS
            )
        ids = Sources([pairs], _done(journal))
        async with accounts:
            code = await run_bulk(
                accounts,
                options.command,
                ids,
                total=None,
                concurrency=options.concurrency,
                journal=journal,
                quiet=options.quiet,
                skipped=lambda: ids.skipped,
                keys=None if journal is None else journal.account_idempotency_key,
                on_stop=ids.stop,
            )
    if ids.refused is not None:
        say(str(ids.refused))
        return ExitCode.USAGE
    if not ids.handed_out:
        say(f"nothing to {options.command}: {_why_nothing(options, ids)}")
    return code


@contextlib.contextmanager
def _stopped_before_anything_is_sent() -> Iterator[None]:
    """Ctrl-C or SIGTERM while a run is made ready (a long journal read back, say)
    ends it in one line: there is nothing to sum up."""
    try:
        yield
    except asyncio.CancelledError:
        say("stopped before anything was sent")
        raise


def _id_file(options: argparse.Namespace, stack: contextlib.ExitStack) -> IdFile | None:
    if options.file is None:
        return None
    return stack.enter_context(contextlib.closing(IdFile(options.file)))


async def _journal(
    options: argparse.Namespace,
    stack: contextlib.ExitStack,
    id_file: IdFile | None,
    *,
    base_url: str,
    key: str,
) -> Journal | None:
    """The journal of ``--output``, held for this run and begun; refused before
    anything is written to it when it is the file the ids are read from, which would
    read its own lines back as ids without end."""
    if options.output is None:
        return None
    journal = stack.enter_context(Journal(Path(options.output)))
    if id_file is not None and id_file.identity == journal.identity:
        raise UsageError(
            f"--file {options.file} and --output {options.output} are the same file: the"
            " run would read its own journal back as ids. Nothing was sent; give another"
            " --output."
        )
    await journal.begin(resume=options.resume, base_url=base_url, api_key=key)
    for notice in journal.notices:
        say(notice)
    return journal


def _done(journal: Journal | None) -> set[Done]:
    return set() if journal is None else journal.done


def keys_from(path: str) -> dict[str, str]:
    """The accounts' keys of a dotenv file (``NAME=KEY`` lines), refused when anyone but
    its owner may read or write it, as ssh refuses such a private key.

    Keys are taken as written. One holding ``${`` is refused: python-dotenv's
    ``load_dotenv`` would fill ``${VAR}`` in from the environment, and no Whop key holds
    it, so it is a key meant to be filled in, which sent as written would be refused
    only once the run has begun. An account given twice is refused too: which of its
    keys was meant cannot be told.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        raise UsageError(f"--keys {path}: cannot read it: {error.strerror}") from None
    if os.name != "nt" and mode & 0o077:
        raise UsageError(
            f"--keys {path}: its permissions ({mode & 0o777:o}) let others read or change"
            f" it; it holds keys, so it must be yours alone: chmod 600 {path}"
        )
    try:
        from dotenv.parser import parse_stream
    except ImportError:
        raise UsageError(
            "--keys needs the cli extra, whose python-dotenv reads it:"
            " pip install 'whop-async[cli]'"
        ) from None
    keys: dict[str, str] = {}
    lines_of: dict[str, int] = {}
    try:
        with open(path, encoding="utf-8-sig") as lines:
            for binding in parse_stream(lines):
                line = binding.original.line  # never the line itself: it may hold a key
                name, key = binding.key, binding.value
                if binding.error:
                    raise UsageError(f"--keys {path}: line {line} is not NAME=KEY")
                if name is None:
                    continue
                if not key:
                    raise UsageError(f"--keys {path}: no key for {name} (line {line})")
                if name in keys:
                    raise UsageError(
                        f"--keys {path}: {name} is given twice (lines {lines_of[name]} and"
                        f" {line}); one key per account"
                    )
                if "${" in key:
                    raise UsageError(
                        f"--keys {path}: the key of {name} (line {line}) holds '${{': keys are"
                        " taken as written, never filled in from the environment; write the"
                        " key itself"
                    )
                keys[name], lines_of[name] = key, line
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"--keys {path}: cannot read it: {error}") from None
    if not keys:
        raise UsageError(f"--keys {path}: it holds no NAME=KEY line")
    return keys


def accounts_from(options: argparse.Namespace, keys: dict[str, str]) -> Accounts:
    if options.redis_url and not options.rate:
        raise UsageError("--redis-url shares the --rate budget; it needs a --rate above 0")
    rate_limit = (
        RateLimit(options.rate, per=60.0, redis_url=options.redis_url) if options.rate else None
    )
    try:
        return Accounts(keys, base_url=options.base_url, rate_limit=rate_limit)
    except ValueError as error:  # a name or a key (never shown), or the base URL
        source = f"--keys {options.keys}" if "account" in str(error) else "--base-url"
        raise UsageError(f"{source}: {error}") from None


async def _ids_to_do(
    options: argparse.Namespace,
    client: WhopClient,
    id_file: IdFile | None,
    journal: Journal | None,
) -> tuple[Sources, int | None]:
    """The ids of the arguments, ``--file`` and ``--campaign``, less those the journal
    records as done; and how many that is, when it can be known before they are sent."""
    done = _done(journal)
    if journal is not None and journal.resent:
        say(
            f"resuming {journal.path}: ids whose answer could not be read are sent again,"
            f" with the Idempotency-Keys they were sent with: {journal.resent:,}"
        )
    sources: list[Iterable[str] | IdFile | AdGroupList] = [options.ids]
    # Every id the sources hold, while that can be known without using them up.
    known: set[str | Outcome] | None = set(options.ids)
    if id_file is not None:
        sources.append(id_file)
        in_file = await id_file.distinct_ids()
        known = None if in_file is None else set(options.ids) | in_file
    if options.campaign is not None:
        sources.append(listing_from(client, options.campaign, options.campaign_status))
        known = None  # a listing's length is known only at its end
    return Sources(sources, done), None if known is None else len(known - done)


def _why_nothing(options: argparse.Namespace, ids: Sources) -> str:
    if ids.read:
        return f"all {ids.read:,} ids are already recorded as done in {options.output}"
    if options.campaign is not None:
        return f"campaign {options.campaign} has no {options.campaign_status} ad groups"
    return "the input was empty"


async def list_command(options: argparse.Namespace) -> int:
    known = options.status is None or options.status in set(AdGroupStatus)
    if not known:
        statuses = ", ".join(AdGroupStatus)
        say(f"--status {options.status} is not one of {statuses}; asking the API anyway")
    async with client_from(options, api_key_from_environment()) as client:
        listed = 0
        try:
            async for group in listing_from(client, options.campaign, options.status):
                print(group.to_json() if options.json else group.id, flush=True)
                listed += 1
        except AuthenticationError as error:  # configuration, as a wrong key is everywhere
            say(f"listing failed: {refusal(error)}")
            return ExitCode.USAGE
        except WhopError as error:
            say(f"listing failed: {described(error)}")
            return ExitCode.FAILED
        except BrokenPipeError:  # the reader has what it wanted: | head
            silence(sys.stdout)
            return ExitCode.OK
        if listed:
            return ExitCode.OK
        if not known:
            say(f"no ad groups are {options.status}")
            return ExitCode.FAILED
        if options.campaign is not None and await campaign_is_missing(client, options.campaign):
            say(f"--campaign {options.campaign} has no ad groups; is the id right?")
            return ExitCode.FAILED
    say("no ad groups matched")
    return ExitCode.OK


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
        show(
            f"A stand-in Whop API at {fake.base_url} holds {options.groups:,} paused ad groups;"
            f" it allows {per_minute:,} requests a minute and fails"
            f" {options.fault_rate:.0%} of them on purpose."
        )
        limit = RateLimit(per_minute, per=60.0) if per_minute else None
        async with WhopClient(
            fake.api_key,
            base_url=fake.base_url,
            rate_limit=limit,
            **options.telemetry.client_options(),
        ) as client:
            paused = client.ad_groups.list(status=AdGroupStatus.PAUSED, page_size=100)
            code = await run_bulk(
                client,
                "unpause",
                paused,
                total=len(fake.ids),
                concurrency=BULK_CONCURRENCY,
                journal=None,
                quiet=False,
            )
        active = fake.statuses()["active"]
        show(
            f"Checked on the server: {active:,} of {options.groups:,} ad groups are active"
            f" ({fake.stats.requests:,} requests, {fake.stats.rate_limited:,} answered 429,"
            f" {fake.stats.faults:,} failed on purpose)."
        )
    return code if active == options.groups else ExitCode.FAILED


async def fake_server_command(options: argparse.Namespace) -> int:
    async with FakeWhop.from_arguments(options) as fake:
        with reader_may_leave(sys.stdout):  # it serves on, whoever reads this
            # Lines to paste into a shell as they are.
            print(f"export WHOP_BASE_URL={shlex.quote(fake.base_url)}", flush=True)
            print(f"export WHOP_API_KEY={shlex.quote(fake.api_key)}", flush=True)
        await asyncio.Event().wait()
    return ExitCode.OK  # pragma: no cover - it runs until interrupted


COMMANDS: dict[str, Callable[[argparse.Namespace], Coroutine[None, None, int]]] = {
    "unpause": change_status_command,
    "pause": change_status_command,
    "list": list_command,
    "demo": demo_command,
    "fake-server": fake_server_command,
}
