"""The one way to an operation's budget: take a turn, report how it went.

A store holds the budgets of one client's key (or of every client that shares it) and
runs the rules of ``operation.py`` on them. ``MemoryStore`` keeps them in this process;
the Redis store (``redis.py``) keeps them where many processes share them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

from .limit import RateLimit
from .operation import Decision, OperationBudget, Report, Standing, apply


class Store(Protocol):
    """Where operation budgets are kept."""

    nap: float
    """How long a waiting request sleeps at most before asking again (others may
    change a shared budget meanwhile)."""

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

    def __init__(self, limit: RateLimit | None, now: Callable[[], float]) -> None:
        self._ceiling = limit.rate if limit is not None else math.inf
        self._burst = limit.burst_size if limit is not None else 1
        self.now = now
        self._budgets: dict[str, OperationBudget] = {}

    def budget(self, operation: str) -> OperationBudget:
        """The budget of ``operation``, created on first use."""
        budget = self._budgets.get(operation)
        if budget is None:
            budget = self._budgets[operation] = OperationBudget.new(self._ceiling, self._burst)
        return budget

    async def take(self, operation: str) -> Decision:
        """A turn now, or how long to wait."""
        return self.budget(operation).take(self.now())

    async def report(self, operation: str, report: Report) -> Standing | None:
        """Apply what a turn came to."""
        return apply(self.budget(operation), report, self.now())

    async def close(self) -> None:
        """Nothing is held outside the process."""
