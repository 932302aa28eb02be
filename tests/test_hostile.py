"""Servers that misbehave on purpose: the client never storms and never stalls.

Each scenario runs the whole client in virtual time against the stand-in (FakeWhop)
playing a server that behaves badly in one way, answered in-process through
aioresponses; what is asserted is what the server saw, and what the caller got.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
from collections import Counter
from typing import Any

import aiohttp
import pytest
from aioresponses import CallbackResult
from yarl import URL

import whop_async
from whop_async import NotFinishedError, RateLimit, RateLimitError
from whop_async.testing import EDGE_HINTS, run_virtual

from .helpers import ShimResponse
from .scenarios import Server, bulk, client, limited, serving, unlimited


def gaps(moments: list[float]) -> list[float]:
    return [later - earlier for earlier, later in itertools.pairwise(moments)]


def unpauses(server: Server) -> list[float]:
    return [moment for moment, _, path in server.arrivals if path.endswith("/unpause")]


# --- a wait of zero is not a licence to hammer ------------------------------------------


@pytest.mark.parametrize("hint", EDGE_HINTS)
@pytest.mark.parametrize("rate_limit", [RateLimit(10, per=1.0), None], ids=["told", "unknown"])
def test_a_429_that_says_wait_zero_forever_is_spaced_and_the_call_ends(
    hint: str, rate_limit: RateLimit | None
) -> None:
    server = unlimited(throttle_rate=1.0, hint=hint)

    async def one_call() -> tuple[BaseException, float]:
        loop = asyncio.get_running_loop()
        with serving(server):
            async with client(rate_limit, rate_limit_timeout=10.0) as whop:
                start = loop.time()
                with pytest.raises(RateLimitError) as raised:
                    await whop.ad_groups.unpause("adgrp_1")
                return raised.value, loop.time() - start

    error, seconds = run_virtual(one_call())
    assert seconds <= 10.0 + 1e-6  # ended by its rate_limit_timeout
    assert "rate_limit_timeout" in str(error)
    sent = unpauses(server)
    assert len(sent) <= 15  # a few a second at first, then one every two seconds
    spacing = gaps(sent)
    assert min(spacing) >= 0.02
    assert spacing[-1] >= 1.0  # growing while the refusals go on


def test_a_bulk_run_against_a_server_that_refuses_everything_ends() -> None:
    server = unlimited(throttle_rate=1.0, hint="retry-after-zero")

    async def main() -> tuple[whop_async.BulkResult, float]:
        loop = asyncio.get_running_loop()
        ids = [f"adgrp_{n}" for n in range(200)]
        with serving(server):
            async with client(None, rate_limit_timeout=30.0) as whop:
                start = loop.time()
                result = await whop.ad_groups.unpause_many(ids, concurrency=16)
                return result, loop.time() - start

    result, seconds = run_virtual(main())
    failed = result.failed
    assert len(failed) == 200  # every id accounted for
    assert seconds <= 31.0
    assert Counter(type(error) for error in failed.values()).keys() <= {
        RateLimitError,
        NotFinishedError,
    }
    stopped = [error for error in failed.values() if isinstance(error, NotFinishedError)]
    assert stopped
    assert all(error.reason == "rate_limit" for error in stopped)
    assert server.requests <= 40


# --- a deferred retry never waits on answers only it could cause ------------------------


@pytest.mark.parametrize("concurrency", [1, 2])
def test_a_bulk_run_at_low_concurrency_goes_on_against_a_server_failing_40_percent(
    concurrency: int,
) -> None:
    server = unlimited(fault_rate=0.4, seed=3)
    run = run_virtual(bulk(server, 300, None, concurrency=concurrency))
    assert len(run.result.succeeded) + len(run.result.failed) == 300
    assert len(run.result.succeeded) >= 290
    # The retry budget refills at one a second: about 200 retries take minutes, not forever.
    assert run.seconds <= 600


# --- a call waiting for its operation's turn holds nothing another operation needs -------


def test_calls_waiting_out_one_operations_429_do_not_hold_up_another_operation() -> None:
    server = limited(1, per=20.0, hint="retry-after")

    async def main() -> float:
        loop = asyncio.get_running_loop()
        with serving(server):
            async with client(None) as whop:
                waiting = [
                    asyncio.create_task(whop.ad_groups.unpause(f"adgrp_{n}")) for n in range(150)
                ]
                await asyncio.sleep(1.0)  # every unpause is now queued behind the gate
                start = loop.time()
                with contextlib.suppress(whop_async.NotFoundError):  # answered, at once
                    await whop.ad_groups.retrieve("adgrp_1")
                took = loop.time() - start
                for task in waiting:
                    task.cancel()
                await asyncio.gather(*waiting, return_exceptions=True)
                return took

    assert run_virtual(main()) <= 0.01


# --- the gate's probe ends however it ends ------------------------------------------------


class _ProbeServer(Server):
    """Refuses the first request (Retry-After: 1, whole seconds), then answers the next one
    as ``probe`` says, then everything normally."""

    def __init__(self, probe: str) -> None:
        super().__init__({"rate_limit": None})
        self.probe = probe

    async def answer(self, method: str, url: URL, **kwargs: Any) -> CallbackResult:
        number = self.requests + 1
        if number == 1:
            self.requests += 1
            self.arrivals.append((asyncio.get_running_loop().time(), method, url.path))
            return CallbackResult(
                status=429, headers={"Retry-After": "1"}, body=b"{}", response_class=ShimResponse
            )
        if number == 2 and self.probe == "hangs":
            self.requests += 1
            self.arrivals.append((asyncio.get_running_loop().time(), method, url.path))
            await asyncio.sleep(3600)
        if number == 2 and self.probe == "html":
            self.requests += 1
            self.arrivals.append((asyncio.get_running_loop().time(), method, url.path))
            return CallbackResult(
                status=200,
                headers={"Content-Type": "text/html"},
                body=b"<html>ok</html>",
                response_class=ShimResponse,
            )
        return await super().answer(method, url, **kwargs)


@pytest.mark.parametrize("probe", ["hangs", "html"])
def test_the_next_call_goes_as_soon_as_the_probe_ends_however_it_ends(probe: str) -> None:
    server = _ProbeServer(probe)

    async def main() -> float:
        loop = asyncio.get_running_loop()
        with serving(server):
            async with client(RateLimit(10, per=1.0)) as whop:
                # Refused, then sent again as the gate's probe within the hint's second.
                prober = asyncio.create_task(whop.ad_groups.unpause("adgrp_0"))
                await asyncio.sleep(1.5)
                if probe == "hangs":
                    prober.cancel()  # e.g. an asyncio.timeout around the call
                ended = loop.time()
                await whop.ad_groups.unpause("adgrp_2")
                await asyncio.gather(prober, return_exceptions=True)
                return loop.time() - ended

    # Within one pacing interval (0.1 s at 10/s) and a round trip, not the probe's lease.
    assert run_virtual(main()) <= 0.15
    assert server.requests == 3


# --- ids that fail alone are not an outage -----------------------------------------------


def test_ids_that_always_fail_end_after_their_retries_not_after_outage_probes() -> None:
    failing = ["adgrp_3", "adgrp_17"]
    server = unlimited(failing_ids=failing)
    run = run_virtual(bulk(server, 20, None, concurrency=16))
    assert set(run.result.failed) == set(failing)
    assert all(
        isinstance(error, whop_async.InternalServerError) for error in run.result.failed.values()
    )
    # Nine attempts each (8 retries), full jitter backoff up to 8 s: about 20 s, 39.5 at most.
    assert run.seconds <= 40.0
    assert server.fake is not None
    assert all(server.fake.stats.failed[ad_group_id] == 9 for ad_group_id in failing)


# --- an API that is restarting is waited for; one that never answers stops the run -------


class _Restarting(Server):
    """Refuses connections (ECONNREFUSED) for its first ``down`` seconds, from the first
    request; ``unresolved``: the name never resolves."""

    def __init__(self, down: float, *, unresolved: bool = False) -> None:
        super().__init__({"rate_limit": None})
        self.down = down
        self.unresolved = unresolved
        self.refused_at: list[float] = []
        self._start: float | None = None

    async def answer(self, method: str, url: URL, **kwargs: Any) -> CallbackResult:
        now = asyncio.get_running_loop().time()
        if self._start is None:
            self._start = now
        if now - self._start < self.down:
            self.refused_at.append(now)
            await asyncio.sleep(0.001)
            key = aiohttp.client_reqrep.ConnectionKey(
                "api.scenario.example", 443, True, True, None, None, None
            )
            if self.unresolved:
                raise aiohttp.ClientConnectorDNSError(key, OSError(-2, "Name or service not known"))
            raise aiohttp.ClientConnectorError(key, OSError(errno.ECONNREFUSED, "refused"))
        return await super().answer(method, url, **kwargs)


@pytest.mark.parametrize("concurrency", [1, 16])
def test_an_api_restarting_for_three_seconds_is_waited_for(concurrency: int) -> None:
    server = _Restarting(3.0)
    run = run_virtual(bulk(server, 50, None, concurrency=concurrency))
    assert run.result.ok
    assert len(server.unpaused) == 50


def test_an_address_where_nothing_ever_answers_stops_the_run_after_about_ten_seconds() -> None:
    server = _Restarting(3600.0)
    run = run_virtual(bulk(server, 50, None, concurrency=16))
    assert len(run.result.failed) == 50
    stopped = [e for e in run.result.failed.values() if isinstance(e, NotFinishedError)]
    assert stopped
    assert all(error.reason == "fatal" for error in stopped)
    assert 10.0 <= run.seconds <= 11.0
    assert "nothing answers" in str(stopped[0])


def test_a_name_that_does_not_resolve_stops_the_run_at_once() -> None:
    server = _Restarting(3600.0, unresolved=True)
    run = run_virtual(bulk(server, 50, None, concurrency=16))
    assert len(run.result.failed) == 50
    assert run.seconds <= 5.0
    assert "does not resolve" in str(next(iter(run.result.failed.values())))


# --- refusals that come and go ------------------------------------------------------------


@pytest.mark.parametrize("hint", ["message", "none"])
def test_refusals_that_come_and_go_keep_the_pace_near_what_the_server_accepts(hint: str) -> None:
    # Whop's 600 a minute, told (the default); 15 % of requests refused every other second.
    server = limited(600, per=60.0, hint=hint, throttle_rate=0.15, throttle_cycle=(1.0, 1.0))
    run = run_virtual(bulk(server, 1000, whop_async.RateLimit(600, per=60.0), concurrency=16))
    assert run.result.ok
    accepted_rate = 1000 / run.seconds
    # The server accepts 10 a second less 15 % of every other second: 9.25 a second.
    assert accepted_rate >= 0.85 * 9.25, f"{accepted_rate:.2f}/s"


# --- a closed client sends nothing -------------------------------------------------------


def test_a_derived_client_closed_while_its_calls_wait_sends_none_of_them() -> None:
    server = unlimited()

    async def main() -> list[BaseException | whop_async.AdGroup]:
        with serving(server):
            async with client(RateLimit(1, per=10.0, burst=1)) as whop:
                await whop.ad_groups.unpause("adgrp_0")  # the burst is spent
                derived = whop.with_options(timeout=5.0)
                waiting = [
                    asyncio.create_task(derived.ad_groups.unpause(f"adgrp_{n}"))
                    for n in range(1, 6)
                ]
                await asyncio.sleep(1.0)
                await derived.close()
                outcomes = await asyncio.gather(*waiting, return_exceptions=True)
                await asyncio.sleep(30.0)  # nothing is sent later either
                assert not whop.closed  # the parent goes on
                await whop.ad_groups.unpause("adgrp_9")
                return outcomes

    outcomes = run_virtual(main())
    assert all(isinstance(outcome, RuntimeError) for outcome in outcomes)
    assert server.unpaused == {"adgrp_0", "adgrp_9"}


# --- duplicates, as the docs promise --------------------------------------------------


def test_an_id_seen_again_within_the_latest_100000_distinct_ids_is_unpaused_once() -> None:
    # Invalid ids fail before anything is sent: they fill the memory of recent ids fast.
    def ids() -> Any:
        for number in range(300_000):
            if number % 5_000 == 0:
                yield "adgrp_again"
            yield f"not an id {number}"

    server = unlimited()

    async def main() -> whop_async.BulkResult:
        with serving(server):
            async with client(None) as whop:
                return await whop.ad_groups.unpause_many(ids(), concurrency=4)

    result = run_virtual(main())
    assert [group.id for group in result.succeeded] == ["adgrp_again"]
    assert server.requests == 1


# --- an outage is waited out to max_outage, not to the rate limit's timeout ------------


def test_a_long_outage_ends_every_id_left_as_outage_with_the_default_bounds() -> None:
    # max_outage and rate_limit_timeout are both 600 s: calls already waiting when the
    # server went down used to give up at their rate_limit_timeout instead, as if
    # refused.
    server = unlimited(outage=(0.005, 86_400.0))
    run = run_virtual(bulk(server, 300, None, concurrency=16))
    failed = run.result.failed
    assert len(run.result.succeeded) + len(failed) == 300
    assert Counter(type(error).__name__ for error in failed.values()) == {
        "NotFinishedError": len(failed)
    }
    assert {error.reason for error in failed.values()} == {"outage"}  # type: ignore[attr-defined]


def test_a_run_waits_out_its_whole_max_outage_and_asks_once_more_at_its_end() -> None:
    # Probes at 0.5, 1.5, 3.5 and 7.5 s: the next after 3.5 s would come past a
    # max_outage of 5 s, where the run used to give up without asking again.
    server = unlimited(outage=(0.005, 4.2))
    run = run_virtual(bulk(server, 30, None, concurrency=4, max_outage=5.0))
    assert run.result.ok
    assert len(server.unpaused) == 30


def test_an_error_of_a_private_kind_is_named_by_its_public_class() -> None:
    # No connection at all is a CouldNotConnect inside: outcomes and journals name
    # what users can catch, APIConnectionError.
    server = _Restarting(3600.0, unresolved=True)
    run = run_virtual(bulk(server, 3, None, concurrency=3))
    names = {
        whop_async.Outcome(id=i, error=e).to_dict()["error"] for i, e in run.result.failed.items()
    }
    assert names <= {"APIConnectionError", "NotFinishedError"}
    assert "CouldNotConnect" not in repr([str(e) for e in run.result.failed.values()])
