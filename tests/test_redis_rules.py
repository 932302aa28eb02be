"""One set of rules: the take script's copies of the pacing, gate, rate and checking
rules agree with the Python ones. The same random events run through a budget in
memory and through the scripts on a real redis-server; every decision, every standing
after a refusal and every field of the budget must come out the same."""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from whop_async._limits import shared
from whop_async._limits.estimate import KEPT, SLOT
from whop_async._limits.gate import NO_HINT, Wait, WaitHint
from whop_async._limits.operation import (
    Answer,
    Decision,
    Go,
    OperationBudget,
    Report,
    Taken,
    apply,
)
from whop_async._limits.pacing import Pacing

from .redis_servers import running

START = 1_000.0
_names = itertools.count()
RULES = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def client() -> Iterator[redis.Redis]:
    with running() as server:
        yield server.client()


def run(client: redis.Redis, script: shared.Script, keys: list[str], args: list[str]) -> Any:
    return client.eval(script.source, len(keys), *keys, *args)


class Both:
    """One budget in memory (the Python rules) and the same budget in Redis (the
    scripts), told the same events at the same moments."""

    def __init__(self, client: redis.Redis, ceiling: float, burst: int, cap: float) -> None:
        self.client = client
        self.memory = OperationBudget.new(ceiling, burst)
        self.keys = shared.keys("rules:", f"budget{next(_names)}", "op")
        self.bounds = shared.Bounds.of(ceiling, burst, cap)
        self.ask = shared.Ask(ceiling, burst, False, 0, 0.0, "w", "n")
        self.cap = cap
        self.now = START
        self.nonces = itertools.count()

    def take(self, accepted: int, owed: float, queued: bool) -> None:
        self.memory.accepted(accepted, self.now)
        if owed:
            self.memory.owe(self.now, owed)
        decided = self.memory.take(self.now, ahead=shared.BOOKED_AHEAD, queued=queued)
        ask = self.ask._replace(
            queued=queued, accepted=accepted, owed=owed, nonce=f"n{next(self.nonces)}"
        )
        args = shared.take_args(repr(self.now), ask, self.bounds)
        answer = shared.answered(run(self.client, shared.TAKE, self.keys, args))
        assert answer.bad == ""
        assert as_decision(answer) == decided

    def told(self, report: Report) -> None:
        expected = apply(self.memory, report, self.now)
        read = run(self.client, shared.READ, self.keys[:3], [repr(self.now)])
        ask = self.ask._replace(nonce=f"n{next(self.nonces)}")
        standing, rewrite = shared.rewrite(
            read, ask, self.bounds, lambda budget, now: apply(budget, report, now)
        )
        assert rewrite.bad is None
        assert standing == expected
        args = [rewrite.expected, str(shared.TTL_MS), rewrite.change]
        assert run(self.client, shared.WRITE, self.keys[:3], args) == 1

    def agree(self) -> None:
        read = run(self.client, shared.READ, self.keys[:3], [repr(self.now)])
        stored = stored_budget(read, self.ask, self.bounds)
        assert shared.fields_of(stored, 0) == shared.fields_of(self.memory, 0)
        oldest = int((self.now - KEPT) // SLOT)
        for kept, held in (
            (stored.estimate.accepted, self.memory.estimate.accepted),
            (stored.estimate.refused_slots, self.memory.estimate.refused_slots),
        ):
            assert recent(kept, oldest) == recent(held, oldest)


def stored_budget(read: Any, ask: shared.Ask, bounds: shared.Bounds) -> OperationBudget:
    """The budget the read script read, as the Python rules see it."""
    budgets: list[OperationBudget] = []
    _, rewrite = shared.rewrite(read, ask, bounds, lambda budget, _: budgets.append(budget))
    assert rewrite.bad is None
    return budgets[0]


def recent(slots: dict[int, int], oldest: int) -> dict[int, int]:
    return {slot: count for slot, count in slots.items() if slot >= oldest}


def as_decision(answer: shared.Answered) -> Decision:
    if answer.kind == "send":
        return Taken(Go.SEND, answer.moment, answer.now)
    if answer.kind == "probe":
        return Taken(Go.PROBE, answer.moment, answer.now)
    return Wait(answer.moment, gated=answer.gated, firm=answer.firm)


steps = st.one_of(
    st.just(0.0),
    st.floats(0.0, 0.05),
    st.floats(0.05, 3.0),
)
hints = st.one_of(
    st.just(NO_HINT),
    st.builds(
        WaitHint.of,
        st.sampled_from([0.3, 1.0, 3.0, 45.0, 86_400.0]),
        st.sampled_from([1.0, 0.001]),
    ),
)
takes = st.tuples(
    st.just("take"), steps, st.integers(0, 3), st.sampled_from([0.0, 0.0, 0.02]), st.booleans()
)
reports = st.tuples(
    st.just("told"),
    steps,
    st.sampled_from(list(Answer)),
    st.sampled_from(list(Go)),
    st.floats(0.0, 0.5),
    st.sampled_from([0.0, 0.0, 0.01, 0.3]),
    hints,
)
events = st.lists(st.one_of(takes, takes, reports), min_size=1, max_size=40)


@RULES
@given(
    ceiling=st.sampled_from([0.5, 10.0, 100.0]),
    burst=st.sampled_from([1, 10]),
    cap=st.sampled_from([0.0, 30.0, 120.0]),
    happenings=events,
)
def test_the_scripts_decide_as_the_python_rules_do(
    client: redis.Redis, ceiling: float, burst: int, cap: float, happenings: list[Any]
) -> None:
    both = Both(client, ceiling, burst, cap)
    for event in happenings:
        both.now += event[1]
        if event[0] == "take":
            both.take(*event[2:])
        else:
            _, _, answer, go, ago, granted_before, hint = event
            sent_at = both.now - ago
            both.told(Report(go, sent_at, sent_at - granted_before, answer, hint, cap))
        both.agree()


NUMBERS_NEAR = st.floats(-1e4, 1e4, allow_nan=False).map(lambda x: repr(START + x))
ODD = st.sampled_from(
    ["", "abc", "Infinity", "-Infinity", "NaN", "1e999", "-1e999", " 1", "1 ", "01", "-0",
     "1.", ".5", "1e5", "1E+2", "0x10", "true", "false", "null", "[]", "{}", '"measured"',
     '"ramping"', '"MEASURED"', "0.1", "0.09", "1e9", "1000000001", "2", "2.5", "-1"]
)  # fmt: skip
values = st.one_of(ODD, NUMBERS_NEAR, st.floats(allow_nan=True).map(repr), st.text(max_size=8))


@RULES
@given(stored=st.dictionaries(st.sampled_from([*shared.HOT, shared.VERSION]), values, max_size=4))
def test_the_take_script_and_python_tell_bad_values_alike(
    client: redis.Redis, stored: dict[str, str]
) -> None:
    both = Both(client, 10.0, 10, 120.0)
    if stored:
        client.hset(both.keys[0], mapping=stored)  # type: ignore[arg-type]
    python_says_bad = False
    for name, raw in stored.items():
        try:
            shared.checked(shared.KIND_OF[name], raw, both.now, both.bounds)
        except shared.BadData:
            python_says_bad = True
    args = shared.take_args(repr(both.now), both.ask, both.bounds)
    answer = shared.answered(run(client, shared.TAKE, both.keys, args))
    assert (answer.bad != "") == python_says_bad, (stored, answer.bad)
    if python_says_bad:  # replaced by a fresh budget: the turn goes at once
        assert answer.kind == "send"
        assert math.isclose(answer.moment, both.now)


def test_a_workers_set_that_is_no_set_is_replaced_and_the_budget_kept(
    client: redis.Redis,
) -> None:
    # A refusal has closed the gate; then the workers' key is spoilt. The next turn
    # replaces that key alone, and still finds the gate closed (it found a fresh
    # budget's open gate, and sent into the refusal).
    both = Both(client, 10.0, 10, 120.0)
    both.take(0, 0.0, False)
    both.told(Report(Go.SEND, both.now, both.now, Answer.REFUSED, WaitHint.of(5.0, 1.0), 120.0))
    client.set(both.keys[3], "text")
    args = shared.take_args(repr(both.now), both.ask, both.bounds)
    answer = shared.answered(run(client, shared.TAKE, both.keys, args))
    assert "is a string" in answer.bad
    assert answer.kind == "wait"
    assert answer.gated
    assert as_decision(answer) == both.memory.take(both.now, ahead=shared.BOOKED_AHEAD)
    both.agree()


@settings(max_examples=30, deadline=None)
@given(workers=st.integers(2, 200), seed=st.integers(0, 2**32), late=st.floats(0.0, 0.02))
def test_workers_told_to_come_back_are_served_before_newcomers_and_the_pace_holds(
    workers: int, seed: int, late: float
) -> None:
    # Each worker sends at its booked turn and asks again at once; one told to come back
    # comes back up to ``late`` after the moment it was given. Nobody is sent to the back
    # of the line twice, so the line never grows: the pace stays the budget's.
    chance = random.Random(seed)
    pacing, rate, burst = Pacing(), 100.0, 10
    asks = [(chance.uniform(0, 0.01), worker, False) for worker in range(workers)]
    heapq.heapify(asks)
    sent = []
    while asks[0][0] < 30.0:
        now, worker, queued = heapq.heappop(asks)
        slot = pacing.take(now, rate, burst, shared.BOOKED_AHEAD, queued)
        if slot.taken:
            sent.append(slot.at)
        heapq.heappush(asks, (slot.at + chance.uniform(0, late), worker, not slot.taken))
    steady = [moment for moment in sent if 5.0 <= moment < 30.0]
    assert len(steady) >= 0.97 * 25 * rate
    assert pacing.queue_at - 30.0 <= (workers + 1) / rate + late
