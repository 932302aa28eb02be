"""The command line's flags, checked as they are parsed."""

from __future__ import annotations

import argparse
import math
from typing import Any, NoReturn

from .. import AdGroupStatus, __version__
from ..testing import SHAPES, FakeWhop
from .exits import ExitCode

WHOP_RATE_PER_MINUTE = 600

# The groups a campaign-wide run acts on: unpause what is paused, pause what is active.
_CAMPAIGN_STATUS = {"unpause": AdGroupStatus.PAUSED, "pause": AdGroupStatus.ACTIVE}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, no usage block: the exit code says it was usage.
        self.exit(ExitCode.USAGE, f"{self.prog}: {message} (see --help)\n")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a number of seconds, 0 or more, got {text}")
    return value


def _window_seconds(text: str) -> float:
    value = _seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


def _share(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def _add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rate",
        type=_non_negative,
        default=WHOP_RATE_PER_MINUTE,
        help="requests per minute per operation (600; 0: no pacing)",
    )
    parser.add_argument("--base-url", help="API base URL (default: WHOP_BASE_URL, then Whop's)")
    parser.add_argument(
        "--redis-url",
        help="share the rate budget with every process using this Redis (the redis extra)",
    )


def _add_change_status_parser(commands: Any, verb: str) -> None:
    campaign_status = _CAMPAIGN_STATUS[verb]
    command = commands.add_parser(verb, help=f"{verb} ad groups by id, file or campaign")
    command.add_argument("ids", nargs="*", metavar="ID", help="ad-group ids")
    command.add_argument(
        "--file", metavar="PATH", help="ids, one per line or a CSV with an id column; - for stdin"
    )
    command.add_argument(
        "--campaign", metavar="ID", help=f"every {campaign_status.value} group of this campaign"
    )
    command.add_argument("--output", metavar="PATH", help="append one JSON line per finished id")
    command.add_argument(
        "--resume", action="store_true", help="skip ids already recorded ok in --output"
    )
    command.add_argument("--concurrency", type=_positive, default=16, help="calls at once (16)")
    _add_connection_arguments(command)
    command.add_argument("--quiet", action="store_true", help="no progress bar")
    command.set_defaults(campaign_status=campaign_status)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; ``command`` names the one given."""
    parser = _Parser(prog="whop-async", description="Unpause (and pause) Whop ad groups in bulk.")
    parser.add_argument("--version", action="version", version=f"whop-async {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    for verb in ("unpause", "pause"):
        _add_change_status_parser(commands, verb)

    listing = commands.add_parser("list", help="print the ids (or JSON lines) of ad groups")
    listing.add_argument("--campaign", metavar="ID", help="only this campaign's groups")
    listing.add_argument("--status", help="only groups in this status, e.g. paused")
    listing.add_argument("--json", action="store_true", help="a JSON line per group, not its id")
    _add_connection_arguments(listing)

    demo = commands.add_parser(
        "demo", help="unpause paused groups of a local stand-in; no key needed"
    )
    demo.add_argument("--groups", type=_positive, default=2000, help="paused ad groups (2000)")
    demo.add_argument(
        "--fault-rate", type=_share, default=0.03, help="share of requests failed on purpose (0.03)"
    )
    demo.add_argument(
        "--rate", type=_non_negative, default=12_000, help="requests per minute (12000)"
    )

    add_fake_server_arguments(
        commands.add_parser("fake-server", help="run the stand-in Whop API until Ctrl-C")
    )
    return parser


# --- fake-server: FakeWhop's options as flags, and the FakeWhop they make --------------


def add_fake_server_arguments(fake: argparse.ArgumentParser) -> None:
    """The flags of ``fake-server``, one per FakeWhop option."""
    fake.add_argument(
        "--port", type=_non_negative, default=8080, help="port (8080; 0: any free one)"
    )
    fake.add_argument("--groups", type=_non_negative, default=100, help="paused ad groups (100)")
    fake.add_argument(
        "--shape",
        choices=SHAPES,
        default="docs-2026-11",
        help="the shape of the ad groups it answers with (docs-2026-11: Whop's today)",
    )
    fake.add_argument("--api-key", default="sk_test_fake_whop", help="the key it accepts")
    fake.add_argument(
        "--rate",
        type=_non_negative,
        default=600,
        help="requests per --per seconds per operation (600; 0: no limit)",
    )
    fake.add_argument(
        "--per", type=_window_seconds, default=60.0, help="the rate's window in seconds (60)"
    )
    fake.add_argument(
        "--limiter",
        choices=["window", "bucket"],
        default="window",
        help="fixed windows like Whop (default) or a token bucket",
    )
    fake.add_argument("--burst", type=_positive, default=10, help="the bucket's size (10)")
    fake.add_argument("--retry-after", action="store_true", help="send Retry-After on 429s")
    fake.add_argument("--fault-rate", type=_share, default=0.0, help="share answered 500/502/503")
    fake.add_argument("--drop-rate", type=_share, default=0.0, help="share of dropped connections")
    fake.add_argument("--latency", type=_seconds, default=0.0, help="seconds added to each answer")
    fake.add_argument("--seed", type=int, default=0, help="seeds the faults")
    fake.add_argument(
        "--accept-any-id",
        action="store_true",
        help="answer any id as if it existed (load tests); unknown ids are 404 otherwise",
    )


def fake_whop_from(options: argparse.Namespace) -> FakeWhop:
    """The FakeWhop that ``fake-server``'s flags describe."""
    return FakeWhop(
        groups=options.groups,
        shape=options.shape,
        api_key=options.api_key,
        rate_limit=options.rate or None,
        per=options.per,
        limiter=options.limiter,
        burst=options.burst,
        retry_after=options.retry_after,
        fault_rate=options.fault_rate,
        drop_rate=options.drop_rate,
        latency=options.latency,
        seed=options.seed,
        accept_any_id=options.accept_any_id,
        port=options.port,
    )
