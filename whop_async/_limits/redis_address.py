"""Where a shared budget lives: a Redis URL (one server, or any node of a Cluster), a
Sentinel URL as redis-py's neighbours spell it, or a redis-py asyncio client object,
checked when the RateLimit is made, and named in messages without a password.

Sentinel URLs take either spelling:

- ``redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/master[/db]``
  (redis-sentinel-url, Prefect, docket);
- ``sentinel://[:password@]host:port[;sentinel://host:port...][/db]?master_name=master``
  (Celery and Kombu, whose ``master_name`` transport option becomes a query option).

Sentinels listen on 26379 unless told; ``sentinel_username`` and ``sentinel_password``
options authenticate to the sentinels themselves, the userinfo to the master.

Pure: redis is not imported here; a client object is recognised by its class's module.
"""

from __future__ import annotations

import importlib.util
import re
import urllib.parse
from typing import Any

import attrs

SENTINEL_PORT = 26379
_PLAIN_SCHEMES = ("redis", "rediss", "unix")
_SENTINEL_OPTIONS = ("sentinel_username", "sentinel_password")
# The asyncio clients of redis-py (a Sentinel's master_for gives a Redis).
_CLIENT_CLASSES = {("redis.asyncio.client", "Redis"), ("redis.asyncio.cluster", "RedisCluster")}
_SYNC_CLIENT_MODULES = ("redis.client", "redis.cluster")
# A password in a URL's userinfo (each ';'-separated part of Kombu's), or an option.
_USERINFO_PASSWORD = re.compile(r"(//[^/;@]*?:)[^;@]*@")
_SENTINEL_PASSWORD = re.compile(r"((?:^|[?&])sentinel_password=)[^&;]*")


@attrs.frozen
class Plain:
    """A URL redis-py opens itself: one server, or any node of a Cluster."""

    url: str

    def describe(self) -> str:
        """The address without credentials."""
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme == "unix":
            return parts.path
        return f"{_host_port(parts.hostname or '', parts.port or 6379)}{parts.path or ''}"


@attrs.frozen
class Sentinels:
    """The master named ``master``, as the sentinels at ``hosts`` name it."""

    hosts: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    sentinel_username: str | None = None
    sentinel_password: str | None = attrs.field(default=None, repr=False)

    def describe(self) -> str:
        """The address without credentials."""
        sentinels = ", ".join(_host_port(host, port) for host, port in self.hosts)
        return f"master {self.master!r} of the sentinels at {sentinels}"


@attrs.frozen
class Client:
    """A redis-py asyncio client the caller made (and closes)."""

    client: Any

    def describe(self) -> str:
        """The address without credentials, as far as the client tells it."""
        return describe_client(self.client)


Address = Plain | Sentinels | Client


def address_of(value: object, *, name: str) -> Address:
    """``value`` (a URL or a client object, given as ``name``) checked.

    Raises:
        ValueError: it is neither, or the URL is malformed (said without its password).
        ImportError: the redis extra is not installed.
    """
    if importlib.util.find_spec("redis") is None:
        raise ImportError("a shared budget needs the redis extra: pip install 'whop-async[redis]'")
    if isinstance(value, str):
        return _parse(value, name)
    if _is_async_client(value):
        return Client(value)
    if type(value).__module__.startswith(_SYNC_CLIENT_MODULES):
        raise ValueError(
            f"{name} takes an asyncio client (redis.asyncio.Redis, RedisCluster or a"
            f" Sentinel's master_for), got the synchronous {type(value).__name__}"
        )
    raise ValueError(
        f"{name} must be a Redis URL or a redis.asyncio client, got {type(value).__name__}"
    )


def describe_client(client: Any) -> str:
    """Where a redis-py client connects, without credentials."""
    pool = getattr(client, "connection_pool", None)
    service = getattr(pool, "service_name", None)
    if service is not None:
        return f"master {service!r} of the client's sentinels"
    if pool is None:  # a RedisCluster: its nodes
        nodes = getattr(client, "startup_nodes", None) or []
        return "cluster nodes " + ", ".join(f"{node.host}:{node.port}" for node in nodes[:3])
    kwargs = pool.connection_kwargs
    if "path" in kwargs:
        return str(kwargs["path"])
    host, port = kwargs.get("host", "localhost"), kwargs.get("port", 6379)
    return f"{_host_port(host, port)}/{kwargs.get('db', 0)}"


def redacted(url: str) -> str:
    """``url`` with its passwords replaced by ``***``, for messages."""
    return _SENTINEL_PASSWORD.sub(r"\1***", _USERINFO_PASSWORD.sub(r"\1***@", url))


def _parse(url: str, name: str) -> Address:
    scheme = url.partition("://")[0].lower()
    if scheme in ("redis+sentinel", "sentinel"):
        try:
            return _sentinel_url(url) if scheme == "sentinel" else _redis_sentinel_url(url)
        except ValueError as error:
            raise ValueError(f"{name} {redacted(url)!r}: {error}") from None
    if scheme == "rediss+sentinel":
        raise ValueError(
            f"{name}: TLS to sentinels takes a client object:"
            " redis.asyncio.sentinel.Sentinel(..., ssl=True).master_for(...)"
        )
    if scheme not in _PLAIN_SCHEMES:
        raise ValueError(
            f"{name} must be a redis://, rediss://, unix://, redis+sentinel:// or"
            f" sentinel:// URL, got {redacted(url)!r}"
        )
    try:
        _check_plain(urllib.parse.urlsplit(url))
    except ValueError as error:
        raise ValueError(f"{name} {redacted(url)!r}: {error}") from None
    return Plain(url)


def _check_plain(parts: urllib.parse.SplitResult) -> None:
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError("a unix:// URL names a socket path")
        return
    _ = parts.port  # raises on a port that is not a number in range
    if not parts.hostname:
        raise ValueError("no host")
    _db(parts.path)


def _redis_sentinel_url(url: str) -> Sentinels:
    parts = urllib.parse.urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    path = [segment for segment in parts.path.split("/") if segment]
    if not path or len(path) > 2:
        raise ValueError("the path names the master, and may add a db: /mymaster/0")
    options = _options(parts.query, allowed=_SENTINEL_OPTIONS)
    username, password = _credentials(userinfo)
    return Sentinels(
        tuple(_host(host) for host in hosts.split(",")),
        urllib.parse.unquote(path[0]),
        _db("/" + path[1] if len(path) == 2 else ""),
        username,
        password,
        options.get("sentinel_username"),
        options.get("sentinel_password"),
    )


def _sentinel_url(url: str) -> Sentinels:
    hosts: list[tuple[str, int]] = []
    dbs: set[int] = set()
    options: dict[str, str] = {}
    username = password = None
    for part in url.split(";"):
        parts = urllib.parse.urlsplit(part.strip())
        if parts.scheme.lower() != "sentinel":
            raise ValueError("each part separated by ';' is a sentinel:// URL")
        userinfo, _, host = parts.netloc.rpartition("@")
        hosts.append(_host(host))
        dbs.add(_db(parts.path))
        options.update(_options(parts.query, allowed=("master_name", *_SENTINEL_OPTIONS)))
        if userinfo:
            username, password = _credentials(userinfo)
    if "master_name" not in options:
        raise ValueError("name the master: ?master_name=mymaster (Kombu's transport option)")
    if len(dbs) > 1:
        raise ValueError("the parts name different dbs")
    return Sentinels(
        tuple(hosts),
        options["master_name"],
        dbs.pop(),
        username,
        password,
        options.get("sentinel_username"),
        options.get("sentinel_password"),
    )


def _host(text: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(f"//{text}")
    if not parts.hostname:
        raise ValueError(f"a sentinel with no host: {text!r}")
    return parts.hostname, parts.port or SENTINEL_PORT


def _db(path: str) -> int:
    text = path.strip("/")
    if text and not (text.isascii() and text.isdigit()):
        raise ValueError(f"the db is a number, got {text!r}")
    return int(text or 0)


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    if not userinfo:
        return None, None
    username, colon, password = userinfo.partition(":")
    return (
        urllib.parse.unquote(username) or None,
        urllib.parse.unquote(password) if colon else None,
    )


def _options(query: str, *, allowed: tuple[str, ...]) -> dict[str, str]:
    options = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"unknown option {unknown[0]!r} (known: {', '.join(allowed)})")
    return options


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _is_async_client(value: object) -> bool:
    return any((cls.__module__, cls.__name__) in _CLIENT_CLASSES for cls in type(value).__mro__)
