"""JSON in and out, with orjson when it is installed (the ``fast`` extra): decoding an
answer is the largest single cost of a call, and orjson does it several times faster.
Both decoders give the same values, and refuse the same documents; nothing else in
whop_async imports either.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

# The deepest nesting whop_async accepts from a server. Whop's deepest answer nests 5
# levels (7 in a page). Left to themselves, orjson decodes 1,024 levels and the json
# module as many as the recursion limit (1,000) less the caller's stack allows, while
# json.dumps and repr() stop at that same limit and orjson.dumps at 254: an answer
# between those bounds was data with one decoder and an error with the other, and data
# that a journal, a log or ``to_json()`` could not write back (a RecursionError). At 128,
# whatever whop_async keeps can be encoded, printed and copied from any sane stack.
MAX_DEPTH = 128


class TooDeep(ValueError):
    """JSON nested deeper than MAX_DEPTH (never a RecursionError)."""

    def __init__(self) -> None:
        super().__init__(f"JSON nested deeper than the parser allows ({MAX_DEPTH} levels)")


def _bounded(decode: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def loads(text: bytes) -> Any:
        value = decode(text)
        # Nesting deeper than MAX_DEPTH needs more than MAX_DEPTH brackets: two counts
        # at C speed clear almost every answer without looking at what was decoded.
        if text.count(b"[") + text.count(b"{") > MAX_DEPTH and _too_deep(value):
            raise TooDeep
        return value

    return loads


def _too_deep(value: object) -> bool:
    # Iterative: a recursive walk would meet the very limit it guards against.
    pending = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        if not isinstance(node, (dict, list)):
            continue
        if depth > MAX_DEPTH:
            return True
        children = node.values() if isinstance(node, dict) else node
        pending.extend((child, depth + 1) for child in children)
    return False


def _json_module_loads(text: bytes) -> Any:
    try:
        # JSON is UTF-8 (RFC 8259); decoding first skips json's encoding sniffing.
        return json.loads(text.decode("utf-8"))
    except RecursionError:
        raise TooDeep from None


def _orjson_loads() -> Callable[[bytes], Any] | None:
    try:
        import orjson
    except ImportError:
        return None

    def orjson_loads(text: bytes) -> Any:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError as error:
            if "depth" in str(error) or "recursion" in str(error):
                raise TooDeep from None
            raise ValueError(str(error)) from None

    return orjson_loads


stdlib_loads = _bounded(_json_module_loads)
"""Decode with the standard library's json, at most MAX_DEPTH deep."""

_fast = _orjson_loads()
fast_loads = None if _fast is None else _bounded(_fast)
"""Decode with orjson, at most MAX_DEPTH deep (None without orjson)."""

loads: Callable[[bytes], Any] = fast_loads or stdlib_loads


def dumps(value: object) -> str:
    """One line of JSON, non-ASCII characters kept as they are."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def encoded(value: object) -> bytes:
    """One line of JSON as ASCII bytes: every other character escaped, so that even a
    lone surrogate (which a JSON escape can spell) makes valid UTF-8."""
    return json.dumps(value, separators=(",", ":")).encode()


def copied(value: Any) -> Any:
    """A deep copy of JSON values, made the way they would be sent and read back."""
    return json.loads(dumps(value))
