"""RateLimit, the budget a client is told about, and ClientStats, what it has seen."""

from __future__ import annotations

import math
from typing import Any

import attrs

from .redis_address import Address, address_of, redacted

DEFAULT_PREFIX = "whop_async:"
# A name goes into every key: Redis allows far longer, a person reads no longer.
_LONGEST_NAME = 200


@attrs.frozen
class RateLimit:
    """A request budget per operation, e.g. Whop's ``RateLimit(600, per=60.0)``.

    Requests are spread evenly at ``requests / per`` per second, with at most ``burst``
    sent back to back after a quiet spell. It is a ceiling: when the server refuses
    sooner (it is stricter, or another program spends the same budget), the client
    slows to what the server accepts and climbs back when it can.

    With ``redis``, the budget is shared through Redis by every client, process and
    host that names the same budget (the ``redis`` extra): pacing, the adapted rate and
    the pause after a refusal. See the Workers page of the docs.

    Attributes:
        requests: how many requests the budget allows...
        per: ...in this many seconds (60).
        burst: how many may go at once; defaults to ``min(10, requests)``: a second's
            worth at Whop's 600 a minute, which its window lets through at once.
        redis: share the budget through this Redis: a URL (``"redis://cache:6379/0"``,
            any node of a Cluster, ``"redis+sentinel://s1,s2,s3/mymaster"`` or Celery's
            ``"sentinel://s1:26379;sentinel://s2:26379?master_name=mymaster"``) or a
            ``redis.asyncio`` client object (``Redis``, a Sentinel's ``master_for(...)``,
            ``RedisCluster``), which stays the caller's to close.
        redis_url: the same as ``redis`` with a URL (the earlier name).
        key: the budget's name in Redis; defaults to a hash of the API key and base URL
            (never the key itself), so clients with the same key share one budget.
            Printable, without braces: it becomes the keys' hash tag, ``{key}``.
        prefix: the start of every key whop_async writes, so that several
            applications share one Redis (``"whop_async:"``).
        fallback_share: while Redis cannot be reached, each client paces alone at this
            share of the budget; by default one over the number of workers seen sharing
            it in the last 30 seconds (1/16 before any were seen).

    Raises:
        ValueError: a value is out of range, or the Redis address is malformed.
        ImportError: ``redis`` is given but the redis extra is not installed.
    """

    requests: int
    per: float = 60.0
    burst: int | None = attrs.field(default=None, kw_only=True)
    redis: Any = attrs.field(default=None, kw_only=True, repr=lambda value: _shown(value))
    redis_url: str | None = attrs.field(
        default=None, kw_only=True, repr=lambda value: _shown(value)
    )
    key: str | None = attrs.field(default=None, kw_only=True)
    prefix: str = attrs.field(default=DEFAULT_PREFIX, kw_only=True)
    fallback_share: float | None = attrs.field(default=None, kw_only=True)
    _address: Address | None = attrs.field(init=False, default=None, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if not (isinstance(self.requests, int) and self.requests > 0):
            raise ValueError(f"requests must be a positive whole number, got {self.requests!r}")
        if not (math.isfinite(self.per) and self.per > 0):
            raise ValueError(f"per must be a positive number of seconds, got {self.per!r}")
        if self.burst is not None and not (isinstance(self.burst, int) and self.burst > 0):
            raise ValueError(f"burst must be a positive whole number, got {self.burst!r}")
        if self.fallback_share is not None and not 0 < self.fallback_share <= 1:
            raise ValueError(f"fallback_share must be in (0, 1], got {self.fallback_share!r}")
        if self.redis is not None and self.redis_url is not None:
            raise ValueError("give redis or redis_url, not both")
        if self.redis_url is not None and not isinstance(self.redis_url, str):
            raise ValueError("redis_url takes a URL; pass a client object as redis=")
        if self.key is not None:
            _check_name(self.key, "key", empty=False)
        _check_name(self.prefix, "prefix", empty=True)
        # Checked now, not at the first call; kept so that it is parsed once.
        address = None if self.shared is None else address_of(self.shared, name=self._named)
        object.__setattr__(self, "_address", address)

    @property
    def shared(self) -> object | None:
        """The Redis given (``redis`` or ``redis_url``), None for a budget of one client."""
        return self.redis if self.redis is not None else self.redis_url

    @property
    def address(self) -> Address | None:
        """Where the shared budget lives, parsed and checked."""
        return self._address

    @property
    def _named(self) -> str:
        return "redis" if self.redis is not None else "redis_url"

    @property
    def rate(self) -> float:
        """Requests per second."""
        return self.requests / self.per

    @property
    def burst_size(self) -> int:
        """The burst in force: ``burst``, or ``min(10, requests)``."""
        return self.burst if self.burst is not None else min(10, self.requests)

    def share(self, fraction: float) -> RateLimit:
        """The same budget cut to ``fraction`` of its rate and burst (a burst of at
        least one), unshared."""
        return RateLimit(
            self.requests,
            per=self.per / fraction,
            burst=max(1, math.floor(self.burst_size * fraction)),
        )


def _shown(redis: object) -> str:
    """A Redis address for a repr: never its password."""
    return repr(redacted(redis) if isinstance(redis, str) else redis)


def _check_name(value: object, name: str, *, empty: bool) -> None:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {type(value).__name__}")
    if not (value or empty) or len(value) > _LONGEST_NAME or not value.isprintable():
        raise ValueError(
            f"{name} must be {'' if empty else 'non-empty, '}printable and at most"
            f" {_LONGEST_NAME} characters, got {value!r}"
        )
    if "{" in value or "}" in value:
        raise ValueError(
            f"{name} must not hold braces: whop_async puts the key in braces itself, as"
            f" the hash tag that keeps a budget's keys in one Cluster slot; got {value!r}"
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
