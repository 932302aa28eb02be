"""A shared budget when its Redis misbehaves: away for a while, refusing for good
(wrong password, an ACL without scripting, a read-only replica, out of memory), or
holding values that are no budget's. Real redis-server processes, virtual time: a run
of minutes takes a second, and nothing depends on how busy the machine is."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import socketserver
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from redis.exceptions import BusyLoadingError, ClusterDownError, MovedError, ResponseError

import whop_async
from whop_async import RateLimit
from whop_async._limits.redis_faults import Contended, Health, fault_of
from whop_async.testing import run_virtual

from .redis_servers import (
    HOST,
    RedisServer,
    multi_client,
    run_against_redis,
    running,
    stalled_once_while_redis_answers,
    unpause_all,
)
from .scenarios import Server, bulk, limited, serving, unlimited

SECRET = "s3cret-Pa55"


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def bucket(rate: int = 100, **options: Any) -> Server:
    return limited(rate, limiter="bucket", burst=10, hint="retry-after-ms", **options)


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with running() as started:
        yield started


# --- Redis away for a while --------------------------------------------------------------


def test_while_redis_is_away_the_workers_together_stay_within_the_budget(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    # Four workers share 100/s; Redis is stopped from 1 s to 3 s. Each paces alone at a
    # quarter (four workers seen), starting with no burst, and what it spent alone counts
    # when Redis is back: the server refuses nothing, then or after.
    limit = RateLimit(100, per=1.0, redis=server.url, key="away")
    stand_in = bucket()

    async def run() -> list[whop_async.BulkResult]:
        loop = asyncio.get_running_loop()
        loop.call_at(loop.time() + 1.0, server.stop)
        loop.call_at(loop.time() + 3.0, server.start)
        with serving(stand_in):
            return await unpause_all(limit, multi_client(4, 150))

    with caplog.at_level(logging.WARNING, logger="whop_async"):
        results, _ = run_against_redis(run())
    assert all(result.ok for result in results)
    assert len(stand_in.unpaused) == 600
    assert stand_in.refused == 0
    assert stand_in.rate_between(1.2, 3.0) <= 100 + 1  # the four local paces together
    said = warnings_of(caplog)
    assert sum("cannot be reached" in line and "0.25 of it" in line for line in said) == 4
    assert sum("answers again" in line for line in said) == 4


# --- Redis refusing for good ---------------------------------------------------------------


def _wrong_password() -> tuple[RedisServer, str]:
    server = RedisServer("--requirepass", "the-right-one")
    server.start()
    return server, f"redis://:{SECRET}@{HOST}:{server.port}/0"


def _acl_without_scripting() -> tuple[RedisServer, str]:
    acl = ("worker", "on", f">{SECRET}", "~*", "&*", "+@all", "-@scripting")
    server = RedisServer("--user", *acl)
    server.start()
    return server, f"redis://worker:{SECRET}@{HOST}:{server.port}/0"


def _read_only_replica(master: RedisServer) -> tuple[RedisServer, str]:
    replica = RedisServer("--replicaof", HOST, str(master.port), "--masterauth", SECRET)
    replica.start()
    return replica, f"redis://:{SECRET}@{HOST}:{replica.port}/0"


def _out_of_memory() -> tuple[RedisServer, str]:
    server = RedisServer("--maxmemory", "2mb", "--maxmemory-policy", "noeviction")
    server.start()
    server.client().execute_command("DEBUG", "POPULATE", "30000", "filler", "64")
    return server, server.url


FAULTS = {
    "wrong password": ("refused the credentials", _wrong_password),
    "an ACL user without @scripting": ("lacks permission", _acl_without_scripting),
    "a read-only replica": ("read-only replica", None),
    "maxmemory with noeviction": ("out of memory", _out_of_memory),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_a_redis_that_refuses_for_good_is_said_once_and_tried_about_once_a_minute(
    server: RedisServer, caplog: pytest.LogCaptureFixture, fault: str
) -> None:
    said_as, make = FAULTS[fault]
    if make is None:
        server.client().config_set("requirepass", SECRET)
        refusing, url = _read_only_replica(server)
    else:
        refusing, url = make()
    stand_in = unlimited()
    # One every five seconds, 60 ids: five minutes of virtual time paced locally.
    limit = RateLimit(1, per=5.0, burst=1, redis=url, key="refusing", fallback_share=1.0)
    try:
        with caplog.at_level(logging.DEBUG, logger="whop_async"):
            run, io = run_against_redis(bulk(stand_in, 60, limit))
    finally:
        refusing.stop()
    assert len(run.server.unpaused) == 60
    assert run.seconds >= 59 * 5  # paced locally at the budget, never faster
    tries = io.commands["EVALSHA"] + io.commands["EVAL"]
    assert 5 <= tries <= 12  # 2, 4, 8... then once a minute, not every second
    [warning] = warnings_of(caplog)
    assert said_as in warning
    assert f"{HOST}:{refusing.port}" in warning
    assert "locally" in warning
    assert all(SECRET not in record.getMessage() for record in caplog.records)


def test_a_change_of_cause_is_said_again_and_a_repeat_is_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Refused for its password, then stopped (unreachable), then started without one.
    server = RedisServer("--requirepass", "the-right-one")
    server.start()
    url = f"redis://:{SECRET}@{HOST}:{server.port}/0"
    limit = RateLimit(10, per=1.0, redis=url, key="causes", fallback_share=1.0)

    async def run() -> Any:
        loop = asyncio.get_running_loop()
        loop.call_at(loop.time() + 5.0, server.stop)

        def without_password() -> None:
            server.options = []
            server.start()

        loop.call_at(loop.time() + 20.0, without_password)
        return await bulk(unlimited(), 400, limit)

    try:
        with caplog.at_level(logging.WARNING, logger="whop_async"):
            result, _ = run_against_redis(run())
    finally:
        server.stop()
    assert result.result.ok
    said = warnings_of(caplog)
    assert [line.split(" (")[0].split(f"{server.port}/0 ")[1] for line in said] == [
        "refused the credentials",
        "cannot be reached",
        "answers again; back on the shared rate budget",
    ]


class _AnswersEverything(socketserver.BaseRequestHandler):
    """Another service on the port a Redis URL names: one line back for every command."""

    reply = b"+OK\r\n"

    def handle(self) -> None:
        while received := self.request.recv(65536):
            self.request.sendall(self.reply * max(1, received.count(b"*")))


@contextlib.contextmanager
def not_redis(reply: bytes) -> Iterator[int]:
    """A port where something answers ``reply`` to everything: its number."""
    handler = type("Answering", (_AnswersEverything,), {"reply": reply})
    with socketserver.ThreadingTCPServer((HOST, 0), handler) as service:
        service.daemon_threads = True
        threading.Thread(target=service.serve_forever, daemon=True).start()
        try:
            yield service.server_address[1]
        finally:
            service.shutdown()


class _NeverAnswers(socketserver.BaseRequestHandler):
    """A Redis that takes connections and commands and answers none (frozen by
    SIGSTOP, hung in a long script, behind a firewall that drops its answers)."""

    def handle(self) -> None:
        while self.request.recv(65536):
            pass


def test_a_redis_that_never_answers_costs_one_timeout_not_one_every_quarter_second(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Virtual time moves while the silent Redis keeps every command waiting: the first
    # turn's quarter-second timeout sends the budget local, and then no call waits on
    # Redis again (a call tried it at every quarter second, each held a quarter second:
    # the pace fell to about half the budget).
    with socketserver.ThreadingTCPServer((HOST, 0), _NeverAnswers) as silent:
        silent.daemon_threads = True
        threading.Thread(target=silent.serve_forever, daemon=True).start()
        url = f"redis://{HOST}:{silent.server_address[1]}/0"
        limit = RateLimit(10, per=1.0, burst=1, redis=url, key="silent", fallback_share=1.0)
        try:
            with caplog.at_level(logging.WARNING, logger="whop_async"):
                run = run_virtual(bulk(unlimited(), 50, limit))
        finally:
            silent.shutdown()
    assert run.result.ok
    assert run.seconds <= 49 / 10 + 0.5
    [warning] = [r.getMessage() for r in caplog.records if r.name.startswith("whop_async")]
    assert "did not answer in time" in warning


@pytest.mark.parametrize("reply", [b"+OK\r\n", b":1\r\n", b"HTTP/1.1 400 Bad Request\r\n\r\n"])
def test_an_address_where_something_else_answers_is_said_and_the_budget_paced_locally(
    caplog: pytest.LogCaptureFixture, reply: bytes
) -> None:
    # redis-py cannot read such answers (AttributeError, TypeError): none of that may
    # reach a call. It is a fault a person has to fix, said once with the address.
    with not_redis(reply) as port, caplog.at_level(logging.WARNING, logger="whop_async"):
        limit = RateLimit(
            1, per=5.0, burst=1, redis=f"redis://{HOST}:{port}/0", key="other", fallback_share=1.0
        )
        run, _ = run_against_redis(bulk(unlimited(), 12, limit))
    assert run.result.ok
    assert len(run.server.unpaused) == 12
    assert run.seconds >= 11 * 5  # paced locally at the budget
    [warning] = [r.getMessage() for r in caplog.records if r.name.startswith("whop_async")]
    assert "does not answer as Redis does" in warning
    assert f"{HOST}:{port}" in warning


# --- values that are no budget's -----------------------------------------------------------

KEY = "whop_async:{spoilt}:ad_groups.unpause"
SPOILS = {
    "text": lambda client, now: client.set(KEY, "not a budget"),
    "JSON of another shape": lambda client, now: client.set(KEY, '{"pacing": {"tat": 1}}'),
    "a next turn an hour ahead": lambda client, now: client.hset(KEY, "tat", repr(now + 3600)),
    "an absurd rate": lambda client, now: client.hset(KEY, "cut_rate", "1e-9"),
    "a gate closed for a day": lambda client, now: client.hset(
        KEY, mapping={"passing": "false", "probe_at": repr(now + 86_400)}
    ),
    "Infinity": lambda client, now: client.hset(KEY, "tat", "Infinity"),
    "evidence that is not": lambda client, now: client.zadd(KEY + ":refused", {"[1,": 1}),
    "workers that are text": lambda client, now: client.set("whop_async:{spoilt}:workers", "text"),
}


@pytest.mark.parametrize("spoil", SPOILS)
def test_a_value_that_is_no_budgets_is_said_once_replaced_and_the_run_goes_on(
    server: RedisServer, caplog: pytest.LogCaptureFixture, spoil: str
) -> None:
    client = server.client()
    SPOILS[spoil](client, 0.0)  # virtual time starts at 0
    stand_in = bucket()
    # A refusal (for 50 ms) has the budget read whole too.
    stand_in.strays, stand_in.stray_wait = frozenset({20}), 0.05
    limit = RateLimit(100, per=1.0, redis=server.url, key="spoilt")
    with caplog.at_level(logging.WARNING, logger="whop_async"):
        run, _ = run_against_redis(bulk(stand_in, 300, limit))
    assert len(run.server.unpaused) == 300
    assert run.seconds <= 1.3 * (300 - 10) / 100
    [warning] = warnings_of(caplog)
    assert "not a budget's" in warning
    assert "whop_async:{spoilt}" in warning
    for key in client.scan_iter("whop_async:{spoilt}*"):
        assert 0 < client.pttl(key) <= 3_600_000  # nothing left without a TTL
    assert client.type(KEY) == b"hash"


def test_every_value_is_standard_json_with_a_ttl_under_the_prefix_given(
    server: RedisServer,
) -> None:
    stand_in = bucket()
    stand_in.strays, stand_in.stray_wait = frozenset({5, 30}), 0.05
    limit = RateLimit(100, per=1.0, redis=server.url, prefix="ads-app:")

    async def run() -> None:
        with serving(stand_in):
            async with whop_async.WhopClient(
                "sk_scenario", base_url="https://api.scenario.example/api/v1", rate_limit=limit
            ) as whop:
                await whop.ad_groups.unpause_many([f"adgrp_{n}" for n in range(100)])
                await whop.ad_groups.pause("adgrp_1")

    run_against_redis(run())
    client = server.client()
    keys = [key.decode() for key in client.scan_iter()]
    assert {key.rsplit(":", 1)[-1] for key in keys} >= {"workers", "accepted", "refused"}
    for key in keys:
        assert key.startswith("ads-app:{")
        assert 0 < client.pttl(key) <= 3_600_000
        if client.type(key) == b"hash":
            values = [json.loads(value) for value in client.hgetall(key).values()]
        else:
            values = [json.loads(member) for member in client.zrange(key, 0, -1)]
        assert values
        for value in values:
            assert not (isinstance(value, float) and not math.isfinite(value))


# --- round trips -------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [4, 32])
def test_round_trips_per_unpause_do_not_grow_with_the_workers(
    server: RedisServer, workers: int
) -> None:
    stand_in = bucket()
    limit = RateLimit(100, per=1.0, redis=server.url, key=f"trips{workers}")

    async def run() -> list[whop_async.BulkResult]:
        with serving(stand_in):
            return await unpause_all(limit, multi_client(workers, 320 // workers))

    results, io = run_against_redis(run())
    assert all(result.ok for result in results)
    assert stand_in.refused == 0
    scripts = io.commands["EVALSHA"] + io.commands["EVAL"]
    assert scripts / 320 <= 2.2  # one a turn; two while more workers wait than a burst
    assert sum(io.commands.values()) - scripts <= 4 * workers  # a connection's hello


# --- causes too rare to provoke here, said as what they are --------------------------------


@pytest.mark.parametrize(
    ("error", "said_as", "again"),
    [
        (Contended("changed under each of 20 writes"), "contention", "every 0.25 s"),
        (MovedError("3999 127.0.0.1:6381"), "does not hold the budget's slot", "in 2 s"),
        (ClusterDownError("CLUSTERDOWN The cluster is down"), "cannot serve", "every 0.25 s"),
        (BusyLoadingError("Redis is loading the dataset in memory"), "loading", "every 0.25 s"),
        (TimeoutError(), "did not answer in time (TimeoutError)", "every 0.25 s"),
        (ResponseError(f"ERR unknown command, with {SECRET}"), "refused the script", "in 2 s"),
    ],
)
def test_each_cause_is_said_as_what_it_is_without_a_password(
    error: Exception, said_as: str, again: str
) -> None:
    said = Health("cache:6379/0").failed(fault_of(error, (SECRET,)), 10.0, 0.25)
    assert said is not None
    assert said.startswith("Redis at cache:6379/0 ")
    assert said_as in said
    assert f"trying Redis again {again}" in said
    assert SECRET not in said


def test_a_worker_starved_of_cpu_past_the_timeout_tries_again_instead_of_pacing_alone(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    # The process stalls for half a second while Redis answers its first turn: the
    # answer waits unread and the quarter-second timeout is noticed late. That is the
    # process's doing, not Redis's: tried once more, no fallback, nothing said.
    limit = RateLimit(100, per=1.0, redis=server.url, key="starved")

    async def run() -> list[whop_async.BulkResult]:
        with serving(unlimited()), stalled_once_while_redis_answers(0.5):
            return await unpause_all(limit, multi_client(1, 20))

    with caplog.at_level(logging.WARNING, logger="whop_async"):
        [result], io = run_against_redis(run())
    assert result.ok
    assert warnings_of(caplog) == []
    assert io.commands["EVALSHA"] + io.commands["EVAL"] >= 21  # the stalled one, again
