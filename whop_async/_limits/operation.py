"""One operation's budget: pacing at the estimated rate, behind the gate. Whop counts
each operation apart, so unpause, pause, retrieve and list each have one.

Pure: no clock, no I/O; the time is an argument. The same rules run on a budget held in
memory and on one held in Redis.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

import attrs

from .estimate import Phase, RateEstimate
from .gate import Gate, Wait, WaitHint, first_step
from .pacing import Pacing


class Go(enum.Enum):
    """How a request may go."""

    SEND = "send"
    PROBE = "probe"
    """The gate's probe: its answer opens the gate, or closes it longer."""


class Taken(NamedTuple):
    """A turn taken, to go ``at`` a moment in the budget's time, ``granted`` at another
    (earlier for a turn booked ahead: its answer is judged by the budget of then)."""

    go: Go
    at: float
    granted: float


Decision = Taken | Wait


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

    def take(self, now: float, ahead: int = 0, queued: bool = False) -> Decision:
        """A turn at ``now`` (send, or the gate's probe), a send booked among the next
        ``ahead`` turns (a shared budget), or how long to wait; ``queued``: the asker
        was told to come back (see ``Pacing.take``)."""
        gate = self.gate
        if not gate.passing:
            wait = gate.wait(now)
            if wait is not None:
                return wait
            gate.take_probe(now)
            return Taken(Go.PROBE, now, now)
        slot = self.pacing.take(now, self.estimate.rate(now), self.burst, ahead, queued)
        if not slot.taken:
            return Wait(slot.at - now)
        return Taken(Go.SEND, slot.at, now)

    def owe(self, now: float, seconds: float) -> None:
        """Turns spent while paced apart count (see ``Pacing.owe``)."""
        self.pacing.owe(now, seconds, self.estimate.rate(now), self.burst)

    def accepted(self, count: int, now: float) -> None:
        """``count`` accepted answers to requests sent while the gate was open."""
        self.estimate.note_accepted(count, now)

    def probe_accepted(self, now: float) -> None:
        """The gate's probe was accepted: the gate opens, and the next request waits a
        full interval (no burst into the limit just met)."""
        self.estimate.note_accepted(1, now)
        self.gate.probe_accepted(now)
        self.pacing.no_burst(now, self.estimate.rate(now), self.burst)

    def refused(
        self, sent_at: float, granted_at: float, now: float, hint: WaitHint, cap: float
    ) -> bool:
        """A 429 for a request sent at ``sent_at``, its turn granted at ``granted_at``,
        while the gate was open; ``cap`` bounds how long the gate stays closed on the
        server's word (the caller's ``max_server_wait``). True when the refusal was news
        (the gate was open, and the turn was granted after it last opened)."""
        gate = self.gate
        self.estimate.note_refused(now)
        if not gate.passing or granted_at < gate.opened_at:
            return False
        self.estimate.refused(sent_at, granted_at, now)
        gate.close(now, hint, first_step(self.estimate.rate(now)), cap)
        return True

    def probe_refused(self, now: float, hint: WaitHint, cap: float) -> None:
        """The gate's probe was refused: the gate stays closed a longer step. Not
        counted toward density: a probe is one request after a pause, and its refusal
        says the wait goes on, not how many paced requests the server refuses."""
        self.gate.probe_refused(now, hint, cap)

    def probe_failed(self, now: float) -> None:
        """The probe got no answer of the server's (a timeout, a drop, a 5xx)."""
        self.gate.probe_failed(now)

    def probe_ended(self, now: float) -> None:
        """The probe ended with no answer at all (cancelled): the next may probe at once."""
        self.gate.probe_ended(now)

    def at_rest(self, now: float) -> bool:
        """True when it allows what a new budget allows (a whole burst, the gate open, the
        rate at its ceiling) and holds nothing that will be read again: it may then be
        forgotten, and made anew when next needed."""
        estimate = self.estimate
        return (
            self.gate.passing
            and self.pacing.tat <= now
            and estimate.phase is Phase.MEASURED
            and estimate.rate(now) >= estimate.ceiling
            and estimate.quiet_since(now)
        )

    @property
    def paced(self) -> bool:
        """False while nothing limits the rate: no limit known and no refusal yet."""
        return not self.estimate.unknown


class Answer(enum.Enum):
    """What became of a request, as far as its operation's budget cares."""

    ACCEPTED = "accepted"
    """2xx, or another 4xx than 429: the server took the request (and may have said no)."""
    REFUSED = "refused"
    """429: over the limit."""
    FAILED = "failed"
    """No answer of the server's: a 5xx, a timeout, a dropped connection."""
    ABANDONED = "abandoned"
    """The attempt ended with no answer known (cancelled): nothing to learn from it."""


class Report(NamedTuple):
    """What a turn came to, for its budget: how it went, when, and how it ended."""

    go: Go
    sent_at: float
    granted_at: float
    answer: Answer
    hint: WaitHint
    cap: float


class Standing(NamedTuple):
    """A budget after a refusal: whether it was news, when the probe goes, the rate in
    force, and whether anything paces requests now."""

    news: bool
    probe_in: float
    rate: float
    paced: bool


def apply(budget: OperationBudget, report: Report, now: float) -> Standing | None:
    """Apply ``report`` to ``budget`` at ``now``: the one place a turn's answer changes a
    budget. A Standing after a refusal, else None."""
    answer, probe = report.answer, report.go is Go.PROBE
    if answer is Answer.ACCEPTED:
        if probe:
            budget.probe_accepted(now)
        else:
            budget.accepted(1, now)
        return None
    if answer is Answer.REFUSED:
        if probe:
            budget.probe_refused(now, report.hint, report.cap)
            news = False
        else:
            news = budget.refused(report.sent_at, report.granted_at, now, report.hint, report.cap)
        return Standing(news, budget.gate.probe_at - now, budget.estimate.rate(now), budget.paced)
    if probe:
        if answer is Answer.FAILED:
            budget.probe_failed(now)
        else:
            budget.probe_ended(now)
    return None
