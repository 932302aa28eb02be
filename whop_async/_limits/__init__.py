"""The rate-limit engine: rules in one place, state in memory or in Redis."""

from .engine import Engine, OperationLimiter, Patience, Stopped, Ticket, WaitTooLong
from .limit import ClientStats, RateLimit
from .rules import WaitHint

__all__ = [
    "ClientStats",
    "Engine",
    "OperationLimiter",
    "Patience",
    "RateLimit",
    "Stopped",
    "Ticket",
    "WaitHint",
    "WaitTooLong",
]
