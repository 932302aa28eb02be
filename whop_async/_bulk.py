"""Many ids through one operation: lazily, concurrently, every id accounted for."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
)

import attrs

from ._exceptions import InvalidIdError, WhopError
from ._models import AdGroup, BulkResult, Outcome
from ._sansio import path_param

Ids = Iterable[str] | AsyncIterable[str]
OnOutcome = Callable[[Outcome], object]
CallOne = Callable[[str], Awaitable[AdGroup]]

# Duplicates are recognised among this many of the latest distinct ids: exact for any
# file a person makes, and a fixed cost however many ids stream through.
_RECENT_IDS = 100_000


@attrs.frozen
class _Numbered:
    index: int
    outcome: Outcome


@attrs.frozen
class _Crash:
    error: BaseException


class _RecentIds:
    """Remembers the latest ids in two generations, so memory stays bounded."""

    def __init__(self, size: int) -> None:
        self._half = max(1, size // 2)
        self._current: set[str] = set()
        self._previous: set[str] = set()

    def first_time(self, ad_group_id: str) -> bool:
        if ad_group_id in self._current or ad_group_id in self._previous:
            return False
        if len(self._current) >= self._half:
            self._previous, self._current = self._current, set()
        self._current.add(ad_group_id)
        return True


async def _as_async(ids: Ids) -> AsyncGenerator[str, None]:
    if isinstance(ids, AsyncIterable):
        async for ad_group_id in ids:
            yield ad_group_id
    else:
        for ad_group_id in ids:
            yield ad_group_id


async def numbered_outcomes(
    call: CallOne, ids: Ids, *, concurrency: int, on_outcome: OnOutcome | None
) -> AsyncIterator[_Numbered]:
    """Run ``call`` over unique ids with ``concurrency`` workers; yield in completion order.

    Ids are read only as workers free up, so memory follows the concurrency, not the
    number of ids. Anything that is not a WhopError (a bug, cancellation) stops the run
    and propagates; the run's in-flight calls are cancelled when it ends early.
    """
    if not (isinstance(concurrency, int) and concurrency > 0):
        raise ValueError(f"concurrency must be a positive whole number, got {concurrency!r}")
    source = _as_async(ids)
    recent = _RecentIds(_RECENT_IDS)
    reading = asyncio.Lock()
    finished: asyncio.Queue[_Numbered | _Crash | None] = asyncio.Queue(maxsize=concurrency)
    next_index = 0

    async def next_id() -> tuple[int, str] | None:
        nonlocal next_index
        async with reading:
            async for ad_group_id in source:
                if recent.first_time(ad_group_id):
                    next_index += 1
                    return next_index - 1, ad_group_id
            return None

    async def work() -> None:
        try:
            while (job := await next_id()) is not None:
                index, ad_group_id = job
                await finished.put(_Numbered(index, await _outcome(call, ad_group_id)))
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # handed to the consumer, who re-raises it
            await finished.put(_Crash(error))
            return
        await finished.put(None)

    workers = [asyncio.create_task(work()) for _ in range(concurrency)]
    try:
        running = len(workers)
        while running:
            item = await finished.get()
            if item is None:
                running -= 1
            elif isinstance(item, _Crash):
                raise item.error
            else:
                await _notify(on_outcome, item.outcome)
                yield item
    finally:
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        await source.aclose()


async def _outcome(call: CallOne, ad_group_id: object) -> Outcome:
    try:
        path_param("ad_group_id", ad_group_id)
    except ValueError as problem:
        return Outcome(id=str(ad_group_id), error=InvalidIdError(str(problem)))
    assert isinstance(ad_group_id, str)
    try:
        return Outcome(id=ad_group_id, ad_group=await call(ad_group_id))
    except WhopError as error:
        return Outcome(id=ad_group_id, error=error)


async def _notify(on_outcome: OnOutcome | None, outcome: Outcome) -> None:
    if on_outcome is not None:
        result = on_outcome(outcome)
        if inspect.isawaitable(result):
            await result


async def iter_outcomes(
    call: CallOne, ids: Ids, *, concurrency: int, on_outcome: OnOutcome | None
) -> AsyncIterator[Outcome]:
    """The outcomes of ``call`` over ``ids``, in completion order."""
    async for item in numbered_outcomes(call, ids, concurrency=concurrency, on_outcome=on_outcome):
        yield item.outcome


async def run_all(
    call: CallOne, ids: Ids, *, concurrency: int, on_outcome: OnOutcome | None
) -> BulkResult:
    """Every outcome, gathered: successes in input order, failures by id."""
    succeeded: list[tuple[int, AdGroup]] = []
    failed: dict[str, WhopError] = {}
    async for item in numbered_outcomes(call, ids, concurrency=concurrency, on_outcome=on_outcome):
        outcome = item.outcome
        if outcome.error is not None:
            failed[outcome.id] = outcome.error
        elif outcome.ad_group is not None:
            succeeded.append((item.index, outcome.ad_group))
    succeeded.sort(key=lambda numbered: numbered[0])
    return BulkResult(succeeded=[group for _, group in succeeded], failed=failed)
