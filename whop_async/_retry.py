"""One call's retries, on tenacity: what is retried, how long it waits, when it stops.

The first attempt runs without tenacity (most calls succeed at once, and a retrier
costs more than the rest of the call's bookkeeping); a retryable failure makes a
``CallRetries`` for the call, which waits what that failure asks and then retries in an
``AsyncRetrying`` loop as tenacity's docs show. ``plan`` is the whole policy.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import attrs
import tenacity

from ._exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    RateLimitError,
    public_name,
)

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
        random: a float in [0, 1), for backoff jitter.
    """

    max_retries: int
    max_server_wait: float
    random: Callable[[], float]


def is_retryable(error: BaseException) -> bool:
    """True for failures a later attempt may cure: network trouble, 408, 429, 5xx gateways."""
    if isinstance(error, APIConnectionError):
        return True
    return isinstance(error, APIStatusError) and error.status_code in RETRYABLE_STATUSES


class CallRetries:
    """The retries of one call whose first attempt failed.

    Args:
        policy: the client's retry policy.
        max_retries: this call's bound on retried failures.
        retry_wait: asks the client's retry budget for one retry: seconds to wait for
            it, or None when there is none for this call.
        sleep: sleeps between attempts (ends early when the call must end).
        probed: True when the last attempt was the outage breaker's probe.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        max_retries: int,
        retry_wait: Callable[[], float | None],
        sleep: Callable[[float], Awaitable[None]],
        probed: Callable[[], bool],
    ) -> None:
        self._policy = policy
        self._max_retries = max_retries
        self._retry_wait = retry_wait
        self._sleep = sleep
        self._probed = probed
        self.failures = 0
        self.refusals = 0
        self._upcoming = 0.0

    def plan(self, error: BaseException) -> float | None:
        """How long to wait before retrying after ``error``, or None to give up.

        A 429 is retried at once, not counted: the engine's gate paces refused calls;
        so is a failed probe of the outage breaker, which paces the next. Any other
        retryable failure counts against ``max_retries``, draws on the retry budget,
        and waits what the server asked or full-jitter backoff.
        """
        if not is_retryable(error):
            return None
        hint = error.retry_after if isinstance(error, APIStatusError) else None
        if hint is not None and hint > self._policy.max_server_wait:
            return None
        if isinstance(error, RateLimitError) or self._probed():
            self.refusals += 1
            return 0.0
        self.failures += 1
        if self.failures > self._max_retries:
            return None
        budget_wait = self._retry_wait()
        if budget_wait is None:
            return None
        backoff = min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** (self.failures - 1))
        wait = hint if hint is not None else self._policy.random() * backoff
        return max(wait, budget_wait)

    async def after_first(self, first: APIError) -> tenacity.AsyncRetrying:
        """Wait what the first attempt's failure asks, and the retrier for the rest.

        Raises:
            APIError: ``first``, when it is not to be retried.
        """
        wait = self.plan(first)
        if wait is None:
            raise first
        self._log(first, wait)
        await self._sleep(wait)
        return tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception(self._retries),
            wait=self._waits,
            sleep=self._sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )

    def _retries(self, error: BaseException) -> bool:
        upcoming = self.plan(error)
        self._upcoming = 0.0 if upcoming is None else upcoming
        return upcoming is not None

    def _waits(self, _: tenacity.RetryCallState) -> float:
        return self._upcoming

    def _before_sleep(self, state: tenacity.RetryCallState) -> None:
        assert state.outcome is not None
        self._log(state.outcome.exception(), self._upcoming)

    def _log(self, error: BaseException | None, wait: float) -> None:
        attempt = self.failures + self.refusals
        # A status error's message already ends with its request id.
        logger.info(
            "attempt %d failed, retrying in %.2f s: %s: %s",
            attempt,
            wait,
            public_name(error),
            error,
            extra={
                "whop_attempt": attempt,
                "whop_delay": wait,
                "whop_request_id": getattr(error, "request_id", None),
            },
        )
