"""A Retry-After given as an HTTP-date is the server's clock: read against the same
answer's ``Date`` it is the wait the server means, whatever the local clock says, in
whole seconds like any other hint. Through the whole client, in virtual time."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest
from aioresponses import CallbackResult
from yarl import URL

import whop_async

from .helpers import MockAPI, ShimResponse
from .scenarios import ANY_REQUEST, client
from .virtual_time import run_virtual

WAIT = 2.0  # what the server means: refused until two seconds after the first request
EPOCH = 1_800_000_000.0  # where the scenarios' client clock starts


def http_date(moment: float) -> str:
    """As servers write it: whole seconds, the fraction dropped."""
    return format_datetime(datetime.fromtimestamp(math.floor(moment), UTC), usegmt=True)


class RefusingServer:
    """Refuses every request for WAIT seconds after the first, on a clock ``skew``
    seconds off the client's. Each refusal tells the wait left, rounded up to whole
    seconds (at least 1) as servers do, as HTTP-dates: ``Date`` now, ``Retry-After`` now
    plus the wait (so the pair says what ``Retry-After: <seconds>`` would). A client
    that will not wait is let through after 100 refusals, to fail the test, not hang it."""

    def __init__(self, skew: float, *, with_date: bool = True) -> None:
        self.skew = skew
        self.with_date = with_date
        self.until: float | None = None
        self.refused: list[float] = []

    def now(self) -> float:
        return EPOCH + asyncio.get_running_loop().time() + self.skew

    async def answer(self, url: URL, **_: Any) -> CallbackResult:
        now = self.now()
        if self.until is None:
            self.until = now + WAIT
        if now >= self.until or len(self.refused) == 100:
            ad_group_id = url.path.split("/")[-2]
            body = f'{{"id": "{ad_group_id}", "status": "active"}}'
            return CallbackResult(body=body, response_class=ShimResponse)
        self.refused.append(now)
        wait = max(1, math.ceil(self.until - now))
        headers = {"Retry-After": http_date(now + wait)}
        if self.with_date:
            headers["Date"] = http_date(now)
        return CallbackResult(status=429, headers=headers, response_class=ShimResponse)


async def one_call(server: RefusingServer, start: float) -> float:
    """One unpause begun ``start`` seconds in (a fraction of a second, as any call is);
    how long it took."""
    loop = asyncio.get_running_loop()
    with MockAPI() as mocked:
        mocked.add(ANY_REQUEST, "POST", callback=server.answer, repeat=True)
        async with client(whop_async.RateLimit(600, per=60.0)) as whop:
            await asyncio.sleep(start)
            began = loop.time()
            group = await whop.ad_groups.unpause("adgrp_1")
    assert group.id == "adgrp_1"
    return loop.time() - began


@pytest.mark.parametrize("start", [0.0, 0.3, 0.7, 0.99])
@pytest.mark.parametrize("skew", [0.0, -30.4, 30.6, -86_400.0], ids=lambda skew: f"skew {skew}")
def test_a_2_s_wait_the_server_means_draws_few_requests_whatever_the_local_clock(
    skew: float, start: float
) -> None:
    server = RefusingServer(skew)
    took = run_virtual(one_call(server, start))
    assert len(server.refused) <= 10, server.refused
    assert WAIT - 1e-9 <= took <= WAIT + 1.0


def test_without_a_date_the_local_clock_is_all_there_is() -> None:
    # An HTTP-date with no Date beside it is read against the local clock: a server
    # 30 s ahead of it is taken to mean a wait of 32 s.
    server = RefusingServer(30.0, with_date=False)
    took = run_virtual(one_call(server, 0.0))
    assert 30.0 <= took <= 33.0
