"""FakeWhop's options checked and turned into what it plays: budgets, spans, accounts.

Every check raises ``OptionError`` naming the option, so ``fake-server`` can name the
flag instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TypeVar

import attrs

from ._styles import LIMITERS, Budget, Limiter, Span

T = TypeVar("T")

DEFAULT_API_KEY = "sk_test_fake_whop"
# The account a FakeWhop with a single key serves, in ``stats.accounts``.
DEFAULT_ACCOUNT = "default"
# A throttle with no cycle has no end to tell of: its 429s ask for the shortest whole
# second a real server would say.
THROTTLE_WAIT = 1.0


class OptionError(ValueError):
    """An option out of range; ``requirement`` says what it must be."""

    def __init__(self, option: str, requirement: str) -> None:
        super().__init__(f"{option} {requirement}")
        self.option, self.requirement = option, requirement


def require(condition: bool, option: str, requirement: str) -> None:
    if not condition:
        raise OptionError(option, requirement)


def is_seconds(value: float, *, above_zero: bool = False) -> bool:
    return math.isfinite(value) and (value > 0 if above_zero else value >= 0)


def span(option: str, at: float, length: float) -> Span:
    """``(at, length)`` checked: a length of ``inf`` lasts to the end."""
    require(
        is_seconds(at) and (length == math.inf or is_seconds(length, above_zero=True)),
        option,
        f"must be at 0 or more seconds, for more than 0 seconds (inf: to the end),"
        f" got {at:g},{length:g}",
    )
    return Span(at, length)


def budget(
    rate_limit: int | None,
    per: float,
    limiter: Limiter,
    burst: int,
    neighbour: tuple[float, float, float | None],
    limit_drop: tuple[float, float, float] | None,
) -> Budget | None:
    """The budget each operation starts with, checked; None without a limit."""
    require(
        limiter in LIMITERS, "limiter", f"must be one of {', '.join(LIMITERS)}, got {limiter!r}"
    )
    neighbour_rate, neighbour_from, neighbour_for = neighbour
    if rate_limit is None:
        require(neighbour_rate == 0, "neighbour_rate", "needs a rate limit to share")
        require(limit_drop is None, "limit_drop", "needs a rate limit to lower")
        return None
    require(rate_limit >= 1, "rate_limit", f"must be at least 1, got {rate_limit}")
    require(is_seconds(per, above_zero=True), "per", f"must be more than 0 seconds, got {per}")
    require(burst >= 1, "burst", f"must be at least 1, got {burst}")
    # A neighbour that never leaves must leave a request a window, or none would pass.
    most = (rate_limit - 1) / per if neighbour_for is None else math.inf
    require(
        0 <= neighbour_rate <= most,
        "neighbour_rate",
        f"must be 0 to {most:g} requests a second under this limit, got {neighbour_rate}",
    )
    require(is_seconds(neighbour_from), "neighbour_from", "must be 0 or more seconds")
    require(
        neighbour_for is None or is_seconds(neighbour_for, above_zero=True),
        "neighbour_for",
        "must be more than 0 seconds (None: to the end)",
    )
    checked = Budget(rate_limit, per, neighbour_rate=neighbour_rate)
    if neighbour_rate:
        length = math.inf if neighbour_for is None else neighbour_for
        checked = attrs.evolve(checked, neighbour=Span(neighbour_from, length))
    if limit_drop is not None:
        at, length, factor = limit_drop
        require(factor >= 1, "limit_drop", f"needs a factor of 1 or more, got {factor}")
        checked = attrs.evolve(checked, drop=span("limit_drop", at, length), factor=factor)
    return checked


def check_failures(
    fail_first: int, fault_rate: float, drop_rate: float, hang_rate: float, latency: float
) -> None:
    require(fail_first >= 0, "fail_first", f"must be 0 or more, got {fail_first}")
    require(0 <= fault_rate <= 1, "fault_rate", f"must be a share, 0 to 1, got {fault_rate}")
    require(
        0 <= drop_rate <= 1 - fault_rate,
        "drop_rate",
        f"must be a share, 0 to {1 - fault_rate:g} (1 less the fault rate), got {drop_rate}",
    )
    room = 1 - fault_rate - drop_rate
    require(
        0 <= hang_rate <= room,
        "hang_rate",
        f"must be a share, 0 to {room:g} (1 less the fault and drop rates), got {hang_rate}",
    )
    require(is_seconds(latency), "latency", f"must be 0 or more seconds, got {latency}")


def check_hostility(nesting: int, date_skew: float, listen_after: float) -> None:
    require(nesting >= 0, "nesting", f"must be 0 or more levels, got {nesting}")
    require(math.isfinite(date_skew), "date_skew", f"must be a number of seconds, got {date_skew}")
    require(
        is_seconds(listen_after), "listen_after", f"must be 0 or more seconds, got {listen_after}"
    )


@attrs.frozen
class Throttle:
    """A share of requests refused with a 429 whatever the limit, all the time or in the
    first ``on`` seconds of every ``on + off``."""

    rate: float = 0.0
    cycle: tuple[float, float] | None = None

    def __attrs_post_init__(self) -> None:
        require(0 <= self.rate <= 1, "throttle_rate", f"must be a share, 0 to 1, got {self.rate}")
        if self.cycle is not None:
            require(self.rate > 0, "throttle_cycle", "needs a throttle rate above 0")
            require(
                all(is_seconds(part, above_zero=True) for part in self.cycle),
                "throttle_cycle",
                "must be ON,OFF: both more than 0 seconds, got {:g},{:g}".format(*self.cycle),
            )

    def refusing(self, moment: float) -> float | None:
        """None while requests pass; else the seconds the refusals last from ``moment``."""
        if not self.rate:
            return None
        if self.cycle is None:
            return THROTTLE_WAIT
        on, off = self.cycle
        into = moment % (on + off)
        return on - into if into < on else None


@attrs.frozen(kw_only=True)
class Account:
    """One credential: its key, its budget for each operation, and what befalls it."""

    key: str
    budget: Budget | None
    revoked_at: float = math.inf
    outage: Span | None = None
    hang: Span | None = None

    def revoked(self, moment: float) -> bool:
        return moment >= self.revoked_at

    def hangs(self, moment: float) -> bool:
        return self.hang is not None and self.hang.holds(moment)

    def out(self, moment: float) -> bool:
        return self.outage is not None and self.outage.holds(moment)


@attrs.frozen(kw_only=True)
class AccountOptions:
    """The options that make a FakeWhop's accounts, as given."""

    api_key: str
    api_keys: Mapping[str, str] | None
    rate_limit: Mapping[str, int] | None
    revoked_at: Mapping[str, float] | None
    outage: Mapping[str, tuple[float, float]] | None
    hang: Mapping[str, tuple[float, float]] | None


def accounts(
    given: AccountOptions, budget_for: Callable[[int | None], Budget | None], rate_limit: int | None
) -> dict[str, Account]:
    """Each account by name, checked; ``budget_for(limit)`` makes an account's budget."""
    keys = _keys(given.api_key, given.api_keys)
    names = set(keys)
    limits = _for_accounts("account_rate_limit", given.rate_limit, names)
    revoked_at = _for_accounts("account_revoked_at", given.revoked_at, names)
    outages = _for_accounts("account_outage", given.outage, names)
    hangs = _for_accounts("account_hang", given.hang, names)
    require(
        all(limit >= 1 for limit in limits.values()),
        "account_rate_limit",
        "must be at least 1 for each account",
    )
    require(
        all(is_seconds(moment) for moment in revoked_at.values()),
        "account_revoked_at",
        "must be 0 or more seconds for each account",
    )
    return {
        name: Account(
            key=key,
            budget=budget_for(limits.get(name, rate_limit)),
            revoked_at=revoked_at.get(name, math.inf),
            outage=span("account_outage", *outages[name]) if name in outages else None,
            hang=span("account_hang", *hangs[name]) if name in hangs else None,
        )
        for name, key in keys.items()
    }


def _keys(api_key: str, api_keys: Mapping[str, str] | None) -> dict[str, str]:
    if api_keys is None:
        return {DEFAULT_ACCOUNT: api_key}
    require(
        api_key == DEFAULT_API_KEY,
        "api_keys",
        "replaces the single api_key: give one or the other",
    )
    require(bool(api_keys), "api_keys", "must name at least one account")
    require(
        all(name and key for name, key in api_keys.items()),
        "api_keys",
        "needs a name and a key for each account",
    )
    owners: dict[str, str] = {}
    for name, key in api_keys.items():
        # Names only: the keys stay out of messages.
        require(key not in owners, "api_keys", f"gives {owners.get(key)} and {name} one key")
        owners[key] = name
    return dict(api_keys)


def _for_accounts(option: str, values: Mapping[str, T] | None, names: set[str]) -> Mapping[str, T]:
    values = values or {}
    unknown = sorted(set(values) - names)
    require(not unknown, option, f"names no account: {', '.join(unknown)}")
    return values
