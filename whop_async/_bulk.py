"""Many ids through one operation: lazily, concurrently, every id accounted for."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import logging
import math
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, cast

from ._clock import Clock
from ._exceptions import (
    APIResponseValidationError,
    NotFinishedError,
    StopReason,
    WhopError,
    public_name,
)
from ._models import AdGroup, BulkResult, Outcome

if TYPE_CHECKING:
    from ._otel import BulkTrace

Ids = Iterable[str | AdGroup] | AsyncIterable[str | AdGroup]
OnOutcome = Callable[[Outcome], object]
CallOne = Callable[[str], Awaitable[AdGroup]]
# Takes an id's input position, the id, and its ad group or its error. Returns what
# must be awaited before the worker goes on (an async callback's coroutine, a full
# queue), or None: most deliveries need no await at all. No Outcome is made for an id
# unless someone asked for one.
Deliver = Callable[[int, str, AdGroup | None, WhopError | None], Awaitable[object] | None]

logger = logging.getLogger("whop_async")

# Duplicates are recognised among this many of the latest distinct ids: exact for any
# file a person makes, and a fixed cost however many ids stream through.
_RECENT_IDS = 100_000


class BulkRun:
    """One bulk call's bounds, and its stop: every call of the run consults them while
    it waits, and the run's workers before they take another id.

    Attributes:
        deadline: monotonic time after which what is left ends unfinished.
        max_outage: the longest the run waits for a server that answers nothing.
        stopping: set when the run stops; ``reason`` and ``cause`` say why.
        trace: the run's span and metrics (None when it is not traced).
    """

    def __init__(self, clock: Clock, *, deadline: float | None, max_outage: float) -> None:
        self._clock = clock
        self._seconds = deadline
        self.deadline = math.inf if deadline is None else clock.monotonic() + deadline
        self.max_outage = max_outage
        self.stopping = asyncio.Event()
        self.reason: StopReason | None = None
        self.cause: BaseException | None = None
        self.trace: BulkTrace | None = None

    def stop(self, reason: StopReason, cause: BaseException | None) -> None:
        """Stop the run (the first reason given stands)."""
        if self.reason is None:
            self.reason, self.cause = reason, cause
            self.stopping.set()
            logger.info("bulk run stopped (%s): %s", reason, cause or "its deadline passed")

    def past_deadline(self) -> bool:
        """True, and the run stopped, once its deadline has passed."""
        if self.deadline < math.inf and self._clock.monotonic() >= self.deadline:
            self.stop(StopReason.DEADLINE, None)
        return self.stopping.is_set()

    def not_finished(self, what: str, *, attempted: bool) -> NotFinishedError:
        """The error of an id the run stopped before finishing."""
        state = "not finished" if attempted else "never sent"
        if self.reason is StopReason.DEADLINE:
            why = f"the run's deadline ({self._seconds:g} s) passed"
        elif self.reason is StopReason.RATE_LIMIT:
            why = (
                "the server refused every request for a call's whole rate_limit_timeout;"
                f" last: {self.cause}"
            )
        elif self.reason is StopReason.OUTAGE:
            why = (
                f"the server answered nothing for {self.max_outage:g} s (max_outage);"
                f" last: {public_name(self.cause)}: {self.cause}"
            )
        else:
            why = (
                "the run stopped at an error every id would meet:"
                f" {public_name(self.cause)}: {self.cause}"
            )
        return NotFinishedError(
            f"{what}: {state}: {why}",
            reason=self.reason or StopReason.FATAL,
            cause=self.cause,
            attempted=attempted,
        )


class RecentIds:
    """Remembers the latest ``size`` distinct ids, an id seen again counting as latest,
    so memory stays bounded however many ids stream through."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._seen: collections.OrderedDict[object, None] = collections.OrderedDict()

    def first_time(self, ad_group_id: object) -> bool:
        seen = self._seen
        if ad_group_id in seen:
            seen.move_to_end(ad_group_id)
            return False
        seen[ad_group_id] = None
        if len(seen) > self._size:
            seen.popitem(last=False)
        return True


class _IdSource:
    """Hands out unique ids with their input position, reading the input lazily."""

    def __init__(self, ids: Ids) -> None:
        if isinstance(ids, (str, bytes)):
            # Iterating it would unpause one "id" per character.
            raise TypeError("ids must be an iterable of ids, not one string: wrap it in a list")
        self._sync = iter(ids) if not isinstance(ids, AsyncIterable) else None
        self._async = aiter(ids) if isinstance(ids, AsyncIterable) else None
        self.is_plain = self._sync is not None
        self._reading = asyncio.Lock()
        self._recent = RecentIds(_RECENT_IDS)
        self._count = 0

    def next_now(self) -> tuple[int, str] | None:
        """The next unique id of a plain iterable: no task can read it concurrently."""
        assert self._sync is not None
        for item in self._sync:
            ad_group_id = _id_of(item)
            if self._recent.first_time(ad_group_id):
                return self._numbered(ad_group_id)
        return None

    async def next_async(self) -> tuple[int, str] | None:
        """The next unique id of an async iterable, which only one task may read at a time."""
        assert self._async is not None
        async with self._reading:
            async for item in self._async:
                ad_group_id = _id_of(item)
                if self._recent.first_time(ad_group_id):
                    return self._numbered(ad_group_id)
        return None

    def _numbered(self, ad_group_id: object) -> tuple[int, str]:
        self._count += 1
        # Not checked here: the call refuses, per id, whatever is not a Whop id.
        return self._count - 1, cast(str, ad_group_id)


def _id_of(item: object) -> object:
    """An AdGroup (from a listing) stands for its id."""
    return item.id if isinstance(item, AdGroup) else item


def callback(on_outcome: OnOutcome | None, outcome: Outcome) -> Awaitable[object] | None:
    """Call ``on_outcome``, if any; what it returns, if that must be awaited."""
    if on_outcome is None:
        return None
    result = on_outcome(outcome)
    return result if inspect.isawaitable(result) else None


async def _run(
    call: CallOne, ids: Ids, *, concurrency: int, deliver: Deliver, run: BulkRun
) -> None:
    """Run ``call`` over the unique ids with up to ``concurrency`` workers (one more
    each time a worker takes an id, so a run of two ids makes three, whatever the
    concurrency), until the ids run out or ``run`` stops; then every id not yet taken
    ends unfinished.

    Anything that is not a WhopError (a bug, an error raised by ``ids`` or ``deliver``,
    cancellation) stops every worker and propagates.
    """
    source = _IdSource(ids)
    trace = run.trace
    if trace is not None:  # the run's span and metrics hear of every outcome
        deliver = trace.counting(deliver)

    workers: list[asyncio.Task[None]] = []

    def spawn() -> None:
        # Traced, each worker starts in the run's span: the run's calls are its children.
        context = None if trace is None else trace.worker_context()
        workers.append(asyncio.create_task(work(), context=context))

    async def work() -> None:
        while not run.past_deadline():
            # A plain iterable is read without an await: most ids come from lists.
            job = source.next_now() if source.is_plain else await source.next_async()
            if job is None:
                return
            if len(workers) < concurrency:
                spawn()  # there may be more ids: one more worker for them
            index, ad_group_id = job
            try:
                group = await call(ad_group_id)
            except WhopError as error:
                pending = deliver(index, str(ad_group_id), None, error)
            else:
                pending = deliver(index, ad_group_id, group, None)
            if pending is not None:
                await pending

    spawn()
    try:
        while True:
            # Every worker, those made while the others were waited for included.
            for worker in workers:
                if worker.done() and not worker.cancelled() and worker.exception():
                    raise cast(BaseException, worker.exception())
            running = [worker for worker in workers if not worker.done()]
            if not running:
                break
            await asyncio.wait(running, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    if run.stopping.is_set():
        await _account_for_the_rest(source, deliver, run)


async def _account_for_the_rest(source: _IdSource, deliver: Deliver, run: BulkRun) -> None:
    """Every id the stopped run never took ends unfinished, so every id is accounted for."""
    while (job := source.next_now() if source.is_plain else await source.next_async()) is not None:
        index, ad_group_id = job
        error = run.not_finished(str(ad_group_id), attempted=False)
        pending = deliver(index, str(ad_group_id), None, error)
        if pending is not None:
            await pending


async def run_all(
    call: CallOne, ids: Ids, *, concurrency: int, on_outcome: OnOutcome | None, run: BulkRun
) -> BulkResult:
    """Every outcome, gathered: successes in input order, failures by id."""
    succeeded: list[tuple[int, AdGroup]] = []
    failed: dict[str, WhopError] = {}
    unreadable: dict[str, APIResponseValidationError] = {}

    def record(
        index: int, ad_group_id: str, group: AdGroup | None, error: WhopError | None
    ) -> Awaitable[object] | None:
        if group is not None:
            succeeded.append((index, group))
        elif isinstance(error, APIResponseValidationError):
            unreadable[ad_group_id] = error
        elif error is not None:
            failed[ad_group_id] = error
        if on_outcome is None:
            return None
        return callback(on_outcome, Outcome(id=ad_group_id, ad_group=group, error=error))

    await _run(call, ids, concurrency=concurrency, deliver=record, run=run)
    succeeded.sort(key=lambda numbered: numbered[0])
    return BulkResult(
        succeeded=[group for _, group in succeeded], failed=failed, unreadable=unreadable
    )


async def iter_outcomes(
    call: CallOne, ids: Ids, *, concurrency: int, on_outcome: OnOutcome | None, run: BulkRun
) -> AsyncGenerator[Outcome, None]:
    """The outcomes of ``call`` over ``ids``, in completion order (see ``streamed``)."""

    async def fill(put: Callable[[Outcome], Awaitable[None]]) -> None:
        async def hand_over(
            _: int, ad_group_id: str, group: AdGroup | None, error: WhopError | None
        ) -> None:
            outcome = Outcome(id=ad_group_id, ad_group=group, error=error)
            pending = callback(on_outcome, outcome)
            if pending is not None:
                await pending
            await put(outcome)

        await _run(call, ids, concurrency=concurrency, deliver=hand_over, run=run)

    async with contextlib.aclosing(streamed(fill, concurrency)) as outcomes:
        async for outcome in outcomes:
            yield outcome


async def streamed(
    fill: Callable[[Callable[[Outcome], Awaitable[None]]], Awaitable[None]], size: int
) -> AsyncGenerator[Outcome, None]:
    """What ``fill`` hands, as it comes, to the function it is given: ``fill`` runs in a
    task of its own, and at most ``size`` outcomes wait to be read, so a slow reader slows
    it instead of piling outcomes up in memory. What ends ``fill`` with an error is
    raised once every outcome before it was read."""
    finished: asyncio.Queue[Outcome | None] = asyncio.Queue(maxsize=size)

    async def produce() -> None:
        try:
            await fill(finished.put)
        finally:
            task = asyncio.current_task()
            if task is None or not task.cancelling():
                await finished.put(None)

    producer = asyncio.create_task(produce())
    try:
        while (outcome := await finished.get()) is not None:
            yield outcome
        await producer  # raises what stopped the run, if anything did
    finally:
        producer.cancel()
        await asyncio.gather(producer, return_exceptions=True)
