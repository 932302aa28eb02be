"""Throwaway redis-server processes for the tests: one server, a master with a replica
and three sentinels, a three-master cluster. Each lives in its own temporary directory
on free ports of 127.0.0.1, and is gone when its context ends."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

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

    def __init__(self, *options: str, directory: Path | None = None) -> None:
        self.port = free_port()
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
        wait_for(self.client().ping, f"redis-server on port {self.port} starting")

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
        self.master = RedisServer(directory=self.directory)
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
        for number, sentinel in enumerate(self.sentinels):
            config = self.directory / f"sentinel-{number}.conf"
            config.write_text(
                f"port {sentinel.port}\nbind {HOST}\ndir {self.directory}\n"
                f"sentinel monitor {MASTER} {HOST} {self.master.port} 2\n"
                f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {MASTER} {FAILOVER_TIMEOUT_MS}\n"
            )
            sentinel._process = subprocess.Popen(
                [executable("redis-server"), str(config), "--sentinel"],
                stdout=subprocess.DEVNULL,
            )
        for sentinel in self.sentinels:
            wait_for(lambda s=sentinel: self._known(s), "the sentinels meeting", within=10.0)

    def master_named(self) -> tuple[str, int]:
        """The master as the first sentinel names it."""
        host, port = self.sentinels[0].client().sentinel_get_master_addr_by_name(MASTER)
        return str(host), int(port)

    def promoted(self) -> bool:
        """True once every sentinel names the replica as the master."""
        return all(
            tuple(s.client().sentinel_get_master_addr_by_name(MASTER)) == self.replica.address
            for s in self.sentinels
        )

    def stop(self) -> None:
        for server in (*self.sentinels, self.replica, self.master):
            server.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _known(self, sentinel: RedisServer) -> bool:
        state = sentinel.client().sentinel_master(MASTER)
        return int(state["num-other-sentinels"]) == 2 and int(state["num-slaves"]) == 1


class Cluster:
    """Three masters sharing the 16,384 slots, no replicas."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="whop-cluster-"))
        self.nodes: list[RedisServer] = []
        for number in range(3):
            node_directory = self.directory / str(number)
            node_directory.mkdir()
            options = ("--cluster-enabled", "yes", "--cluster-node-timeout", "2000")
            self.nodes.append(RedisServer(*options, directory=node_directory))

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
