"""JSON in and out, with orjson when it is installed (the ``fast`` extra): decoding an
answer is the largest single cost of a call, and orjson does it several times faster.
Both decoders give the same values; nothing else in whop_async imports either.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


class TooDeep(ValueError):
    """JSON nested deeper than the decoder allows (never a RecursionError)."""


def stdlib_loads(text: bytes) -> Any:
    """Decode with the standard library's json."""
    try:
        # JSON is UTF-8 (RFC 8259); decoding first skips json's encoding sniffing.
        return json.loads(text.decode("utf-8"))
    except RecursionError:
        raise TooDeep("nested deeper than the parser allows") from None


def _orjson_loads() -> Callable[[bytes], Any] | None:
    try:
        import orjson
    except ImportError:
        return None

    def orjson_loads(text: bytes) -> Any:
        """Decode with orjson."""
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError as error:
            if "depth" in str(error) or "recursion" in str(error):
                raise TooDeep("nested deeper than the parser allows") from None
            raise ValueError(str(error)) from None

    return orjson_loads


fast_loads = _orjson_loads()
loads: Callable[[bytes], Any] = fast_loads or stdlib_loads


def dumps(value: object) -> str:
    """One line of JSON, non-ASCII characters kept as they are."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def copied(value: Any) -> Any:
    """A deep copy of JSON values, made the way they would be sent and read back."""
    return json.loads(dumps(value))
