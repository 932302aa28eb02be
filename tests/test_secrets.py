"""The key, and any password, nowhere whop_async keeps or shows: a base URL holding a
password is refused without showing it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from urllib.parse import quote

import pytest

from whop_async import WhopClient

# A key with characters that percent-encoding and JSON escaping change.
KEY = "sk_live/ab+cd=ef_0123456789"


def spellings(key: str = KEY) -> list[str]:
    """The ways a server may echo the key: as sent, percent-encoded, and escaped in a
    JSON string (every character as \\uXXXX, upper and lower case, and '/' as '\\/')."""
    return [
        key,
        quote(key, safe=""),
        "".join(f"\\u{ord(character):04x}" for character in key),
        "".join(f"\\u{ord(character):04X}" for character in key),
        key.replace("/", "\\/"),
    ]


def reachable_from(root: object, limit: int = 20_000) -> Iterator[object]:
    """Every object reachable from ``root`` through what an error or answer exposes:
    exceptions' cause, context and args, attributes, and the items of containers."""
    seen: set[int] = set()
    pending = [root]
    while pending and len(seen) < limit:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        if isinstance(item, BaseException):
            pending += [item.__cause__, item.__context__, *item.args]
        if isinstance(item, Mapping):
            pending += [*item.keys(), *item.values()]
        elif isinstance(item, (list, tuple, set, frozenset)):
            pending += list(item)
        if hasattr(item, "__dict__") and not isinstance(item, type):
            pending += list(vars(item).values())
        for name in getattr(type(item), "__slots__", ()):
            pending.append(getattr(item, name, None))


def assert_no_key_reachable_from(root: object, secrets: list[str] | None = None) -> None:
    for item in reachable_from(root):
        text = item.decode(errors="replace") if isinstance(item, bytes) else repr(item)
        for secret in spellings() if secrets is None else secrets:
            assert secret not in text, f"a secret is in {type(item).__name__}: {text[:300]}"


# --- passwords in the base URL ----------------------------------------------------------


@pytest.mark.parametrize(
    "base_url",
    [
        "https://user:hunter2@api.whop.example/api/v1",
        "https://hunter2@api.whop.example/api/v1",
        "https://user:hunter2@[::1]:8080/api/v1",
        "http://user:hunter2@api.whop.example:notaport/api/v1?x=hunter2",
    ],
)
def test_a_base_url_with_a_password_is_refused_without_showing_it(
    env: pytest.MonkeyPatch, base_url: str
) -> None:
    with pytest.raises(ValueError, match="user name or password") as caught:
        WhopClient(base_url=base_url)
    assert_no_key_reachable_from(caught.value, ["hunter2"])
    env.setenv("WHOP_BASE_URL", base_url)
    with pytest.raises(ValueError, match="user name or password") as caught:
        WhopClient()
    assert_no_key_reachable_from(caught.value, ["hunter2"])
