"""RateLimit, the budget a client is told about, and ClientStats, what it has seen."""

from __future__ import annotations

import math

import attrs


@attrs.frozen
class RateLimit:
    """A request budget per operation, e.g. Whop's ``RateLimit(600, per=60.0)``.

    Requests are spread evenly at ``requests / per`` per second, with at most ``burst``
    sent back to back after a quiet spell. It is a ceiling: when the server refuses
    sooner (it is stricter, or another program spends the same budget), the client
    slows to what the server accepts and climbs back when it can.

    With ``redis_url``, the budget is shared through Redis by every client, process and
    host that names the same budget (the ``redis`` extra): pacing, the adapted rate and
    the pause after a refusal.

    Attributes:
        requests: how many requests the budget allows...
        per: ...in this many seconds (60).
        burst: how many may go at once; defaults to ``min(10, requests)``.
        redis_url: share the budget through this Redis, e.g. ``"redis://cache:6379/0"``.
        key: the budget's name in Redis; defaults to a hash of the API key and base URL
            (never the key itself), so clients with the same key share one budget.
        fallback_share: while Redis cannot be reached, each client paces alone at this
            share of the budget (0.25).

    Raises:
        ValueError: a value is out of range.
    """

    requests: int
    per: float = 60.0
    burst: int | None = attrs.field(default=None, kw_only=True)
    redis_url: str | None = attrs.field(default=None, kw_only=True)
    key: str | None = attrs.field(default=None, kw_only=True)
    fallback_share: float = attrs.field(default=0.25, kw_only=True)

    def __attrs_post_init__(self) -> None:
        if not (isinstance(self.requests, int) and self.requests > 0):
            raise ValueError(f"requests must be a positive whole number, got {self.requests!r}")
        if not (math.isfinite(self.per) and self.per > 0):
            raise ValueError(f"per must be a positive number of seconds, got {self.per!r}")
        if self.burst is not None and not (isinstance(self.burst, int) and self.burst > 0):
            raise ValueError(f"burst must be a positive whole number, got {self.burst!r}")
        if not 0 < self.fallback_share <= 1:
            raise ValueError(f"fallback_share must be in (0, 1], got {self.fallback_share!r}")

    @property
    def rate(self) -> float:
        """Requests per second."""
        return self.requests / self.per

    @property
    def burst_size(self) -> int:
        """The burst in force: ``burst``, or ``min(10, requests)``."""
        return self.burst if self.burst is not None else min(10, self.requests)

    def share(self, fraction: float) -> RateLimit:
        """The same budget cut to ``fraction`` of it (at least one request), unshared."""
        return RateLimit(
            max(1, round(self.requests * fraction)),
            per=self.per,
            burst=max(1, round(self.burst_size * fraction)),
        )


@attrs.frozen(kw_only=True)
class ClientStats:
    """What a client has been answered so far, e.g. for a progress display.

    Attributes:
        answered: HTTP answers received, every attempt counted.
        rate_limited: of those, answers of 429.
    """

    answered: int
    rate_limited: int
