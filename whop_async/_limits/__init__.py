"""The rate-limit engine: rules in one place, state in memory or in Redis."""

from .engine import Engine, OperationLimiter, RetryBudget, Ticket, WaitTooLong
from .limit import ClientStats, RateLimit
from .rules import WaitHint

__all__ = [
    "ClientStats",
    "Engine",
    "OperationLimiter",
    "RateLimit",
    "RetryBudget",
    "Ticket",
    "WaitHint",
    "WaitTooLong",
]
