"""Ad-group operations: retrieve, unpause, pause, list, and their bulk forms.

They build requests and read answers into models; the client sends them. Every
operation takes the per-call options of ``CallOptions`` (bulk ones those of
``BulkOptions``) as keyword arguments.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable
from typing import Unpack

import attrs

from .._bulk import BulkRun, CallOne, Ids, iter_outcomes, run_all
from .._call import Calls
from .._exceptions import APIResponseValidationError
from .._models import AdGroup, AdGroupPage, AdGroupStatus, BulkResult, Outcome
from .._options import (
    BULK_CONCURRENCY,
    BULK_MAX_OUTAGE,
    BULK_MAX_RETRIES,
    BulkOptions,
    CallOptions,
    RequestOptions,
    checked,
    concurrency_of,
    positive_seconds,
    seconds_or_zero,
)
from .._response import answered_raw
from .._sansio import (
    Request,
    check_idempotency_key,
    extra_headers,
    extra_query,
    new_idempotency_key,
    path_param,
)

MAX_PAGE_SIZE = 100


class AdGroups:
    """The ad-group operations of a WhopClient, reached as ``client.ad_groups``.

    Each operation draws on its own rate budget, as Whop counts them apart.
    """

    def __init__(self, calls: Calls) -> None:
        self._calls = calls

    @functools.cached_property
    def with_raw_response(self) -> AdGroupsWithRawResponse:
        """The same operations, answering with a RawResponse (status, headers, request
        id, timing) whose ``parse()`` gives the usual model."""
        # Made when first used: a client per account should not carry four wrappers.
        return AdGroupsWithRawResponse(self)

    async def retrieve(self, ad_group_id: str, **options: Unpack[CallOptions]) -> AdGroup:
        """Read one ad group: ``GET /ad_groups/{ad_group_id}``.

        A GET changes nothing, so its retries need no Idempotency-Key.

        Args:
            ad_group_id: e.g. ``"adgrp_xxxxxxxxxxxx"``.
            options: ``timeout``, ``max_retries``, ``extra_headers``, ``extra_query``
                (see CallOptions).

        Raises:
            InvalidIdError: ``ad_group_id`` is not a Whop id; nothing was sent.
            APIStatusError: a subclass per status (NotFoundError for an unknown id),
                after retries where they apply.
            APIConnectionError: the network failed on every attempt.
            APIResponseValidationError: the answer is not an ad group.
        """
        checked(options, CallOptions)
        path = f"/ad_groups/{path_param('ad_group_id', ad_group_id)}"
        extras = _Extras.of(options)
        request = Request(
            "GET", path, "ad_groups.retrieve", query=extras.query, headers=extras.headers
        )
        return await self._calls.send(request, AdGroup, RequestOptions.of(options))

    async def unpause(
        self,
        ad_group_id: str,
        *,
        idempotency_key: str | None = None,
        **options: Unpack[CallOptions],
    ) -> AdGroup:
        """Unpause one ad group: ``POST /ad_groups/{ad_group_id}/unpause``.

        Every attempt of the call carries the same Idempotency-Key, so a retry after a
        lost answer cannot act twice.

        Args:
            ad_group_id: e.g. ``"adgrp_xxxxxxxxxxxx"``.
            idempotency_key: defaults to a fresh random key for this call.
            options: ``timeout`` (seconds per attempt), ``max_retries``,
                ``extra_headers``, ``extra_query`` (see CallOptions); the client's
                defaults otherwise.

        Returns:
            The ad group as the API answered it.

        Raises:
            InvalidIdError: ``ad_group_id`` is not a Whop id (also a ValueError);
                nothing was sent.
            ValueError: ``idempotency_key`` or an extra header or query parameter is
                malformed, or one the client sets itself; nothing was sent.
            APIStatusError: a subclass per status, after retries where they apply.
            APIConnectionError: the network failed on every attempt
                (APITimeoutError when the last attempt timed out).
            APIResponseValidationError: the answer is not an ad group (the server
                accepted the request).
            RuntimeError: the client is closed.
        """
        checked(options, CallOptions)
        return await set_status(
            self._calls,
            "unpause",
            ad_group_id,
            idempotency_key,
            _Extras.of(options),
            RequestOptions.of(options),
        )

    async def pause(
        self,
        ad_group_id: str,
        *,
        idempotency_key: str | None = None,
        **options: Unpack[CallOptions],
    ) -> AdGroup:
        """Pause one ad group: ``POST /ad_groups/{ad_group_id}/pause``.

        The mirror of ``unpause``: the same arguments, retries and errors.
        """
        checked(options, CallOptions)
        return await set_status(
            self._calls,
            "pause",
            ad_group_id,
            idempotency_key,
            _Extras.of(options),
            RequestOptions.of(options),
        )

    async def unpause_many(self, ids: Ids, **options: Unpack[BulkOptions]) -> BulkResult:
        """Unpause every id, ``concurrency`` at a time, through the client's rate limit.

        One failing id never stops the others: it ends up in ``failed`` with its typed
        error (an id that is not a Whop id gets an InvalidIdError). Duplicate ids are
        unpaused once. Anything that is not a WhopError (a bug in ``on_outcome``, an
        error raised by ``ids``, cancellation) stops the run and propagates; in-flight
        calls are cancelled.

        A run stops at once for an error every further id would meet too: a 401 (the
        key is wrong), or no answer at all from the base URL, not even to the outage
        probe. Requests in flight finish; every other id ends failed with
        NotFinishedError (reason ``"fatal"``, ``cause`` the error), so every id is
        still accounted for. Other errors (403, 404, ...) belong to their id alone.

        Args:
            ids: any iterable or async iterable of ids or AdGroups, read lazily; a
                ``client.ad_groups.list(...)`` streams straight in.
            options: ``concurrency`` (16), ``max_retries`` (8 per id), ``on_outcome``,
                ``idempotency_key``, ``deadline``, ``max_outage`` (600 s),
                ``timeout``, ``extra_headers``, ``extra_query`` (see BulkOptions).

        Returns:
            ``succeeded`` in input order, ``failed`` by id, ``unreadable`` by id.

        Raises:
            TypeError: ``ids`` is a single string (it would be read letter by letter).
            ValueError: an option is out of range.
        """
        checked(options, BulkOptions)
        return await self._many("unpause", ids, options)

    def iter_unpause(self, ids: Ids, **options: Unpack[BulkOptions]) -> AsyncIterator[Outcome]:
        """Unpause every id like ``unpause_many``, yielding each Outcome as it completes.

        Memory stays bounded by ``concurrency`` however many ids stream through: ids are
        read only as calls finish, and nothing is kept per id once it is yielded
        (beyond the latest 100,000 ids, remembered to skip duplicates).
        """
        checked(options, BulkOptions)
        return self._iter("unpause", ids, options)

    async def pause_many(self, ids: Ids, **options: Unpack[BulkOptions]) -> BulkResult:
        """Pause every id: the mirror of ``unpause_many``, under the pause budget."""
        checked(options, BulkOptions)
        return await self._many("pause", ids, options)

    def iter_pause(self, ids: Ids, **options: Unpack[BulkOptions]) -> AsyncIterator[Outcome]:
        """Pause every id, yielding each Outcome as it completes: the mirror of
        ``iter_unpause``."""
        checked(options, BulkOptions)
        return self._iter("pause", ids, options)

    def list(
        self,
        *,
        ad_campaign_id: str | None = None,
        status: AdGroupStatus | str | None = None,
        page_size: int | None = None,
        **options: Unpack[CallOptions],
    ) -> AdGroupList:
        """Every ad group that matches, newest first: ``GET /ad_groups``, page by page.

        Nothing is sent until it is iterated; each next page is fetched only when the
        previous one is used up. Iterate it (``async for group in ...``), use
        ``.pages()``, or pass it to ``unpause_many``/``pause_many``, which stream it.

        Args:
            ad_campaign_id: only the groups of this campaign.
            status: only groups in this status (e.g. ``AdGroupStatus.PAUSED``).
            page_size: groups per request, 1 to 100; the API's default otherwise.
            options: ``timeout``, ``max_retries``, ``extra_headers``, ``extra_query``
                (see CallOptions), for every page's request.

        Raises:
            InvalidIdError: ``ad_campaign_id`` is not a Whop id.
            ValueError: ``page_size`` is out of range, or an extra header or query
                parameter is malformed.
        """
        checked(options, CallOptions)
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
        extras = _Extras.of(options, reserved=(*(name for name, _ in query), "after"))
        return AdGroupList(
            self._calls,
            Request(
                "GET",
                "/ad_groups",
                "ad_groups.list",
                query=(*query, *extras.query),
                headers=extras.headers,
            ),
            RequestOptions.of(options),
        )

    async def _many(self, verb: str, ids: Ids, options: BulkOptions) -> BulkResult:
        with self._bulk_run(verb, options) as run:
            return await run_all(
                bulk_call(self._calls, verb, options, run),
                ids,
                concurrency=_concurrency(options),
                on_outcome=options.get("on_outcome"),
                run=run,
            )

    async def _iter(self, verb: str, ids: Ids, options: BulkOptions) -> AsyncIterator[Outcome]:
        with self._bulk_run(verb, options) as run:
            outcomes = iter_outcomes(
                bulk_call(self._calls, verb, options, run),
                ids,
                concurrency=_concurrency(options),
                on_outcome=options.get("on_outcome"),
                run=run,
            )
            async with contextlib.aclosing(outcomes):
                async for outcome in outcomes:
                    yield outcome

    def _bulk_run(
        self, verb: str, options: BulkOptions
    ) -> contextlib.AbstractContextManager[BulkRun]:
        deadline = options.get("deadline")
        return self._calls.bulk_run(
            operation=f"ad_groups.{verb}",
            deadline=None if deadline is None else positive_seconds(deadline, "deadline"),
            max_outage=seconds_or_zero(options.get("max_outage", BULK_MAX_OUTAGE), "max_outage"),
        )

    async def _first_page(
        self,
        *,
        ad_campaign_id: str | None = None,
        status: AdGroupStatus | str | None = None,
        page_size: int | None = None,
        **options: Unpack[CallOptions],
    ) -> AdGroupPage:
        listing = self.list(
            ad_campaign_id=ad_campaign_id, status=status, page_size=page_size, **options
        )
        return await listing._page(after=None)


def set_status(
    calls: Calls,
    verb: str,
    ad_group_id: str,
    idempotency_key: str | None,
    extras: _Extras,
    how: RequestOptions,
) -> Awaitable[AdGroup]:
    """The ``verb`` (unpause, pause) of one ad group through ``calls``, to await."""
    # Not a coroutine: the call to await is the client's, one frame fewer per wait.
    path = f"/ad_groups/{path_param('ad_group_id', ad_group_id)}/{verb}"
    if idempotency_key is None:
        key = new_idempotency_key()
    else:
        key = check_idempotency_key(idempotency_key)  # only a caller's key can be bad
    request = Request(
        "POST",
        path,
        f"ad_groups.{verb}",
        idempotency_key=key,
        query=extras.query,
        headers=extras.headers,
    )
    return calls.send(request, AdGroup, how)


def bulk_call(calls: Calls, verb: str, options: BulkOptions, run: BulkRun) -> CallOne:
    """One id's ``verb`` in the bulk run ``run``, with a bulk run's ``options`` checked
    once, before anything is sent."""
    extras = _Extras.of(options)
    how = RequestOptions(
        timeout=options.get("timeout"),
        max_retries=options.get("max_retries", BULK_MAX_RETRIES),
        run=run,
    )
    key_for = options.get("idempotency_key")
    if key_for is None:
        return functools.partial(
            set_status, calls, verb, idempotency_key=None, extras=extras, how=how
        )

    def call(ad_group_id: str) -> Awaitable[AdGroup]:
        return set_status(calls, verb, ad_group_id, key_for(ad_group_id), extras, how)

    return call


def _concurrency(options: BulkOptions) -> int:
    return concurrency_of(options.get("concurrency", BULK_CONCURRENCY))


@attrs.frozen
class _Extras:
    """The headers and query parameters a caller adds to an operation's, checked."""

    headers: tuple[tuple[str, str], ...]
    query: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, options: CallOptions, *, reserved: tuple[str, ...] = ()) -> _Extras:
        return cls(
            extra_headers(options.get("extra_headers"), where="extra_headers"),
            extra_query(options.get("extra_query"), reserved=reserved),
        )


class AdGroupsWithRawResponse:
    """``client.ad_groups.with_raw_response``: each single-request operation, answering
    with a RawResponse. ``list`` answers with its first page's (``parse()`` gives an
    AdGroupPage; its ``page_info.end_cursor`` leads on). Bulk operations make many
    requests, so they have no raw form: their Outcomes carry each id's result."""

    def __init__(self, ad_groups: AdGroups) -> None:
        self.retrieve = answered_raw(ad_groups.retrieve)
        self.unpause = answered_raw(ad_groups.unpause)
        self.pause = answered_raw(ad_groups.pause)
        self.list = answered_raw(ad_groups._first_page)


class AdGroupList:
    """The ad groups of a ``client.ad_groups.list(...)`` query, fetched page by page.

    ``async for group in it`` yields every group; ``it.pages()`` yields each page. Every
    iteration starts again from the first page.
    """

    def __init__(self, calls: Calls, request: Request, how: RequestOptions) -> None:
        self._calls = calls
        self._request = request
        self._how = how

    def __aiter__(self) -> AsyncIterator[AdGroup]:
        return self._groups()

    async def _groups(self) -> AsyncIterator[AdGroup]:
        async for page in self.pages():
            for group in page.data:
                yield group

    async def pages(self) -> AsyncIterator[AdGroupPage]:
        """Each page in turn, following ``page_info.end_cursor`` while
        ``has_next_page``; the next request goes out only when it is asked for.

        Raises:
            APIResponseValidationError: the server handed back a cursor it had handed
                before (listing on would go round in circles, forever).
        """
        after: str | None = None
        followed: set[str] = set()
        while True:
            page = await self._page(after=after)
            yield page
            after = page.page_info.end_cursor
            if not page.page_info.has_next_page or after is None:
                return
            if after in followed:
                raise self._going_round(after, len(followed) + 1)
            followed.add(after)

    def _going_round(self, cursor: str, pages: int) -> APIResponseValidationError:
        request = self._request
        return APIResponseValidationError(
            f"{request.method} {request.path}: page {pages} leads back to a page already"
            f" listed (end_cursor {cursor[:40]!r}); stopped rather than list forever",
            method=request.method,
            url=self._calls.wiring.base_url + request.target,
            status_code=200,
            headers={},
            body=None,
            request_id=None,
        )

    async def _page(self, *, after: str | None) -> AdGroupPage:
        request = self._request
        if after is not None:
            request = request._replace(query=(*request.query, ("after", after)))
        return await self._calls.send(request, AdGroupPage, self._how)
