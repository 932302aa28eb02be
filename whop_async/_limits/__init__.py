"""The rate-limit engine: one module per algorithm, the store the one way to a budget's
state, and the engine that takes turns and reports their answers."""

from .engine import Engine, NothingAnswers, Turn
from .gate import WaitHint
from .limit import ClientStats, RateLimit
from .limiter import Bound, Closed, Patience, Stopped, WaitReason, WaitTooLong

__all__ = [
    "Bound",
    "ClientStats",
    "Closed",
    "Engine",
    "NothingAnswers",
    "Patience",
    "RateLimit",
    "Stopped",
    "Turn",
    "WaitHint",
    "WaitReason",
    "WaitTooLong",
]
