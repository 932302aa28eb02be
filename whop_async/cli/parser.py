"""The command line's flags, checked as they are parsed."""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable
from typing import Any, NoReturn

from .. import BULK_CONCURRENCY, WHOP_RATE_LIMIT, AdGroupStatus, RateLimit, __version__
from ..testing import FakeWhop
from .exits import MEANINGS, ExitCode

WHOP_RATE_PER_MINUTE = round(WHOP_RATE_LIMIT.requests * 60 / WHOP_RATE_LIMIT.per)

# The groups a campaign-wide run acts on: unpause what is paused, pause what is active.
_CAMPAIGN_STATUS = {"unpause": AdGroupStatus.PAUSED, "pause": AdGroupStatus.ACTIVE}


def _epilog() -> str:
    codes = "\n".join(
        textwrap.fill(meaning, width=88, initial_indent=f"  {code:<5}", subsequent_indent=" " * 7)
        for code, meaning in MEANINGS.items()
    )
    return f"""\
environment:
  WHOP_API_KEY   your Whop API key (required); never a flag, so it stays out of shell
                 history and process lists
  WHOP_BASE_URL  the API's base URL (https://api.whop.com/api/v1); --base-url wins
  WHOP_LOG       debug or info: log what the client does on stderr (the key never)

exit codes:
{codes}

examples:
  export WHOP_API_KEY=...
  whop-async unpause adgrp_1 adgrp_2
  whop-async unpause --file ids.txt --output results.jsonl
  whop-async unpause --file ids.txt --output results.jsonl --resume    # after a stop
  whop-async unpause --campaign adcamp_1            # every paused group of a campaign
  whop-async list --status paused | whop-async unpause --file -
  whop-async pause adgrp_1 adgrp_2                  # undo
  whop-async unpause --file pairs.csv --keys keys.env --output out.jsonl   # many accounts
  whop-async demo                                   # no key, no network
"""


EPILOG = _epilog()


def _add_documented(commands: Any, name: str, summary: str) -> argparse.ArgumentParser:
    """A command whose --help ends with the environment, exit codes and examples."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=summary, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    return parser


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, no usage block: the exit code says it was usage. The flag leads,
        # as in "--rate: expected a whole number of requests per minute, got 'abc'".
        self.exit(
            ExitCode.USAGE, f"{self.prog}: {message.removeprefix('argument ')} (see --help)\n"
        )


def whole_number(what: str, *, least: int | None = None) -> Callable[[str], int]:
    """A flag's value: ``what`` (e.g. "a whole number of requests per minute"), at
    least ``least``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if least is not None and value < least:
            raise argparse.ArgumentTypeError(f"must be {least} or more, got {value}")
        return value

    return parse


def share(text: str) -> float:
    """A flag's value: a share, 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a share from 0 to 1, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be from 0 to 1, got {text}")
    return value


def redis_url(text: str) -> str:
    """A flag's value: a Redis URL as RateLimit takes it (one server, any node of a
    Cluster, Sentinel), said back without its password when it is not one."""
    try:
        RateLimit(1, redis=text)
    except (ValueError, ImportError) as error:
        raise argparse.ArgumentTypeError(
            f"expected a redis://, rediss://, unix:// or Sentinel URL: {error}"
        ) from None
    return text


_requests_per_minute = whole_number("a whole number of requests per minute", least=0)


def _add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rate",
        type=_requests_per_minute,
        default=WHOP_RATE_PER_MINUTE,
        help=f"requests per minute per operation ({WHOP_RATE_PER_MINUTE}; 0: no pacing)",
    )
    parser.add_argument("--base-url", help="API base URL (default: WHOP_BASE_URL, then Whop's)")
    parser.add_argument(
        "--redis-url",
        type=redis_url,
        help="share the rate budget with every process using this Redis (the redis extra)",
    )


def _add_change_status_parser(commands: Any, verb: str) -> None:
    campaign_status = _CAMPAIGN_STATUS[verb]
    command = _add_documented(commands, verb, f"{verb} ad groups by id, file or campaign")
    command.add_argument("ids", nargs="*", metavar="ID", help="ad-group ids")
    command.add_argument(
        "--file",
        metavar="PATH",
        help="ids, one a line or a CSV with an id column: a file, a pipe, - for stdin",
    )
    command.add_argument(
        "--campaign", metavar="ID", help=f"every {campaign_status.value} group of this campaign"
    )
    command.add_argument(
        "--keys",
        metavar="PATH",
        help="many accounts: a dotenv file of NAME=KEY lines, readable by you alone; --file"
        " is then a CSV with account and id columns",
    )
    command.add_argument(
        "--output",
        metavar="PATH",
        help="the journal: one JSON line per finished id; one run at a time",
    )
    command.add_argument(
        "--resume", action="store_true", help="skip ids already recorded ok in --output"
    )
    command.add_argument(
        "--concurrency",
        type=whole_number("a whole number of calls", least=1),
        default=BULK_CONCURRENCY,
        help=f"calls at once ({BULK_CONCURRENCY})",
    )
    _add_connection_arguments(command)
    command.add_argument("--quiet", action="store_true", help="no progress bar")
    command.set_defaults(campaign_status=campaign_status)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; ``command`` names the one given."""
    parser = _Parser(
        prog="whop-async",
        description="Unpause (and pause) Whop ad groups in bulk.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"whop-async {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    for verb in ("unpause", "pause"):
        _add_change_status_parser(commands, verb)

    listing = _add_documented(commands, "list", "print the ids (or JSON lines) of ad groups")
    listing.add_argument("--campaign", metavar="ID", help="only this campaign's groups")
    listing.add_argument("--status", help="only groups in this status, e.g. paused")
    listing.add_argument("--json", action="store_true", help="a JSON line per group, not its id")
    _add_connection_arguments(listing)

    demo = commands.add_parser(
        "demo", help="unpause paused groups of a local stand-in; no key needed"
    )
    demo.add_argument(
        "--groups",
        type=whole_number("a whole number of ad groups", least=1),
        default=2000,
        help="paused ad groups (2000)",
    )
    demo.add_argument(
        "--fault-rate", type=share, default=0.03, help="share of requests failed on purpose (0.03)"
    )
    demo.add_argument(
        "--rate",
        type=_requests_per_minute,
        default=12_000,
        help="requests per minute (12000)",
    )

    # One flag per FakeWhop option, defined beside FakeWhop.
    FakeWhop.add_arguments(
        commands.add_parser("fake-server", help="run the stand-in Whop API until Ctrl-C")
    )
    return parser
