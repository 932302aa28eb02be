"""Throwaway redis-server processes for the tests: one server, a master with a replica
and three sentinels, a three-master cluster. Each lives in its own temporary directory
on free ports of 127.0.0.1, and is gone when its context ends."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

import pytest
import redis

import whop_async
from whop_async.testing import run_virtual

from .scenarios import RealIO
from .scenarios import client as scenario_client

T = TypeVar("T")

HOST = "127.0.0.1"
MASTER = "budget"
# Sentinel's timings cut to what a test can wait for: a master is down after this long
# without an answer, and a failover may take this long before it is tried again.
DOWN_AFTER_MS = 500
FAILOVER_TIMEOUT_MS = 2000
_STARTED_WITHIN = 5.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def cluster_port() -> int:
    """A free port whose cluster bus port (10,000 higher) is free too."""
    while True:
        port = free_port()
        if port + 10_000 < 65_536:
            with contextlib.suppress(OSError), socket.socket() as probe:
                probe.bind((HOST, port + 10_000))
                return port


def executable(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is missing: install it (apt install redis-server redis-tools)")
    return found


def wait_for(condition: object, what: str, within: float = _STARTED_WITHIN) -> None:
    """Poll ``condition()`` until it is true (processes starting, a failover)."""
    ends = time.monotonic() + within
    while time.monotonic() < ends:
        with contextlib.suppress(redis.RedisError, OSError):
            if condition():  # type: ignore[operator]
                return
        time.sleep(0.01)
    raise AssertionError(f"{what} did not happen within {within} s")


class RedisServer:
    """A redis-server on a free port that a test can stop, kill and start again.

    ``options`` are redis-server's own (``["--maxmemory", "1mb"]``).
    """

    def __init__(
        self, *options: str, directory: Path | None = None, port: int | None = None
    ) -> None:
        self.port = port or free_port()
        self.url = f"redis://{HOST}:{self.port}/0"
        self.options = list(options)
        self.directory = directory or Path(tempfile.mkdtemp(prefix="whop-redis-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> tuple[str, int]:
        return HOST, self.port

    def start(self) -> None:
        command = [
            executable("redis-server"),
            "--port", str(self.port), "--bind", HOST, "--dir", str(self.directory),
            "--save", "", "--appendonly", "no", "--enable-debug-command", "yes",
            *self.options,
        ]  # fmt: skip
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        wait_for(self._listening, f"redis-server on port {self.port} starting")

    def _listening(self) -> bool:
        with socket.create_connection(self.address):
            return True

    def client(self, **options: object) -> redis.Redis:
        """A synchronous client for the test's own checks."""
        return redis.Redis(HOST, self.port, socket_timeout=1.0, **options)  # type: ignore[arg-type]

    def stop(self) -> None:
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        self._end(signal.SIGKILL)

    def _end(self, how: signal.Signals) -> None:
        if self._process is not None:
            self._process.send_signal(how)
            self._process.wait()
            self._process = None


@contextlib.contextmanager
def running(*options: str) -> Iterator[RedisServer]:
    server = RedisServer(*options)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)


def running_redis_server() -> Iterator[RedisServer]:
    """A running redis-server for as long as the generator is not closed."""
    with running() as server:
        yield server


class SentinelGroup:
    """A master, its replica, and three sentinels watching them."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="whop-sentinel-"))
        # A replica's first sync without the default five seconds' wait for others.
        self.master = RedisServer("--repl-diskless-sync-delay", "0", directory=self.directory)
        self.replica = RedisServer(
            "--replicaof", HOST, str(self.master.port), directory=self.directory
        )
        self.sentinels = [RedisServer(directory=self.directory) for _ in range(3)]

    @property
    def hosts(self) -> list[tuple[str, int]]:
        return [sentinel.address for sentinel in self.sentinels]

    def url(self, spelling: str = "redis+sentinel") -> str:
        if spelling == "redis+sentinel":
            hosts = ",".join(f"{host}:{port}" for host, port in self.hosts)
            return f"redis+sentinel://{hosts}/{MASTER}/0"
        parts = ";".join(f"sentinel://{host}:{port}/0" for host, port in self.hosts)
        return f"{parts}?master_name={MASTER}"

    def start(self) -> None:
        self.master.start()
        self.replica.start()
        wait_for(lambda: self.replica.client().info("replication")["master_link_status"] == "up",
                 "the replica syncing")  # fmt: skip
        # Each told of the others and of the replica, so that none waits seconds for
        # the others' hello messages before it can vote.
        ids = [f"{number + 1:040x}" for number in range(len(self.sentinels))]
        for number, sentinel in enumerate(self.sentinels):
            known = "".join(
                f"sentinel known-sentinel {MASTER} {HOST} {other.port} {ids[index]}\n"
                for index, other in enumerate(self.sentinels)
                if other is not sentinel
            )
            watch(sentinel, self.master, ids[number], f"sentinel known-replica {MASTER} "
                  f"{HOST} {self.replica.port}\n{known}")  # fmt: skip
        for sentinel in self.sentinels:
            wait_for(lambda s=sentinel: self._known(s), "the sentinels meeting", within=10.0)

    def named_by(self, sentinel: RedisServer) -> tuple[str, int]:
        """The master as ``sentinel`` names it."""
        host, port = sentinel.client().sentinel_get_master_addr_by_name(MASTER)
        return host.decode() if isinstance(host, bytes) else str(host), int(port)

    def promoted(self) -> bool:
        """True once every sentinel names the replica as the master."""
        return all(self.named_by(s) == self.replica.address for s in self.sentinels)

    def stop(self) -> None:
        for server in (*self.sentinels, self.replica, self.master):
            server.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _known(self, sentinel: RedisServer) -> bool:
        state = sentinel.client().sentinel_master(MASTER)
        return int(state["num-other-sentinels"]) == 2 and int(state["num-slaves"]) == 1


def watch(sentinel: RedisServer, master: RedisServer, myid: str, more: str = "") -> None:
    """Start ``sentinel`` watching ``master`` as ``MASTER``."""
    config = sentinel.directory / f"sentinel-{sentinel.port}.conf"
    config.write_text(
        f"port {sentinel.port}\nbind {HOST}\ndir {sentinel.directory}\nsentinel myid {myid}\n"
        f"sentinel monitor {MASTER} {HOST} {master.port} 2\n"
        f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n"
        f"sentinel failover-timeout {MASTER} {FAILOVER_TIMEOUT_MS}\n{more}"
    )
    sentinel._process = subprocess.Popen(
        [executable("redis-server"), str(config), "--sentinel"], stdout=subprocess.DEVNULL
    )
    wait_for(sentinel._listening, f"a sentinel on port {sentinel.port} starting")


class Cluster:
    """Three masters sharing the 16,384 slots, no replicas."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="whop-cluster-"))
        self.nodes: list[RedisServer] = []
        for number in range(3):
            node_directory = self.directory / str(number)
            node_directory.mkdir()
            options = ("--cluster-enabled", "yes", "--cluster-node-timeout", "2000")
            self.nodes.append(RedisServer(*options, directory=node_directory, port=cluster_port()))

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        subprocess.run(
            [executable("redis-cli"), "--cluster", "create",
             *(f"{HOST}:{node.port}" for node in self.nodes),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        for node in self.nodes:
            wait_for(lambda n=node: n.client().cluster("info")["cluster_state"] == "ok",
                     "the cluster forming", within=10.0)  # fmt: skip

    def owner_of(self, key: str) -> RedisServer:
        """The node that holds ``key``'s slot."""
        client = self.nodes[0].client()
        slot = client.cluster("keyslot", key)
        for start, end, (_, port, *_) in client.cluster("slots"):
            if start <= slot <= end:
                return next(node for node in self.nodes if node.port == port)
        raise AssertionError(f"no node holds slot {slot}")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def run_against_redis(main: Coroutine[Any, Any, T]) -> tuple[T, RealIO]:
    """Run ``main`` in virtual time, standing still while a Redis command is answered;
    what it returned, and the Redis commands it sent."""
    io = RealIO()
    with io.watching_redis():
        return run_virtual(main, io_pending=io.pending), io


def multi_client(clients: int, ids_each: int) -> list[list[str]]:
    """Disjoint ids for each of ``clients``."""
    return [[f"adgrp_{client}x{n}" for n in range(ids_each)] for client in range(clients)]


async def unpause_all(
    limit: whop_async.RateLimit, ids: list[list[str]], concurrency: int = 8
) -> list[whop_async.BulkResult]:
    """Each list of ``ids`` unpaused by a client of its own (a worker), all at once."""

    async def one(these: list[str]) -> whop_async.BulkResult:
        async with scenario_client(limit) as whop:
            return await whop.ad_groups.unpause_many(these, concurrency=concurrency)

    return list(await asyncio.gather(*map(one, ids)))


@contextlib.contextmanager
def stalled_once_while_redis_answers(seconds: float) -> Iterator[None]:
    """The first script sent is answered while the process stands still for
    ``seconds`` (on a virtual-time loop: its clock jumps as a starved process's would)."""
    import redis.asyncio.client

    original = redis.asyncio.client.Redis.execute_command
    stalled = False

    async def stalling(client: Any, *args: Any, **options: Any) -> Any:
        nonlocal stalled
        if not stalled and str(args[0]).upper() in ("EVALSHA", "EVAL"):
            stalled = True
            asyncio.get_running_loop()._jumping.now += seconds  # type: ignore[attr-defined]
        return await original(client, *args, **options)

    with mock.patch.object(redis.asyncio.client.Redis, "execute_command", stalling):
        yield
