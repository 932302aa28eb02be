"""Ad-group operations: retrieve, unpause, pause, list, and their bulk forms."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

import attrs

from .._bulk import BulkRun, CallOne, Ids, OnOutcome, iter_outcomes, run_all
from .._models import AdGroup, AdGroupPage, AdGroupStatus, BulkResult, Outcome
from .._options import RequestOptions
from .._sansio import Request, check_idempotency_key, new_idempotency_key, path_param

if TYPE_CHECKING:
    from .._client import WhopClient

# In bulk, losing an id costs more than a few more attempts; an outage pauses the run
# (one probe at a time) instead of spending them.
BULK_MAX_RETRIES = 8
# A run waits through an outage of minutes before it gives up on what is left.
BULK_MAX_OUTAGE = 600.0
MAX_PAGE_SIZE = 100

KeyFor = Callable[[str], str]


class AdGroups:
    """The ad-group operations of a WhopClient, reached as ``client.ad_groups``.

    Each operation draws on its own rate budget, as Whop counts them apart.
    """

    def __init__(self, client: WhopClient) -> None:
        self._client = client

    async def retrieve(
        self, ad_group_id: str, *, timeout: float | None = None, max_retries: int | None = None
    ) -> AdGroup:
        """Read one ad group: ``GET /ad_groups/{ad_group_id}``.

        A GET changes nothing, so its retries need no Idempotency-Key.

        Raises:
            InvalidIdError: ``ad_group_id`` is not a Whop id; nothing was sent.
            APIStatusError: a subclass per status (NotFoundError for an unknown id),
                after retries where they apply.
            APIConnectionError: the network failed on every attempt.
            APIResponseValidationError: the answer is not an ad group.
        """
        path = f"/ad_groups/{path_param('ad_group_id', ad_group_id)}"
        return await self._client._send(
            Request("GET", path, "ad_groups.retrieve"),
            AdGroup,
            RequestOptions(timeout=timeout, max_retries=max_retries),
        )

    async def unpause(
        self,
        ad_group_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> AdGroup:
        """Unpause one ad group: ``POST /ad_groups/{ad_group_id}/unpause``.

        Every attempt of the call carries the same Idempotency-Key, so a retry after a
        lost answer cannot act twice.

        Args:
            ad_group_id: e.g. ``"adgrp_xxxxxxxxxxxx"``.
            timeout: seconds for each attempt; defaults to the client's.
            max_retries: retried failures allowed; defaults to the client's.
            idempotency_key: defaults to a fresh random key for this call.

        Returns:
            The ad group as the API answered it.

        Raises:
            InvalidIdError: ``ad_group_id`` is not a Whop id (also a ValueError);
                nothing was sent.
            ValueError: ``idempotency_key`` is malformed; nothing was sent.
            APIStatusError: a subclass per status, after retries where they apply.
            APIConnectionError: the network failed on every attempt
                (APITimeoutError when the last attempt timed out).
            APIResponseValidationError: the answer is not an ad group.
            RuntimeError: the client is closed.
        """
        options = RequestOptions(
            timeout=timeout, max_retries=max_retries, idempotency_key=idempotency_key
        )
        return await self._set_status("unpause", ad_group_id, options)

    async def pause(
        self,
        ad_group_id: str,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        idempotency_key: str | None = None,
    ) -> AdGroup:
        """Pause one ad group: ``POST /ad_groups/{ad_group_id}/pause``.

        The mirror of ``unpause``: the same arguments, retries and errors.
        """
        options = RequestOptions(
            timeout=timeout, max_retries=max_retries, idempotency_key=idempotency_key
        )
        return await self._set_status("pause", ad_group_id, options)

    async def unpause_many(
        self,
        ids: Ids,
        *,
        concurrency: int = 16,
        max_retries: int = BULK_MAX_RETRIES,
        on_outcome: OnOutcome | None = None,
        idempotency_key: KeyFor | None = None,
        deadline: float | None = None,
        max_outage: float = BULK_MAX_OUTAGE,
    ) -> BulkResult:
        """Unpause every id, ``concurrency`` at a time, through the client's rate limit.

        One failing id never stops the others: it ends up in ``failed`` with its typed
        error (an id that is not a Whop id gets an InvalidIdError). Duplicate ids are
        unpaused once. Anything that is not a WhopError (a bug in ``on_outcome``, an
        error raised by ``ids``, cancellation) stops the run and propagates; in-flight
        calls are cancelled.

        Args:
            ids: any iterable or async iterable of ids or AdGroups, read lazily; a
                ``client.ad_groups.list(...)`` streams straight in.
            concurrency: how many calls run at once (16).
            max_retries: retried failures per id (8); 429s are not counted.
            on_outcome: called (or awaited, if it returns an awaitable) with each
                Outcome as it arrives; for progress bars and journals.
            idempotency_key: id -> the Idempotency-Key of its call. A job that may be
                stopped and started again derives keys from its own identity and the
                id, so a call that reached Whop before the stop is replayed, not
                repeated. Defaults to a fresh key per call.
            deadline: seconds the whole run may take; what is left then ends failed
                with NotFinishedError (reason ``"deadline"``). None (the default): no
                bound but the ones below.
            max_outage: the longest, in seconds, the run waits for a server that
                answers nothing (an outage pauses the run rather than failing its ids);
                past it, what is left ends failed with NotFinishedError (reason
                ``"outage"``). 600 by default.

        A run stops at once for an error every further id would meet too: a 401 (the
        key is wrong), or no answer at all from the base URL, not even to the outage
        probe. Requests in flight finish; every other id ends failed with
        NotFinishedError (reason ``"fatal"``, ``cause`` the error), so every id is
        still accounted for. Other errors (403, 404, ...) belong to their id alone.

        Returns:
            ``succeeded`` in input order, ``failed`` by id, ``unreadable`` by id.

        Raises:
            TypeError: ``ids`` is a single string (it would be read letter by letter).
            ValueError: ``concurrency`` is not a positive whole number.
        """
        return await self._many(
            "unpause",
            ids,
            _Bulk(
                concurrency=concurrency,
                max_retries=max_retries,
                on_outcome=on_outcome,
                idempotency_key=idempotency_key,
                deadline=deadline,
                max_outage=max_outage,
            ),
        )

    def iter_unpause(
        self,
        ids: Ids,
        *,
        concurrency: int = 16,
        max_retries: int = BULK_MAX_RETRIES,
        on_outcome: OnOutcome | None = None,
        idempotency_key: KeyFor | None = None,
        deadline: float | None = None,
        max_outage: float = BULK_MAX_OUTAGE,
    ) -> AsyncIterator[Outcome]:
        """Unpause every id like ``unpause_many``, yielding each Outcome as it completes.

        Memory stays bounded by ``concurrency`` however many ids stream through: ids are
        read only as calls finish, and nothing is kept per id once it is yielded
        (beyond the latest 100,000 ids, remembered to skip duplicates).
        """
        return self._iter(
            "unpause",
            ids,
            _Bulk(
                concurrency=concurrency,
                max_retries=max_retries,
                on_outcome=on_outcome,
                idempotency_key=idempotency_key,
                deadline=deadline,
                max_outage=max_outage,
            ),
        )

    async def pause_many(
        self,
        ids: Ids,
        *,
        concurrency: int = 16,
        max_retries: int = BULK_MAX_RETRIES,
        on_outcome: OnOutcome | None = None,
        idempotency_key: KeyFor | None = None,
        deadline: float | None = None,
        max_outage: float = BULK_MAX_OUTAGE,
    ) -> BulkResult:
        """Pause every id: the mirror of ``unpause_many``, under the pause budget."""
        return await self._many(
            "pause",
            ids,
            _Bulk(
                concurrency=concurrency,
                max_retries=max_retries,
                on_outcome=on_outcome,
                idempotency_key=idempotency_key,
                deadline=deadline,
                max_outage=max_outage,
            ),
        )

    def iter_pause(
        self,
        ids: Ids,
        *,
        concurrency: int = 16,
        max_retries: int = BULK_MAX_RETRIES,
        on_outcome: OnOutcome | None = None,
        idempotency_key: KeyFor | None = None,
        deadline: float | None = None,
        max_outage: float = BULK_MAX_OUTAGE,
    ) -> AsyncIterator[Outcome]:
        """Pause every id, yielding each Outcome as it completes: the mirror of
        ``iter_unpause``."""
        return self._iter(
            "pause",
            ids,
            _Bulk(
                concurrency=concurrency,
                max_retries=max_retries,
                on_outcome=on_outcome,
                idempotency_key=idempotency_key,
                deadline=deadline,
                max_outage=max_outage,
            ),
        )

    def list(
        self,
        *,
        ad_campaign_id: str | None = None,
        status: AdGroupStatus | str | None = None,
        page_size: int | None = None,
    ) -> AdGroupList:
        """Every ad group that matches, newest first: ``GET /ad_groups``, page by page.

        Nothing is sent until it is iterated; each next page is fetched only when the
        previous one is used up. Iterate it (``async for group in ...``), use
        ``.pages()``, or pass it to ``unpause_many``/``pause_many``, which stream it.

        Args:
            ad_campaign_id: only the groups of this campaign.
            status: only groups in this status (e.g. ``AdGroupStatus.PAUSED``).
            page_size: groups per request, 1 to 100; the API's default otherwise.

        Raises:
            InvalidIdError: ``ad_campaign_id`` is not a Whop id.
            ValueError: ``page_size`` is out of range.
        """
        query: list[tuple[str, str]] = []
        if ad_campaign_id is not None:
            query.append(("ad_campaign_id", path_param("ad_campaign_id", ad_campaign_id)))
        if status is not None:
            query.append(
                ("status", str(status.value if isinstance(status, AdGroupStatus) else status))
            )
        if page_size is not None:
            if not (isinstance(page_size, int) and 1 <= page_size <= MAX_PAGE_SIZE):
                raise ValueError(f"page_size must be 1 to {MAX_PAGE_SIZE}, got {page_size!r}")
            query.append(("first", str(page_size)))
        return AdGroupList(self._client, tuple(query))

    async def _set_status(self, verb: str, ad_group_id: str, options: RequestOptions) -> AdGroup:
        path = f"/ad_groups/{path_param('ad_group_id', ad_group_id)}/{verb}"
        key = options.idempotency_key
        key = new_idempotency_key() if key is None else check_idempotency_key(key)
        request = Request("POST", path, f"ad_groups.{verb}", idempotency_key=key)
        return await self._client._send(request, AdGroup, options)

    async def _many(self, verb: str, ids: Ids, bulk: _Bulk) -> BulkResult:
        with self._client._bulk_run(deadline=bulk.deadline, max_outage=bulk.max_outage) as run:
            return await run_all(
                self._bulk_call(verb, bulk, run),
                ids,
                concurrency=bulk.concurrency,
                on_outcome=bulk.on_outcome,
                run=run,
            )

    async def _iter(self, verb: str, ids: Ids, bulk: _Bulk) -> AsyncIterator[Outcome]:
        with self._client._bulk_run(deadline=bulk.deadline, max_outage=bulk.max_outage) as run:
            outcomes = iter_outcomes(
                self._bulk_call(verb, bulk, run),
                ids,
                concurrency=bulk.concurrency,
                on_outcome=bulk.on_outcome,
                run=run,
            )
            async with contextlib.aclosing(outcomes):
                async for outcome in outcomes:
                    yield outcome

    def _bulk_call(self, verb: str, bulk: _Bulk, run: BulkRun) -> CallOne:
        options = RequestOptions(max_retries=bulk.max_retries, run=run)
        key_for = bulk.idempotency_key
        if key_for is None:
            return functools.partial(self._set_status, verb, options=options)

        def call(ad_group_id: str) -> Awaitable[AdGroup]:
            keyed = attrs.evolve(options, idempotency_key=key_for(ad_group_id))
            return self._set_status(verb, ad_group_id, keyed)

        return call


@attrs.frozen(kw_only=True)
class _Bulk:
    """The settings of one bulk call, as its public method took them."""

    concurrency: int
    max_retries: int
    on_outcome: OnOutcome | None
    idempotency_key: KeyFor | None
    deadline: float | None
    max_outage: float


class AdGroupList:
    """The ad groups of a ``client.ad_groups.list(...)`` query, fetched page by page.

    ``async for group in it`` yields every group; ``it.pages()`` yields each page. Every
    iteration starts again from the first page.
    """

    def __init__(self, client: WhopClient, query: tuple[tuple[str, str], ...]) -> None:
        self._client = client
        self._query = query

    def __aiter__(self) -> AsyncIterator[AdGroup]:
        return self._groups()

    async def _groups(self) -> AsyncIterator[AdGroup]:
        async for page in self.pages():
            for group in page.data:
                yield group

    async def pages(self) -> AsyncIterator[AdGroupPage]:
        """Each page in turn, following ``page_info.end_cursor`` while
        ``has_next_page``; the next request goes out only when it is asked for."""
        after: str | None = None
        while True:
            query = self._query if after is None else (*self._query, ("after", after))
            page = await self._client._send(
                Request("GET", "/ad_groups", "ad_groups.list", query=query), AdGroupPage
            )
            yield page
            after = page.page_info.end_cursor
            if not page.page_info.has_next_page or after is None:
                return
