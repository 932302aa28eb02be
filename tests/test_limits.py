"""The rate-limit engine: pacing, the pause gate, adaptive rate, 429s, retry budget."""

from __future__ import annotations

import asyncio
import math

import pytest

import whop_async
from whop_async import RateLimit, WhopClient
from whop_async._limits import Gate, Pacer, RetryBudget

from .helpers import BASE_URL, FakeClock, MockAPI, ad_group_json

UNPAUSE_URL = f"{BASE_URL}/ad_groups/adgrp_xxxxxxxxxxxx/unpause"
OK = {"payload": ad_group_json()}
RATE_LIMITED = {
    "status": 429,
    "payload": {"error": {"type": "rate_limit_exceeded", "message": "Try again in 12 seconds."}},
}

pytestmark = pytest.mark.usefixtures("env")


def test_rate_limit_defaults_and_checks() -> None:
    assert RateLimit(600, per=60.0).rate == 10.0
    assert RateLimit(600, per=60.0).burst_size == 10
    assert RateLimit(3, per=1.0).burst_size == 3
    assert RateLimit(100, per=1.0, burst=1).burst_size == 1
    for bad in ({"requests": 0}, {"requests": 1, "per": 0}, {"requests": 1, "burst": 0}):
        with pytest.raises(ValueError, match="must be"):
            RateLimit(**bad)  # type: ignore[arg-type]


async def send_times(pacer: Pacer, gate: Gate, clock: FakeClock, count: int) -> list[float]:
    times = []
    for _ in range(count):
        await pacer.wait_turn(gate)
        times.append(clock.now)
        pacer.release()
    return times


async def test_pacing_lets_a_burst_through_then_spaces_requests_evenly() -> None:
    clock = FakeClock()
    pacer = Pacer(RateLimit(10, per=1.0, burst=3), clock.clock())
    times = await send_times(pacer, Gate(clock.clock()), clock, 6)
    start = times[0]
    assert [t - start for t in times] == pytest.approx([0.0, 0.0, 0.0, 0.1, 0.2, 0.3], abs=1e-5)


async def test_pacing_is_shared_by_concurrent_tasks_in_arrival_order() -> None:
    clock = FakeClock()
    pacer, gate = Pacer(RateLimit(5, per=1.0, burst=1), clock.clock()), Gate(clock.clock())
    order: list[int] = []

    async def call(number: int) -> None:
        await pacer.wait_turn(gate)
        order.append(number)
        pacer.release()

    await asyncio.gather(*(call(number) for number in range(5)))
    assert order == [0, 1, 2, 3, 4]
    assert clock.now - 1_800_000_000.0 == pytest.approx(0.8)


async def test_the_gate_holds_everyone_until_it_reopens_and_is_checked_after_each_wait() -> None:
    clock = FakeClock()
    gate = Gate(clock.clock())
    gate.close_for(5.0)
    gate.close_for(1.0)  # never shortens
    waiter = asyncio.create_task(gate.wait())
    await asyncio.sleep(0)
    gate.close_for(8.0)  # extended while waiting
    await waiter
    assert clock.now - 1_800_000_000.0 >= 8.0


async def test_without_a_limit_nothing_is_paced_until_a_429_then_it_adapts() -> None:
    clock = FakeClock()
    pacer, gate = Pacer(None, clock.clock()), Gate(clock.clock())
    assert pacer.rate is None
    await send_times(pacer, gate, clock, 50)
    assert clock.sleeps == []
    for _ in range(50):
        clock.now += 0.01  # 100 accepted per second
        pacer.on_success()
    await pacer.on_rate_limited(sent_at=clock.now)
    assert pacer.rate == pytest.approx(90.0, rel=0.05)


async def test_a_429_lowers_the_rate_once_per_round_and_successes_raise_it_again() -> None:
    clock = FakeClock()
    pacer = Pacer(RateLimit(100, per=1.0), clock.clock())
    sent = await pacer.wait_turn(Gate(clock.clock()))
    for _ in range(100):
        clock.now += 0.02  # the server accepts 50 per second
        pacer.on_success()
    await pacer.on_rate_limited(sent_at=sent)
    cut = pacer.rate
    assert cut is not None
    assert cut == pytest.approx(45.0, rel=0.05)
    await pacer.on_rate_limited(sent_at=sent)  # sent before the cut: says nothing new
    assert pacer.rate == cut
    for _ in range(10):
        clock.now += 1.0
        pacer.on_success()
    assert cut < pacer.rate <= 100.0


def test_the_retry_budget_allows_a_reserve_then_a_share_of_successes() -> None:
    budget = RetryBudget(ratio=0.2, reserve=2.0, cap=3.0)
    assert [budget.withdraw() for _ in range(3)] == [True, True, False]
    for _ in range(5):
        budget.deposit()
    assert budget.withdraw()
    assert not budget.withdraw()
    for _ in range(100):
        budget.deposit()
    assert [budget.withdraw() for _ in range(4)] == [True, True, True, False]


async def test_429s_do_not_consume_max_retries(mock_api: MockAPI, fake_clock: FakeClock) -> None:
    for _ in range(5):
        mock_api.post(UNPAUSE_URL, **RATE_LIMITED)
    mock_api.post(UNPAUSE_URL, **OK)
    async with WhopClient(base_url=BASE_URL, max_retries=0, _clock=fake_clock.clock()) as client:
        group = await client.ad_groups.unpause("adgrp_xxxxxxxxxxxx")
    assert group.id == "adgrp_xxxxxxxxxxxx"
    assert len(mock_api.sent("POST", UNPAUSE_URL)) == 6
    assert all(math.isclose(s, 12.0) for s in fake_clock.sleeps if s >= 1)


async def test_429s_stop_at_the_calls_rate_limit_timeout(
    mock_api: MockAPI, fake_clock: FakeClock
) -> None:
    mock_api.post(UNPAUSE_URL, repeat=True, **RATE_LIMITED)
    async with WhopClient(
        base_url=BASE_URL, rate_limit_timeout=30.0, _clock=fake_clock.clock()
    ) as client:
        with pytest.raises(whop_async.RateLimitError):
            await client.ad_groups.unpause("adgrp_xxxxxxxxxxxx")
    assert len(mock_api.sent("POST", UNPAUSE_URL)) == 3  # at 0, 12 and 24 s; 36 is too late


@pytest.mark.parametrize(
    ("refusal", "pause"),
    [(RATE_LIMITED, 12.0), ({"status": 503, "headers": {"Retry-After": "7"}}, 7.0)],
    ids=["429 with Whop's message", "503 with Retry-After"],
)
async def test_a_server_wait_pauses_every_call_of_the_client(
    mock_api: MockAPI, fake_clock: FakeClock, refusal: dict[str, object], pause: float
) -> None:
    other_url = f"{BASE_URL}/ad_groups/adgrp_other/unpause"
    sent: dict[str, float] = {}
    refused = asyncio.Event()

    def refuse(*_: object, **__: object) -> None:
        sent["refused"] = fake_clock.now
        refused.set()

    mock_api.post(UNPAUSE_URL, callback=refuse, **refusal)  # type: ignore[arg-type]
    mock_api.post(UNPAUSE_URL, **OK)

    def record_other(*_: object, **__: object) -> None:
        sent["other"] = fake_clock.now

    mock_api.post(other_url, callback=record_other, payload=ad_group_json("adgrp_other"))
    async with WhopClient(base_url=BASE_URL, _clock=fake_clock.clock()) as client:
        first = asyncio.create_task(client.ad_groups.unpause("adgrp_xxxxxxxxxxxx"))
        await refused.wait()
        await client.ad_groups.unpause("adgrp_other")
        await first
    assert sent["other"] - sent["refused"] >= pause


async def test_an_outage_spends_the_retry_budget_then_fails_fast(
    mock_api: MockAPI, fake_clock: FakeClock
) -> None:
    calls = 200
    mock_api.post(UNPAUSE_URL, repeat=True, status=503)
    async with WhopClient(base_url=BASE_URL, rate_limit=None, _clock=fake_clock.clock()) as client:
        outcomes = await asyncio.gather(
            *(client.ad_groups.unpause("adgrp_xxxxxxxxxxxx") for _ in range(calls)),
            return_exceptions=True,
        )
    assert all(isinstance(outcome, whop_async.InternalServerError) for outcome in outcomes)
    assert len(mock_api.sent("POST", UNPAUSE_URL)) <= 1.1 * calls


async def test_without_a_limit_a_slow_start_window_bounds_the_opening_wave() -> None:
    clock = FakeClock()
    pacer, gate = Pacer(None, clock.clock()), Gate(clock.clock())
    taken = [pacer.try_turn(gate) for _ in range(6)]
    assert [turn is not None for turn in taken] == [True] * 4 + [False] * 2
    waiting = asyncio.create_task(pacer.wait_turn(gate))
    await asyncio.sleep(0)
    assert not waiting.done()  # the window is full
    pacer.on_success()  # an answer: the window grows by one...
    pacer.release()  # ...and its slot is free again
    await waiting
    for _ in range(200):  # answers keep coming: the window outgrows every permit
        pacer.on_success()
        pacer.release()
    assert all(pacer.try_turn(gate) is not None for _ in range(500))


async def test_a_429_during_slow_start_switches_to_a_paced_rate() -> None:
    clock = FakeClock()
    pacer, gate = Pacer(None, clock.clock()), Gate(clock.clock())
    sent = await pacer.wait_turn(gate)
    for _ in range(3):
        clock.now += 0.1
        pacer.on_success()
        pacer.release()
    await pacer.on_rate_limited(sent_at=sent)
    assert pacer.rate is not None
    await send_times(pacer, gate, clock, 20)  # no window holds anything back any more


async def test_the_servers_wait_counts_in_the_rate_estimate() -> None:
    """A fixed window accepts a burst of 50 in milliseconds, then says "1 second": the
    rate it allows is 50 a second, not thousands."""
    clock = FakeClock()
    pacer, gate = Pacer(None, clock.clock()), Gate(clock.clock())
    sent = await pacer.wait_turn(gate)
    for _ in range(50):
        clock.now += 0.0002
        pacer.on_success()
        pacer.release()
    await pacer.on_rate_limited(sent_at=sent, pause=1.0)
    assert pacer.rate == pytest.approx(0.9 * 50 / 1.01, rel=0.01)
