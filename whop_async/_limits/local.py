"""Operation budgets held in this process's memory."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

from .limit import RateLimit
from .rules import OperationBudget

T = TypeVar("T")


class LocalStore:
    """One budget per operation, in memory; the rules run on them directly."""

    # Nothing changes a local budget behind the engine's back: a wait can be slept whole.
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

    def update_now(self, operation: str, change: Callable[[OperationBudget, float], T]) -> T:
        """Apply ``change(budget, now)`` and return what it returns."""
        return change(self.budget(operation), self.now())

    async def update(self, operation: str, change: Callable[[OperationBudget, float], T]) -> T:
        """The same as ``update_now``, for callers that serve every store alike."""
        return self.update_now(operation, change)

    async def close(self) -> None:
        """Nothing is held outside the process."""
