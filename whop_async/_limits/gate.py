"""The gate after a refusal, and its probe.

After a 429 nothing of that operation is sent until one probe request finds the server
willing again. The probe goes when the server's wait hint says it may be worth asking (a
whole-second hint is an upper bound: ``Retry-After: 1`` may mean 10 ms), then at growing
steps. A hint of zero, a negative one or a date already past says nothing ("not before
your next sensible try", never "hammer"): refused requests are then spaced by the steps
alone, growing while the refusals go on. A hint is believed only until it is broken: once
the server refuses past the moment it named, the steps grow as if it had named none.

Pure: no clock, no I/O; the time is an argument.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import attrs

# A probe that is never answered (its worker died) stops holding the gate after this.
# Far longer than Whop takes to answer, so a live probe is not doubled; short enough that
# a dead one holds the others back no longer than a fixed window would. A probe still
# in flight after it (a server that hangs) lets one more go every five seconds. A probe
# that ends otherwise ends its lease at once: accepted, the gate opens; refused, the
# next goes a step later; failed (5xx, timeout), a step later too, the server having
# said nothing of its limit; cancelled, the next may probe at once.
PROBE_LEASE = 5.0
# The first probe after a refusal waits one pacing interval, at most this long, so a
# stray refusal costs a call little (service: a stray 429 cost one call 0.31 s whatever
# the hint)...
FIRST_STEP_LONGEST = 0.1
# ...or this with no rate known (bucket-ms, rate_limit=None: a bucket is willing again
# within a token's refill).
FIRST_STEP_UNPACED = 0.02
# The shortest first step, for a pace of more than a thousand a second: below a
# millisecond a step is finer than the event loop's timers.
SHORTEST_STEP = 0.001
# Probing steps double up to this while the server refuses with no usable hint: at most
# one refused request every two seconds per operation, however long refusals go on.
MAX_STEP = 2.0
# Within a whole-second hint's uncertainty, steps are at most this share of it, so the
# end of the wait is found closely (window-s: a window's end within a quarter second).
HINT_STEP_SHARE = 0.25
# A hint longer than the caller's cap is not believed at once: the gate reopens for a
# probe after this, then at doubling intervals, never later than the cap. One second:
# a server that asks for a day (`Retry-After: 86400`) and is willing at once costs the
# calls after it a second, and one that meant it a probe a second, then fewer.
DISTRUST_STEP = 1.0
# After a refusal that lasted (a fixed window), the first probe waits this share of the
# last wait: a window is not probed every few milliseconds, and a quarter of the wait
# is found again within a quarter of it. The last wait is kept until a gate closes and
# opens again, which measures it anew.
LAST_WAIT_SHARE = 0.25


@attrs.frozen
class WaitHint:
    """How long the server asked to wait, as bounds: a hint in whole seconds was
    rounded, so the true wait lies in ``(seconds - 1, seconds]``; no hint, or one of
    zero or less, says nothing (``upper`` infinite)."""

    lower: float = 0.0
    upper: float = math.inf

    @classmethod
    def of(cls, seconds: float | None, resolution: float) -> WaitHint:
        """Bounds from a hint in ``seconds`` given to ``resolution`` (1.0 for whole
        seconds, 0.001 for milliseconds)."""
        if seconds is None or not math.isfinite(seconds) or seconds <= 0:
            return NO_HINT
        return cls(lower=max(0.0, seconds - resolution), upper=seconds)

    def beyond(self, cap: float) -> bool:
        """True when the server named a wait longer than ``cap``."""
        return math.isfinite(self.upper) and self.upper > cap


NO_HINT = WaitHint()


def first_step(rate: float) -> float:
    """The first probe's step after a refusal at ``rate`` (inf: no rate known)."""
    if math.isinf(rate):
        return FIRST_STEP_UNPACED
    return min(FIRST_STEP_LONGEST, max(1.0 / rate, SHORTEST_STEP))


class Wait(NamedTuple):
    """Not now: how long to wait before asking again. ``gated``: at a closed gate, where
    the probe's answer may end the wait early; ``firm`` False: only an upper bound (a
    probe in flight may be answered any moment)."""

    seconds: float
    gated: bool = False
    firm: bool = True


@attrs.define
class Probed:
    """Something closed until one probe request, at a time, finds the server willing."""

    passing: bool = True
    probe_at: float = -math.inf
    lease_until: float = -math.inf

    def wait(self, now: float) -> Wait | None:
        """None while requests pass or the probe is due (see ``take_probe``), else the wait."""
        if self.passing:
            return None
        if now < self.lease_until:
            return Wait(self.lease_until - now, gated=True, firm=False)
        if now < self.probe_at:
            return Wait(self.probe_at - now, gated=True)
        return None

    def take_probe(self, now: float) -> None:
        """The probe goes now: the others wait for its answer (or its lease)."""
        self.lease_until = now + PROBE_LEASE

    def probe_ended(self, now: float) -> None:
        """The probe ended with no answer at all (cancelled, its task gone): the next
        request may probe at once."""
        self.lease_until = -math.inf
        self.probe_at = min(self.probe_at, now)


@attrs.define
class Gate(Probed):
    """One operation's gate: closed after a refusal until a probe finds the server willing.

    Attributes:
        latest: the moment by which a refusal's hint promised the server would be
            willing (of several hints, the soonest): probes never wait past it, however
            long their step has grown.
        step: the wait between probes, growing while they are refused.
        probes_refused: refused probes since the gate closed.
    """

    latest: float = math.inf
    step: float = 0.0
    floor: float = 0.0
    opened_at: float = -math.inf
    closed_at: float = -math.inf
    last_wait: float = 0.0
    probes_refused: int = 0

    def close(self, now: float, hint: WaitHint, first_step: float, cap: float) -> None:
        """A refusal of a request sent while open: hold everyone back until a probe.

        The first probe waits a step, or ``LAST_WAIT_SHARE`` of what the server needed
        last time, if that was longer: a server whose refusals last (a fixed window) is not probed
        every few milliseconds, one that is willing again at once (a bucket) is. No
        step is shorter than ``first_step``, whatever the hint or the cap.
        """
        self.passing = False
        self.closed_at = now
        self.probes_refused = 0
        self.floor = first_step
        distrusted = hint.beyond(cap)
        step = (
            min(DISTRUST_STEP, cap)
            if distrusted
            else min(self.last_wait * LAST_WAIT_SHARE, MAX_STEP)
        )
        self.step = max(step, first_step)
        self.latest = math.inf
        self._schedule(now, hint, cap)

    def probe_refused(self, now: float, hint: WaitHint, cap: float) -> None:
        """The probe was refused: ask again a longer step later (within a hint's
        uncertainty, at most a share of it, while the hint is believed)."""
        self.lease_until = -math.inf
        self.probes_refused += 1
        broken = now >= self.latest
        if hint.beyond(cap):
            longest = cap
        elif math.isfinite(hint.upper) and not broken:
            longest = (hint.upper - hint.lower) * HINT_STEP_SHARE
        else:
            longest = MAX_STEP
        self.step = max(self.floor, min(2 * self.step, max(longest, self.step)))
        if broken:
            # The promise was not kept: the new one is believed no more than no hint.
            self.latest = math.inf
            hint = NO_HINT
        self._schedule(now, hint, cap)

    def probe_failed(self, now: float) -> None:
        """The probe got no answer of the server's (a timeout, a 5xx): try again a
        step later."""
        self.lease_until = -math.inf
        self.probe_at = now + self.step

    def probe_accepted(self, now: float) -> None:
        """The server took the probe: everyone may send again."""
        self.passing = True
        self.lease_until = -math.inf
        self.opened_at = now
        if self.closed_at > -math.inf:  # a probe's answer to a gate that never closed
            self.last_wait = now - self.closed_at

    def _schedule(self, now: float, hint: WaitHint, cap: float) -> None:
        if hint.beyond(cap):
            # Not slept through on the server's word alone: a probe finds out sooner.
            self.probe_at = now + self.step
            return
        self.latest = min(self.latest, now + hint.upper)
        # From the earliest the wait may end, closer and closer to its latest.
        self.probe_at = min(now + hint.lower + self.step, self.latest)
