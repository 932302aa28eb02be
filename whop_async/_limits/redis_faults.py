"""What went wrong with Redis, said as what it is, and how soon to try again.

A failure that may pass by itself (Redis restarting, a failover under way, a timeout,
contention) is tried again at the next quarter second of the shared time, so that the
workers come back together (one back later than the others paces alone meanwhile, over
the budget by its share). One that a person has to fix (a password, an ACL, a
read-only replica, memory) is tried again after doubling waits up to about a minute.
Either way the budget is paced locally meanwhile, and the message says so; a change of
cause is said again, a repeat is not.
"""

from __future__ import annotations

import enum
import math

import attrs
import redis.exceptions
from redis.asyncio.sentinel import MasterNotFoundError

# A passing fault is tried again at the next multiple of this many seconds: the same
# quarter second as a Redis call's timeout, so a restart or a failover (Sentinel's
# promotion took 1.7 to 1.9 s) is back in use within a quarter second of its end.
RETRY_EVERY = 0.25
# A permanent fault is tried again after 2, 4, 8... seconds, at most this long: a
# person fixing a password or an ACL sees it in use within a minute, and a worker
# asks a refusing Redis 9 times in five minutes, not 1,200.
LONGEST_BACKOFF = 60.0
_FIRST_BACKOFF = 2.0


class Cause(enum.Enum):
    """Why Redis did not take a budget's turn, as a person would say it."""

    UNREACHABLE = "cannot be reached"
    TIMEOUT = "did not answer in time"
    LOADING = "is loading its data"
    NO_MASTER = "has no master the sentinels agree on (a failover under way?)"
    CLUSTER_DOWN = "is a cluster that cannot serve the budget's slot now"
    CONTENTION = "kept changing under this worker's writes (contention)"
    AUTHENTICATION = "refused the credentials (authentication)"
    NO_PERMISSION = "refused a command: the user lacks permission (an ACL without @scripting?)"
    READ_ONLY = "is a read-only replica (a demoted master: a Sentinel URL follows failovers)"
    MOVED = "does not hold the budget's slot (a cluster node: a RedisCluster follows it)"
    OUT_OF_MEMORY = "is out of memory (maxmemory with noeviction)"
    REFUSED = "refused the script"
    NOT_REDIS = "does not answer as Redis does (another service at this address?)"


class Contended(redis.exceptions.RedisError):
    """Other reports kept changing the budget between this worker's read and write."""


class NotRedis(redis.exceptions.RedisError):
    """The address answers, but not as Redis does: redis-py could not read its answer,
    or the script's answer was not the list every budget script returns."""


_PERMANENT = {
    Cause.AUTHENTICATION,
    Cause.NO_PERMISSION,
    Cause.READ_ONLY,
    Cause.MOVED,
    Cause.OUT_OF_MEMORY,
    Cause.REFUSED,
    Cause.NOT_REDIS,
}
# Checked in order: subclasses before the classes they refine.
_CAUSES: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], Cause], ...] = (
    (MasterNotFoundError, Cause.NO_MASTER),
    (Contended, Cause.CONTENTION),
    # An answer that is no RESP at all ("HTTP/1.1 400 Bad Request"): another service.
    ((NotRedis, redis.exceptions.InvalidResponse), Cause.NOT_REDIS),
    (redis.exceptions.BusyLoadingError, Cause.LOADING),
    (
        (
            redis.exceptions.AuthenticationError,
            redis.exceptions.AuthenticationWrongNumberOfArgsError,
        ),
        Cause.AUTHENTICATION,
    ),
    (
        (redis.exceptions.NoPermissionError, redis.exceptions.AuthorizationError),
        Cause.NO_PERMISSION,
    ),
    (redis.exceptions.ReadOnlyError, Cause.READ_ONLY),
    (redis.exceptions.OutOfMemoryError, Cause.OUT_OF_MEMORY),
    (
        (
            redis.exceptions.ClusterDownError,
            redis.exceptions.TryAgainError,
            redis.exceptions.SlotNotCoveredError,
        ),
        Cause.CLUSTER_DOWN,
    ),
    # MovedError too. A URL or a plain client follows the first MOVED by switching to a
    # RedisCluster; one still said is a Sentinel's master or a cluster client that
    # cannot place the slot: a setup a person has to fix.
    (redis.exceptions.AskError, Cause.MOVED),
    ((redis.exceptions.TimeoutError, TimeoutError), Cause.TIMEOUT),
    (redis.exceptions.ResponseError, Cause.REFUSED),
)


@attrs.frozen
class Fault:
    """A failure of one try: its cause, and the error's own words."""

    cause: Cause
    detail: str

    @property
    def permanent(self) -> bool:
        """True when only a person can fix it."""
        return self.cause in _PERMANENT


def fault_of(error: BaseException, secrets: tuple[str, ...]) -> Fault:
    """The cause of ``error``, with its words (every one of ``secrets`` blanked out)."""
    cause = Cause.UNREACHABLE
    for kinds, named in _CAUSES:
        if isinstance(error, kinds):
            cause = named
            break
    detail = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    for secret in secrets:
        detail = detail.replace(secret, "***")
    return Fault(cause, detail)


@attrs.define
class Health:
    """Whether to try Redis now, and what to say about it.

    Attributes:
        address: where the budget lives, without credentials.
        retry_at: the shared time of the next try.
    """

    address: str
    retry_at: float = -math.inf
    fault: Fault | None = None
    backoff: float = 0.0
    # Redis took too long: a watcher asks it in the background, and no call tries it
    # until it answers (each try would hold its call a whole timeout).
    watched: bool = False

    def usable(self, now: float) -> bool:
        """True when Redis is to be tried at ``now``."""
        return not self.watched and now >= self.retry_at

    def failed(self, fault: Fault, now: float, share: float) -> str | None:
        """A try failed at ``now``: when to try again; what to log (None: nothing new)."""
        if fault.permanent:
            self.backoff = min(LONGEST_BACKOFF, max(_FIRST_BACKOFF, 2 * self.backoff))
            self.retry_at = now + self.backoff
        else:
            self.backoff = 0.0
            self.retry_at = (math.floor(now / RETRY_EVERY) + 1) * RETRY_EVERY
        news = self.fault is None or self.fault.cause is not fault.cause
        self.fault = fault
        if not news:
            return None
        again = (
            f"in {self.backoff:.0f} s, then less and less often up to once a minute"
            if fault.permanent
            else f"every {RETRY_EVERY} s"
        )
        return (
            f"Redis at {self.address} {fault.cause.value} ({fault.detail}); pacing the shared"
            f" rate budget locally at {share:.3g} of it meanwhile, trying Redis again {again}"
        )

    def answered(self) -> str | None:
        """A try succeeded: what to log (None: nothing was wrong)."""
        if self.fault is None:
            return None
        self.fault, self.backoff, self.retry_at = None, 0.0, -math.inf
        return f"Redis at {self.address} answers again; back on the shared rate budget"
