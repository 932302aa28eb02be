"""Ad-group operations."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._models import AdGroup
from .._sansio import Request, check_idempotency_key, new_idempotency_key, path_param

if TYPE_CHECKING:
    from .._client import WhopClient


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
            ValueError: ``ad_group_id`` is not a Whop id or the key is malformed;
                nothing was sent.
            APIStatusError: a subclass per status, after retries where they apply.
            APIConnectionError: the network failed on every attempt
                (APITimeoutError when the last attempt timed out).
            APIResponseValidationError: the answer is not an ad group.
            RuntimeError: the client is closed.
        """
        path = f"/ad_groups/{path_param('ad_group_id', ad_group_id)}/unpause"
        key = new_idempotency_key() if idempotency_key is None else idempotency_key
        return await self._client._send(
            Request("POST", path, idempotency_key=check_idempotency_key(key)),
            AdGroup,
            timeout=timeout,
            max_retries=max_retries,
        )
