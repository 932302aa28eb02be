"""What RateLimit takes for a shared budget, checked when it is made: URLs (one server,
a cluster node, Sentinel as redis-py's neighbours spell it), client objects, the key and
the prefix; never a password in a message or a repr."""

from __future__ import annotations

import subprocess
import sys

import pytest
import redis
import redis.asyncio
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import Sentinel

from whop_async import RateLimit

SECRET = "s3cret-Pa55"


@pytest.mark.parametrize(
    "url",
    [
        "redis://cache:6379/0",
        "rediss://user:pw@cache:6380/2",
        "unix:///run/redis.sock",
        "redis+sentinel://s1,s2:26380,s3/mymaster",
        "redis+sentinel://:pw@s1:26379/mymaster/3?sentinel_password=other",
        "sentinel://s1:26379;sentinel://s2:26379?master_name=mymaster",
        "sentinel://:pw@s1:26379/1;sentinel://:pw@s2:26379/1?master_name=mymaster",
    ],
)
def test_redis_urls_of_every_deployment_are_taken(url: str) -> None:
    assert RateLimit(600, per=60.0, redis=url).shared == url
    assert RateLimit(600, per=60.0, redis_url=url).shared == url


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://cache:6379", "must be a redis://"),
        ("redis://:6379/0", "no host"),
        ("redis://cache:port/0", "Port could not be cast"),
        ("redis://cache/zero", "the db is a number"),
        ("redis+sentinel://s1,s2", "the path names the master"),
        ("redis+sentinel://s1/m/0/extra", "the path names the master"),
        ("sentinel://s1:26379;sentinel://s2:26379", "name the master"),
        ("sentinel://s1:26379/0;sentinel://s2:26379/1?master_name=m", "different dbs"),
        ("sentinel://s1:26379;redis://s2?master_name=m", "each part"),
        ("redis+sentinel://s1/m?socket_timeout=1", "unknown option 'socket_timeout'"),
        ("rediss+sentinel://s1/m", "TLS to sentinels takes a client object"),
    ],
)
def test_a_malformed_url_fails_when_the_limit_is_made(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        RateLimit(600, per=60.0, redis=url)


@pytest.mark.parametrize(
    "url",
    [
        f"redis://:{SECRET}@cache:port/0",
        f"redis+sentinel://user:{SECRET}@s1/m/x",
        f"sentinel://:{SECRET}@s1:26379;sentinel://s2:26379",
        f"redis+sentinel://s1/m?sentinel_password={SECRET}&bad=1",
    ],
)
def test_no_password_in_what_a_malformed_url_says(url: str) -> None:
    with pytest.raises(ValueError, match=r"\*\*\*") as raised:
        RateLimit(600, per=60.0, redis=url)
    assert SECRET not in str(raised.value)


def test_no_password_in_a_limits_repr() -> None:
    for limit in (
        RateLimit(600, redis=f"redis://:{SECRET}@cache:6379/0"),
        RateLimit(600, redis_url=f"redis+sentinel://:{SECRET}@s1/m?sentinel_password={SECRET}"),
    ):
        assert SECRET not in repr(limit)


async def test_asyncio_client_objects_are_taken() -> None:
    plain = redis.asyncio.Redis(host="cache")
    sentinel = Sentinel([("s1", 26379)])
    cluster = RedisCluster(host="node", port=7000)
    for made in (plain, sentinel.master_for("mymaster"), cluster):
        limit = RateLimit(600, per=60.0, redis=made)
        assert limit.shared is made
        assert limit == RateLimit(600, per=60.0, redis=made)
        hash(limit)
    await plain.aclose()
    await cluster.aclose()


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ({"redis": redis.Redis(host="cache")}, "takes an asyncio client"),
        ({"redis": 6379}, "must be a Redis URL or a redis.asyncio client"),
        ({"redis_url": redis.asyncio.Redis(host="cache")}, "pass a client object as redis="),
        ({"redis": "redis://a", "redis_url": "redis://b"}, "not both"),
    ],
)
def test_what_is_not_a_redis_fails_when_the_limit_is_made(
    given: dict[str, object], says: str
) -> None:
    with pytest.raises(ValueError, match=says):
        RateLimit(600, per=60.0, **given)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ({"key": ""}, "key must be non-empty"),
        ({"key": "team\nads"}, "printable"),
        ({"key": "x" * 201}, "at most 200"),
        ({"key": "{team}"}, "hash tag"),
        ({"key": 7}, "key must be a string"),
        ({"prefix": "app{1}:"}, "hash tag"),
        ({"prefix": "app\t"}, "printable"),
    ],
)
def test_key_and_prefix_are_checked(given: dict[str, object], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        RateLimit(600, per=60.0, redis="redis://cache", **given)  # type: ignore[arg-type]


def test_an_empty_prefix_and_a_named_key_are_fine() -> None:
    limit = RateLimit(600, redis="redis://cache", key="team ads", prefix="")
    assert (limit.key, limit.prefix) == ("team ads", "")
    assert RateLimit(600).prefix == "whop_async:"


def test_a_url_is_checked_without_importing_redis() -> None:
    code = (
        "import sys, whop_async\n"
        "whop_async.RateLimit(600, redis='redis+sentinel://s1,s2/mymaster')\n"
        "assert 'redis' not in sys.modules, 'redis was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
