"""Accounts: many credentials by name on one HTTP session, and bulk runs over
(account, id) pairs that share their concurrency fairly between the accounts.

Each account is a WhopClient with its own budget per operation, breaker and retry
budget (Whop counts each credential apart). A run hands its calls out round robin
between the accounts that have ids to do, each holding at most its share of the run's
concurrency: an account that is slower, hangs until its timeouts or is out keeps at
most that share busy, and the others go on at their own pace. An account whose key is
refused (401) or whose token provider fails stops alone: its ids end NotFinishedError.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import math
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from types import TracebackType
from typing import TYPE_CHECKING, Unpack, cast

import attrs

from ._bulk import BulkRun, CallOne, RecentIds, callback, streamed
from ._call import Calls, Lifetime
from ._client import SharedSession, WhopClient, client_on
from ._credentials import ApiKey
from ._exceptions import APIResponseValidationError, StopReason, UnknownAccountError, WhopError
from ._limits import ClientStats, RateLimit
from ._logs import log_to_stderr_if_asked
from ._models import AccountsResult, AdGroup, BulkResult, Outcome
from ._options import (
    ACCOUNTS_CONCURRENCY,
    BULK_MAX_OUTAGE,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_SERVER_WAIT,
    DEFAULT_RATE_LIMIT_TIMEOUT,
    DEFAULT_TIMEOUT,
    WHOP_RATE_LIMIT,
    AccountsBulkOptions,
    BulkOptions,
    ClientOptions,
    checked,
    concurrency_of,
    positive_seconds,
    seconds_or_zero,
)
from ._transport import Session
from .resources.ad_groups import bulk_call

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from ._otel import AccountsTrace

Pair = tuple[str, str | AdGroup]
Pairs = Iterable[Pair] | AsyncIterable[Pair]
# Takes a pair's input position, its account, its id, and its ad group or its error;
# what must be awaited before the worker goes on, or None.
Deliver = Callable[[int, str, str, AdGroup | None, WhopError | None], Awaitable[object] | None]

# Pairs read ahead of what is sent, at least: enough that every account with ids ahead
# has some queued (so shares hold steady) and to find work for every free call when the
# input's accounts come in runs (a file sorted by account: three troubled accounts of
# 400 ids each ahead of the healthy ones kept those waiting with 1,024), and a fixed
# cost however long the input is (about 1.5 MiB).
_LOOKAHEAD = 10_000
_PER_CALL = frozenset({"timeout", "max_retries", "extra_headers", "extra_query"})


def _no_key() -> str:  # pragma: no cover - the options' template never makes a call
    raise AssertionError("the template of Accounts' options has no key")


class Accounts:
    """Many Whop accounts, each with its own credential and budget, on one HTTP session.

        async with whop_async.Accounts({"acme": key, "globex": token_provider}) as accounts:
            result = await accounts.unpause_many([("acme", "adgrp_1"), ("globex", "adgrp_2")])
            acme = accounts["acme"]          # a WhopClient for that account

    Every account is a WhopClient with a budget of its own per operation (pacing, the
    gate after a 429, the outage breaker, the retry budget), named after the account:
    with a ``RateLimit`` that names Redis, every process and host that names the same
    account shares its budget. An account's key may be a token provider (see
    ``WhopClient``).

    Every other argument (``base_url``, ``timeout``, ``max_retries``,
    ``max_server_wait``, ``rate_limit``, ``rate_limit_timeout``, ``session``,
    ``api_version``, ``default_headers``, ``tracer_provider``, ``meter_provider``) is as
    for ``WhopClient``, and shared by every account.

    Args:
        accounts: account names to keys or token providers; more can be added with
            ``add`` at any time, a run's included.

    Raises:
        ValueError: an option is out of range, or an account name or key cannot be used.
    """

    def __init__(
        self,
        accounts: Mapping[str, ApiKey] | None = None,
        *,
        base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_server_wait: float = DEFAULT_MAX_SERVER_WAIT,
        rate_limit: RateLimit | None = WHOP_RATE_LIMIT,
        rate_limit_timeout: float = DEFAULT_RATE_LIMIT_TIMEOUT,
        session: Session | None = None,
        api_version: str | None = None,
        default_headers: Mapping[str, str] | None = None,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self._template = ClientOptions(
            api_key=_no_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            max_server_wait=max_server_wait,
            rate_limit=rate_limit,
            rate_limit_timeout=rate_limit_timeout,
            api_version=api_version,
            default_headers=default_headers,
        )
        log_to_stderr_if_asked()
        self._shared = SharedSession.new(
            self._template.base_url,
            session,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
        )
        self._lifetime = Lifetime()
        self._clients: dict[str, WhopClient] = {}
        self._calls: dict[str, Calls] = {}
        for name, api_key in (accounts or {}).items():
            self.add(name, api_key)

    def __repr__(self) -> str:
        return f"Accounts({len(self._clients)} accounts, base_url={self.base_url!r})"

    @property
    def base_url(self) -> str:
        """Where every account's requests go."""
        return self._template.base_url

    def add(self, name: str, api_key: ApiKey) -> WhopClient:
        """Add an account: its client, with its own budget on the shared session. Its
        ids in a running bulk call are done from the first read after this.

        Raises:
            ValueError: the name is taken or cannot name an account, or the key cannot
                be used (never shown).
            RuntimeError: these accounts are closed.
        """
        if self.closed:
            raise RuntimeError("these Accounts are closed; create new ones")
        if name in self._clients:
            raise ValueError(f"there is already an account named {name!r}")
        if api_key is None or api_key == "":
            raise ValueError(f"account {name!r}: no key given")
        try:
            options = attrs.evolve(self._template, api_key=api_key, account=name)
        except ValueError as error:
            raise ValueError(f"account {name!r}: {error}") from None
        client, self._calls[name] = client_on(self._shared, options, self._lifetime.child())
        self._clients[name] = client
        return client

    async def remove(self, name: str) -> None:
        """Close an account's client and forget it; its calls that wait end with
        RuntimeError, and in a bulk run of these Accounts its ids end unfinished
        (NotFinishedError) while the other accounts' go on.

        Raises:
            KeyError: no account has that name.
        """
        del self._calls[name]
        await self._clients.pop(name).close()

    def __getitem__(self, name: str) -> WhopClient:
        """The client of the account ``name``.

        Raises:
            KeyError: no account has that name.
        """
        return self._clients[name]

    def __contains__(self, name: object) -> bool:
        return name in self._clients

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._clients))

    def __len__(self) -> int:
        return len(self._clients)

    @property
    def stats(self) -> ClientStats:
        """What every account has been answered so far, added up."""
        every = [client.stats for client in self._clients.values()]
        return ClientStats(
            answered=sum(stats.answered for stats in every),
            rate_limited=sum(stats.rate_limited for stats in every),
        )

    @property
    def closed(self) -> bool:
        """True once ``close()`` has run."""
        return self._lifetime.closed

    async def __aenter__(self) -> Accounts:
        if self.closed:
            raise RuntimeError("these Accounts are closed; create new ones")
        self._shared.transport.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every account's client and the owned HTTP session (a borrowed one
        stays open). Safe to call twice."""
        self._lifetime.close()
        for client in list(self._clients.values()):
            await client.close()
        await self._shared.transport.close()

    async def unpause_many(
        self, pairs: Pairs, **options: Unpack[AccountsBulkOptions]
    ) -> AccountsResult:
        """Unpause the ad group of every ``(account, id)`` pair with that account's
        credential, its calls sharing the run's ``concurrency`` fairly between the
        accounts.

        As a client's ``unpause_many``: every pair ends as an ad group or a typed
        error, and a pair seen again is done once. An account whose key is refused
        (401), whose token provider fails, or whose server answers nothing for
        ``max_outage`` stops alone: its ids not finished end NotFinishedError (with
        the cause); the others run on. A pair that names no account (when it is read)
        fails with UnknownAccountError.

        Args:
            pairs: any iterable or async iterable of ``(account, id)`` pairs (an
                AdGroup stands for its id), read lazily.
            options: as a client's bulk calls (see AccountsBulkOptions):
                ``concurrency`` (64), ``max_retries`` (8 per id), ``on_outcome``,
                ``idempotency_key`` (of the account and the id), ``deadline``,
                ``max_outage`` (600 s), ``timeout``, ``extra_headers``,
                ``extra_query``.

        Returns:
            Each account's BulkResult, under its name.

        Raises:
            TypeError: ``pairs`` is a string, or holds something that is not an
                (account, id) pair.
            ValueError: an option is out of range.
        """
        checked(options, AccountsBulkOptions)
        return await self._many("unpause", pairs, options)

    def iter_unpause(
        self, pairs: Pairs, **options: Unpack[AccountsBulkOptions]
    ) -> AsyncIterator[Outcome]:
        """Unpause like ``unpause_many``, yielding each Outcome (with its ``account``) as
        it completes; memory stays bounded however many pairs stream through."""
        checked(options, AccountsBulkOptions)
        return self._iter("unpause", pairs, options)

    async def pause_many(
        self, pairs: Pairs, **options: Unpack[AccountsBulkOptions]
    ) -> AccountsResult:
        """Pause every pair's ad group: the mirror of ``unpause_many``."""
        checked(options, AccountsBulkOptions)
        return await self._many("pause", pairs, options)

    def iter_pause(
        self, pairs: Pairs, **options: Unpack[AccountsBulkOptions]
    ) -> AsyncIterator[Outcome]:
        """Pause every pair's ad group, yielding each Outcome: the mirror of
        ``iter_unpause``."""
        checked(options, AccountsBulkOptions)
        return self._iter("pause", pairs, options)

    async def _many(self, verb: str, pairs: Pairs, options: AccountsBulkOptions) -> AccountsResult:
        gathered: dict[str, _Gathered] = collections.defaultdict(_Gathered)
        on_outcome = options.get("on_outcome")

        def record(
            index: int,
            account: str,
            ad_group_id: str,
            group: AdGroup | None,
            error: WhopError | None,
        ) -> Awaitable[object] | None:
            gathered[account].add(index, ad_group_id, group, error)
            if on_outcome is None:
                return None
            outcome = Outcome(id=ad_group_id, ad_group=group, error=error, account=account)
            return callback(on_outcome, outcome)

        with self._traced(verb) as trace:
            async with _Run(self, verb, options, record, trace) as run:
                await run.all(pairs)
        return AccountsResult(by_account={name: each.result() for name, each in gathered.items()})

    async def _iter(
        self, verb: str, pairs: Pairs, options: AccountsBulkOptions
    ) -> AsyncIterator[Outcome]:
        on_outcome = options.get("on_outcome")

        async def fill(
            trace: AccountsTrace | None, put: Callable[[Outcome], Awaitable[None]]
        ) -> None:
            async def hand_over(
                _: int,
                account: str,
                ad_group_id: str,
                group: AdGroup | None,
                error: WhopError | None,
            ) -> None:
                outcome = Outcome(id=ad_group_id, ad_group=group, error=error, account=account)
                pending = callback(on_outcome, outcome)
                if pending is not None:
                    await pending
                await put(outcome)

            async with _Run(self, verb, options, hand_over, trace) as run:
                await run.all(pairs)

        # Around the yields, as a client's iter_unpause: a reader that leaves early
        # closes the run's span without error.
        with self._traced(verb) as trace:
            streaming = streamed(functools.partial(fill, trace), _concurrency(options))
            async with contextlib.aclosing(streaming) as outcomes:
                async for outcome in outcomes:
                    yield outcome

    def _traced(self, verb: str) -> contextlib.AbstractContextManager[AccountsTrace | None]:
        """The run's one span, with a child for each account's part, and its counts,
        when it is traced: to enter around it."""
        telemetry = self._shared.telemetry
        if telemetry is None:
            return contextlib.nullcontext()
        return telemetry.accounts_run(f"ad_groups.{verb}")


def _concurrency(options: AccountsBulkOptions) -> int:
    return concurrency_of(options.get("concurrency", ACCOUNTS_CONCURRENCY))


@attrs.define
class _Gathered:
    """One account's outcomes, gathered into its BulkResult."""

    succeeded: list[tuple[int, AdGroup]] = attrs.field(factory=list)
    failed: dict[str, WhopError] = attrs.field(factory=dict)
    unreadable: dict[str, APIResponseValidationError] = attrs.field(factory=dict)

    def add(
        self, index: int, ad_group_id: str, group: AdGroup | None, error: WhopError | None
    ) -> None:
        if group is not None:
            self.succeeded.append((index, group))
        elif isinstance(error, APIResponseValidationError):
            self.unreadable[ad_group_id] = error
        elif error is not None:
            self.failed[ad_group_id] = error

    def result(self) -> BulkResult:
        self.succeeded.sort(key=lambda numbered: numbered[0])
        return BulkResult(
            succeeded=[group for _, group in self.succeeded],
            failed=self.failed,
            unreadable=self.unreadable,
        )


class _AccountRun:
    """An account's part of a run: its client's calls, its stop, and its queue."""

    def __init__(self, calls: Calls, call: CallOne, run: BulkRun) -> None:
        self.calls = calls  # the client's, to tell it from one added later by the name
        self.call = call
        self.run = run
        self.queue: collections.deque[tuple[int, str]] = collections.deque()
        self.in_flight = 0

    @property
    def stopped(self) -> bool:
        return self.run.past_deadline()


class _Run:
    """One bulk call of Accounts: reads the pairs lazily into a queue per account and
    hands calls out round robin to ``concurrency`` workers, no account holding more
    than its share of them.

    An account's share is the run's concurrency divided among the accounts that have
    ids queued or in flight (at least one each): one that hangs or waits out an outage
    holds that many calls at most, and the rest go to the others. An account that has
    stopped (401, its deadline) is always served, so its queue drains at once.
    """

    def __init__(
        self,
        accounts: Accounts,
        verb: str,
        options: AccountsBulkOptions,
        deliver: Deliver,
        trace: AccountsTrace | None,
    ) -> None:
        self._accounts = accounts
        self._verb = verb
        self._options = options
        self._trace = trace
        self._deliver = deliver if trace is None else trace.counting(deliver)
        self._concurrency = _concurrency(options)
        deadline = options.get("deadline")
        self._deadline = None if deadline is None else positive_seconds(deadline, "deadline")
        self._max_outage = seconds_or_zero(options.get("max_outage", BULK_MAX_OUTAGE), "max_outage")
        self._lookahead = max(_LOOKAHEAD, 4 * self._concurrency)
        self._runs: dict[str, _AccountRun] = {}
        self._ring: collections.deque[str] = collections.deque()  # accounts with a queue
        self._busy = 0  # accounts with ids queued or in flight
        self._queued = 0
        self._changed = asyncio.Event()
        self._stack = contextlib.ExitStack()
        self._ends_at = math.inf
        self._source: _PairSource | None = None

    async def __aenter__(self) -> _Run:
        clock = self._accounts._shared.clock
        if self._deadline is not None:
            self._ends_at = clock.monotonic() + self._deadline
        return self

    async def __aexit__(self, *_: object) -> None:
        self._stack.close()

    async def all(self, pairs: Pairs) -> None:
        """Run every pair to its outcome, or until something that is not a WhopError
        (a bug, an error raised by ``pairs`` or ``deliver``, cancellation) stops every
        worker; it then propagates."""
        self._source = _PairSource(pairs)
        trace = self._trace
        workers = [
            # Traced, in the run's span: the accounts' parts start in it.
            asyncio.create_task(
                self._work(), context=None if trace is None else trace.worker_context()
            )
            for _ in range(self._concurrency)
        ]
        try:
            done, _ = await asyncio.wait(workers, return_when=asyncio.FIRST_EXCEPTION)
            for worker in done:
                if not worker.cancelled() and (error := worker.exception()) is not None:
                    raise error
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _work(self) -> None:
        while (job := await self._next()) is not None:
            account, index, ad_group_id = job
            part = self._runs[account]
            try:
                if part.stopped:
                    error: WhopError = part.run.not_finished(ad_group_id, attempted=False)
                    pending = self._deliver(index, account, ad_group_id, None, error)
                else:
                    try:
                        group = await part.call(ad_group_id)
                    except WhopError as failure:
                        pending = self._deliver(index, account, ad_group_id, None, failure)
                    except RuntimeError as closed:
                        if not self._removed_since(part, account):
                            raise  # the Accounts closed: the run ends, as close() says
                        error = self._removed(part, account, ad_group_id, closed)
                        pending = self._deliver(index, account, ad_group_id, None, error)
                    else:
                        pending = self._deliver(index, account, ad_group_id, group, None)
                if pending is not None:
                    await pending
            finally:
                self._done(part)

    async def _next(self) -> tuple[str, int, str] | None:
        """The next (account, index, id) to do, as fairness allows; None when the pairs
        are used up and every queue is empty."""
        source = self._source
        assert source is not None
        while True:
            # The lookahead is filled before anything is picked, so that the accounts
            # with ids to do (among whom the shares are counted) are all of those ahead,
            # not just the few that happen to be queued at a moment.
            readable = self._can_read() and self._queued < self._lookahead
            job = None if readable else self._pick()
            if job is not None:
                return job
            if readable:
                pair = await source.next()
                if pair is not None:
                    await self._route(*pair)
                self._wake()
            elif source.ended and not self._queued:
                return None
            else:
                await self._changed.wait()

    def _can_read(self) -> bool:
        source = self._source
        assert source is not None
        return not (source.ended or source.reading)

    def _pick(self) -> tuple[str, int, str] | None:
        """The next queued id of the first account, round robin, under its share."""
        ring = self._ring
        share = max(1, math.ceil(self._concurrency / max(1, self._busy)))
        for _ in range(len(ring)):
            account = ring[0]
            ring.rotate(-1)
            part = self._runs[account]
            if part.in_flight < share or part.stopped:
                index, ad_group_id = part.queue.popleft()
                if not part.queue:
                    ring.pop()  # it was just rotated to the end
                part.in_flight += 1
                self._queued -= 1
                return account, index, ad_group_id
        return None

    async def _route(self, index: int, account: str, ad_group_id: str) -> None:
        """Queue a pair for its account, or fail it at once if none has that name."""
        part = self._runs.get(account) or self._start(account)
        if part is None:
            pending = self._deliver(index, account, ad_group_id, None, UnknownAccountError(account))
            if pending is not None:
                await pending
            return
        if not part.queue:
            self._ring.append(account)
            if not part.in_flight:
                self._busy += 1
        part.queue.append((index, ad_group_id))
        self._queued += 1

    def _start(self, account: str) -> _AccountRun | None:
        """The account's part of the run, from its first pair on; None if there is no
        such account."""
        if account not in self._accounts:
            return None
        calls = self._accounts._calls[account]
        run = self._stack.enter_context(
            calls.bulk_run(
                operation=f"ad_groups.{self._verb}",
                deadline=self._deadline,
                max_outage=self._max_outage,
            )
        )
        run.deadline = self._ends_at  # the run's, whenever the account joined it
        key_for = self._options.get("idempotency_key")
        # The per-call options, as the account's own bulk calls take them.
        bulk = cast(
            BulkOptions,
            {name: value for name, value in self._options.items() if name in _PER_CALL},
        )
        if key_for is not None:
            bulk["idempotency_key"] = functools.partial(key_for, account)
        call = bulk_call(calls, self._verb, bulk, run)
        if self._trace is not None:  # the account's part: a span of its own, its calls in it
            call = self._trace.joined(account, run, call)
        part = self._runs[account] = _AccountRun(calls, call, run)
        return part

    def _removed_since(self, part: _AccountRun, account: str) -> bool:
        """True when the client of ``part`` was removed (whether or not the name was
        added again since) while these Accounts stay open."""
        current = self._accounts._calls.get(account)
        return not self._accounts.closed and current is not part.calls

    @staticmethod
    def _removed(
        part: _AccountRun, account: str, ad_group_id: str, closed: RuntimeError
    ) -> WhopError:
        """The error of an id whose account was removed mid-run: that account's part
        stops (its other ids end unfinished too), and the others go on."""
        part.run.stop(
            StopReason.FATAL, RuntimeError(f"the account {account!r} was removed: {closed}")
        )
        return part.run.not_finished(ad_group_id, attempted=True)

    def _done(self, part: _AccountRun) -> None:
        part.in_flight -= 1
        if not part.in_flight and not part.queue:
            self._busy -= 1
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()


class _PairSource:
    """Hands out unique (account, id) pairs with their input position, reading the
    input lazily; one task at a time reads an async iterable (``reading`` meanwhile)."""

    def __init__(self, pairs: Pairs) -> None:
        if isinstance(pairs, (str, bytes)):
            raise TypeError("pairs must be an iterable of (account, id) pairs, not a string")
        self._sync = iter(pairs) if not isinstance(pairs, AsyncIterable) else None
        self._async = aiter(pairs) if isinstance(pairs, AsyncIterable) else None
        self.reading = False
        self._recent = RecentIds(100_000)
        self._count = 0
        self.ended = False

    async def next(self) -> tuple[int, str, str] | None:
        """The next unique pair, numbered; None once the input is used up."""
        if self._sync is not None:
            for item in self._sync:
                if (pair := self._unique(item)) is not None:
                    return pair
        else:
            assert self._async is not None
            self.reading = True
            try:
                async for item in self._async:
                    if (pair := self._unique(item)) is not None:
                        return pair
            finally:
                self.reading = False
        self.ended = True
        return None

    def _unique(self, item: object) -> tuple[int, str, str] | None:
        account, ad_group_id = _pair_of(item)
        if not self._recent.first_time((account, ad_group_id)):
            return None
        self._count += 1
        return self._count - 1, account, ad_group_id


def _pair_of(item: object) -> tuple[str, str]:
    if not (isinstance(item, tuple | list) and len(item) == 2 and isinstance(item[0], str)):
        raise TypeError(f"expected an (account, id) pair, got {type(item).__name__}")
    account, ad_group_id = item
    # Not checked here: the call refuses, per id, whatever is not a Whop id.
    return account, ad_group_id.id if isinstance(ad_group_id, AdGroup) else ad_group_id
