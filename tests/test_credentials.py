"""A budget per credential on one session (``with_options(api_key=...)``) and token
providers that refresh: against FakeWhop's accounts, over sockets or in virtual time."""

from __future__ import annotations

import asyncio
import gc
import time
import traceback
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import whop_async
from whop_async import RateLimit, WhopClient
from whop_async.testing import FakeWhop, run_virtual

from .scenarios import API_KEY, Server, serving

KEYS = {"acme": "sk_acme_0123456789", "globex": "sk_globex_0123456789"}
SCENARIO_URL = "https://api.scenario.example/api/v1"


# --- with_options(api_key=...) ----------------------------------------------------------


def test_another_key_has_its_own_budget_on_the_same_session() -> None:
    # Each account may send 10 a second; two accounts, 20 ids each, take about two
    # seconds side by side: one budget for both would take four.
    server = Server({"api_keys": KEYS, "rate_limit": 10, "per": 1.0, "limiter": "bucket"})

    async def main() -> tuple[float, int, int]:
        loop = asyncio.get_running_loop()
        with serving(server):
            limit = RateLimit(10, per=1.0, burst=1)
            async with WhopClient(KEYS["acme"], base_url=SCENARIO_URL, rate_limit=limit) as acme:
                globex = acme.with_options(api_key=KEYS["globex"], account="globex")
                start = loop.time()
                ids = [f"adgrp_{number}" for number in range(20)]
                await asyncio.gather(
                    acme.ad_groups.unpause_many(ids), globex.ad_groups.unpause_many(ids)
                )
                return loop.time() - start, acme.stats.answered, globex.stats.answered

    seconds, acme_answers, globex_answers = run_virtual(main())
    assert 1.9 <= seconds <= 2.2
    assert (acme_answers, globex_answers) == (20, 20)  # each budget counts its own
    assert server.fake is not None
    assert server.fake.stats.rate_limited == 0
    assert {name: stats.requests for name, stats in server.fake.stats.accounts.items()} == {
        "acme": 20,
        "globex": 20,
    }


async def test_one_credential_one_budget_and_a_derived_client_closes_alone() -> None:
    async with FakeWhop(groups=3, api_keys=KEYS, rate_limit=None) as fake:
        async with WhopClient(KEYS["acme"], base_url=fake.base_url) as acme:
            slow = acme.with_options(timeout=60)
            globex = acme.with_options(api_key=KEYS["globex"], account="globex")
            await slow.ad_groups.unpause(fake.ids[0])
            assert acme.stats.answered == 1  # one budget for one key
            await globex.ad_groups.unpause(fake.ids[1])
            await globex.close()
            assert globex.closed
            assert not acme.closed
            with pytest.raises(RuntimeError, match="closed"):
                await globex.ad_groups.unpause(fake.ids[2])
            await acme.ad_groups.unpause(fake.ids[2])  # the session is still open
            assert repr(globex) == f"WhopClient(base_url={fake.base_url!r}, account='globex')"
        assert globex.closed
        assert slow.closed
        assert fake.stats.accounts["globex"].requests == 1


def test_account_needs_a_key_and_names_are_checked() -> None:
    client = WhopClient("sk_root", base_url=SCENARIO_URL)
    with pytest.raises(ValueError, match="api_key"):
        client.with_options(account="acme")
    with pytest.raises(ValueError, match="account name"):
        client.with_options(api_key="sk_other", account="no spaces")
    with pytest.raises(ValueError, match="printable ASCII") as caught:
        client.with_options(api_key="sk_bad\nkey")
    assert "sk_bad" not in str(caught.value)


def test_a_client_for_another_key_is_cheap_to_make_and_small_when_idle() -> None:
    async def main() -> tuple[float, float]:
        async with WhopClient("sk_root", base_url=SCENARIO_URL) as root:
            keys = [f"sk_account_{number:06d}" for number in range(2000)]
            started = time.process_time()
            clients = [root.with_options(api_key=key) for key in keys]
            cpu = (time.process_time() - started) / len(keys)
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            more = [root.with_options(api_key=key + "x") for key in keys]
            held = (tracemalloc.get_traced_memory()[0] - before) / len(keys)
            tracemalloc.stop()
            del clients, more
            return cpu, held

    cpu, held = run_virtual(main())
    assert cpu < 0.0005  # well under a millisecond of CPU each (about 0.04 ms here)
    assert held < 3 * 1024  # a few KiB each (about 2 KiB here)


def test_an_idle_account_forgets_its_budgets_once_they_are_at_rest() -> None:
    server = Server({"api_keys": {"acme": "sk_acme_0123456789"}, "rate_limit": None})

    def held_by_the_engine(snapshot: tracemalloc.Snapshot) -> int:
        engine = snapshot.filter_traces([tracemalloc.Filter(True, "*whop_async/_limits/*")])
        return sum(stat.size for stat in engine.statistics("filename"))

    async def main() -> tuple[float, float]:
        with serving(server):
            async with WhopClient("sk_root", base_url=SCENARIO_URL) as root:
                tracemalloc.start()
                accounts = [root.with_options(api_key="sk_acme_0123456789") for _ in range(300)]
                made = held_by_the_engine(tracemalloc.take_snapshot())
                for account in accounts:
                    await account.ad_groups.unpause("adgrp_1")
                busy = held_by_the_engine(tracemalloc.take_snapshot())
                await asyncio.sleep(10)  # idle
                gc.collect()
                idle = held_by_the_engine(tracemalloc.take_snapshot())
                tracemalloc.stop()
                return (busy - made) / len(accounts), (idle - made) / len(accounts)

    busy, idle = run_virtual(main())
    assert busy > 512  # an operation's budget and its queue
    assert idle < 64  # forgotten


# --- token providers ---------------------------------------------------------------------


class Refreshing:
    """A provider that hands over its current token, sync or async, counting the asks."""

    def __init__(self, token: str, *, asynchronous: bool) -> None:
        self.token = token
        self.asked = 0
        self.asynchronous = asynchronous

    def __call__(self) -> str | Awaitable[str]:
        self.asked += 1
        if not self.asynchronous:
            return self.token

        async def current() -> str:
            await asyncio.sleep(0)
            return self.token

        return current()


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_a_token_provider_is_asked_before_each_attempt(asynchronous: bool) -> None:
    keys = {"acme": "tok_1_abcdef"}
    async with FakeWhop(groups=3, api_keys=keys, rate_limit=None, fail_first=1) as fake:
        provider = Refreshing("tok_1_abcdef", asynchronous=asynchronous)
        async with WhopClient(provider, account="acme", base_url=fake.base_url) as acme:
            group = await acme.ad_groups.unpause(fake.ids[0])  # a 503, then a retry
    assert group.status == "active"
    assert provider.asked == 2
    assert fake.stats.accounts["acme"].requests == 2


async def test_after_a_401_a_refreshed_token_is_tried_once_and_keeps_the_budget() -> None:
    async with FakeWhop(groups=4, api_keys={"acme": "tok_old_abcdef"}, rate_limit=None) as fake:
        provider = Refreshing("tok_old_abcdef", asynchronous=True)
        async with WhopClient(provider, account="acme", base_url=fake.base_url) as acme:
            await acme.ad_groups.unpause(fake.ids[0])
            fake.rotate_key("acme", "tok_new_abcdef")  # the old token now answers 401
            provider.token = "tok_new_abcdef"  # as if refreshed elsewhere meanwhile
            result = await acme.ad_groups.unpause_many(fake.ids[1:])
            stats = acme.stats
    assert result.ok
    # One budget across both tokens: every answer counted in it, the 401 included.
    assert stats.answered == fake.stats.accounts["acme"].requests + fake.stats.unauthorized


@pytest.mark.virtual_time
async def test_a_401_with_no_new_token_ends_the_call_and_stops_the_accounts_run() -> None:
    loop = asyncio.get_running_loop()
    revoked = {"acme": 0.0}
    async with FakeWhop(
        groups=40, api_keys={"acme": "tok_1_abcdef"}, rate_limit=None, account_revoked_at=revoked
    ) as fake:
        provider = Refreshing("tok_1_abcdef", asynchronous=False)
        async with WhopClient(provider, account="acme", base_url=fake.base_url) as acme:
            started = loop.time()
            with pytest.raises(whop_async.AuthenticationError):
                await acme.ad_groups.unpause(fake.ids[0])
            # Asked before the attempt, then again after its 401 for a second and a half
            # (a provider may learn of a refresh late), always handing the refused token.
            assert provider.asked > 2
            assert 1.5 <= loop.time() - started < 2.0
            result = await acme.ad_groups.unpause_many(fake.ids, concurrency=4)
    assert fake.stats.unauthorized <= 1 + 2 * 4
    reasons = {type(error).__name__ for error in result.failed.values()}
    assert reasons == {"AuthenticationError", "NotFinishedError"}


BAD_PROVIDERS: list[tuple[str, Callable[[], Any], str]] = [
    ("raises", lambda: (_ for _ in ()).throw(OSError("refresh failed")), "raised OSError"),
    # Its message is the provider's: it may hold a token, and is not repeated.
    (
        "raises, naming a token",
        lambda: (_ for _ in ()).throw(RuntimeError("vault down, had tok_secret_value")),
        "raised RuntimeError",
    ),
    ("None", lambda: None, "a NoneType, not a str"),
    ("an int", lambda: 12345, "an int, not a str"),
    ("a line break", lambda: "tok_secret_value\n", "a str"),
    ("empty", lambda: "", "a str"),
]


@pytest.mark.parametrize(
    ("case", "provider", "said"), BAD_PROVIDERS, ids=[case for case, _, _ in BAD_PROVIDERS]
)
async def test_a_failing_provider_ends_the_call_naming_the_account_never_the_token(
    case: str, provider: Callable[[], Any], said: str
) -> None:
    async with (
        FakeWhop(groups=10, api_keys={"acme": "tok_1_abcdef"}, rate_limit=None) as fake,
        WhopClient(provider, account="acme", base_url=fake.base_url) as acme,
    ):
        with pytest.raises(whop_async.TokenProviderError) as caught:
            await acme.ad_groups.unpause(fake.ids[0])
        result = await acme.ad_groups.unpause_many(fake.ids, concurrency=2)
    assert caught.value.account == "acme"
    assert "account 'acme'" in str(caught.value)
    assert said in str(caught.value)
    assert "tok_secret_value" not in str(caught.value)
    # Nor in its traceback, as an error tracker or OpenTelemetry records it.
    assert "tok_secret_value" not in "".join(traceback.format_exception(caught.value))
    assert fake.stats.requests == 0  # nothing sent without a token
    stopped = [e for e in result.failed.values() if isinstance(e, whop_async.NotFinishedError)]
    assert len(result.failed) == 10
    assert all(isinstance(e.cause, whop_async.TokenProviderError) for e in stopped)


async def test_an_answer_that_echoes_a_providers_token_keeps_it_nowhere() -> None:
    async with FakeWhop(groups=1, api_keys={"acme": "tok_echoed_abcdef"}, echo_key=True) as fake:
        provider = Refreshing("tok_echoed_abcdef", asynchronous=False)
        async with WhopClient(provider, account="acme", base_url=fake.base_url) as acme:
            raw = await acme.ad_groups.with_raw_response.unpause(fake.ids[0])
    assert b"tok_echoed_abcdef" not in raw.content
    assert "tok_echoed_abcdef" not in str(dict(raw.headers))


def test_a_providers_budget_in_redis_needs_a_name() -> None:
    shared = RateLimit(600, redis_url="redis://127.0.0.1:1/0")
    with pytest.raises(ValueError, match="account="):
        WhopClient(lambda: "tok", base_url=SCENARIO_URL, rate_limit=shared)
    WhopClient(lambda: "tok", account="acme", base_url=SCENARIO_URL, rate_limit=shared)
    assert API_KEY  # the scenario key is never a provider's budget name


@pytest.mark.virtual_time
async def test_a_provider_that_never_answers_ends_its_accounts_ids_by_the_runs_deadline() -> None:
    loop = asyncio.get_running_loop()

    async def never() -> str:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    keys = {"acme": "tok_1_abcdef", "globex": "tok_2_abcdef"}
    async with FakeWhop(groups=20, api_keys=keys, rate_limit=None) as fake:
        accounts = {"acme": keys["acme"], "globex": never}
        async with whop_async.Accounts(accounts, base_url=fake.base_url, timeout=2.0) as both:
            pairs = [
                (("acme", "globex")[n % 2], ad_group_id) for n, ad_group_id in enumerate(fake.ids)
            ]
            started = loop.time()
            result = await both.unpause_many(pairs, deadline=5.0)
            took = loop.time() - started
    assert len(result["acme"].succeeded) == 10
    assert took <= 5.0 + 2.0  # not held past the deadline by a token never handed over
    failed = result["globex"].failed
    assert len(failed) == 10
    assert all(
        isinstance(error, (whop_async.NotFinishedError, whop_async.TokenProviderError))
        for error in failed.values()
    )
    assert any(
        "no token within 2 s" in str(getattr(error, "cause", error)) for error in failed.values()
    )


@pytest.mark.virtual_time
@pytest.mark.parametrize("late", [0.0, 0.1])
async def test_a_key_rotated_often_under_a_rate_limit_loses_no_call(late: float) -> None:
    # Three accounts paced at 20 a second, each key rotated every 0.4 s; the provider
    # learns of it at once, or a tenth of a second after the server. A call waiting for
    # its turn sends the token of its turn, and one that meets a 401 asks again.
    names = ["a0", "a1", "a2"]
    current = {name: f"tok_{name}_v0_abcdef" for name in names}
    loop = asyncio.get_running_loop()

    def provider_of(name: str) -> Callable[[], str]:
        return lambda: current[name]

    async with FakeWhop(groups=60, api_keys=dict(current), rate_limit=20, per=1.0) as fake:

        async def rotate() -> None:
            for version in range(1, 4):
                await asyncio.sleep(0.4)
                fresh = {name: f"tok_{name}_v{version}_abcdef" for name in names}
                for name in names:
                    fake.rotate_key(name, fresh[name])
                if late:
                    loop.call_later(late, current.update, fresh)
                else:
                    current.update(fresh)

        rotating = asyncio.create_task(rotate())
        limit = whop_async.RateLimit(20, per=1.0)
        providers = {name: provider_of(name) for name in names}
        async with whop_async.Accounts(providers, base_url=fake.base_url, rate_limit=limit) as all_:
            pairs = [(names[n % 3], ad_group_id) for n, ad_group_id in enumerate(fake.ids)]
            result = await all_.unpause_many(pairs)
        await rotating
    assert result.ok, {pair: type(error).__name__ for pair, error in result.failed.items()}
