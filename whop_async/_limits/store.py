"""The one way to an operation's budget: take a turn, report how it went.

A store holds the budgets of one client's key (or of every client that shares it) and
runs the rules of ``operation.py`` on them. ``MemoryStore`` keeps them in this process;
the Redis store (``redis.py``) keeps them where many processes share them.

Each way in has two forms: ``take_now`` and ``report_now`` answer at once when the store
can without I/O (a budget in memory, always; an accepted answer to a shared budget,
which goes with the next round trip), and say so; ``take`` and ``report`` await the
store. Most turns of most calls are answered at once.
"""

from __future__ import annotations

import math
from typing import Protocol

from .._clock import Clock
from .limit import RateLimit
from .operation import Decision, OperationBudget, Report, Standing, apply

# report_now's answer when nothing more is to be done: applied, and no refusal to tell.
APPLIED: tuple[bool, Standing | None] = (True, None)
NOT_NOW: tuple[bool, Standing | None] = (False, None)


class Store(Protocol):
    """Where operation budgets are kept."""

    nap: float
    """How long a waiting request sleeps at most before asking again (others may
    change a shared budget meanwhile)."""

    def take_now(self, operation: str) -> Decision | None:
        """A turn of ``operation`` now, or how long to wait; None when only ``take``
        can tell."""
        ...

    def report_now(self, operation: str, report: Report) -> tuple[bool, Standing | None]:
        """Apply what a turn came to, if that needs no I/O: (True, a Standing after a
        refusal); (False, None) when only ``report`` can."""
        ...

    async def take(self, operation: str) -> Decision:
        """A turn of ``operation`` now, or how long to wait."""
        ...

    async def report(self, operation: str, report: Report) -> Standing | None:
        """Apply what a turn came to; a Standing after a refusal."""
        ...

    async def close(self) -> None:
        """Release what is held outside the process."""
        ...


class MemoryStore:
    """One budget per operation, in this process's memory."""

    # Nothing changes a budget here behind the engine's back: a wait is slept whole.
    nap = math.inf

    def __init__(self, limit: RateLimit | None, clock: Clock) -> None:
        self._ceiling = limit.rate if limit is not None else math.inf
        self._burst = limit.burst_size if limit is not None else 1
        self._clock = clock
        self._budgets: dict[str, OperationBudget] = {}

    def budget(self, operation: str) -> OperationBudget:
        """The budget of ``operation``, created on first use."""
        budget = self._budgets.get(operation)
        if budget is None:
            budget = self._budgets[operation] = OperationBudget.new(self._ceiling, self._burst)
        return budget

    def forget(self, operation: str, now: float) -> bool:
        """Forget ``operation``'s budget if it is at rest (it is made anew when next
        needed); True when it is not kept."""
        budget = self._budgets.get(operation)
        if budget is not None and not budget.at_rest(now):
            return False
        self._budgets.pop(operation, None)
        return True

    def take_now(self, operation: str) -> Decision:
        """A turn now, or how long to wait."""
        return self.budget(operation).take(self._clock.monotonic())

    def report_now(self, operation: str, report: Report) -> tuple[bool, Standing | None]:
        """Apply what a turn came to: always at once."""
        standing = apply(self.budget(operation), report, self._clock.monotonic())
        return APPLIED if standing is None else (True, standing)

    async def take(self, operation: str) -> Decision:
        """The same as ``take_now``."""
        return self.take_now(operation)

    async def report(self, operation: str, report: Report) -> Standing | None:
        """The same as ``report_now``."""
        return self.report_now(operation, report)[1]

    async def close(self) -> None:
        """Nothing is held outside the process."""
