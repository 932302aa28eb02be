"""Per-call options: ``CallOptions`` as operations take them (keyword arguments), and
``RequestOptions``, the one value a resource hands the client.

A new per-call option is a field here and in ``RequestOptions``, and the one place in
the client that reads it; no operation's signature changes.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypedDict

import attrs

if TYPE_CHECKING:
    from ._bulk import BulkRun
    from ._models import Outcome


class CallOptions(TypedDict, total=False):
    """The keyword arguments every operation takes, single and bulk.

    Attributes:
        timeout: seconds each attempt may take; the client's by default.
        max_retries: retried failures allowed (429s not counted); the client's by
            default, 8 per id in bulk.
        extra_headers: more headers for this call, e.g. a tracing header. The headers
            the client owns cannot be set here: ``Authorization`` (the key) and
            ``Idempotency-Key`` (``idempotency_key=``) raise ValueError, nothing sent.
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
    """One call's options; None means the client's default.

    Attributes:
        timeout: seconds each attempt may take.
        max_retries: retried failures allowed (429s not counted).
        idempotency_key: the key every attempt of a POST sends.
        run: the bulk run the call belongs to: it then waits out outages, and ends
            when the run stops.
    """

    timeout: float | None = None
    max_retries: int | None = None
    idempotency_key: str | None = None
    run: BulkRun | None = None

    def __attrs_post_init__(self) -> None:
        # Checked once when made: a bulk call's options serve every id.
        if self.timeout is not None:
            checked_timeout(self.timeout)
        if self.max_retries is not None:
            checked_max_retries(self.max_retries)

    @classmethod
    def of(cls, options: CallOptions, **more: object) -> RequestOptions:
        """The options of ``options`` (an operation's keyword arguments) and ``more``."""
        return cls(
            timeout=options.get("timeout"),
            max_retries=options.get("max_retries"),
            **more,  # type: ignore[arg-type]
        )


NO_OPTIONS = RequestOptions()


def checked_timeout(timeout: float) -> float:
    """``timeout`` as a float, if it is a positive finite number of seconds.

    Raises:
        ValueError: it is not.
    """
    is_number = isinstance(timeout, (int, float)) and not isinstance(timeout, bool)
    try:
        seconds = float(timeout) if is_number else math.nan
    except OverflowError:  # an int too large for a float
        seconds = math.inf
    if not 0 < seconds < math.inf:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return seconds


def checked_max_retries(max_retries: int) -> int:
    """``max_retries``, if it is a whole number >= 0.

    Raises:
        ValueError: it is not.
    """
    if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 0:
        raise ValueError(f"max_retries must be a whole number >= 0, got {max_retries!r}")
    return max_retries
