"""FakeWhop: an in-memory stand-in for the parts of Whop's API that whop_async uses."""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import inspect
import itertools
import json
import math
import random
import time
from collections.abc import Awaitable, Callable, Collection
from datetime import UTC, datetime
from importlib import resources
from types import TracebackType
from typing import Any, Literal

import attrs
from aiohttp import web

from ._styles import LIMITERS, Budget, Keeper, Limiter, Span, keeper

DEFAULT_API_KEY = "sk_test_fake_whop"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Shape = Literal["seed", "sdk-2026", "docs-2026-11"]
SHAPES: tuple[Shape, ...] = ("seed", "sdk-2026", "docs-2026-11")
Hint = Literal["message", "retry-after", "retry-after-ms", "none"]
HINTS: tuple[Hint, ...] = ("message", "retry-after", "retry-after-ms", "none")
_ID_WIDTH = 12
_MAX_PAGE = 100
_MAX_PORT = 65535
# What a proxy in front of the API answers while the API is away.
_OUTAGE_PAGE = "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>"


def example_ad_group(shape: Shape = "docs-2026-11") -> dict[str, Any]:
    """An ad group as Whop has answered it, in one of its real shapes (a fresh copy).

    - ``"seed"``: the unpause reference page's nine fields, ``budget`` in dollars;
    - ``"sdk-2026"``: whop-sdk 2.6.0's dated version (``Api-Version-Date:
      2026-10-15-1``), about 80 fields;
    - ``"docs-2026-11"``: the example on Whop's Ad Group object page, late 2026: no
      ``platform``, no ``budget`` but ``budget_amount``, ``delivery_status`` and
      ``issues``.
    """
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {', '.join(SHAPES)}, got {shape!r}")
    text = resources.files(__package__).joinpath("shapes", f"{shape}.json").read_text("utf-8")
    example: dict[str, Any] = json.loads(text)
    return example


@attrs.define
class FakeStats:
    """Counters of what FakeWhop was asked and what it answered.

    Attributes:
        requests: every API request (admin endpoints excepted).
        rate_limited: answers of 429.
        faults: injected 500/502/503 answers and dropped connections (``fault_rate``,
            ``drop_rate`` and ``fail_first``).
        outage: 503s served during the outage.
        attempts: per ad-group id, how many unpause or pause requests reached it.
        failed_first: per ad-group id, how many of its unpause or pause requests were
            answered 503 by ``fail_first``.
    """

    requests: int = 0
    rate_limited: int = 0
    faults: int = 0
    outage: int = 0
    attempts: collections.Counter[str] = attrs.field(factory=collections.Counter)
    failed_first: collections.Counter[str] = attrs.field(factory=collections.Counter)

    def as_json(self) -> dict[str, Any]:
        """The counters as JSON-ready data (per-id counters as plain dicts)."""
        return {
            name: dict(value) if isinstance(value, collections.Counter) else value
            for name, value in attrs.asdict(self, recurse=False).items()
        }


class _OptionError(ValueError):
    """An option out of range; ``requirement`` says what it must be."""

    def __init__(self, option: str, requirement: str) -> None:
        super().__init__(f"{option} {requirement}")
        self.option, self.requirement = option, requirement


def _require(condition: bool, option: str, requirement: str) -> None:
    if not condition:
        raise _OptionError(option, requirement)


def _is_seconds(value: float, *, above_zero: bool = False) -> bool:
    return math.isfinite(value) and (value > 0 if above_zero else value >= 0)


class FakeWhop:
    """A stand-in Whop API on 127.0.0.1, for tests and demos.

    Ad groups live in memory with their state: ``POST /ad_groups/{id}/unpause`` and
    ``/pause`` change it and answer in one of Whop's real shapes (``shape``);
    ``GET /ad_groups/{id}`` and ``GET /ad_groups`` (cursor paging, newest first) read
    it. It checks the bearer key (401), knows only its ids (404), limits each operation
    apart (unpause, pause, retrieve, list), replays answers by Idempotency-Key, and can
    play the ways real servers limit and fail.

    Every time below counts from the first API request after ``start()`` or
    ``reset()``, on ``clock``.

    Use it as ``async with FakeWhop(groups=100) as fake:``, then point a client at
    ``fake.base_url`` with ``fake.api_key``. ``whop-async fake-server`` takes each
    option as a flag (see ``add_arguments``).

    Args:
        groups: how many ad groups to create (ids ``adgrp_000000000001`` ...).
        shape: the shape of every ad group it answers with (see ``example_ad_group``):
            ``"docs-2026-11"`` (the default: what Whop documents today), ``"sdk-2026"``
            or ``"seed"``.
        status: their starting status ("paused").
        campaigns: how many campaigns share them, round robin (1).
        api_key: the only key accepted.
        rate_limit: requests per ``per`` seconds per operation (600); None: no limit.
        per: the window, in seconds (60).
        limiter: how the limit is kept: ``"window"``, Whop-style fixed windows of
            ``per`` seconds; ``"bucket"``, a token bucket of ``burst`` tokens;
            ``"sliding"``, a sliding log (at most ``rate_limit`` in any ``per`` seconds).
        burst: the bucket's size, with ``limiter="bucket"`` (10).
        hint: where a 429 says how long to wait, rounded up as real servers do:
            ``"message"`` (Whop's: only the body's "Try again in N seconds.", N whole
            and at least 1), ``"retry-after"`` (a ``Retry-After`` header in whole
            seconds, at least 1), ``"retry-after-ms"`` (a ``retry-after-ms`` header in
            whole milliseconds) or ``"none"`` (nowhere).
        neighbour_rate: requests a second that another program using the same key
            takes from every operation's budget (0: none). In a fixed window its share
            is held back from the window's start; a sliding log counts it; a bucket
            loses tokens to it (a short, fast neighbour empties it). Without
            ``neighbour_for`` it must leave room for one request a window.
        neighbour_from: when the neighbour starts, in seconds (0).
        neighbour_for: for how long it stays, in seconds (None: to the end).
        limit_drop: ``(at, for, factor)``: from ``at`` seconds, for ``for`` seconds,
            the limit is ``factor`` times lower, then back.
        outage: ``(at, for)``: from ``at`` seconds, for ``for`` seconds, every API
            request is answered 503 with an HTML page, as by a proxy in front.
        fail_first: each id's first ``fail_first`` unpause or pause requests are
            answered 503, so ids that need retries can be played exactly.
        fail_first_ids: only these ids fail first (None: every id).
        fault_rate: share of requests answered 500, 502 or 503.
        drop_rate: share of requests whose connection is closed without an answer.
        latency: seconds added to every answer.
        seed: seeds the faults, so a run can be repeated.
        accept_any_id: answer any id as if it existed, without keeping it (for load
            tests over more ids than are worth holding); unknown ids get 404 otherwise.
        host: the address to listen on ("127.0.0.1").
        port: the port; 0 picks a free one.
        clock: seconds that only move forward; a test passes its own to move time.

    Raises:
        ValueError: an option is out of range.
    """

    def __init__(
        self,
        groups: int = 0,
        *,
        shape: Shape = "docs-2026-11",
        status: str = "paused",
        campaigns: int = 1,
        api_key: str = DEFAULT_API_KEY,
        rate_limit: int | None = 600,
        per: float = 60.0,
        limiter: Limiter = "window",
        burst: int = 10,
        hint: Hint = "message",
        neighbour_rate: float = 0.0,
        neighbour_from: float = 0.0,
        neighbour_for: float | None = None,
        limit_drop: tuple[float, float, float] | None = None,
        outage: tuple[float, float] | None = None,
        fail_first: int = 0,
        fail_first_ids: Collection[str] | None = None,
        fault_rate: float = 0.0,
        drop_rate: float = 0.0,
        latency: float = 0.0,
        seed: int = 0,
        accept_any_id: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _require(groups >= 0, "groups", f"must be 0 or more, got {groups}")
        _require(campaigns >= 1, "campaigns", f"must be at least 1, got {campaigns}")
        _require(0 <= port <= _MAX_PORT, "port", f"must be 0 to {_MAX_PORT}, got {port}")
        _require(hint in HINTS, "hint", f"must be one of {', '.join(HINTS)}, got {hint!r}")
        self._budget = _budget(
            rate_limit,
            per,
            limiter,
            burst,
            (neighbour_rate, neighbour_from, neighbour_for),
            limit_drop,
        )
        self._outage = _outage(outage)
        _check_failures(fail_first, fault_rate, drop_rate, latency)
        self.api_key = api_key
        self.shape = shape
        self._template = example_ad_group(shape)
        self.stats = FakeStats()
        self._starting_status = status
        self._limiter, self._burst, self._hint = limiter, burst, hint
        self._keepers: dict[str, Keeper] = {}
        self._fail_first = fail_first
        self._fail_first_ids = None if fail_first_ids is None else frozenset(fail_first_ids)
        self._fault_rate, self._drop_rate, self._latency = fault_rate, drop_rate, latency
        self._seed = seed
        self._accept_any_id = accept_any_id
        self._chance = random.Random(seed)
        self._clock = clock
        self._started: float | None = None
        self._host, self._port = host, port
        self._groups: dict[str, dict[str, Any]] = {}
        self._replies: dict[str, tuple[int, str]] = {}
        self._answers = 0
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        for number in range(1, groups + 1):
            campaign = (number - 1) % campaigns + 1
            self.add_group(f"adgrp_{number:0{_ID_WIDTH}d}", status=status, campaign=campaign)

    # --- the fake-server command ---------------------------------------------------

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        """Add a flag for each option to ``parser``, with ``whop-async fake-server``'s
        defaults (port 8080, 100 groups): ``--rate`` for ``rate_limit`` (0: no
        limit), ``--limit-drop AT,FOR,FACTOR`` and ``--outage AT,FOR`` for the pairs and
        triples, ``--fail-first-ids ID,ID`` for the set, and the option's name with
        dashes for the rest. ``--retry-after`` is kept as ``--hint retry-after``."""
        _add_serving_arguments(parser)
        _add_limit_arguments(parser)
        _add_failure_arguments(parser)

    @classmethod
    def from_arguments(cls, options: argparse.Namespace) -> FakeWhop:
        """A FakeWhop with the options parsed from ``add_arguments``'s flags.

        Raises:
            ValueError: a value is out of range; the message names its flag.
        """
        names = [name for name in inspect.signature(cls).parameters if name != "clock"]
        try:
            return cls(**{name: getattr(options, name) for name in names})
        except _OptionError as error:
            raise ValueError(f"{_flag(error.option)}: {error.requirement}") from None

    # --- state -----------------------------------------------------------------------

    def add_group(self, ad_group_id: str, *, status: str = "paused", campaign: int = 1) -> None:
        """Create (or replace) an ad group."""
        stamp = _timestamp(len(self._groups))
        self._groups[ad_group_id] = {
            "id": ad_group_id,
            "title": f"Ad group {ad_group_id[-4:]}",
            "status": status,
            "created_at": stamp,
            "updated_at": stamp,
            "ad_campaign": {"id": f"adcamp_{campaign:0{_ID_WIDTH - 1}d}"},
        }

    @property
    def ids(self) -> list[str]:
        """Every ad-group id, oldest first."""
        return list(self._groups)

    def status_of(self, ad_group_id: str) -> str:
        """The current status of an ad group."""
        return str(self._groups[ad_group_id]["status"])

    def statuses(self) -> collections.Counter[str]:
        """How many ad groups are in each status."""
        return collections.Counter(group["status"] for group in self._groups.values())

    def reset(self) -> None:
        """Put every group back in its starting status, zero the counters, forget
        stored replies, and restart the limits and the seeded faults; the clock starts
        again at the next request."""
        for group in self._groups.values():
            group["status"] = self._starting_status
        self.stats = FakeStats()
        self._replies.clear()
        self._keepers.clear()
        self._started = None
        self._chance = random.Random(self._seed)

    # --- serving ---------------------------------------------------------------------

    def app(self) -> web.Application:
        """The aiohttp application, to serve some other way."""
        app = web.Application(middlewares=[self._request_id])
        api = "/api/v1/ad_groups"
        app.router.add_post(api + "/{id}/unpause", self._change_status("unpause", "active"))
        app.router.add_post(api + "/{id}/pause", self._change_status("pause", "paused"))
        app.router.add_get(api + "/{id}", self._retrieve)
        app.router.add_get(api, self._list)
        app.router.add_get("/_fake/stats", self._read_stats)
        app.router.add_post("/_fake/reset", self._reset)
        return app

    async def start(self) -> None:
        """Listen on the host and port; ``base_url`` is set once it does."""
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://{self._host}:{port}/api/v1"

    async def close(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeWhop:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # --- handlers --------------------------------------------------------------------

    def _change_status(self, operation: str, status: str) -> Handler:
        async def change(request: web.Request) -> web.StreamResponse:
            ad_group_id = request.match_info["id"]
            refusal = await self._admit(request, operation)
            if refusal is not None:
                return refusal
            key = request.headers.get("Idempotency-Key")
            if key is not None and key in self._replies:
                answer_status, body = self._replies[key]
                return _json(answer_status, body, {"Idempotent-Replayed": "true"})
            if self._fails_first(ad_group_id):
                return _server_error(503)
            self.stats.attempts[ad_group_id] += 1
            group = self._groups.get(ad_group_id)
            if group is None and self._accept_any_id:
                group = {"id": ad_group_id}
            if group is None:
                answer = _error(404, "not_found", f"Ad group {ad_group_id} not found")
            else:
                group["status"] = status
                group["updated_at"] = _now()
                answer = _json(200, json.dumps(self._shaped(group)))
            if key is not None:
                assert isinstance(answer.text, str)
                self._replies[key] = (answer.status, answer.text)
            return answer

        return change

    async def _retrieve(self, request: web.Request) -> web.StreamResponse:
        refusal = await self._admit(request, "retrieve")
        if refusal is not None:
            return refusal
        group = self._groups.get(request.match_info["id"])
        if group is None:
            return _error(404, "not_found", f"Ad group {request.match_info['id']} not found")
        return _json(200, json.dumps(self._shaped(group)))

    async def _list(self, request: web.Request) -> web.StreamResponse:
        refusal = await self._admit(request, "list")
        if refusal is not None:
            return refusal
        query = request.query
        try:
            size = min(_MAX_PAGE, int(query.get("first", "20")))
            # Keyset cursors: "older than the group at this position", so a page stays
            # right while the groups before it change status.
            before = int(base64.urlsafe_b64decode(query["after"])) if "after" in query else None
        except ValueError:
            return _error(400, "invalid_request", "first and after must be valid")
        positions = (
            range(len(self._groups) - 1, -1, -1)
            if before is None
            else range(min(before, len(self._groups)) - 1, -1, -1)
        )
        groups = list(self._groups.values())
        matching = (
            position
            for position in positions
            if query.get("ad_campaign_id") in (None, groups[position]["ad_campaign"]["id"])
            and query.get("status") in (None, groups[position]["status"])
        )
        page = list(itertools.islice(matching, size + 1))
        has_next = len(page) > size
        page = page[:size]
        body = {
            "data": [self._shaped(groups[position]) for position in page],
            "page_info": {
                "start_cursor": _cursor(page[0]) if page else None,
                "end_cursor": _cursor(page[-1]) if page else None,
                "has_next_page": has_next,
                "has_previous_page": before is not None,
            },
        }
        return _json(200, json.dumps(body))

    def _shaped(self, group: dict[str, Any]) -> dict[str, Any]:
        """A group's state, in the shape this FakeWhop answers with."""
        return {**self._template, **group}

    @web.middleware
    async def _request_id(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        answer = await handler(request)
        self._answers += 1
        answer.headers["X-Request-Id"] = f"req_fake{self._answers:08d}"
        return answer

    async def _read_stats(self, _: web.Request) -> web.Response:
        return web.json_response({**self.stats.as_json(), "statuses": self.statuses()})

    async def _reset(self, _: web.Request) -> web.Response:
        self.reset()
        return web.json_response({})

    async def _admit(self, request: web.Request, operation: str) -> web.StreamResponse | None:
        """Count the request; a refusal (the outage, 401, 429, an injected fault) or None."""
        self.stats.requests += 1
        moment = self._elapsed()
        if self._outage is not None and self._outage.holds(moment):
            self.stats.outage += 1
            return web.Response(status=503, text=_OUTAGE_PAGE, content_type="text/html")
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(401, "unauthorized", "Invalid API key")
        wait = self._wait_before(operation, moment)
        if wait is not None:
            self.stats.rate_limited += 1
            return self._rate_limited(wait)
        if self._latency:
            await asyncio.sleep(self._latency)
        draw = self._chance.random()
        if draw < self._drop_rate:
            self.stats.faults += 1
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)  # never reaches the client
        if draw < self._drop_rate + self._fault_rate:
            self.stats.faults += 1
            return _server_error(self._chance.choice((500, 502, 503)))
        return None

    def _elapsed(self) -> float:
        """Seconds since the first request after start or reset."""
        now = self._clock()
        if self._started is None:
            self._started = now
        return now - self._started

    def _wait_before(self, operation: str, moment: float) -> float | None:
        """None when ``operation``'s limit lets a request pass now, else the wait."""
        if self._budget is None:
            return None
        if operation not in self._keepers:
            self._keepers[operation] = keeper(self._limiter, self._budget, self._burst)
        return self._keepers[operation].admit(moment)

    def _rate_limited(self, wait: float) -> web.Response:
        # Float noise must not turn an exact wait of 1 s into "2 seconds".
        wait = round(wait, 6)
        seconds = max(1, math.ceil(wait))
        if self._hint == "message":
            return _error(429, "rate_limit_exceeded", f"Try again in {seconds} seconds.")
        headers = {}
        if self._hint == "retry-after":
            headers = {"Retry-After": str(seconds)}
        elif self._hint == "retry-after-ms":
            headers = {"retry-after-ms": str(max(1, math.ceil(wait * 1000)))}
        return _error(429, "rate_limit_exceeded", "Rate limit exceeded.", headers)

    def _fails_first(self, ad_group_id: str) -> bool:
        """Whether this request for ``ad_group_id`` is one of its first that fail."""
        chosen = self._fail_first_ids is None or ad_group_id in self._fail_first_ids
        if not chosen or self.stats.failed_first[ad_group_id] >= self._fail_first:
            return False
        self.stats.failed_first[ad_group_id] += 1
        self.stats.faults += 1
        return True


def _budget(
    rate_limit: int | None,
    per: float,
    limiter: Limiter,
    burst: int,
    neighbour: tuple[float, float, float | None],
    limit_drop: tuple[float, float, float] | None,
) -> Budget | None:
    """The budget each operation starts with, checked; None without a limit."""
    _require(
        limiter in LIMITERS, "limiter", f"must be one of {', '.join(LIMITERS)}, got {limiter!r}"
    )
    neighbour_rate, neighbour_from, neighbour_for = neighbour
    if rate_limit is None:
        _require(neighbour_rate == 0, "neighbour_rate", "needs a rate limit to share")
        _require(limit_drop is None, "limit_drop", "needs a rate limit to lower")
        return None
    _require(rate_limit >= 1, "rate_limit", f"must be at least 1, got {rate_limit}")
    _require(_is_seconds(per, above_zero=True), "per", f"must be more than 0 seconds, got {per}")
    _require(burst >= 1, "burst", f"must be at least 1, got {burst}")
    # A neighbour that never leaves must leave a request a window, or none would pass.
    most = (rate_limit - 1) / per if neighbour_for is None else math.inf
    _require(
        0 <= neighbour_rate <= most,
        "neighbour_rate",
        f"must be 0 to {most:g} requests a second under this limit, got {neighbour_rate}",
    )
    _require(_is_seconds(neighbour_from), "neighbour_from", "must be 0 or more seconds")
    _require(
        neighbour_for is None or _is_seconds(neighbour_for, above_zero=True),
        "neighbour_for",
        "must be more than 0 seconds (None: to the end)",
    )
    budget = Budget(rate_limit, per, neighbour_rate=neighbour_rate)
    if neighbour_rate:
        length = math.inf if neighbour_for is None else neighbour_for
        budget = attrs.evolve(budget, neighbour=Span(neighbour_from, length))
    if limit_drop is not None:
        at, length, factor = limit_drop
        _require(factor >= 1, "limit_drop", f"needs a factor of 1 or more, got {factor}")
        budget = attrs.evolve(budget, drop=_span("limit_drop", at, length), factor=factor)
    return budget


def _outage(outage: tuple[float, float] | None) -> Span | None:
    return None if outage is None else _span("outage", *outage)


def _span(option: str, at: float, length: float) -> Span:
    _require(
        _is_seconds(at) and _is_seconds(length, above_zero=True),
        option,
        f"must be at 0 or more seconds, for more than 0 seconds, got {at:g},{length:g}",
    )
    return Span(at, length)


def _check_failures(fail_first: int, fault_rate: float, drop_rate: float, latency: float) -> None:
    _require(fail_first >= 0, "fail_first", f"must be 0 or more, got {fail_first}")
    _require(0 <= fault_rate <= 1, "fault_rate", f"must be a share, 0 to 1, got {fault_rate}")
    _require(
        0 <= drop_rate <= 1 - fault_rate,
        "drop_rate",
        f"must be a share, 0 to {1 - fault_rate:g} (1 less the fault rate), got {drop_rate}",
    )
    _require(_is_seconds(latency), "latency", f"must be 0 or more seconds, got {latency}")


# --- flags ---------------------------------------------------------------------------


def _flag(option: str) -> str:
    return "--rate" if option == "rate_limit" else "--" + option.replace("_", "-")


def _add_serving_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--port", type=int, default=8080, help="port (8080; 0: any free one)")
    add("--host", default="127.0.0.1", help="the address to listen on (127.0.0.1)")
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


def _add_limit_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        _flag("rate_limit"),
        dest="rate_limit",
        metavar="N",
        type=_limit_or_none,
        default=600,
        help="requests per --per seconds per operation (600; 0: no limit)",
    )
    add("--per", type=float, default=60.0, help="the rate's window in seconds (60)")
    add(
        "--limiter",
        choices=LIMITERS,
        default="window",
        help="fixed windows like Whop (default), a token bucket or a sliding log",
    )
    add("--burst", type=int, default=10, help="the bucket's size (10)")
    add("--hint", choices=HINTS, default="message", help="where a 429 says how long to wait")
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


def _add_failure_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
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
    add("--fault-rate", type=float, default=0.0, help="share answered 500/502/503")
    add("--drop-rate", type=float, default=0.0, help="share of dropped connections")
    add("--latency", type=float, default=0.0, help="seconds added to each answer")
    add("--seed", type=int, default=0, help="seeds the faults")


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


def _server_error(status: int) -> web.Response:
    return _error(status, "server_error", "Something went wrong on our end")


def _json(status: int, body: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=body, content_type="application/json", headers=headers)


def _error(
    status: int, error_type: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = json.dumps({"error": {"type": error_type, "message": message}})
    return _json(status, body, headers)


def _cursor(position: int) -> str:
    return base64.urlsafe_b64encode(str(position).encode()).decode()


def _timestamp(offset_seconds: int) -> str:
    moment = datetime(2024, 1, 1, tzinfo=UTC).timestamp() + offset_seconds
    return _format(datetime.fromtimestamp(moment, UTC))


def _now() -> str:
    return _format(datetime.now(UTC))


def _format(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
