"""The outage breaker, client-wide: is the server down, or do some ids fail alone?

After ``TRIP`` failures in a row with no answer of the server's between them (5xx,
dropped connections, timeouts), the server is taken to be down: calls that wait out an
outage (bulk calls) stop sending, and one probe at doubling intervals finds out when it
answers again (so does any other call's answer). A failure of a call that already failed
while the server accepted other requests is that call's own (an id the server cannot
handle) and never counts toward an outage: two ids that always answer 500 at the end of
a run end after their retries, not after probes minutes apart.

Pure: no clock, no I/O; the time is an argument.
"""

from __future__ import annotations

import math

import attrs

from .gate import Probed

# Failures in a row that mean the server is down (outage: 16 calls at once meet a 6 s
# outage; five failures tell it from a few unlucky requests: at 10 % of requests
# failing at random, five in a row come once in 100,000).
TRIP = 5
# The probe goes after this, doubling while it fails, up to the longest: a 6 s outage
# costs a handful of probes (outage: 13 extra requests for 300 ids).
FIRST_STEP = 0.5
MAX_STEP = 10.0
# Nothing at all has answered for this long, the probe included: nothing listens at the
# address (a refusal for the first seconds of a run is an API restarting; one call's
# retries ride out about this much).
NOTHING_ANSWERS_AFTER = 10.0


@attrs.define
class Breaker(Probed):
    """Counts failures in a row and trips; ``accepted`` counts accepted answers, so a
    call can tell whether others succeeded since it first failed."""

    failures: int = 0
    step: float = FIRST_STEP
    tripped_at: float = 0.0
    accepted: int = 0
    # Seconds spent tripped before the current outage: calls that wait out outages do
    # not count them against their own patience for the rate limit.
    down_before: float = 0.0

    def downtime(self, now: float) -> float:
        """Seconds spent tripped so far, the current outage included."""
        return self.down_before + (0.0 if self.passing else now - self.tripped_at)

    def answered(self, accepted: bool, now: float) -> bool:
        """The server answered (any status but 5xx): it is up. True when that ends an
        outage."""
        self.accepted += accepted
        self.failures = 0
        ended = not self.passing
        if ended:
            self.down_before += now - self.tripped_at
        self.passing, self.step, self.lease_until = True, FIRST_STEP, -math.inf
        return ended

    def probe_by(self, moment: float) -> None:
        """The next probe goes no later than ``moment`` (whoever waits for it gives up
        then, and should not give up without asking)."""
        self.probe_at = min(self.probe_at, moment)

    def failed(self, now: float, *, probe: bool, own: bool) -> bool:
        """A request got no answer of the server's, or a 5xx; ``own`` when the call
        had already failed while others were accepted. True when this trips it."""
        if probe:
            self.lease_until = -math.inf
            self.step = min(2 * self.step, MAX_STEP)
            self.probe_at = now + self.step
            return False
        if own:
            return False
        self.failures += 1
        if self.passing and self.failures >= TRIP:
            self.passing, self.tripped_at = False, now
            self.probe_at = now + self.step
            return True
        return False
