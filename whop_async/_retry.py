"""The retry policy of one call, on tenacity: what is retried, how long it waits, when
it stops. ``retrying`` is the whole policy.

The first attempt runs without tenacity: most calls succeed at once, and building a
retrier costs more than the call's own bookkeeping. A retryable failure builds one,
fresh for that call, and hands it the failure as its first attempt's outcome.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TypeVar, cast

import attrs
import tenacity

from ._clock import Clock
from ._exceptions import APIConnectionError, APIError, APIStatusError, RateLimitError

T = TypeVar("T")
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]

logger = logging.getLogger("whop_async")

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How the calls of a client retry.

    Attributes:
        max_retries: retried failures allowed after the first attempt; 429s do not count.
        max_server_wait: a server-directed wait longer than this ends the call at once.
        rate_limit_timeout: how long a call may wait for the rate limit in all.
        clock: sleep, time and randomness.
    """

    max_retries: int
    max_server_wait: float
    rate_limit_timeout: float
    clock: Clock


@attrs.define
class CallRetries:
    """What one call's retry strategies need to know of it.

    Attributes:
        refusals: 429s so far (they do not count against ``max_retries``).
        deferred_at: when the retry budget last said no to a call that waits rather
            than fails (a bulk call): its next attempt waits for the server to answer
            anything after this moment.
        allow_retry: asks the client's retry budget for one retry.
        defers: True for calls deferred, not ended, by an empty retry budget.
    """

    allow_retry: Callable[[], bool]
    defers: bool
    refusals: int = 0
    deferred_at: float | None = None


def is_retryable(error: BaseException) -> bool:
    """True for failures a later attempt may cure: network trouble, 408, 429, 5xx gateways."""
    if isinstance(error, APIConnectionError):
        return True
    return isinstance(error, APIStatusError) and error.status_code in RETRYABLE_STATUSES


def retrying(
    policy: RetryPolicy,
    call: CallRetries,
    max_retries: int,
    sleep: Callable[[float], Awaitable[None]],
) -> tenacity.AsyncRetrying:
    """The retry policy of one call, fresh for it (tenacity counts attempts per object)."""
    return tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception(is_retryable) & _within_retry_budget(call, policy),
        wait=_wait_server_hint(fallback=_wait_full_jitter(policy.clock)),
        stop=_stop_after_failures(call, max_retries) | _stop_on_long_server_wait(policy),
        sleep=sleep,
        before_sleep=_log_retry,
        reraise=True,
    )


async def retry_after(
    first: APIError,
    attempt: Callable[[], Awaitable[T]],
    build: Callable[[], tenacity.AsyncRetrying],
) -> T:
    """Retry ``attempt``, whose first try (run by the caller) failed with the retryable
    ``first``, as ``build()``'s policy says.

    Raises:
        The last attempt's own error: never tenacity's RetryError, never wrapped.
    """
    retrier = build()
    retrier.begin()
    state = tenacity.RetryCallState(retry_object=retrier, fn=attempt, args=(), kwargs={})
    # The first attempt's outcome, as if tenacity had run it.
    state.set_exception((type(first), first, first.__traceback__))
    while True:
        action = await retrier.iter(retry_state=state)
        if isinstance(action, tenacity.DoAttempt):
            try:
                state.set_result(await attempt())
            except BaseException:  # tenacity decides; CancelledError is never retried
                state.set_exception(cast(ExcInfo, sys.exc_info()))
        elif isinstance(action, tenacity.DoSleep):
            state.prepare_for_next_attempt()
            await retrier.sleep(action)  # type: ignore[misc]  # as tenacity's own loop does
        else:
            return action  # type: ignore[no-any-return]


class _within_retry_budget(tenacity.retry_base):
    """A retry draws on the client's retry budget (a 429 does not: the gate paces
    those). When the budget says no, a call that defers waits for the server to answer
    again; any other call ends with its error."""

    def __init__(self, call: CallRetries, policy: RetryPolicy) -> None:
        self._call = call
        self._clock = policy.clock

    def __call__(self, state: tenacity.RetryCallState) -> bool:
        if isinstance(_failure(state), RateLimitError) or self._call.allow_retry():
            return True
        if self._call.defers:
            self._call.deferred_at = self._clock.monotonic()
            return True
        return False


class _wait_server_hint(tenacity.wait.wait_base):
    """The wait the server asked for, or ``fallback``'s. A 429 waits at the engine's
    gate instead, and a deferred retry until the server answers again: 0 here."""

    def __init__(self, fallback: tenacity.wait.wait_base) -> None:
        self._fallback = fallback

    def __call__(self, state: tenacity.RetryCallState) -> float:
        error = _failure(state)
        if isinstance(error, RateLimitError):
            return 0.0
        hint = error.retry_after if isinstance(error, APIStatusError) else None
        return hint if hint is not None else self._fallback(state)


class _wait_full_jitter(tenacity.wait.wait_base):
    """U(0, min(cap, base * 2^n)), n counting retries from 0, with the client's randomness."""

    def __init__(self, clock: Clock) -> None:
        self._random = clock.random

    def __call__(self, state: tenacity.RetryCallState) -> float:
        ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** (state.attempt_number - 1))
        return self._random() * ceiling


class _stop_after_failures(tenacity.stop.stop_base):
    """Stop after ``max_retries`` retried failures; 429s are not failures."""

    def __init__(self, call: CallRetries, max_retries: int) -> None:
        self._call = call
        self._max_retries = max_retries

    def __call__(self, state: tenacity.RetryCallState) -> bool:
        return state.attempt_number - self._call.refusals > self._max_retries


class _stop_on_long_server_wait(tenacity.stop.stop_base):
    """Stop at once when the server asks for a wait longer than ``max_server_wait``."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._cap = policy.max_server_wait

    def __call__(self, state: tenacity.RetryCallState) -> bool:
        error = _failure(state)
        hint = error.retry_after if isinstance(error, APIStatusError) else None
        return hint is not None and hint > self._cap


def _failure(state: tenacity.RetryCallState) -> BaseException | None:
    return state.outcome.exception() if state.outcome is not None else None


def _log_retry(state: tenacity.RetryCallState) -> None:
    error = _failure(state)
    # A status error's message already ends with its request id.
    logger.info(
        "attempt %d failed, retrying in %.2f s: %s: %s",
        state.attempt_number,
        state.upcoming_sleep,
        type(error).__name__,
        error,
        extra={
            "whop_attempt": state.attempt_number,
            "whop_delay": state.upcoming_sleep,
            "whop_request_id": getattr(error, "request_id", None),
        },
    )
