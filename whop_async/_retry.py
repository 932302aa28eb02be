"""The per-call retry policy, on tenacity.

The first attempt runs without tenacity: most calls succeed at once, and building a
retrier costs more than the call's own bookkeeping. Only a retryable failure builds one,
fresh for that call, which then accounts for the first attempt as its own.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import attrs
import tenacity

from ._clock import Clock
from ._exceptions import APIConnectionError, APIError, APIStatusError, RateLimitError
from ._limits import RetryBudget

T = TypeVar("T")

logger = logging.getLogger("whop_async")

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How one call retries.

    Attributes:
        max_retries: retried failures allowed after the first attempt; 429s do not count.
        max_server_wait: a server-directed wait longer than this ends the call at once.
        rate_limit_timeout: how long a call keeps retrying 429s after its first one.
        budget: the client-wide retry budget that failures other than 429 draw on.
        clock: sleep, time and randomness.
    """

    max_retries: int
    max_server_wait: float
    rate_limit_timeout: float
    budget: RetryBudget
    clock: Clock


def is_retryable(error: BaseException) -> bool:
    """True for failures a later attempt may cure: network trouble, 408, 429, 5xx gateways."""
    if isinstance(error, APIConnectionError):
        return True
    return isinstance(error, APIStatusError) and error.status_code in RETRYABLE_STATUSES


def server_wait(error: BaseException | None) -> float | None:
    """The wait the server asked for with this error, if any."""
    return error.retry_after if isinstance(error, APIStatusError) else None


async def call_with_retries(attempt: Callable[[], Awaitable[T]], policy: RetryPolicy) -> T:
    """Run ``attempt`` and retry it as the policy allows.

    Raises:
        The last attempt's own error: never tenacity's RetryError, never wrapped.
    """
    try:
        return await attempt()
    except APIError as error:
        if not is_retryable(error):
            raise
        first_failure: APIError | None = error

    async def attempt_after_first() -> T:
        nonlocal first_failure
        if first_failure is not None:
            failure, first_failure = first_failure, None
            raise failure
        return await attempt()

    return await _retrier(policy)(attempt_after_first)


def _retrier(policy: RetryPolicy) -> tenacity.AsyncRetrying:
    failures = 0

    def wait(state: tenacity.RetryCallState) -> float:
        error = _failure(state)
        if isinstance(error, RateLimitError):
            return 0.0  # the engine's gate holds the retry until the server is willing
        hint = server_wait(error)
        if hint is not None:
            return hint
        # Full jitter: U(0, min(cap, base * 2^n)), n counting from the first retry.
        ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** (state.attempt_number - 1))
        return policy.clock.random() * ceiling

    def stop(state: tenacity.RetryCallState) -> bool:
        nonlocal failures
        error = _failure(state)
        hint = server_wait(error)
        if hint is not None and hint > policy.max_server_wait:
            return True
        if isinstance(error, RateLimitError):
            # Being told "later" is not a failure: the engine ends the call at its
            # deadline, when its next turn would come too late.
            return False
        failures += 1
        return failures > policy.max_retries or not policy.budget.withdraw()

    return tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception(is_retryable),
        wait=wait,
        stop=stop,
        sleep=policy.clock.sleep,
        before_sleep=_log_retry,
        reraise=True,
    )


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
