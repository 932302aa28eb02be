"""How a FakeWhop's 429 says how long to wait: Whop's way, other servers' ways, and the
edges real servers reach (a wait of zero, a negative one, a date already past).

Honest styles round the wait up, as real servers do, so a hint is never shorter than
the wait it stands for. Edge styles say the same thing whatever the wait.
"""

from __future__ import annotations

import math
from email.utils import formatdate
from typing import Literal, get_args

Hint = Literal[
    "message",
    "retry-after",
    "retry-after-ms",
    "retry-after-date",
    "none",
    "message-zero",
    "retry-after-zero",
    "retry-after-negative",
    "retry-after-ms-zero",
    "retry-after-past",
]
HINTS: tuple[Hint, ...] = get_args(Hint)
EDGE_HINTS: tuple[Hint, ...] = HINTS[HINTS.index("message-zero") :]
NO_WAIT_MESSAGE = "Rate limit exceeded."
# How far before its own Date a "retry-after-past" date lies: a minute reads as a clock
# that is behind, not as a typo.
_PAST = 60


def http_date(moment: float) -> str:
    """``moment`` (seconds since the epoch) as an HTTP-date, its fraction dropped."""
    return formatdate(moment, usegmt=True)


def hinted(hint: Hint, wait: float, now: float) -> tuple[dict[str, str], str]:
    """The headers and the message of a 429 in style ``hint``, for a wait of ``wait``
    seconds, the server's clock reading ``now`` (seconds since the epoch)."""
    # Float noise must not turn an exact wait of 1 s into "2 seconds".
    wait = round(wait, 6)
    seconds = max(1, math.ceil(wait))
    match hint:
        case "message":
            return {}, f"Try again in {seconds} seconds."
        case "message-zero":
            return {}, "Try again in 0 seconds."
        case "retry-after":
            return {"Retry-After": str(seconds)}, NO_WAIT_MESSAGE
        case "retry-after-zero":
            return {"Retry-After": "0"}, NO_WAIT_MESSAGE
        case "retry-after-negative":
            return {"Retry-After": "-5"}, NO_WAIT_MESSAGE
        case "retry-after-ms":
            return {"retry-after-ms": str(max(1, math.ceil(wait * 1000)))}, NO_WAIT_MESSAGE
        case "retry-after-ms-zero":
            return {"retry-after-ms": "0"}, NO_WAIT_MESSAGE
        case "retry-after-date":
            return {"Retry-After": http_date(math.ceil(now + wait))}, NO_WAIT_MESSAGE
        case "retry-after-past":
            return {"Retry-After": http_date(math.floor(now) - _PAST)}, NO_WAIT_MESSAGE
    return {}, NO_WAIT_MESSAGE
