"""FakeWhop's options as command-line flags (``whop-async fake-server``): one flag each,
named after the option, with the few exceptions ``flag`` knows."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ._hints import HINTS
from ._options import DEFAULT_API_KEY
from ._shapes import SHAPES
from ._styles import LIMITERS

T = TypeVar("T")
# parser.add_argument, or an argument group's
_Add = Callable[..., argparse.Action]
_RENAMED = {"rate_limit": "--rate", "api_keys": "--key", "account_rate_limit": "--account-rate"}


def flag(option: str) -> str:
    """The flag that sets ``option``."""
    return _RENAMED.get(option, "--" + option.replace("_", "-"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """A flag for each FakeWhop option, with ``fake-server``'s defaults."""
    _add_serving_arguments(parser.add_argument)
    _add_account_arguments(parser.add_argument_group("many credentials").add_argument)
    _add_limit_arguments(parser.add_argument_group("limits").add_argument)
    _add_failure_arguments(parser.add_argument_group("failures").add_argument)
    _add_hostile_arguments(parser.add_argument_group("hostile servers").add_argument)


def _add_serving_arguments(add: _Add) -> None:
    add("--port", type=int, default=8080, help="port (8080; 0: any free one)")
    add("--host", default="127.0.0.1", help="the address to listen on (127.0.0.1; ::1 works)")
    add("--groups", type=int, default=100, help="paused ad groups (100)")
    add("--status", default="paused", help="their starting status (paused)")
    add("--campaigns", type=int, default=1, help="campaigns sharing them, round robin (1)")
    add(
        "--shape",
        choices=SHAPES,
        default="docs-2026-11",
        help="the shape of the ad groups it answers with (docs-2026-11: Whop's today)",
    )
    add("--api-key", default=DEFAULT_API_KEY, help="the key it accepts")
    add(
        "--accept-any-id",
        action="store_true",
        help="answer any id as if it existed (load tests); unknown ids are 404 otherwise",
    )


def _add_account_arguments(add: _Add) -> None:
    add(
        flag("api_keys"),
        dest="api_keys",
        metavar="NAME=KEY",
        type=_named(str, "KEY", show_value=False),
        action=_PerAccount,
        help="an account and its key, instead of --api-key (repeat for more)",
    )
    add(
        flag("account_rate_limit"),
        dest="account_rate_limit",
        metavar="NAME=N",
        type=_named(int, "N"),
        action=_PerAccount,
        help="this account's requests per --per seconds per operation (default: --rate)",
    )
    add(
        "--account-revoked-at",
        metavar="NAME=AT",
        type=_named(float, "AT"),
        action=_PerAccount,
        help="from AT seconds, this account's key answers 401",
    )
    add(
        "--account-outage",
        metavar="NAME=AT,FOR",
        type=_named(_numbers("AT", "FOR"), "AT,FOR"),
        action=_PerAccount,
        help="from AT seconds, for FOR seconds (inf: to the end), its requests get 503s",
    )
    add(
        "--account-hang",
        metavar="NAME=AT,FOR",
        type=_named(_numbers("AT", "FOR"), "AT,FOR"),
        action=_PerAccount,
        help="from AT seconds, for FOR seconds (inf: to the end), its requests get no answer",
    )


def _add_limit_arguments(add: _Add) -> None:
    add(
        flag("rate_limit"),
        dest="rate_limit",
        metavar="N",
        type=_limit_or_none,
        default=600,
        help="requests per --per seconds per operation and account (600; 0: no limit)",
    )
    add("--per", type=float, default=60.0, help="the rate's window in seconds (60)")
    add(
        "--limiter",
        choices=LIMITERS,
        default="window",
        help="fixed windows like Whop (default), a token bucket or a sliding log",
    )
    add("--burst", type=int, default=10, help="the bucket's size (10)")
    add("--hint", choices=HINTS, default="message", help="how a 429 says how long to wait")
    add(
        "--retry-after",
        dest="hint",
        action="store_const",
        const="retry-after",
        help="the same as --hint retry-after",
    )
    add(
        "--neighbour-rate",
        type=float,
        default=0.0,
        help="requests a second another program takes from each budget (0)",
    )
    add("--neighbour-from", type=float, default=0.0, help="when it starts, in seconds (0)")
    add("--neighbour-for", type=float, help="how long it stays, in seconds (to the end)")
    add(
        "--limit-drop",
        type=_numbers("AT", "FOR", "FACTOR"),
        metavar="AT,FOR,FACTOR",
        help="from AT seconds, for FOR seconds, the limit is FACTOR times lower",
    )
    add(
        "--throttle-rate",
        type=float,
        default=0.0,
        help="share of requests answered 429 whatever the limit (0; 1: every one, forever)",
    )
    add(
        "--throttle-cycle",
        type=_numbers("ON", "OFF"),
        metavar="ON,OFF",
        help="throttle only in the first ON seconds of every ON+OFF (always)",
    )


def _add_failure_arguments(add: _Add) -> None:
    add(
        "--outage",
        type=_numbers("AT", "FOR"),
        metavar="AT,FOR",
        help="from AT seconds, for FOR seconds, answer 503 with an HTML page",
    )
    add(
        "--fail-first",
        type=int,
        default=0,
        help="each id's first N unpause or pause requests are answered 503 (0)",
    )
    add("--fail-first-ids", type=_ids, metavar="ID,ID", help="only these ids fail first (every id)")
    add(
        "--failing-ids",
        type=_ids,
        metavar="ID,ID",
        help="these ids answer every unpause or pause with a 500",
    )
    add("--fault-rate", type=float, default=0.0, help="share answered 500/502/503")
    add("--drop-rate", type=float, default=0.0, help="share of dropped connections")
    add("--hang-rate", type=float, default=0.0, help="share of requests never answered")
    add(
        "--hang-ids",
        type=_ids,
        metavar="ID,ID",
        help="these ids' unpause and pause requests are never answered",
    )
    add("--latency", type=float, default=0.0, help="seconds added to each answer")
    add("--seed", type=int, default=0, help="seeds the faults")


def _add_hostile_arguments(add: _Add) -> None:
    add(
        "--listen-after",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="refuse connections for this long after starting, as an API restarting (0)",
    )
    add(
        "--date-skew",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="how far the server's clock is off in Date and HTTP-date hints (0; -60: behind)",
    )
    add(
        "--echo-key",
        action="store_true",
        help="answers echo the Authorization header sent, in the body and a header",
    )
    add(
        "--nesting",
        type=int,
        default=0,
        metavar="LEVELS",
        help="JSON answers below 500 carry a value nested this deep (0: none)",
    )
    add(
        "--portal",
        action="store_true",
        help="answer every path with 200 and an HTML page, like a captive portal",
    )


class _PerAccount(argparse.Action):
    """``NAME=VALUE``, repeated: a dict of account names to values."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        assert isinstance(values, tuple)
        name, value = values
        mapping = dict(getattr(namespace, self.dest) or {})
        if name in mapping:
            raise argparse.ArgumentError(self, f"{name} given twice")
        mapping[name] = value
        setattr(namespace, self.dest, mapping)


def _named(
    parse: Callable[[str], T], expected: str, *, show_value: bool = True
) -> Callable[[str], tuple[str, T]]:
    def parse_pair(text: str) -> tuple[str, T]:
        name, equals, value = text.partition("=")
        if not (name and equals):
            got = f", got {text!r}" if show_value else ""
            raise argparse.ArgumentTypeError(f"expected NAME={expected}{got}")
        try:
            return name, parse(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected NAME={expected}, got {text!r}") from None

    return parse_pair


def _limit_or_none(text: str) -> int | None:
    return int(text) or None


def _numbers(*names: str) -> Callable[[str], tuple[float, ...]]:
    def parse(text: str) -> tuple[float, ...]:
        try:
            numbers = tuple(float(part) for part in text.split(","))
        except ValueError:
            numbers = ()
        if len(numbers) != len(names):
            raise argparse.ArgumentTypeError(f"expected {','.join(names)}, got {text!r}")
        return numbers

    return parse


def _ids(text: str) -> frozenset[str]:
    return frozenset(part for part in text.split(",") if part)
