"""The retry budget, client-wide: retries never multiply traffic in an outage, and a
quiet client can always retry again (Finagle's retry budget).

It holds at most ``CAP`` retries; each success adds ``PER_SUCCESS``, each second adds
``PER_SECOND``, each retry takes one. A call that must not fail for want of a retry (a
bulk call) borrows instead, and waits until the budget has refilled what it borrowed:
the run goes on at the pace the budget allows, and never waits on answers that only its
own retries could bring.

Pure: no clock, no I/O; the time is an argument.
"""

from __future__ import annotations

import math

import attrs

# As Finagle's budget, with its share: a retry for every five successes (20 % more
# requests at most while calls succeed); one a second while none do, so an outage costs
# a request a second, not a retry per id (Finagle allows ten a second: against Whop's
# ten that would be the whole budget); no more than twenty saved up, so a quiet client
# that meets a failing server spends at most twenty before the pace is one a second
# (faults: 10 % failures over 2,000 ids cost at most 1.1 x the requests of the ids; at
# 100 % 503 the breaker holds the rest).
CAP = 20.0
PER_SUCCESS = 0.2
PER_SECOND = 1.0
# A new client starts half full: its first failures may be retried at once, but a client
# made anew for each call cannot retry a failing server twenty times a call.
FIRST_BALANCE = CAP / 2


@attrs.define
class RetryBudget:
    """Retries saved up (``balance``, below zero while borrowed) as of ``stamp``."""

    balance: float = FIRST_BALANCE
    stamp: float = -math.inf

    def deposit(self) -> None:
        """A call succeeded."""
        self.balance = min(CAP, self.balance + PER_SUCCESS)

    def withdraw(self, now: float) -> bool:
        """True, and one retry spent, when the budget has one at ``now``."""
        self._refill(now)
        if self.balance < 1.0:
            return False
        self.balance -= 1.0
        return True

    def borrow(self, now: float) -> float:
        """One retry spent, on credit if need be: seconds until the budget has refilled
        what is owed (0 when it had the retry)."""
        self._refill(now)
        self.balance -= 1.0
        return max(0.0, -self.balance / PER_SECOND)

    def _refill(self, now: float) -> None:
        if math.isfinite(self.stamp):
            self.balance = min(CAP, self.balance + (now - self.stamp) * PER_SECOND)
        self.stamp = now
