"""The rate the server accepts: the known limit, a cut when the server proves it lower,
and the climb back.

Evidence is what the server accepted, counted in slots of time, never what was sent (a
request still in flight may yet be refused), and what it refused. Refusals that are
sparse prove little: a server that sheds load at random, or a neighbour's burst, refuses
a few requests among many it accepts at the same pace. So while paced at a known rate,
the rate is cut to what the server accepted only when refusals are dense (at least
``DENSE`` of the requests of the stretch); sparse ones hold the rate where it is (no
climb over it), never lower it, so noise cannot ratchet the pace down.

With no limit known, the first refusal says only that an opening allowance is spent: the
rate starts at twice what the server accepted over the last second and doubles
(``RAMPING``) until refused, then again from what was accepted (``OVERSHOT``), until a
refusal measures the rate over a stretch of them (``MEASURED``).

Pure: no clock, no I/O; the time is an argument.
"""

from __future__ import annotations

import enum
import itertools
import math

import attrs

# A rate is estimated from at most this many seconds of what the server accepted: a
# bucket's refill shows within a second, and older evidence predates a neighbour that
# came or went (the neighbour and drop scenarios).
ESTIMATE_WINDOW = 1.0
# Trusted only from a stretch of refusals at least this long holding at least this many
# accepted answers (or a whole window): the first refusal comes after the server's
# opening allowance, which says nothing of its rate (window-s: an opening burst of 50
# taken for a rate cut the pace to 1.40 x the ideal time).
MIN_ESTIMATE_SPAN = 0.25
MIN_ESTIMATE_COUNT = 10
# With no refusal for this long, a stretch of refusals has ended: a fixed window of one
# second refuses in every second until the pace fits (window-s).
EPISODE_QUIET = 2.0
# After a cut, the rate climbs as ``1 + CLIMB * t**3`` times the cut (t in seconds):
# hardly at all for the first second, where the cut was most likely right (sliding:
# going over a log's limit costs a whole window), then faster and faster, so a limit
# that comes back is found again within seconds (neighbour, drop: x1.5 after 3.7 s, x2
# after 4.6 s).
CLIMB = 0.01
# The climb stops growing after this long (then over two million times the cut, far
# above any ceiling): it only keeps the number finite.
CLIMB_LONGEST = 600.0
# With no limit known, a first guess at the rate doubles every this many seconds of
# being accepted (bucket-ms: 1.06 x the ideal with rate_limit=None).
RAMP_DOUBLING = 0.4
# A stretch of refusals proves the limit lower than the pace when at least this share of
# its requests were refused (a bucket at half the pace refuses one in two); below it,
# refusals are noise (15 % of requests refused every other second, at random: cutting
# on each had the pace fall to a third of what the server accepted).
DENSE = 0.25
# Density is read over this many seconds, and from at least this many answers: ten
# answers at Whop's 10 a second hold three refusals by chance one time in six; twenty
# are the whole window at that pace, the least that can be read without waiting longer.
DENSITY_WINDOW = 2.0
DENSITY_COUNT = 20
# Never slower than one request every ten seconds: a cut is at most half per stretch of
# refusals and measured from accepted answers, so only a server that accepts almost
# nothing leads here, and a call must still find it willing within its
# rate_limit_timeout (600 s: sixty tries at this pace).
MIN_RATE = 0.1
# Answers are counted in slots of this many seconds: finer than the interval of any pace
# measured (100 a second), coarse enough that the evidence read (two seconds) is at most
# 200 slots a kind, in memory and in Redis.
SLOT = 0.01
# Evidence older than this is never read.
KEPT = max(ESTIMATE_WINDOW, DENSITY_WINDOW)


class Phase(enum.Enum):
    """How the rate in force was found."""

    MEASURED = "measured"
    """The known limit, or a cut measured from refusals, climbing back."""
    RAMPING = "ramping"
    """No limit known: doubling from twice the opening's accepted rate."""
    OVERSHOT = "overshot"
    """The ramp was refused: doubling again from what the server accepted."""


@attrs.define
class RateEstimate:
    """The rate to pace at: the known limit (``ceiling``), a cut, and the climb back.

    Attributes:
        ceiling: the rate a client was told (inf: none).
        cut_rate: the rate of the last cut (inf: never cut).
        accepted: accepted answers per slot of time, the evidence cuts are made from.
        refused: refusals per slot of time, which tell dense refusals from sparse ones.
    """

    ceiling: float
    cut_rate: float = math.inf
    last_cut: float = -math.inf
    phase: Phase = Phase.MEASURED
    episode_start: float = -math.inf
    last_refusal: float = -math.inf
    accepted: dict[int, int] = attrs.field(factory=dict)
    refused_slots: dict[int, int] = attrs.field(factory=dict)

    def rate(self, now: float) -> float:
        """The rate in force at ``now``: a cut, climbed back from since, up to the ceiling."""
        if math.isinf(self.cut_rate):
            return self.ceiling
        if self.phase is not Phase.MEASURED:
            return min(self.ceiling, self.cut_rate)
        elapsed = min(max(0.0, now - self.last_cut), CLIMB_LONGEST)
        return min(self.ceiling, self.cut_rate * (1.0 + CLIMB * elapsed**3))

    @property
    def unknown(self) -> bool:
        """True while nothing limits the rate: no limit told and no refusal yet."""
        return math.isinf(self.ceiling) and math.isinf(self.cut_rate)

    def quiet_since(self, now: float) -> bool:
        """True when nothing it holds will be read again: no refusal episode goes on,
        and every slot counted is older than what any estimate reads."""
        oldest_read = (now - KEPT) // SLOT
        # Slots are added in time order: the last is the newest.
        return (
            now - self.last_refusal > EPISODE_QUIET
            and next(reversed(self.accepted), -math.inf) < oldest_read
            and next(reversed(self.refused_slots), -math.inf) < oldest_read
        )

    def note_accepted(self, count: int, now: float) -> None:
        """``count`` answers accepted by ``now``."""
        if not count:
            return
        self._count(self.accepted, count, now)
        if self.phase is not Phase.MEASURED:
            # Grown by what the server takes, not by the clock, so a ramp stands still
            # while the gate is closed.
            self.cut_rate += count * math.log(2) / RAMP_DOUBLING

    def note_refused(self, now: float) -> None:
        """A request refused at ``now`` (news or not: every one tells the density)."""
        self._count(self.refused_slots, 1, now)

    def refused(self, sent_at: float, granted_at: float, now: float) -> None:
        """A refusal of a request sent at ``sent_at`` while the gate was open, its turn
        granted at ``granted_at`` (before the last cut: it says nothing of the rate
        now, even if it was sent after)."""
        if now - self.last_refusal > EPISODE_QUIET:
            self.episode_start = sent_at
        self.last_refusal = now
        if granted_at < self.last_cut:
            return  # granted before the last cut: it says nothing about the rate now
        current = self.rate(now)
        if self.phase is Phase.RAMPING:
            # The doubling went over the limit: from what the server took over the last
            # second it doubles again, and the refusals to come measure the rate.
            self.phase, self.episode_start = Phase.OVERSHOT, sent_at
            self._cut(min(current, self._last_second(now)), now)
            return
        since = self.episode_start
        measured = self._accepted_rate(now, since=since)
        if measured is not None:
            if self.phase is Phase.MEASURED and not self._dense(now):
                self._hold(current, now)
                return
            # At most halved at once: a short stretch with a long pause in it understates
            # the rate, and a lower limit shows itself again in the next round.
            self.phase = Phase.MEASURED
            self._cut(min(current, max(measured, current / 2)), now)
        elif self.phase is Phase.OVERSHOT:
            self._cut(min(current, self._last_second(now)), now)
        elif self.unknown:
            opening = self._last_second(now)
            if opening:  # with nothing accepted yet, there is nothing to start from
                # Twice what was accepted: a client below its limit is not slowed, and
                # an opening allowance spent in a moment is not taken for a rate.
                self.phase = Phase.RAMPING
                self._cut(2 * opening, now)
        # else: a known rate is a better guess than the opening of a stretch of refusals.

    def _hold(self, current: float, now: float) -> None:
        """Sparse refusals: no climb over the rate in force, and no cut below it."""
        if math.isfinite(self.cut_rate):
            self.cut_rate, self.last_cut = current, now

    def _cut(self, rate: float, now: float) -> None:
        self.cut_rate = max(MIN_RATE, rate)
        self.last_cut = now
        self._forget_before(now - KEPT)

    def _last_second(self, now: float) -> float:
        accepted = self._accepted_rate(now, since=-math.inf)
        assert accepted is not None  # a whole window is always long enough
        return accepted

    def _accepted_rate(self, now: float, *, since: float) -> float | None:
        """Accepted answers a second over the last ``ESTIMATE_WINDOW`` after ``since``
        (whole slots, up to and including the current one); None from too little
        evidence."""
        first = _first_slot(now, since)
        span = (int(now // SLOT) + 1 - first) * SLOT
        accepted = _sum_from(self.accepted, first)
        if span < MIN_ESTIMATE_SPAN or (accepted < MIN_ESTIMATE_COUNT and span < ESTIMATE_WINDOW):
            return None
        return accepted / span

    def _dense(self, now: float) -> bool:
        """True when at least ``DENSE`` of the answers of the last ``DENSITY_WINDOW``
        seconds were refusals, from enough answers to tell."""
        first = math.ceil((now - DENSITY_WINDOW) / SLOT)
        refused = _sum_from(self.refused_slots, first)
        answers = refused + _sum_from(self.accepted, first)
        return answers >= DENSITY_COUNT and refused >= DENSE * answers

    def _count(self, slots: dict[int, int], count: int, now: float) -> None:
        slot = int(now // SLOT)
        if slot not in slots:
            # Only the last windows are ever read: a service that is never refused would
            # otherwise keep a slot for every moment it was answered.
            _forget(slots, int((now - KEPT) // SLOT))
        slots[slot] = slots.get(slot, 0) + count

    def _forget_before(self, moment: float) -> None:
        for slots in (self.accepted, self.refused_slots):
            _forget(slots, int(moment // SLOT))


def _forget(slots: dict[int, int], oldest: int) -> None:
    """Forget the slots before ``oldest``; they were added in time order, oldest first."""
    expired = list(itertools.takewhile(lambda slot: slot < oldest, slots))
    for slot in expired:
        del slots[slot]


def _first_slot(now: float, since: float) -> int:
    return math.ceil(max(since, now - ESTIMATE_WINDOW) / SLOT)


def _sum_from(slots: dict[int, int], first: int) -> int:
    return sum(count for slot, count in slots.items() if slot >= first)
