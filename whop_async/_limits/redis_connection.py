"""The connection to a shared budget's Redis, whatever its deployment: one server, the
master most sentinels name (asked again whenever the connection drops or meets a
read-only replica, so writes follow a failover; a sentinel that has not heard of one
yet, naming a demoted master that is back, is outvoted), a Cluster (reached through any
node: a MOVED answer switches to redis-py's RedisCluster, which routes each budget to
its slot), or a client object the caller made (its own rules apply). Scripts run by
SHA1, and are sent whole only to a node that lacks them.
"""

from __future__ import annotations

import asyncio
import collections
import urllib.parse
from collections.abc import Awaitable
from typing import Any, TypeVar

import redis.asyncio
import redis.exceptions
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel
from redis.backoff import NoBackoff

from .redis_address import Address, Client, Plain, Sentinels
from .redis_faults import NotRedis
from .shared import Script

T = TypeVar("T")

# What redis-py raises when Redis, or the way to it, fails; anything else it raises
# means that something other than Redis answered.
FAILURES = (
    redis.exceptions.RedisError,
    redis.exceptions.RedisClusterException,
    OSError,
    TimeoutError,
)
# What a Redis client's pool keeps that a RedisCluster made from it needs too.
_CLUSTER_SETTINGS = ("username", "password", "socket_timeout", "socket_connect_timeout")


class Connection:
    """Runs the budget's scripts on its Redis; the clients it made, it closes."""

    def __init__(self, address: Address, timeout: float) -> None:
        self.address = address
        self._timeout = timeout
        self._client: Any = None
        self._owned: list[Any] = []
        self._sentinel: Sentinel | None = None

    @property
    def secrets(self) -> tuple[str, ...]:
        """The passwords the address holds, never to be shown."""
        found: tuple[str | None, ...]
        if isinstance(self.address, Sentinels):
            found = (self.address.password, self.address.sentinel_password)
        elif isinstance(self.address, Plain):
            found = (_password_of(self.address.url),)
        else:
            client = self.address.client
            holder = getattr(client, "connection_pool", None) or getattr(
                client, "nodes_manager", None
            )
            found = (getattr(holder, "connection_kwargs", {}).get("password"),)
        return tuple(secret for secret in found if secret)

    async def run(self, script: Script, keys: list[str], args: list[str]) -> Any:
        """The script's answer.

        Raises:
            redis.exceptions.RedisError: Redis did not run it (MOVED, once the cluster is
                followed, is not among them), or what answered is not Redis (NotRedis).
        """
        reply = await _as_redis(self._run(script, keys, args))
        if not isinstance(reply, script.answers):
            raise NotRedis(f"the script's answer was {reply!r}, not {script.answers.__name__}")
        return reply

    async def ping(self) -> None:
        """Ask Redis for a PING's answer (a watcher's question: is it back?).

        Raises:
            redis.exceptions.RedisError: as ``run``.
        """
        await _as_redis(self._connected().ping())

    async def _run(self, script: Script, keys: list[str], args: list[str]) -> Any:
        client = self._connected()
        try:
            return await _evalsha(client, script, keys, args)
        except redis.exceptions.AskError:
            if not self._follow_cluster():
                raise
        return await _evalsha(self._client, script, keys, args)

    async def close(self) -> None:
        """Close what was made here; a client object given stays open."""
        for client in self._owned:
            await client.aclose()
        if self._sentinel is not None:
            for sentinel in self._sentinel.sentinels:
                await sentinel.aclose()
        self._owned.clear()
        self._client = self._sentinel = None

    def _connected(self) -> Any:
        if self._client is None:
            self._client = self._made()
        return self._client

    def _made(self) -> Any:
        address, timeouts = self.address, self._timeouts()
        if isinstance(address, Client):
            return address.client
        # A failed command fails at once: the store tries again on its own schedule,
        # and says what failed (redis-py's default retries for seconds).
        once = {**timeouts, "retry": Retry(NoBackoff(), 0)}
        if isinstance(address, Plain):
            client = redis.asyncio.Redis.from_url(address.url, **once)
        else:
            self._sentinel = AgreedSentinel(
                list(address.hosts),
                sentinel_kwargs={
                    **timeouts,
                    "username": address.sentinel_username,
                    "password": address.sentinel_password,
                },
                **timeouts,
            )
            client = self._sentinel.master_for(
                address.master,
                db=address.db,
                username=address.username,
                password=address.password,
                **once,
            )
        self._owned.append(client)
        return client

    def _follow_cluster(self) -> bool:
        """Switch to a RedisCluster after a node named another as the slot's owner:
        True when switched (from a URL, or a plain client object's settings)."""
        address, current = self.address, self._client
        if isinstance(current, RedisCluster) or isinstance(address, Sentinels):
            return False
        if isinstance(address, Plain):
            cluster = RedisCluster.from_url(address.url, **self._timeouts())
        else:
            kwargs = current.connection_pool.connection_kwargs
            settings = {name: kwargs[name] for name in _CLUSTER_SETTINGS if name in kwargs}
            cluster = RedisCluster(host=kwargs["host"], port=kwargs["port"], **settings)
        self._owned.append(cluster)
        self._client = cluster
        return True

    def _timeouts(self) -> dict[str, Any]:
        return {"socket_timeout": self._timeout, "socket_connect_timeout": self._timeout}


class AgreedSentinel(Sentinel):
    """A Sentinel that names the master most of its sentinels name (redis-py's takes the
    first that names one)."""

    async def discover_master(self, service_name: str) -> tuple[str, int]:
        """The master's address, as more than half of the sentinels name it.

        Raises:
            MasterNotFoundError: no address has a majority (a failover under way).
        """
        asked = [sentinel.sentinel_masters() for sentinel in self.sentinels]
        votes: collections.Counter[tuple[str, int]] = collections.Counter()
        for answer in await asyncio.gather(*asked, return_exceptions=True):
            state = answer.get(service_name) if isinstance(answer, dict) else None
            if state and self.check_master_state(state, service_name):
                votes[state["ip"], state["port"]] += 1
        for address, count in votes.most_common(1):
            if count > len(self.sentinels) // 2:
                return address
        raise MasterNotFoundError(f"no master of {service_name!r} named by most sentinels")


async def _as_redis(asked: Awaitable[T]) -> T:
    """What ``asked`` returns, or a RedisError: anything else redis-py raises means that
    something other than Redis answered (reading "+OK" to HELLO fails as it happens to).
    """
    try:
        return await asked
    except FAILURES:
        raise
    except Exception as error:
        raise NotRedis(f"{type(error).__name__}: {error}") from error


async def _evalsha(client: Any, script: Script, keys: list[str], args: list[str]) -> Any:
    try:
        return await client.evalsha(script.sha, len(keys), *keys, *args)
    except redis.exceptions.NoScriptError:
        return await client.eval(script.source, len(keys), *keys, *args)


def _password_of(url: str) -> str | None:
    password = urllib.parse.urlsplit(url).password
    return urllib.parse.unquote(password) if password else None
