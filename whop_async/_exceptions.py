"""The error tree: every failure whop_async raises on purpose is a WhopError."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any


class WhopError(Exception):
    """Base class of every error whop_async raises on purpose.

    Catch it to handle anything the API or the network did to a call; programming
    errors (a bad argument, a closed client) are plain ``ValueError``/``RuntimeError``.
    """


class APIError(WhopError):
    """A request was made and did not produce a usable answer.

    Attributes:
        message: a readable description (never contains the API key).
        method: the HTTP method of the request.
        url: the URL of the request.
    """

    def __init__(self, message: str, *, method: str, url: str) -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.url = url


class ResponseError(APIError):
    """An error tied to an HTTP answer: status, headers, body and request id."""

    def __init__(
        self,
        message: str,
        *,
        method: str,
        url: str,
        status_code: int,
        headers: Mapping[str, str],
        body: object,
        request_id: str | None,
    ) -> None:
        super().__init__(message, method=method, url=url)
        self.status_code = status_code
        self.headers = headers
        self.body = body
        self.request_id = request_id


class APIStatusError(ResponseError):
    """The API answered with a status other than 2xx (3xx included: redirects are not followed).

    Attributes:
        status_code: the HTTP status.
        headers: the response headers (case-insensitive mapping).
        body: the decoded JSON body, or the body's text when it is not JSON.
        request_id: the server's request id header, when present.
        error_type: Whop's ``error.type`` (e.g. ``"rate_limit_exceeded"``), when present.
        error_code: Whop's ``error.code``, when present.
        retry_after: seconds the server asked to wait (from ``retry-after-ms``,
            ``Retry-After`` or Whop's "Try again in N seconds." message), or None; at
            most a day.
        retry_after_resolution: how precise ``retry_after`` is: 1.0 when the server
            gave whole seconds (servers round up, so the true wait may be up to a
            second shorter), 0.001 for milliseconds.
    """

    def __init__(
        self,
        message: str,
        *,
        error_type: str | None = None,
        error_code: str | None = None,
        retry_after: float | None = None,
        retry_after_resolution: float = 1.0,
        **response: Any,
    ) -> None:
        super().__init__(message, **response)
        self.error_type = error_type
        self.error_code = error_code
        self.retry_after = retry_after
        self.retry_after_resolution = retry_after_resolution


class BadRequestError(APIStatusError):
    """400: the request was malformed (also: an Idempotency-Key reused for another request)."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing, wrong, or for the other host (live vs sandbox)."""


class PermissionDeniedError(APIStatusError):
    """403: the key is valid but not allowed to do this."""


class NotFoundError(APIStatusError):
    """404: no such ad group (or not visible to this key)."""


class ConflictError(APIStatusError):
    """409: conflicts with the resource's current state; never retried automatically."""


class UnprocessableEntityError(APIStatusError):
    """422: the request was understood but is invalid."""


class RateLimitError(APIStatusError):
    """429: over the rate limit; ``retry_after`` holds the server's wait, when it gave one."""


class InternalServerError(APIStatusError):
    """Any 5xx answer."""


class APIConnectionError(APIError):
    """No HTTP answer: the connection failed, was refused or dropped mid-answer."""


class APITimeoutError(APIConnectionError):
    """The attempt did not complete within its timeout."""


class APIResponseValidationError(ResponseError):
    """A 2xx answer whose body is not JSON or not the expected shape.

    The server accepted the request (``status_code`` is 2xx): an unpause it answers
    this way was carried out. The message says so and names what could not be read,
    e.g. ``required field missing @ $.id``; ``body`` holds the answer.
    """

    @property
    def accepted(self) -> bool:
        """True: the server answered 2xx, so it did what was asked."""
        return 200 <= self.status_code < 300


_CLASS_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error_class(status_code: int) -> type[APIStatusError]:
    """The most specific APIStatusError subclass for a status code."""
    if status_code >= 500:
        return InternalServerError
    return _CLASS_BY_STATUS.get(status_code, APIStatusError)


class StopReason(enum.StrEnum):
    """Why a bulk run stopped before finishing every id (a str: compares equal to
    ``"fatal"`` and the others)."""

    FATAL = "fatal"
    """An error every id would meet: a 401, or a base URL where nothing answers."""
    DEADLINE = "deadline"
    """The run's ``deadline`` passed."""
    OUTAGE = "outage"
    """The server answered nothing for longer than the run's ``max_outage``."""
    RATE_LIMIT = "rate_limit"
    """The server refused every request for a call's whole ``rate_limit_timeout``."""


def public_name(error: BaseException | None) -> str:
    """The name of ``error``'s class as whop_async exports it: a private subclass (one
    that says no connection could be made, say) is named by its public base."""
    if error is None:
        return "None"
    for cls in type(error).__mro__:
        if cls.__module__ == __name__ or not cls.__module__.startswith("whop_async"):
            return cls.__name__
    return type(error).__name__  # pragma: no cover - every class ends in BaseException


class NotFinishedError(WhopError):
    """An id of a bulk run that the run stopped before finishing.

    The run stops for an error every further id would meet too (a wrong key: a 401; a
    base URL where nothing answered for 10 s, or whose name does not resolve), when its
    ``deadline`` passes, when the server has answered nothing for longer than the run's
    ``max_outage``, or when it refused every request for a call's whole
    ``rate_limit_timeout``. Ids in flight
    then finish; the others end with this error, so every id is accounted for.

    Attributes:
        reason: a StopReason: ``"fatal"``, ``"deadline"``, ``"outage"`` or
            ``"rate_limit"``.
        cause: the error behind the stop (None for ``"deadline"``).
        attempted: True when a request for this id was sent before the stop, so the
            server may have acted on it (sending it again with the same
            Idempotency-Key replays its answer rather than acting twice).
    """

    def __init__(
        self, message: str, *, reason: StopReason, cause: BaseException | None, attempted: bool
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.cause = cause
        self.attempted = attempted


class TokenProviderError(WhopError):
    """A token provider (an ``api_key`` that is a callable) raised, or handed over
    something that cannot be sent as a key; the call was not sent.

    Its message names the account, never a token. In a bulk run it stops that
    account's ids, as a 401 does.

    Attributes:
        account: the account's name (None for a client made without one).
    """

    def __init__(self, message: str, *, account: str | None) -> None:
        super().__init__(message)
        self.account = account


class UnknownAccountError(WhopError, LookupError):
    """A pair of a bulk run of ``Accounts`` names an account it does not hold (when the
    pair was read); that pair alone fails.

    Attributes:
        account: the name the pair gave.
    """

    def __init__(self, account: str) -> None:
        super().__init__(f"no account named {account!r}: add it before its ids are read")
        self.account = account


class InvalidIdError(WhopError, ValueError):
    """An id that is not a Whop id, refused before anything is sent.

    It is a ValueError (a bad argument) and a WhopError, so a bulk call reports it per
    id like any other failure.
    """
