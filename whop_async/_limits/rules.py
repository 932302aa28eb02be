"""The rules of the rate-limit engine, and nothing else: no asyncio, no Redis, no clock.

Every function takes the time as an argument and changes only the state it is given,
so the same rules run on state held in memory and on state read from (and written
back to) Redis, and can be tested by moving the time by hand.

One operation's budget (``OperationBudget``) has three parts, each with one job:

- ``Pacing``: GCRA at the current rate, with a burst allowance.
- ``RateEstimate``: what rate the server accepts. A refusal during a stretch of
  refusals cuts the rate to what the server was seen to accept over that stretch; with
  no refusal, the rate climbs back, slowly at first, up to the known limit.
- ``Gate``: after a refusal nothing is sent until one probe request finds the server
  willing again. The probe goes out when the server's wait hint says it may be worth
  asking (a whole-second hint is an upper bound: ``Retry-After: 1`` may mean 10 ms),
  then at growing intervals.

The opening of an unknown limit (``SlowStart``) is the fourth part; it bounds requests
in flight, which only the process that sends them can count, so it stays local.
"""

from __future__ import annotations

import enum
import math
from typing import NamedTuple

import attrs

# A rate is estimated from at most this many seconds of what the server accepted...
ESTIMATE_WINDOW = 1.0
# ...and trusted only from a stretch of refusals at least this long, holding at least
# this many accepted answers (or a whole window): the first refusal comes after the
# server's opening allowance, which says nothing about its rate, and a handful of
# answers around one pause says little more.
MIN_ESTIMATE_SPAN = 0.25
MIN_ESTIMATE_COUNT = 10
# With no refusal for this long, a stretch of refusals has ended.
EPISODE_QUIET = 2.0
# After a cut, the rate climbs as ``1 + CLIMB * t**3`` times the cut (t in seconds):
# hardly at all for the first second, where the cut was most likely right, so a rate
# held at the limit goes over it only a little, every second or two; then faster and
# faster, so a limit that comes back (a neighbour leaves) is found again within
# seconds (x1.5 after 3.7 s, x2 after 4.6 s).
CLIMB = 0.01
# With no limit known, a first guess at the rate doubles every this many seconds.
RAMP_DOUBLING = 0.4
MIN_RATE = 0.1
# Accepted answers are counted in slots of this many seconds for the estimate.
SLOT = 0.01
# Slots kept before the ones older than the window are forgotten: twice the window's.
_KEPT_SLOTS = 2 * round(ESTIMATE_WINDOW / SLOT)
# A probe that is never answered (its worker died) stops holding the gate after this.
PROBE_LEASE = 5.0
# The first probe after a refusal waits one pacing interval, at most this long (so a
# stray refusal costs a call little), or this with no rate known.
FIRST_STEP_LONGEST = 0.1
FIRST_STEP_UNPACED = 0.02
# Probing steps grow up to this, while the server keeps refusing with no hint.
MAX_STEP = 2.0
MIN_STEP = 0.001
# A hint longer than the caller's cap is not believed at once: the gate reopens for a
# probe after this, then at doubling intervals, never later than the cap.
DISTRUST_STEP = 1.0
# Failures in a row, with no answer of the server's between, that mean it is down; a
# probe then goes after the first step, doubling while it fails, up to the longest.
BREAKER_TRIP = 5
BREAKER_FIRST_STEP = 0.5
BREAKER_MAX_STEP = 10.0
# The retry budget: at most this many retries saved up, refilled by each success and
# by the clock.
BUDGET_CAP = 20.0
BUDGET_PER_SUCCESS = 0.2
BUDGET_PER_SECOND = 1.0
SLOW_START_WINDOW = 4
# Past this window, no permit count is reached: the window has done its job.
SLOW_START_END = 128


class Turn(enum.Enum):
    """What a request may do now."""

    SEND = "send"
    PROBE = "probe"
    WAIT = "wait"


class Decision(NamedTuple):
    """A turn taken (``SEND`` or ``PROBE``, ``at`` a moment in the budget's time), or
    how long to ``wait`` before asking again (``gated``: at a closed gate, where an
    answer to the probe may end the wait early; ``firm`` False: the wait is only an
    upper bound, as for a probe in flight, which may be answered any moment). A tuple:
    one is made per request."""

    turn: Turn
    wait: float = 0.0
    gated: bool = False
    at: float = 0.0
    firm: bool = True


@attrs.frozen
class WaitHint:
    """How long the server asked to wait, as bounds: a hint in whole seconds was
    rounded, so the true wait lies in ``(seconds - 1, seconds]``; no hint says nothing."""

    lower: float = 0.0
    upper: float = math.inf

    @classmethod
    def of(cls, seconds: float | None, resolution: float) -> WaitHint:
        """Bounds from a hint in ``seconds`` given to ``resolution`` (1.0 for whole
        seconds, 0.001 for milliseconds); None, or a hint that is no number: no bounds."""
        if seconds is None or not math.isfinite(seconds):
            return cls()
        seconds = max(0.0, seconds)
        return cls(lower=max(0.0, seconds - resolution), upper=seconds)

    def beyond(self, cap: float) -> bool:
        """True when the server named a wait longer than ``cap``."""
        return math.isfinite(self.upper) and self.upper > cap


@attrs.define
class Pacing:
    """GCRA: the theoretical arrival time of the next request."""

    tat: float = -math.inf

    def take(self, now: float, rate: float, burst: int) -> float:
        """0 and the turn taken, or how long until one is due."""
        if math.isinf(rate):
            return 0.0
        interval = 1.0 / rate
        earliest = self.tat - (burst - 1) * interval
        if now < earliest:
            return earliest - now
        self.tat = max(self.tat, now) + interval
        return 0.0

    def no_burst(self, now: float, rate: float, burst: int) -> None:
        """The next request waits a full interval, whatever allowance had built up."""
        if not math.isinf(rate):
            self.tat = max(self.tat, now + burst / rate)


# The phases of a RateEstimate: paced at a measured (or told) rate; doubling from a first
# guess; doubling again from half the rate at which the doubling was refused.
MEASURED, RAMPING, OVERSHOT = "measured", "ramping", "overshot"


@attrs.define
class RateEstimate:
    """The rate to pace at: the known limit, a cut, and the climb back from it.

    ``accepted`` counts accepted answers per slot of time, the evidence a cut is made
    from: what the server took, not what was sent (a request still in flight may yet
    be refused). With no limit known, the first refusal says only that an opening
    allowance is spent: the rate starts at twice what the server accepted over the last
    second and doubles (``RAMPING``) until refused, then again from what was accepted
    (``OVERSHOT``), until a refusal measures the rate over a stretch of them.
    """

    ceiling: float
    cut_rate: float = math.inf
    last_cut: float = -math.inf
    phase: str = MEASURED
    episode_start: float = -math.inf
    last_refusal: float = -math.inf
    accepted: dict[int, int] = attrs.field(factory=dict)

    def rate(self, now: float) -> float:
        """The rate in force at ``now``: a cut, climbed back from since, up to the ceiling."""
        if math.isinf(self.cut_rate):
            return self.ceiling
        if self.phase != MEASURED:
            return min(self.ceiling, self.cut_rate)
        elapsed = min(max(0.0, now - self.last_cut), 600.0)
        return min(self.ceiling, self.cut_rate * (1.0 + CLIMB * elapsed**3))

    def note_accepted(self, count: int, now: float) -> None:
        """``count`` answers accepted by ``now``."""
        if count:
            slot = int(now // SLOT)
            if slot not in self.accepted and len(self.accepted) >= _KEPT_SLOTS:
                # Only the last window is ever read: a service that is never refused
                # would otherwise keep a slot for every moment it was answered.
                self._forget_before(now - ESTIMATE_WINDOW)
            self.accepted[slot] = self.accepted.get(slot, 0) + count
            if self.phase != MEASURED:
                # Grown by what the server takes, not by the clock, so a ramp stands
                # still while the gate is closed: it doubles every RAMP_DOUBLING seconds
                # of being accepted at the rate it has.
                self.cut_rate += count * math.log(2) / RAMP_DOUBLING

    def refused(self, sent_at: float, now: float) -> None:
        """A refusal of a request sent at ``sent_at`` while the gate was open: once per
        round, cut the rate to what the server accepted over the stretch of refusals it
        belongs to."""
        if now - self.last_refusal > EPISODE_QUIET:
            self.episode_start = sent_at
        self.last_refusal = now
        if sent_at < self.last_cut:
            return  # sent before the last cut: it says nothing about the rate now
        current = self.rate(now)
        if self.phase == RAMPING:
            # The doubling went over the limit: from what the server took over the
            # last second, it doubles again, and the refusals to come measure the rate.
            self.phase, self.episode_start = OVERSHOT, sent_at
            self._cut(min(current, self._last_second(now)), now)
            return
        measured = self._accepted_rate(now, since=self.episode_start)
        if measured is not None:
            # At most halved at once: a short stretch with a long pause in it (a stray
            # refusal's exact wait) understates the rate, and a lower limit shows itself
            # again in the next round.
            self.phase = MEASURED
            self._cut(min(current, max(measured, current / 2)), now)
        elif self.phase == OVERSHOT:
            self._cut(min(current, self._last_second(now)), now)
        elif math.isinf(self.ceiling) and math.isinf(self.cut_rate):
            opening = self._last_second(now)
            if opening:  # with nothing accepted yet, there is nothing to start from
                # Twice what was accepted: a client below its limit (a service meeting a
                # stray refusal) is not slowed, and an opening allowance spent in a
                # moment is not taken for a rate either way.
                self.phase = RAMPING
                self._cut(2 * opening, now)
        # else: a known (told or measured) rate is a better guess than the opening of a
        # stretch of refusals.

    def _cut(self, rate: float, now: float) -> None:
        self.cut_rate = max(MIN_RATE, rate)
        self.last_cut = now
        self._forget_before(now - ESTIMATE_WINDOW)

    def _last_second(self, now: float) -> float:
        accepted = self._accepted_rate(now, since=-math.inf)
        assert accepted is not None  # a full window is always long enough
        return accepted

    def _accepted_rate(self, now: float, *, since: float) -> float | None:
        """Accepted answers a second over the last ``ESTIMATE_WINDOW`` after ``since``
        (whole slots, up to and including the current one); None from too little
        evidence."""
        first = math.ceil(max(since, now - ESTIMATE_WINDOW) / SLOT)
        last = int(now // SLOT) + 1
        span = (last - first) * SLOT
        accepted = sum(count for slot, count in self.accepted.items() if slot >= first)
        if span < MIN_ESTIMATE_SPAN or (accepted < MIN_ESTIMATE_COUNT and span < ESTIMATE_WINDOW):
            return None
        return accepted / span

    def _forget_before(self, moment: float) -> None:
        oldest = int(moment // SLOT)
        for slot in [slot for slot in self.accepted if slot < oldest]:
            del self.accepted[slot]


@attrs.define
class _Probed:
    """Something closed until one probe request, at a time, finds the server willing."""

    passing: bool = True
    probe_at: float = -math.inf
    lease_until: float = -math.inf

    def turn(self, now: float) -> Decision | None:
        """None while requests pass; otherwise the probe (one at a time), or a wait."""
        if self.passing:
            return None
        if now < self.lease_until:
            return Decision(Turn.WAIT, self.lease_until - now, gated=True, firm=False)
        if now < self.probe_at:
            return Decision(Turn.WAIT, self.probe_at - now, gated=True)
        self.lease_until = now + PROBE_LEASE
        return Decision(Turn.PROBE, at=now)


@attrs.define
class Gate(_Probed):
    """Closed after a refusal until one probe finds the server willing again.

    ``latest`` is the earliest moment a refusal's hint promised the server would be
    willing: probes never wait past it, however long their step has grown.
    """

    latest: float = math.inf
    step: float = 0.0
    opened_at: float = -math.inf
    closed_at: float = -math.inf
    last_wait: float = 0.0

    def close(self, now: float, hint: WaitHint, first_step: float, cap: float) -> None:
        """A refusal of a request sent while open: hold everyone back until a probe.

        The first probe waits a step, or a quarter of what the server needed last time,
        if that was longer: a server whose refusals last (a fixed window) is not
        probed every few milliseconds, one that is willing again at once (a bucket) is.
        """
        self.passing = False
        self.closed_at = now
        if hint.beyond(cap):
            self.step = DISTRUST_STEP
        else:
            self.step = max(first_step, min(self.last_wait / 4, MAX_STEP))
        # A failed probe retries a step later: never later than the cap either.
        self.step = min(self.step, cap)
        self.latest = math.inf
        self._schedule(now, hint, cap)

    def probe_refused(self, now: float, hint: WaitHint, cap: float) -> None:
        """The probe was refused: ask again later, at a longer step (within a hint's
        uncertainty, at most a quarter of it, so the end of the wait is found closely)."""
        self.lease_until = -math.inf
        if hint.beyond(cap):
            longest = cap
        elif math.isfinite(hint.upper):
            longest = max(MIN_STEP, (hint.upper - hint.lower) / 4)
        else:
            longest = MAX_STEP
        self.step = min(max(min(2 * self.step, longest), MIN_STEP), cap)
        if now >= self.latest:
            self.latest = math.inf  # the promise was not kept: take the new one
        self._schedule(now, hint, cap)

    def probe_failed(self, now: float) -> None:
        """The probe got no answer of the server's (a timeout, a 5xx): try again soon."""
        self.lease_until = -math.inf
        self.probe_at = now + self.step

    def probe_accepted(self, now: float) -> None:
        """The server took the probe: everyone may send again."""
        self.passing = True
        self.lease_until = -math.inf
        self.opened_at = now
        self.last_wait = now - self.closed_at

    def _schedule(self, now: float, hint: WaitHint, cap: float) -> None:
        if hint.beyond(cap):
            # Not slept through on the server's word alone: a probe finds out sooner.
            self.probe_at = now + min(self.step, cap)
            return
        self.latest = min(self.latest, now + hint.upper)
        # From the earliest the wait may end, closer and closer to its latest.
        self.probe_at = min(now + min(hint.lower + self.step, cap), self.latest)


@attrs.define
class OperationBudget:
    """Everything one operation's requests share: pacing, the rate, the gate."""

    pacing: Pacing
    estimate: RateEstimate
    gate: Gate
    burst: int

    @classmethod
    def new(cls, ceiling: float, burst: int) -> OperationBudget:
        """A budget paced at ``ceiling`` (inf: unpaced until the server refuses)."""
        return cls(Pacing(), RateEstimate(ceiling=ceiling), Gate(), burst)

    def take(self, now: float) -> Decision:
        """Take a turn at ``now``: send, probe the closed gate, or wait."""
        gated = self.gate.turn(now)
        if gated is not None:
            return gated
        wait = self.pacing.take(now, self.estimate.rate(now), self.burst)
        if wait > 0:
            return Decision(Turn.WAIT, wait)
        return Decision(Turn.SEND, at=now)

    @property
    def paced(self) -> bool:
        """False while nothing limits the rate: no limit known and no refusal yet."""
        return not (math.isinf(self.estimate.ceiling) and math.isinf(self.estimate.cut_rate))

    def accepted(self, count: int, probe: bool, now: float) -> None:
        """``count`` accepted answers, one of them the gate's probe if ``probe``."""
        self.estimate.note_accepted(count, now)
        if probe:
            self.gate.probe_accepted(now)
            self.pacing.no_burst(now, self.estimate.rate(now), self.burst)

    def refused(self, sent_at: float, probe: bool, now: float, hint: WaitHint, cap: float) -> bool:
        """A 429 for a request sent at ``sent_at``; ``cap`` bounds how long the gate may
        stay closed on the server's word (the caller's ``max_server_wait``).

        Returns True when the refusal was news: a request sent while the gate was open,
        after it last opened (the others were already answered for).
        """
        if probe:
            self.gate.probe_refused(now, hint, cap)
            return False
        if not self.gate.passing or sent_at < self.gate.opened_at:
            return False
        self.estimate.refused(sent_at, now)
        rate = self.estimate.rate(now)
        first_step = (
            FIRST_STEP_UNPACED
            if math.isinf(rate)
            else min(FIRST_STEP_LONGEST, max(1.0 / rate, MIN_STEP))
        )
        self.gate.close(now, hint, first_step, cap)
        return True

    def failed(self, probe: bool, now: float) -> None:
        """No answer of the server's to a request (a timeout, a dropped connection, a
        5xx): only a probe's matters here, and it is tried again soon."""
        if probe:
            self.gate.probe_failed(now)


@attrs.define
class Breaker(_Probed):
    """Client-wide: after ``BREAKER_TRIP`` failures in a row with no answer of the
    server's between them (5xx, dropped connections, timeouts), the server is taken to
    be down and the breaker trips. Calls that wait out an outage (bulk calls) stop
    sending; one probe at doubling intervals finds out when the server answers again,
    and so does any other call's answer.
    """

    failures: int = 0
    step: float = BREAKER_FIRST_STEP
    tripped_at: float = -math.inf

    def answered(self, now: float) -> None:
        """The server answered (any status but 5xx): it is up."""
        self.failures = 0
        self.passing, self.step, self.lease_until = True, BREAKER_FIRST_STEP, -math.inf

    def failed(self, probe: bool, now: float) -> None:
        """A request got no answer of the server's, or a 5xx."""
        self.failures += 1
        if probe:
            self.lease_until = -math.inf
            self.step = min(2 * self.step, BREAKER_MAX_STEP)
            self.probe_at = now + self.step
        elif self.passing and self.failures >= BREAKER_TRIP:
            self.passing, self.tripped_at = False, now
            self.probe_at = now + self.step


@attrs.define
class RetryBudget:
    """Caps retries so an outage does not multiply traffic, without ever leaving a quiet
    client unable to retry (Finagle's retry budget).

    It holds at most ``BUDGET_CAP`` retries; each success adds ``BUDGET_PER_SUCCESS``,
    each second adds ``BUDGET_PER_SECOND``, each retry takes one.
    """

    balance: float = BUDGET_CAP / 2
    stamp: float = -math.inf

    def deposit(self) -> None:
        """A call succeeded."""
        self.balance = min(BUDGET_CAP, self.balance + BUDGET_PER_SUCCESS)

    def withdraw(self, now: float) -> bool:
        """True, and one retry spent, when the budget allows a retry at ``now``."""
        if math.isfinite(self.stamp):
            self.balance = min(BUDGET_CAP, self.balance + (now - self.stamp) * BUDGET_PER_SECOND)
        self.stamp = now
        if self.balance < 1.0:
            return False
        self.balance -= 1.0
        return True


@attrs.define
class SlowStart:
    """With no known limit, at most ``window`` requests in flight: one more for each
    accepted answer (doubling every round trip, as TCP's slow start does), half as many
    after a refusal. An opening wave then never meets a small burst allowance all at
    once; once the window outgrows every permit, it costs nothing."""

    window: int = SLOW_START_WINDOW
    in_flight: int = 0
    ended: bool = False

    def has_room(self) -> bool:
        """True when one more request may go."""
        return self.ended or self.in_flight < self.window

    def admit(self) -> None:
        """A request went: count it in flight."""
        if not self.ended:
            self.in_flight += 1

    def release(self) -> None:
        """A request admitted by ``admit`` has ended."""
        if not self.ended and self.in_flight:
            self.in_flight -= 1

    def accepted(self) -> None:
        """An accepted answer: one more may be in flight."""
        if not self.ended:
            self.window += 1
            self.ended = self.window >= SLOW_START_END

    def refused(self) -> None:
        """A refusal: half as many in flight as now (an ended window starts again)."""
        self.window = max(1, min(self.window, self.in_flight) // 2)
        self.ended = False
