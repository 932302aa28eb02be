"""Ad-group operations."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from .._bulk import Ids, OnOutcome, iter_outcomes, run_all
from .._models import AdGroup, BulkResult, Outcome
from .._sansio import Request, check_idempotency_key, new_idempotency_key, path_param

if TYPE_CHECKING:
    from .._client import WhopClient

# In bulk, losing an id costs more than a few more attempts; the client's retry budget
# still keeps an outage from multiplying traffic.
BULK_MAX_RETRIES = 8


class AdGroups:
    """The ad-group operations of a WhopClient, reached as ``client.ad_groups``."""

    def __init__(self, client: WhopClient) -> None:
        self._client = client

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
        path = f"/ad_groups/{path_param('ad_group_id', ad_group_id)}/unpause"
        key = (
            new_idempotency_key()
            if idempotency_key is None
            else check_idempotency_key(idempotency_key)
        )
        return await self._client._send(
            Request("POST", path, "ad_groups.unpause", idempotency_key=key),
            AdGroup,
            timeout=timeout,
            max_retries=max_retries,
        )

    async def unpause_many(
        self,
        ids: Ids,
        *,
        concurrency: int = 16,
        max_retries: int = BULK_MAX_RETRIES,
        on_outcome: OnOutcome | None = None,
        idempotency_key: Callable[[str], str] | None = None,
    ) -> BulkResult:
        """Unpause every id, ``concurrency`` at a time, through the client's rate limit.

        One failing id never stops the others: it ends up in ``failed`` with its typed
        error (an id that is not a Whop id gets an InvalidIdError). Duplicate ids are
        unpaused once. Anything that is not a WhopError (a bug in ``on_outcome``, an
        error raised by ``ids``, cancellation) stops the run and propagates; in-flight
        calls are cancelled.

        Args:
            ids: any iterable or async iterable of ids, read lazily.
            concurrency: how many calls run at once (16).
            max_retries: retried failures per id (8); 429s are not counted.
            on_outcome: called (or awaited, if it returns an awaitable) with each
                Outcome as it arrives; for progress bars and journals.
            idempotency_key: id -> the Idempotency-Key of its call. A job that may be
                stopped and started again derives keys from its own identity and the
                id, so a call that reached Whop before the stop is replayed, not
                repeated. Defaults to a fresh key per call.

        Returns:
            ``succeeded`` in input order and ``failed`` by id.

        Raises:
            TypeError: ``ids`` is a single string (it would be read letter by letter).
            ValueError: ``concurrency`` is not a positive whole number.
        """
        call = self._bulk_call(max_retries, idempotency_key)
        return await run_all(call, ids, concurrency=concurrency, on_outcome=on_outcome)

    async def iter_unpause(
        self,
        ids: Ids,
        *,
        concurrency: int = 16,
        max_retries: int = BULK_MAX_RETRIES,
        on_outcome: OnOutcome | None = None,
        idempotency_key: Callable[[str], str] | None = None,
    ) -> AsyncIterator[Outcome]:
        """Unpause every id like ``unpause_many``, yielding each Outcome as it completes.

        Memory stays bounded by ``concurrency`` however many ids stream through: ids are
        read only as calls finish, and nothing is kept per id once it is yielded
        (beyond the latest 100,000 ids, remembered to skip duplicates).
        """
        call = self._bulk_call(max_retries, idempotency_key)
        async for outcome in iter_outcomes(
            call, ids, concurrency=concurrency, on_outcome=on_outcome
        ):
            yield outcome

    def _bulk_call(
        self, max_retries: int, idempotency_key: Callable[[str], str] | None
    ) -> Callable[[str], Awaitable[AdGroup]]:
        if idempotency_key is None:
            return functools.partial(self.unpause, max_retries=max_retries)

        def call(ad_group_id: str) -> Awaitable[AdGroup]:
            key = idempotency_key(ad_group_id)
            return self.unpause(ad_group_id, max_retries=max_retries, idempotency_key=key)

        return call
