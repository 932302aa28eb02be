"""Options, checked once when given: the client's (``ClientOptions``), each call's as
operations take them (``CallOptions``, ``BulkOptions``), and ``RequestOptions``, the one
value a resource hands the client for a call.

Each default is written here once. A new per-call option is a field of ``CallOptions``
and of ``RequestOptions``, and the one place in the call that reads it.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypedDict

import attrs

from . import _credentials, _sansio
from ._credentials import ApiKey
from ._limits import RateLimit

if TYPE_CHECKING:
    from ._bulk import BulkRun
    from ._models import Outcome

WHOP_RATE_LIMIT = RateLimit(600, per=60.0)
"""Whop's documented budget: 600 requests a minute per operation and credential (the
client's default ``rate_limit``)."""
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 3
DEFAULT_MAX_SERVER_WAIT = 120.0
DEFAULT_RATE_LIMIT_TIMEOUT = 600.0
# In bulk, losing an id costs more than a few more attempts; an outage pauses the run
# (one probe at a time) instead of spending them.
BULK_MAX_RETRIES = 8
# A run waits through an outage of minutes before it gives up on what is left.
BULK_MAX_OUTAGE = 600.0
BULK_CONCURRENCY = 16
"""How many calls of a bulk run go at once unless ``concurrency=`` says otherwise."""
# More calls at once than this only queue: at most 100 are in flight (the connection
# pool), and each waiting call holds a task (a concurrency of 10**8 took 23 GB).
MAX_CONCURRENCY = 10_000


def _seconds(value: object, *, name: str, positive: bool) -> float:
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    try:
        seconds = float(value) if is_number else math.nan  # type: ignore[arg-type]
    except OverflowError:  # an int too large for a float
        seconds = math.inf
    if not ((seconds > 0 if positive else seconds >= 0) and seconds < math.inf):
        least = "a positive number" if positive else "a number >= 0"
        raise ValueError(f"{name} must be {least} of seconds, got {value!r}")
    return seconds


def positive_seconds(value: object, name: str) -> float:
    """``value`` as a float, if it is a positive finite number of seconds.

    Raises:
        ValueError: naming ``name``, it is not.
    """
    return _seconds(value, name=name, positive=True)


def seconds_or_zero(value: object, name: str) -> float:
    """``value`` as a float, if it is a finite number of seconds >= 0.

    Raises:
        ValueError: naming ``name``, it is not.
    """
    return _seconds(value, name=name, positive=False)


def whole_number(value: object, name: str, *, least: int) -> int:
    """``value``, if it is a whole number >= ``least``.

    Raises:
        ValueError: naming ``name``, it is not.
    """
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise ValueError(f"{name} must be a whole number >= {least}, got {value!r}")
    return value


def concurrency_of(value: object) -> int:
    """A bulk run's ``concurrency``, if it is a whole number from 1 to MAX_CONCURRENCY.

    Raises:
        ValueError: it is not.
    """
    concurrency = whole_number(value, "concurrency", least=1)
    if concurrency > MAX_CONCURRENCY:
        raise ValueError(f"concurrency must be at most {MAX_CONCURRENCY:,}, got {value!r}")
    return concurrency


def _checked(check: Callable[[Any, str], object]) -> Callable[[object, Any, Any], None]:
    """An attrs validator running ``check(value, name)`` on a value that is not None."""

    def validate(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None:
            check(value, attribute.name)

    return validate


def _whole_number_or_zero(value: object, name: str) -> int:
    return whole_number(value, name, least=0)


def _rate_limit(value: object, name: str) -> None:
    if not isinstance(value, RateLimit):
        raise TypeError(f"{name} must be a RateLimit or None, got {value!r}")


def _api_key(value: object, _: str) -> ApiKey:
    return _credentials.checked_api_key(value)


def _account(value: object, _: str) -> str:
    return _credentials.checked_account(value)


def _base_url(value: object, _: str) -> str:
    return _sansio.check_base_url(value)


def _api_version(value: object, _: str) -> str:
    return _sansio.check_api_version(value)


def _header_pairs(headers: Mapping[str, str] | tuple[tuple[str, str], ...] | None) -> Any:
    if headers is None or isinstance(headers, tuple):
        return headers or ()
    return _sansio.extra_headers(headers, where="default_headers")


BASE_URL_ENV = "WHOP_BASE_URL"


def _given_or_from_environment(base_url: object) -> object:
    """``base_url`` without a trailing slash; if none was given (None or empty),
    ``WHOP_BASE_URL``'s, else Whop's."""
    if base_url is None or base_url == "":
        base_url = os.environ.get(BASE_URL_ENV) or _sansio.DEFAULT_BASE_URL
    return base_url.rstrip("/") if isinstance(base_url, str) else base_url


@attrs.frozen(kw_only=True)
class ClientOptions:
    """A client's options, each checked when given; ``attrs.evolve`` checks a change
    the same way (``WhopClient.with_options``).

    Attributes:
        api_key: the key, or a token provider (never shown: it is left out of repr).
        account: the account's name, if given: named in messages, and the budget's
            name in Redis.
        base_url: where requests go, without a trailing slash (by default
            ``WHOP_BASE_URL``'s, else Whop's).
        timeout: seconds one attempt may take.
        max_retries: retried failures allowed per call.
        max_server_wait: the longest server-directed wait a call sleeps through.
        rate_limit: the budget per operation (None: found from the server).
        rate_limit_timeout: how long one call may wait for the rate limit in all.
        api_version: sent as ``Api-Version-Date`` when set.
        default_headers: more headers on every request, checked.
    """

    api_key: ApiKey = attrs.field(repr=False, validator=_checked(_api_key))
    account: str | None = attrs.field(default=None, validator=_checked(_account))
    base_url: str = attrs.field(
        default=None, converter=_given_or_from_environment, validator=_checked(_base_url)
    )
    timeout: float = attrs.field(default=DEFAULT_TIMEOUT, validator=_checked(positive_seconds))
    max_retries: int = attrs.field(
        default=DEFAULT_MAX_RETRIES, validator=_checked(_whole_number_or_zero)
    )
    max_server_wait: float = attrs.field(
        default=DEFAULT_MAX_SERVER_WAIT, validator=_checked(seconds_or_zero)
    )
    rate_limit: RateLimit | None = attrs.field(
        default=WHOP_RATE_LIMIT, validator=_checked(_rate_limit)
    )
    rate_limit_timeout: float = attrs.field(
        default=DEFAULT_RATE_LIMIT_TIMEOUT, validator=_checked(seconds_or_zero)
    )
    api_version: str | None = attrs.field(default=None, validator=_checked(_api_version))
    default_headers: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_header_pairs)

    def headers(self) -> dict[str, str]:
        """The headers of every request, built once per client: with a token provider,
        all but ``Authorization``, which each attempt adds."""
        key = self.api_key if isinstance(self.api_key, str) else None
        return _sansio.client_headers(
            key, api_version=self.api_version, default_headers=dict(self.default_headers)
        )

    def budget_name(self) -> str:
        """The budget's name in Redis: the account's name (within ``RateLimit.key``,
        when given), else ``RateLimit.key``, else a hash of the key and base URL. Never
        the key.

        Raises:
            ValueError: a token provider with a budget shared through Redis, and no
                name that stays when its tokens change.
        """
        key = None if self.rate_limit is None else self.rate_limit.key
        if self.account is not None:
            return self.account if key is None else f"{key}/{self.account}"
        if key is not None:
            return key
        if not isinstance(self.api_key, str):
            if self.rate_limit is not None and self.rate_limit.address is not None:
                raise ValueError(
                    "a token provider's budget in Redis needs a name that stays when its"
                    " tokens change: give account= (or RateLimit(key=...))"
                )
            return f"provider-{id(self.api_key):x}"  # in this process only
        digest = hashlib.sha256(f"{self.api_key}\n{self.base_url}".encode()).hexdigest()
        return digest[:24]


class CallOptions(TypedDict, total=False):
    """The keyword arguments every operation takes, single and bulk.

    Attributes:
        timeout: seconds each attempt may take; the client's by default.
        max_retries: retried failures allowed (429s not counted); the client's by
            default, 8 per id in bulk.
        extra_headers: more headers for this call, e.g. a tracing header. The headers
            the client owns cannot be set here: ``Authorization`` (the key),
            ``Idempotency-Key`` (``idempotency_key=``), and those that frame or route the
            request (``Host``, ``Content-Length``...) raise ValueError, nothing sent.
        extra_query: more query parameters for this call, e.g. a feature flag. One the
            operation sets itself (``first``, ``after``...) raises ValueError.
    """

    timeout: float
    max_retries: int
    extra_headers: Mapping[str, str]
    extra_query: Mapping[str, str]


class BulkOptions(CallOptions, total=False):
    """The keyword arguments of every bulk operation (``unpause_many``,
    ``iter_unpause`` and the pause forms): those of ``CallOptions`` (``max_retries`` is
    8 per id here), and:

    Attributes:
        concurrency: how many calls run at once (16).
        on_outcome: called (or awaited, if it returns an awaitable) with each Outcome
            as it arrives; for progress bars and journals.
        idempotency_key: id -> the Idempotency-Key of its call. A job that may be
            stopped and started again derives keys from its own identity and the id,
            so a call that reached Whop before the stop is replayed, not repeated.
            Defaults to a fresh key per call.
        deadline: seconds the whole run may take; what is left then ends failed with
            NotFinishedError (reason ``"deadline"``). None (the default): no bound
            but the others.
        max_outage: the longest, in seconds, the run waits for a server that answers
            nothing (an outage pauses the run rather than failing its ids); past it,
            what is left ends failed with NotFinishedError (reason ``"outage"``). 600.
    """

    concurrency: int
    on_outcome: Callable[[Outcome], object | Awaitable[object]] | None
    idempotency_key: Callable[[str], str] | None
    deadline: float | None
    max_outage: float


class AccountsBulkOptions(CallOptions, total=False):
    """The keyword arguments of the bulk operations of ``Accounts``
    (``unpause_many``, ``iter_unpause`` and the pause forms): those of ``BulkOptions``,
    but for these two.

    Attributes:
        concurrency: how many calls run at once, shared fairly between the accounts
            that have ids to do (64): each holds at most its share, so an account that
            hangs or is out costs the others at most that share.
        idempotency_key: (account, id) -> the Idempotency-Key of its call; a fresh key
            per call by default.
    """

    concurrency: int
    on_outcome: Callable[[Outcome], object | Awaitable[object]] | None
    idempotency_key: Callable[[str, str], str] | None
    deadline: float | None
    max_outage: float


ACCOUNTS_CONCURRENCY = 64


def checked(options: Mapping[str, Any], kind: type[CallOptions]) -> None:
    """Refuse a keyword argument ``kind`` does not name (a typo must not pass silently).

    Raises:
        TypeError: naming the unexpected arguments, as Python would.
    """
    unexpected = options.keys() - kind.__annotations__.keys()
    if unexpected:
        names = ", ".join(repr(name) for name in sorted(unexpected))
        raise TypeError(f"unexpected keyword argument {names}")


@attrs.frozen(kw_only=True)
class RequestOptions:
    """One call's options, checked once when made (a bulk call's serve every id); None
    means the client's default.

    Attributes:
        timeout: seconds each attempt may take.
        max_retries: retried failures allowed (429s not counted).
        run: the bulk run the call belongs to: it then waits out outages, and ends
            when the run stops.
    """

    timeout: float | None = attrs.field(default=None, validator=_checked(positive_seconds))
    max_retries: int | None = attrs.field(default=None, validator=_checked(_whole_number_or_zero))
    run: BulkRun | None = None

    @classmethod
    def of(cls, options: CallOptions, **more: Any) -> RequestOptions:
        """The options of ``options`` (an operation's keyword arguments) and ``more``."""
        return cls(timeout=options.get("timeout"), max_retries=options.get("max_retries"), **more)


NO_OPTIONS = RequestOptions()
