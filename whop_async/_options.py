"""RequestOptions: everything one call may set for itself, as one value.

Resources build it from their keyword arguments and hand it to the client, so a new
per-call option touches this class, the resource signatures and the one place in the
client that reads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from ._bulk import BulkRun


@attrs.frozen(kw_only=True)
class RequestOptions:
    """One call's options; None means the client's default.

    Attributes:
        timeout: seconds each attempt may take.
        max_retries: retried failures allowed (429s not counted).
        idempotency_key: the key every attempt of a POST sends.
        run: the bulk run the call belongs to: it then waits out outages, and ends
            when the run stops.
    """

    timeout: float | None = None
    max_retries: int | None = None
    idempotency_key: str | None = None
    run: BulkRun | None = None


NO_OPTIONS = RequestOptions()
