"""A Retry-After given as an HTTP-date is the server's clock: read against the same
answer's ``Date`` it is the wait the server means, whatever the local clock says, in
whole seconds like any other hint. Without a usable ``Date`` the local clock is all
there is. Through the whole client, in virtual time, the local wall clock pinned by
patching ``time.time``."""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from unittest import mock

import pytest
from aioresponses import CallbackResult
from hypothesis import given, settings
from hypothesis import strategies as st
from yarl import URL

import whop_async
from whop_async.testing import run_virtual

from .helpers import API_KEY, BASE_URL, MockAPI, ShimResponse
from .scenarios import ANY_REQUEST, client

WAIT = 2.0  # what the server means: refused until two seconds after the first request
EPOCH = 1_800_000_000.0  # the local wall clock when the event loop's time is 0
A_DAY = 86_400.0  # the longest wait whop_async takes from a hint
UNPAUSE_URL = f"{BASE_URL}/ad_groups/adgrp_1/unpause"


def http_date(moment: float) -> str:
    """As servers write it: whole seconds, the fraction dropped."""
    return format_datetime(datetime.fromtimestamp(math.floor(moment), UTC), usegmt=True)


def wall_clock_follows_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """The local wall clock at EPOCH when the running loop's (virtual) time is 0."""
    loop = asyncio.get_running_loop()
    monkeypatch.setattr(time, "time", lambda: EPOCH + loop.time())


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


async def one_call(server: RefusingServer, start: float, monkeypatch: pytest.MonkeyPatch) -> float:
    """One unpause begun ``start`` seconds in (a fraction of a second, as any call is);
    how long it took."""
    loop = asyncio.get_running_loop()
    wall_clock_follows_the_loop(monkeypatch)
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
    skew: float, start: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = RefusingServer(skew)
    took = run_virtual(one_call(server, start, monkeypatch))
    assert len(server.refused) <= 10, server.refused
    assert WAIT - 1e-9 <= took <= WAIT + 1.0


def test_without_a_date_the_local_clock_is_all_there_is(monkeypatch: pytest.MonkeyPatch) -> None:
    # An HTTP-date with no Date beside it is read against the local clock: a server
    # 30 s ahead of it is taken to mean a wait of 32 s.
    server = RefusingServer(30.0, with_date=False)
    took = run_virtual(one_call(server, 0.0, monkeypatch))
    assert 30.0 <= took <= 33.0


# --- the hint a single answer carries --------------------------------------------------


def hint_of(headers: dict[str, str], local: float) -> tuple[float | None, float]:
    """The wait hint (seconds, resolution) of the error an unpause raises when the
    server answers 503 with ``headers``, the local wall clock reading ``local``."""

    async def unpause() -> tuple[float | None, float]:
        with MockAPI() as mocked:
            mocked.post(UNPAUSE_URL, status=503, headers=headers)
            async with whop_async.WhopClient(API_KEY, base_url=BASE_URL, max_retries=0) as whop:
                with pytest.raises(whop_async.InternalServerError) as caught:
                    await whop.ad_groups.unpause("adgrp_1")
        return caught.value.retry_after, caught.value.retry_after_resolution

    with mock.patch.object(time, "time", return_value=local):
        return run_virtual(unpause())


@pytest.mark.parametrize(
    ("retry_after", "date", "expected"),
    [
        # The server's clock far from ours: the pair says 30 s all the same.
        (EPOCH + 1_000 + 30, EPOCH + 1_000, 30.0),
        (EPOCH - 5_000 + 2, EPOCH - 5_000, 2.0),
        (EPOCH + 7, EPOCH + 7, 0.0),
        (EPOCH - 1, EPOCH, 0.0),  # before the answer's own date: at once
        (EPOCH + 2 * A_DAY, EPOCH, A_DAY),
    ],
)
def test_an_http_date_is_read_against_the_answers_own_date(
    retry_after: float, date: float, expected: float
) -> None:
    headers = {"Retry-After": http_date(retry_after), "Date": http_date(date)}
    assert hint_of(headers, local=EPOCH + 0.6) == (expected, 1.0)


@pytest.mark.parametrize("date", [None, "", "yesterday", "Fri, 31 Dec 9999 23:59:59", "-1"])
def test_without_a_usable_date_an_http_date_is_read_against_the_local_clock(
    date: str | None,
) -> None:
    headers = {"Retry-After": http_date(EPOCH + 30)}
    if date is not None:
        headers["Date"] = date
    assert hint_of(headers, local=EPOCH + 0.25) == (29.75, 1.0)


@settings(max_examples=50)
@given(
    sent=st.integers(0, 4_000_000_000),
    wait=st.integers(0, 86_400),
    local=st.floats(0, 4_000_000_000),
)
def test_an_http_date_beside_a_date_gives_whole_seconds_whatever_the_local_clock(
    sent: int, wait: int, local: float
) -> None:
    headers = {"Retry-After": http_date(sent + wait), "Date": http_date(sent)}
    assert hint_of(headers, local) == (float(wait), 1.0)
