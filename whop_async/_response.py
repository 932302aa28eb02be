"""RawResponse: a call's answer as it came (status, headers, request id, timing),
beside the model it parses into, for ``client.ad_groups.with_raw_response``."""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Generic, ParamSpec, TypeVar, cast

import attrs

T = TypeVar("T")
P = ParamSpec("P")

# Set while a with_raw_response call runs: the client then answers it raw.
RAW_REQUESTED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "whop_async_raw_requested", default=False
)


@attrs.frozen(kw_only=True)
class SentRequest:
    """What was sent, fit to log.

    Attributes:
        method: e.g. ``"POST"``.
        url: the whole URL, query included.
        headers: the request's headers, ``Authorization`` redacted.
    """

    method: str
    url: str
    headers: Mapping[str, str]


@attrs.frozen(kw_only=True)
class RawResponse(Generic[T]):
    """The answer to one call, as it came, and the model it stands for.

    Retries, pacing and errors are those of the plain call: an error status still
    raises its typed error; this is the answer of the attempt that succeeded.

    Attributes:
        status_code: the HTTP status.
        headers: the response headers (case-insensitive).
        request_id: the server's request id header, when present: quote it in support
            tickets.
        http_request: what was sent (method, URL, headers without the key).
        elapsed: seconds from the call's start to this answer, every wait and retry
            included.
        retries_taken: attempts before the one answered here (0 when the first was).
        content: the body, as bytes.
    """

    status_code: int
    headers: Mapping[str, str]
    request_id: str | None
    http_request: SentRequest
    elapsed: float
    retries_taken: int
    content: bytes
    _parse: Callable[[], T] = attrs.field(alias="parse", repr=False, eq=False)

    def parse(self) -> T:
        """The model the plain call returns (an ``AdGroup``, an ``AdGroupPage``).

        Raises:
            APIResponseValidationError: the answer is not that model.
        """
        return self._parse()


def answered_raw(method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[RawResponse[T]]]:
    """``method``, answering with its RawResponse instead of its model."""

    @functools.wraps(method)
    async def raw(*args: P.args, **kwargs: P.kwargs) -> RawResponse[T]:
        token = RAW_REQUESTED.set(True)
        try:
            return cast(RawResponse[T], await method(*args, **kwargs))
        finally:
            RAW_REQUESTED.reset(token)

    return raw
