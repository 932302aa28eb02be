"""Accounts: credentials by name on one session, and bulk runs over (account, id) pairs
that share their concurrency fairly. Fairness runs in virtual time against FakeWhop's
accounts answered in-process; the rest against FakeWhop over sockets."""

from __future__ import annotations

import asyncio
import collections
import math
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio
from aioresponses import CallbackResult
from yarl import URL

import whop_async
from whop_async import Accounts, NotFinishedError, RateLimit
from whop_async.testing import FakeWhop, run_virtual

from .doc_examples import examples
from .redis_servers import RedisServer
from .scenarios import Server, serving

KEYS = {"acme": "sk_acme_0123456789", "globex": "sk_globex_0123456789"}
SCENARIO_URL = "https://api.scenario.example/api/v1"


def pairs_of(fake: FakeWhop, names: list[str]) -> list[tuple[str, str]]:
    """Each of the fake's ids, dealt to the accounts in turn."""
    return [(names[number % len(names)], id_) for number, id_ in enumerate(fake.ids)]


async def test_pairs_are_done_with_their_accounts_keys_and_every_outcome_says_its_account() -> None:
    async with (
        FakeWhop(groups=20, api_keys=KEYS, rate_limit=None) as fake,
        Accounts(KEYS, base_url=fake.base_url, rate_limit=None) as accounts,
    ):
        pairs = pairs_of(fake, ["acme", "globex"])
        result = await accounts.unpause_many([*pairs, pairs[0]])  # a pair seen again: once
        assert result.ok
        assert [group.id for group in result["acme"].succeeded] == fake.ids[0::2]
        assert fake.stats.accounts["acme"].requests == 10
        assert fake.stats.accounts["globex"].requests == 10
        outcomes = [outcome async for outcome in accounts.iter_pause(pairs[:4])]
        assert sorted((o.account, o.id) for o in outcomes) == sorted(pairs[:4])
        assert all(o.ok for o in outcomes)
        assert outcomes[0].to_dict()["account"] == outcomes[0].account
        assert isinstance(accounts["acme"], whop_async.WhopClient)
        assert accounts["acme"].account == "acme"
        assert set(accounts) == {"acme", "globex"}
    assert fake.statuses() == {"active": 16, "paused": 4}


async def test_a_revoked_key_stops_only_its_accounts_ids() -> None:
    async with (
        FakeWhop(
            groups=200, api_keys=KEYS, rate_limit=None, account_revoked_at={"globex": 0.0}
        ) as fake,
        Accounts(KEYS, base_url=fake.base_url, rate_limit=None) as accounts,
    ):
        result = await accounts.unpause_many(pairs_of(fake, ["acme", "globex"]), concurrency=8)
    assert result["acme"].ok
    assert len(result["acme"].succeeded) == 100
    globex = result["globex"].failed
    assert len(globex) == 100
    assert fake.stats.accounts["globex"].requests <= 8  # stopped after what was in flight
    stopped = [error for error in globex.values() if isinstance(error, NotFinishedError)]
    assert len(stopped) >= 100 - 8
    assert all(isinstance(error.cause, whop_async.AuthenticationError) for error in stopped)


async def test_an_unknown_account_fails_its_pairs_and_accounts_can_be_added_while_a_run_goes() -> (
    None
):
    async with (
        FakeWhop(groups=6, api_keys=KEYS, rate_limit=None) as fake,
        Accounts({"acme": KEYS["acme"]}, base_url=fake.base_url, rate_limit=None) as accounts,
    ):

        async def pairs() -> AsyncIterator[tuple[str, str]]:
            yield "acme", fake.ids[0]
            yield "globex", fake.ids[1]  # not added yet
            await asyncio.sleep(0.05)
            accounts.add("globex", KEYS["globex"])
            yield "globex", fake.ids[2]
            yield "initech", fake.ids[3]

        result = await accounts.unpause_many(pairs())
    assert [group.id for group in result["globex"].succeeded] == [fake.ids[2]]
    assert isinstance(result["globex"].failed[fake.ids[1]], whop_async.UnknownAccountError)
    assert isinstance(result["initech"].failed[fake.ids[3]], whop_async.UnknownAccountError)
    assert result["acme"].ok


async def test_pairs_are_read_lazily() -> None:
    read = 0

    def pairs() -> Any:
        nonlocal read
        for number in range(100_000):
            read += 1
            yield "acme", f"adgrp_{number}"

    async with (
        FakeWhop(api_keys={"acme": KEYS["acme"]}, rate_limit=None, accept_any_id=True) as fake,
        Accounts({"acme": KEYS["acme"]}, base_url=fake.base_url) as accounts,
    ):
        outcomes = accounts.iter_unpause(pairs(), concurrency=4)
        first = await anext(outcomes)
        await outcomes.aclose()  # type: ignore[attr-defined]
    assert first.ok
    assert read <= 10_000 + 1024  # its lookahead, not the whole input


def test_names_keys_and_pairs_are_checked() -> None:
    accounts = Accounts(base_url=SCENARIO_URL)
    with pytest.raises(ValueError, match="account name"):
        accounts.add("two words", "sk_1")
    with pytest.raises(ValueError, match=r"'acme'.*printable") as caught:
        accounts.add("acme", "sk secret")
    assert "secret" not in str(caught.value)
    accounts.add("acme", "sk_1")
    with pytest.raises(ValueError, match="already"):
        accounts.add("acme", "sk_2")
    with pytest.raises(KeyError):
        accounts["globex"]

    async def run(pairs: Any) -> None:
        await accounts.unpause_many(pairs)

    with pytest.raises(TypeError, match="pair"):
        run_virtual(run("acme,adgrp_1"))
    with pytest.raises(TypeError, match="pair"):
        run_virtual(run(["adgrp_1"]))


async def test_closing_an_account_closes_only_it() -> None:
    async with (
        FakeWhop(groups=2, api_keys=KEYS, rate_limit=None) as fake,
        Accounts(KEYS, base_url=fake.base_url) as accounts,
    ):
        globex = accounts["globex"]
        await accounts.remove("globex")
        assert globex.closed
        assert "globex" not in accounts
        await accounts["acme"].ad_groups.unpause(fake.ids[0])
    assert accounts.closed
    assert accounts["acme"].closed


# --- fairness, in virtual time -------------------------------------------------------------


class _Watched(Server):
    """A Server of many accounts that counts each account's requests in flight at once,
    and makes a hanging request end at its client's timeout."""

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(options)
        self.in_flight: collections.Counter[str] = collections.Counter()
        self.rises: list[tuple[float, str, int]] = []  # when a key's count went up, to what

    async def answer(self, method: str, url: URL, **kwargs: Any) -> CallbackResult:
        key = kwargs["headers"]["Authorization"]
        self.in_flight[key] += 1
        self.rises.append((asyncio.get_running_loop().time(), key, self.in_flight[key]))
        try:
            async with asyncio.timeout(kwargs["timeout"].total):
                return await super().answer(method, url, **kwargs)
        finally:
            self.in_flight[key] -= 1


GOOD = [f"good{number}" for number in range(5)]
TROUBLE = {
    "slow": {"account_rate_limit": {"slow": 2}},
    "hung": {"account_hang": {"hung": (0.0, math.inf)}},
    "out": {"account_outage": {"out": (0.0, math.inf)}},
}


def _fair_run(trouble: list[str], *, sorted_with: int = 0) -> tuple[dict[str, float], _Watched]:
    """50 ids for each good account and each troubled one, interleaved (or, with
    ``sorted_with``, as a file sorted by account: that many ids of each troubled account
    first, then each good account's 50); when each account's last id finished (its
    finish time), and the server."""
    names = [*GOOD, *trouble]
    keys = {name: f"sk_{name}_0123456789" for name in names}
    options: dict[str, Any] = {"api_keys": keys, "rate_limit": 10, "per": 1.0}
    options |= {"limiter": "bucket", "burst": 10}
    for name in trouble:
        options |= TROUBLE[name]
    server = _Watched(options)

    async def main() -> dict[str, float]:
        loop = asyncio.get_running_loop()
        finished: dict[str, float] = {}
        pairs = [(name, f"adgrp_{number}") for number in range(50) for name in names]
        if sorted_with:
            pairs = [(name, f"adgrp_{n}") for name in trouble for n in range(sorted_with)]
            pairs += [(name, f"adgrp_{n}") for name in GOOD for n in range(50)]
        with serving(server):
            limit = RateLimit(10, per=1.0)
            async with Accounts(
                keys, base_url=SCENARIO_URL, rate_limit=limit, timeout=5.0
            ) as accounts:
                start = loop.time()
                async for outcome in accounts.iter_unpause(
                    pairs, concurrency=len(names), max_outage=30.0
                ):
                    assert outcome.account is not None
                    finished[outcome.account] = loop.time() - start
        return finished

    return run_virtual(main()), server


def test_a_slow_hung_or_out_account_holds_its_share_and_barely_slows_the_others() -> None:
    clean, _ = _fair_run([])
    troubled, server = _fair_run(["slow", "hung", "out"])
    for name in GOOD:
        assert troubled[name] <= 1.05 * clean[name], (name, troubled[name], clean[name])
    # While every account had ids to do, each held at most its share (one of eight) of
    # the calls in flight; then the troubled ones may use what the others left.
    while_all_busy = min(troubled[name] for name in GOOD)
    assert max(count for moment, _, count in server.rises if moment < while_all_busy) == 1
    assert max(count for _, key, count in server.rises if "hung" in key) > 1
    # The troubled ones ended too: the slow one at the pace its server allows (a burst
    # of 10, then 2 a second), the others once their outage bound passed.
    assert troubled["slow"] >= (50 - 10) / 2
    assert min(troubled["hung"], troubled["out"]) > 4 * max(clean.values())


def test_an_input_sorted_by_account_holds_the_healthy_ones_back_no_more() -> None:
    # 1,200 pairs of troubled accounts ahead of the healthy ones' (a CSV sorted by
    # account): they are read ahead, so the healthy accounts get their shares too.
    clean, _ = _fair_run([])
    troubled, _ = _fair_run(["slow", "hung", "out"], sorted_with=400)
    for name in GOOD:
        assert troubled[name] <= 1.05 * clean[name], (name, troubled[name], clean[name])


# --- Redis -------------------------------------------------------------------------------


async def test_each_accounts_budget_is_named_after_it_in_redis_never_its_key(
    redis_server: RedisServer,
    redis_client: redis.asyncio.Redis,
) -> None:
    limit = RateLimit(100, per=1.0, redis_url=redis_server.url)
    named = RateLimit(100, per=1.0, redis_url=redis_server.url, key="team")
    async with FakeWhop(groups=4, api_keys=KEYS, rate_limit=None) as fake:
        async with Accounts(KEYS, base_url=fake.base_url, rate_limit=limit) as accounts:
            assert (await accounts.unpause_many(pairs_of(fake, ["acme", "globex"]))).ok
        keys = sorted([key.decode() async for key in redis_client.scan_iter()])
        async with Accounts(KEYS, base_url=fake.base_url, rate_limit=named) as accounts:
            await accounts["acme"].ad_groups.retrieve(fake.ids[0])
    assert {"whop_async:{acme}:ad_groups.unpause", "whop_async:{globex}:ad_groups.unpause"} <= set(
        keys
    )
    assert all(key.startswith(("whop_async:{acme}:", "whop_async:{globex}:")) for key in keys)
    for key in keys:
        stored = await redis_client.dump(key)
        assert all(secret.encode() not in (stored or b"") for secret in KEYS.values())
    assert await redis_client.exists("whop_async:{team/acme}:ad_groups.retrieve")


async def test_the_oauth_refresh_example_refreshes_and_keeps_one_budget() -> None:
    [code] = [code for name, code in examples() if name == "docs/accounts.md#2"]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE
    )
    stdout, _ = await process.communicate()
    assert process.returncode == 0
    assert stdout.decode() == "True tok_3\n"


@pytest.mark.virtual_time
@pytest.mark.parametrize("added_again", [False, True])
async def test_an_account_removed_mid_run_ends_its_ids_unfinished_and_the_others_go_on(
    added_again: bool,
) -> None:
    keys = {"acme": "tok_1_abcdef", "globex": "tok_2_abcdef", "initech": "tok_3_abcdef"}
    async with FakeWhop(groups=90, api_keys=keys, rate_limit=None) as fake:
        limit = RateLimit(10, per=1.0)  # each account's 30 ids take about 3 s
        async with Accounts(keys, base_url=fake.base_url, rate_limit=limit) as accounts:
            names = list(keys)
            pairs = [(names[n % 3], ad_group_id) for n, ad_group_id in enumerate(fake.ids)]
            run = asyncio.create_task(accounts.unpause_many(pairs))
            await asyncio.sleep(1.0)
            await accounts.remove("globex")
            if added_again:  # at once: the removed client's calls end after it is back
                accounts.add("globex", keys["globex"])
            result = await run
    assert result["acme"].ok
    assert result["initech"].ok
    assert len(result["acme"].succeeded) == len(result["initech"].succeeded) == 30
    removed = result["globex"]
    assert len(removed.succeeded) + len(removed.failed) == 30
    assert removed.failed
    assert all(isinstance(e, whop_async.NotFinishedError) for e in removed.failed.values())
    assert all("was removed" in str(e) for e in removed.failed.values())


@pytest.mark.virtual_time
async def test_removing_an_account_whose_provider_hangs_ends_its_calls_at_once() -> None:
    loop = asyncio.get_running_loop()

    async def never() -> str:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    keys = {"acme": "tok_1_abcdef", "globex": "tok_2_abcdef"}
    async with FakeWhop(groups=40, api_keys=keys, rate_limit=None) as fake:
        accounts = Accounts({"acme": keys["acme"], "globex": never}, base_url=fake.base_url)
        async with accounts:
            pairs = [
                (("acme", "globex")[n % 2], ad_group_id) for n, ad_group_id in enumerate(fake.ids)
            ]
            started = loop.time()
            run = asyncio.create_task(accounts.unpause_many(pairs))  # timeout: 30 s
            await asyncio.sleep(1.0)
            await accounts.remove("globex")
            result = await run
            took = loop.time() - started
    assert len(result["acme"].succeeded) == 20
    assert took < 2.0  # not the provider's 30 s timeout
    assert all(isinstance(e, NotFinishedError) for e in result["globex"].failed.values())
