"""FakeWhop: an in-memory stand-in for the parts of Whop's API that whop_async uses, and
for the ways real servers limit, fail and misbehave.

A request runs a gauntlet in a fixed order, each step able to end it: the outage, the
key (401), the account's hang and outage, the throttle and the rate limit (429), the
seeded faults (a drop, a 5xx, a hang), then the id's own faults. Every answer is then
dressed as the server plays it: a ``Date``, the key echoed, a value nested deep.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import functools
import inspect
import itertools
import json
import math
import random
import socket
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, NoReturn

import attrs
from aiohttp import web
from yarl import URL

from . import _flags
from ._hints import HINTS, Hint, hinted, http_date
from ._options import (
    DEFAULT_API_KEY,
    Account,
    AccountOptions,
    OptionError,
    Throttle,
    accounts,
    budget,
    check_failures,
    check_hostility,
    require,
    span,
)
from ._shapes import Shape, example_ad_group
from ._styles import Keeper, Limiter, keeper

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ECHO_HEADER = "X-Echoed-Authorization"
_ID_WIDTH = 12
_MAX_PAGE = 100
_MAX_PORT = 65535
# What a proxy in front of the API answers while the API is away.
_OUTAGE_PAGE = "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>"
# What a captive portal, or a host that is not the API, answers to every path.
_PORTAL_PAGE = "<html><body><h1>Welcome!</h1><p>Sign in to use this network.</p></body></html>"


@attrs.define
class FakeStats:
    """Counters of what FakeWhop was asked and what it answered.

    Attributes:
        requests: every API request (admin endpoints excepted).
        rate_limited: answers of 429 (the rate limit's and the throttle's).
        unauthorized: answers of 401 (a key it does not know, or one revoked).
        faults: injected 500/502/503 answers and dropped connections (``fault_rate``,
            ``drop_rate``, ``fail_first`` and ``failing_ids``).
        outage: 503s served during the outage, or during an account's.
        hung: requests left without an answer (``hang_rate``, ``hang_ids``,
            ``account_hang``).
        attempts: per ad-group id, how many unpause or pause requests reached it.
        failed_first: per ad-group id, how many of its unpause or pause requests were
            answered 503 by ``fail_first``.
        failed: per ad-group id, how many of its unpause or pause requests were
            answered 500 by ``failing_ids``.
        accounts: the same counters for each account's requests, by account name
            (``"default"`` for the single ``api_key``). A request with a key no account
            has counts in the totals only.
    """

    requests: int = 0
    rate_limited: int = 0
    unauthorized: int = 0
    faults: int = 0
    outage: int = 0
    hung: int = 0
    attempts: collections.Counter[str] = attrs.field(factory=collections.Counter)
    failed_first: collections.Counter[str] = attrs.field(factory=collections.Counter)
    failed: collections.Counter[str] = attrs.field(factory=collections.Counter)
    accounts: dict[str, FakeStats] = attrs.field(factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The counters as JSON-ready data (per-id counters as plain dicts)."""
        fields = attrs.asdict(self, recurse=False)
        return {
            **{
                name: dict(value) if isinstance(value, collections.Counter) else value
                for name, value in fields.items()
            },
            "accounts": {name: stats.as_json() for name, stats in self.accounts.items()},
        }


class _Answered(Exception):
    """Ends a request early with ``response``: a refusal or a fault."""

    def __init__(self, response: web.StreamResponse) -> None:
        super().__init__(response.status)
        self.response = response


class FakeWhop:
    """A stand-in Whop API on 127.0.0.1, for tests and demos.

    Ad groups live in memory with their state: ``POST /ad_groups/{id}/unpause`` and
    ``/pause`` change it and answer in one of Whop's real shapes (``shape``);
    ``GET /ad_groups/{id}`` and ``GET /ad_groups`` (cursor paging, newest first) read
    it. It checks the bearer key (401), knows only its ids (404), limits each operation
    apart (unpause, pause, retrieve, list) for each key, replays answers by
    Idempotency-Key, sends a ``Date`` with every answer, and can play the ways real
    servers limit, fail and misbehave.

    Every time below counts from the first API request after ``start()`` or
    ``reset()``, on ``clock``; ``listen_after`` alone counts from ``start()``, on the
    event loop's clock (nothing can be asked before it listens).

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
        api_key: the only key accepted (the account ``"default"``).
        api_keys: several accounts instead, by name: ``{"acme": "sk_1", "globex":
            "sk_2"}``. Each key is accepted, each account has its own budget per
            operation (as Whop keeps one per credential), its own counters in
            ``stats.accounts``, and the ``account_*`` options below. ``api_key`` is
            then the first account's key.
        rate_limit: requests per ``per`` seconds per operation and account (600);
            None: no limit.
        per: the window, in seconds (60).
        limiter: how the limit is kept: ``"window"``, Whop-style fixed windows of
            ``per`` seconds; ``"bucket"``, a token bucket of ``burst`` tokens;
            ``"sliding"``, a sliding log (at most ``rate_limit`` in any ``per`` seconds).
        burst: the bucket's size, with ``limiter="bucket"`` (10).
        hint: how a 429 says how long to wait. Honest styles round the wait up, as
            real servers do: ``"message"`` (Whop's: only the body's "Try again in N
            seconds.", N whole and at least 1), ``"retry-after"`` (a ``Retry-After``
            header in whole seconds, at least 1), ``"retry-after-ms"`` (a
            ``retry-after-ms`` header in whole milliseconds), ``"retry-after-date"``
            (``Retry-After`` as an HTTP-date, to be read against the answer's
            ``Date``) or ``"none"`` (nowhere). Edge styles (``EDGE_HINTS``) say the
            same whatever the wait: ``"message-zero"`` ("Try again in 0 seconds."),
            ``"retry-after-zero"`` (``Retry-After: 0``), ``"retry-after-negative"``
            (``Retry-After: -5``), ``"retry-after-ms-zero"`` (``retry-after-ms: 0``),
            ``"retry-after-past"`` (an HTTP-date a minute before the answer's
            ``Date``).
        date_skew: seconds the server's clock is off, in ``Date`` and HTTP-date hints
            (negative: behind; 0).
        neighbour_rate: requests a second that another program using the same key
            takes from every operation's budget (0: none). In a fixed window its share
            is held back from the window's start; a sliding log counts it; a bucket
            loses tokens to it (a short, fast neighbour empties it). Without
            ``neighbour_for`` it must leave room for one request a window.
        neighbour_from: when the neighbour starts, in seconds (0).
        neighbour_for: for how long it stays, in seconds (None: to the end).
        limit_drop: ``(at, for, factor)``: from ``at`` seconds, for ``for`` seconds,
            the limit is ``factor`` times lower, then back.
        throttle_rate: share of requests answered 429 whatever the limit (0); 1
            refuses every request, for as long as ``throttle_cycle`` lets it. Its 429s
            ask for the rest of the refusing stretch (1 s without a cycle), in the
            ``hint`` style.
        throttle_cycle: ``(on, off)``: throttle only in the first ``on`` seconds of
            every ``on + off`` (None: all the time). ``throttle_rate=0.15,
            throttle_cycle=(1, 1)`` refuses 15 % of requests every other second.
        outage: ``(at, for)``: from ``at`` seconds, for ``for`` seconds (``inf``: to
            the end), every API request is answered 503 with an HTML page, as by a
            proxy in front.
        fail_first: each id's first ``fail_first`` unpause or pause requests are
            answered 503, so ids that need retries can be played exactly.
        fail_first_ids: only these ids fail first (None: every id).
        failing_ids: these ids answer every unpause or pause with a 500, forever,
            while the others succeed (None: none).
        fault_rate: share of requests answered 500, 502 or 503.
        drop_rate: share of requests whose connection is closed without an answer.
        hang_rate: share of requests never answered: the connection stays open, with
            nothing done, until the client gives up or the FakeWhop closes.
        hang_ids: these ids' unpause and pause requests are never answered (None:
            none).
        latency: seconds added to every answer.
        seed: seeds the faults and the throttle, so a run can be repeated.
        account_rate_limit: an account's own ``rate_limit``, by name (the others keep
            ``rate_limit``).
        account_revoked_at: from this many seconds on, the account's key is answered
            401, as a key revoked mid-run, by name.
        account_outage: ``(at, for)`` by name: the account's requests are answered 503
            for that while (``inf``: to the end).
        account_hang: ``(at, for)`` by name: the account's requests are never answered
            for that while.
        echo_key: every answer below 500 in JSON carries the ``Authorization`` header as
            sent: in its body (an ``echo`` field, and an error's message) and in an
            ``X-Echoed-Authorization`` header, as careless servers do.
        nesting: every answer below 500 in JSON carries a ``nested`` field of this many
            levels of arrays and objects (0: none), so the body is one level deeper.
        portal: answer every path and method with 200 and an HTML page, as a captive
            portal or a host that is not the API.
        accept_any_id: answer any id as if it existed, without keeping it (for load
            tests over more ids than are worth holding); unknown ids get 404 otherwise.
        host: the address to listen on ("127.0.0.1"; an IPv6 one such as "::1" is
            bracketed in ``base_url``).
        port: the port; 0 picks a free one.
        listen_after: seconds after ``start()`` during which the port is held but
            nothing listens, so each connection is refused (``ECONNREFUSED``), as by an
            API restarting (0). ``base_url`` is known at once.
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
        api_keys: Mapping[str, str] | None = None,
        rate_limit: int | None = 600,
        per: float = 60.0,
        limiter: Limiter = "window",
        burst: int = 10,
        hint: Hint = "message",
        date_skew: float = 0.0,
        neighbour_rate: float = 0.0,
        neighbour_from: float = 0.0,
        neighbour_for: float | None = None,
        limit_drop: tuple[float, float, float] | None = None,
        throttle_rate: float = 0.0,
        throttle_cycle: tuple[float, float] | None = None,
        outage: tuple[float, float] | None = None,
        fail_first: int = 0,
        fail_first_ids: Collection[str] | None = None,
        failing_ids: Collection[str] | None = None,
        fault_rate: float = 0.0,
        drop_rate: float = 0.0,
        hang_rate: float = 0.0,
        hang_ids: Collection[str] | None = None,
        latency: float = 0.0,
        seed: int = 0,
        account_rate_limit: Mapping[str, int] | None = None,
        account_revoked_at: Mapping[str, float] | None = None,
        account_outage: Mapping[str, tuple[float, float]] | None = None,
        account_hang: Mapping[str, tuple[float, float]] | None = None,
        echo_key: bool = False,
        nesting: int = 0,
        portal: bool = False,
        accept_any_id: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        listen_after: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        require(groups >= 0, "groups", f"must be 0 or more, got {groups}")
        require(campaigns >= 1, "campaigns", f"must be at least 1, got {campaigns}")
        require(0 <= port <= _MAX_PORT, "port", f"must be 0 to {_MAX_PORT}, got {port}")
        require(hint in HINTS, "hint", f"must be one of {', '.join(HINTS)}, got {hint!r}")
        budget_for = functools.partial(
            budget,
            per=per,
            limiter=limiter,
            burst=burst,
            neighbour=(neighbour_rate, neighbour_from, neighbour_for),
            limit_drop=limit_drop,
        )
        budget_for(rate_limit)  # checked even when every account has its own
        given = AccountOptions(
            api_key=api_key,
            api_keys=api_keys,
            rate_limit=account_rate_limit,
            revoked_at=account_revoked_at,
            outage=account_outage,
            hang=account_hang,
        )
        self._accounts = accounts(given, budget_for, rate_limit)
        self._by_authorization = {
            f"Bearer {account.key}": name for name, account in self._accounts.items()
        }
        self._throttle = Throttle(throttle_rate, throttle_cycle)
        self._outage = None if outage is None else span("outage", *outage)
        check_failures(fail_first, fault_rate, drop_rate, hang_rate, latency)
        check_hostility(nesting, date_skew, listen_after)
        self.api_key = next(iter(self._accounts.values())).key
        self.shape = shape
        self._template = example_ad_group(shape)
        self._starting_status = status
        self._limiter, self._burst, self._hint = limiter, burst, hint
        self._keepers: dict[tuple[str, str], Keeper] = {}
        self._fail_first = fail_first
        self._fail_first_ids = None if fail_first_ids is None else frozenset(fail_first_ids)
        self._failing_ids = frozenset(failing_ids or ())
        self._hang_ids = frozenset(hang_ids or ())
        self._fault_rate, self._drop_rate, self._hang_rate = fault_rate, drop_rate, hang_rate
        self._latency = latency
        self._seed = seed
        self._echo_key, self._nesting, self._portal = echo_key, nesting, portal
        self._accept_any_id = accept_any_id
        self._chance = random.Random(seed)
        self._clock = clock
        self._started: float | None = None
        # The server's wall clock: whole seconds ahead of the real one by less than one,
        # so that dates it names are never early, and its fraction moves with ``clock``.
        self._wall_offset = math.ceil(time.time()) - clock() + date_skew
        self._host, self._port, self._listen_after = host, port, listen_after
        self._groups: dict[str, dict[str, Any]] = {}
        self._replies: dict[tuple[str, str], tuple[int, str]] = {}
        self._answers = 0
        self._runner: web.AppRunner | None = None
        self._reserved: socket.socket | None = None
        self._opening: asyncio.Task[None] | None = None
        self._released = asyncio.Event()
        self.stats = self._fresh_stats()
        self.base_url = ""
        for number in range(1, groups + 1):
            campaign = (number - 1) % campaigns + 1
            self.add_group(f"adgrp_{number:0{_ID_WIDTH}d}", status=status, campaign=campaign)

    # --- the fake-server command ---------------------------------------------------

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        """Add a flag for each option to ``parser``, with ``whop-async fake-server``'s
        defaults (port 8080, 100 groups): the option's name with dashes
        (``--throttle-cycle ON,OFF``, ``--failing-ids ID,ID``, ``--account-outage
        NAME=AT,FOR``...), but ``--rate`` for ``rate_limit`` (0: no limit),
        ``--key NAME=KEY`` (repeated) for ``api_keys`` and ``--account-rate NAME=N`` for
        ``account_rate_limit``. ``--retry-after`` is kept as ``--hint retry-after``."""
        _flags.add_arguments(parser)

    @classmethod
    def from_arguments(cls, options: argparse.Namespace) -> FakeWhop:
        """A FakeWhop with the options parsed from ``add_arguments``'s flags.

        Raises:
            ValueError: a value is out of range; the message names its flag.
        """
        names = [name for name in inspect.signature(cls).parameters if name != "clock"]
        try:
            return cls(**{name: getattr(options, name) for name in names})
        except OptionError as error:
            raise ValueError(f"{_flags.flag(error.option)}: {error.requirement}") from None

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

    @property
    def api_keys(self) -> dict[str, str]:
        """Each account's key, by name (``{"default": api_key}`` with a single key)."""
        return {name: account.key for name, account in self._accounts.items()}

    def rotate_key(self, account: str, key: str) -> None:
        """Give ``account`` a new key, as an OAuth refresh does: from now on its old key
        is answered 401, and the new one spends the same budget.

        Raises:
            KeyError: no account has that name.
            ValueError: another account has that key.
        """
        if f"Bearer {key}" in self._by_authorization:
            raise ValueError(f"rotate_key: {self._by_authorization[f'Bearer {key}']} has it")
        old = self._accounts[account]
        self._accounts[account] = attrs.evolve(old, key=key)
        del self._by_authorization[f"Bearer {old.key}"]
        self._by_authorization[f"Bearer {key}"] = account
        if self.api_key == old.key:
            self.api_key = key

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
        self.stats = self._fresh_stats()
        self._replies.clear()
        self._keepers.clear()
        self._started = None
        self._chance = random.Random(self._seed)

    def _fresh_stats(self) -> FakeStats:
        return FakeStats(accounts={name: FakeStats() for name in self._accounts})

    # --- serving ---------------------------------------------------------------------

    def app(self) -> web.Application:
        """The aiohttp application, to serve some other way."""
        app = web.Application(middlewares=[self._request_id])
        app.router.add_get("/_fake/stats", self._read_stats)
        app.router.add_post("/_fake/reset", self._reset)
        if self._portal:
            app.router.add_route("*", "/{path:.*}", self._api(self._portal_page))
            return app
        api = "/api/v1/ad_groups"
        unpause, pause = (
            self._change_status("unpause", "active"),
            self._change_status("pause", "paused"),
        )
        app.router.add_post(api + "/{id}/unpause", self._api(unpause))
        app.router.add_post(api + "/{id}/pause", self._api(pause))
        app.router.add_get(api + "/{id}", self._api(self._retrieve))
        app.router.add_get(api, self._api(self._list))
        return app

    async def start(self) -> None:
        """Listen on the host and port, or hold the port and listen only after
        ``listen_after`` seconds; ``base_url`` is set at once either way."""
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        if self._listen_after:
            self._reserved = await _bound_socket(self._host, self._port)
            port = self._reserved.getsockname()[1]
            self._opening = asyncio.create_task(self._listen_later(self._reserved))
        else:
            await web.TCPSite(self._runner, self._host, self._port).start()
            port = self._runner.addresses[0][1]
        self.base_url = str(URL.build(scheme="http", host=self._host, port=port, path="/api/v1"))

    async def _listen_later(self, reserved: socket.socket) -> None:
        await asyncio.sleep(self._listen_after)
        assert self._runner is not None
        await web.SockSite(self._runner, reserved).start()

    async def close(self) -> None:
        """Stop listening; requests left hanging lose their connections."""
        self._released.set()
        if self._opening is not None:
            self._opening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._opening
            self._opening = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._reserved is not None:
            self._reserved.close()
            self._reserved = None
        self._released = asyncio.Event()

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

    def _api(self, handler: Handler) -> Handler:
        """``handler`` with its early answers caught, and every answer dressed."""

        @functools.wraps(handler)
        async def answer(request: web.Request) -> web.StreamResponse:
            try:
                response = await handler(request)
            except _Answered as early:
                response = early.response
            return self._dressed(request, response)

        return answer

    def _change_status(self, operation: str, status: str) -> Handler:
        async def change(request: web.Request) -> web.StreamResponse:
            ad_group_id = request.match_info["id"]
            account = await self._admit(request, operation)
            key = request.headers.get("Idempotency-Key")
            if key is not None and (account, key) in self._replies:
                answer_status, body = self._replies[account, key]
                return _json(answer_status, body, {"Idempotent-Replayed": "true"})
            await self._fail_for_id(request, account, ad_group_id)
            self._count(account, "attempts", ad_group_id)
            answer = self._changed(ad_group_id, status)
            if key is not None:
                assert isinstance(answer.text, str)
                self._replies[account, key] = (answer.status, answer.text)
            return answer

        return change

    def _changed(self, ad_group_id: str, status: str) -> web.Response:
        group = self._groups.get(ad_group_id)
        if group is None and self._accept_any_id:
            group = {"id": ad_group_id}
        if group is None:
            return _error(404, "not_found", f"Ad group {ad_group_id} not found")
        group["status"] = status
        group["updated_at"] = _now()
        return _json(200, json.dumps(self._shaped(group)))

    async def _retrieve(self, request: web.Request) -> web.StreamResponse:
        await self._admit(request, "retrieve")
        group = self._groups.get(request.match_info["id"])
        if group is None:
            return _error(404, "not_found", f"Ad group {request.match_info['id']} not found")
        return _json(200, json.dumps(self._shaped(group)))

    async def _list(self, request: web.Request) -> web.StreamResponse:
        await self._admit(request, "list")
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

    async def _portal_page(self, _: web.Request) -> web.StreamResponse:
        self._count(None, "requests")
        return web.Response(text=_PORTAL_PAGE, content_type="text/html")

    def _dressed(self, request: web.Request, answer: web.StreamResponse) -> web.StreamResponse:
        """``answer`` as this server sends it: dated, and with the key echoed and a
        value nested deep when it plays those."""
        answer.headers.setdefault("Date", http_date(self._server_time()))
        sent = request.headers.get("Authorization") if self._echo_key else None
        if not (sent or self._nesting) or not _is_json_below_500(answer):
            return answer
        assert isinstance(answer, web.Response)
        assert isinstance(answer.text, str)
        if sent:
            answer.headers[ECHO_HEADER] = sent
        answer.text = _nest(_echo(answer.text, sent), self._nesting)
        return answer

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

    # --- the gauntlet ----------------------------------------------------------------

    async def _admit(self, request: web.Request, operation: str) -> str:
        """Count the request and let it through, returning its account's name, or end
        it (``_Answered``): the outage, a wrong or revoked key, what befalls the account,
        a 429, an injected fault."""
        moment = self._elapsed()
        account = self._by_authorization.get(request.headers.get("Authorization", ""))
        self._count(account, "requests")
        if self._outage is not None and self._outage.holds(moment):
            self._count(account, "outage")
            raise _Answered(web.Response(status=503, text=_OUTAGE_PAGE, content_type="text/html"))
        if account is None or self._accounts[account].revoked(moment):
            self._count(account, "unauthorized")
            raise _Answered(_error(401, "unauthorized", "Invalid API key"))
        await self._befall(request, account, self._accounts[account], moment)
        wait = self._throttled(moment)
        if wait is None:
            wait = self._wait_before(account, operation, moment)
        if wait is not None:
            self._count(account, "rate_limited")
            raise _Answered(self._rate_limited(wait))
        await self._misfortune(request, account)
        return account

    async def _befall(
        self, request: web.Request, name: str, account: Account, moment: float
    ) -> None:
        """What befalls the account at ``moment``: its hang or its outage."""
        if account.hangs(moment):
            await self._hang(request, name)
        if account.out(moment):
            self._count(name, "outage")
            raise _Answered(_server_error(503))

    async def _misfortune(self, request: web.Request, account: str) -> None:
        """The latency, and the seeded faults: a dropped connection, a 5xx, a hang."""
        if self._latency:
            await asyncio.sleep(self._latency)
        draw = self._chance.random()
        if draw < self._drop_rate:
            self._count(account, "faults")
            self._drop(request)
        if draw < self._drop_rate + self._fault_rate:
            self._count(account, "faults")
            raise _Answered(_server_error(self._chance.choice((500, 502, 503))))
        if draw < self._drop_rate + self._fault_rate + self._hang_rate:
            await self._hang(request, account)

    async def _fail_for_id(self, request: web.Request, account: str, ad_group_id: str) -> None:
        """The id's own faults: no answer, a 500 every time, or one of its first 503s."""
        if ad_group_id in self._hang_ids:
            await self._hang(request, account)
        if ad_group_id in self._failing_ids:
            self._count(account, "failed", ad_group_id)
            self._count(account, "faults")
            raise _Answered(_server_error(500))
        if self._fails_first(ad_group_id):
            self._count(account, "failed_first", ad_group_id)
            self._count(account, "faults")
            raise _Answered(_server_error(503))

    def _fails_first(self, ad_group_id: str) -> bool:
        """Whether this request for ``ad_group_id`` is one of its first that fail."""
        chosen = self._fail_first_ids is None or ad_group_id in self._fail_first_ids
        return chosen and self.stats.failed_first[ad_group_id] < self._fail_first

    async def _hang(self, request: web.Request, account: str) -> NoReturn:
        """Answer nothing until the FakeWhop closes, then drop the connection."""
        self._count(account, "hung")
        await self._released.wait()
        self._drop(request)

    @staticmethod
    def _drop(request: web.Request) -> NoReturn:
        if request.transport is not None:  # None once the client has gone
            request.transport.close()
        raise _Answered(web.Response(status=500))  # never reaches the client

    def _elapsed(self) -> float:
        """Seconds since the first request after start or reset."""
        now = self._clock()
        if self._started is None:
            self._started = now
        return now - self._started

    def _server_time(self) -> float:
        """The server's wall clock, in seconds since the epoch, ``date_skew`` included."""
        return self._wall_offset + self._clock()

    def _throttled(self, moment: float) -> float | None:
        """None when the throttle lets this request pass, else the wait it is told."""
        left = self._throttle.refusing(moment)
        if left is None or self._chance.random() >= self._throttle.rate:
            return None
        return left

    def _wait_before(self, account: str, operation: str, moment: float) -> float | None:
        """None when the account's limit for ``operation`` lets a request pass now,
        else the wait."""
        budget_left = self._accounts[account].budget
        if budget_left is None:
            return None
        if (account, operation) not in self._keepers:
            self._keepers[account, operation] = keeper(self._limiter, budget_left, self._burst)
        return self._keepers[account, operation].admit(moment)

    def _rate_limited(self, wait: float) -> web.Response:
        now = self._server_time()
        headers, message = hinted(self._hint, wait, now)
        return _error(429, "rate_limit_exceeded", message, {"Date": http_date(now), **headers})

    def _count(self, account: str | None, counter: str, ad_group_id: str | None = None) -> None:
        """One more in ``counter``, in the totals and in ``account``'s (per id, when
        ``ad_group_id`` is given)."""
        tallies = [self.stats] if account is None else [self.stats, self.stats.accounts[account]]
        for stats in tallies:
            if ad_group_id is None:
                setattr(stats, counter, getattr(stats, counter) + 1)
            else:
                getattr(stats, counter)[ad_group_id] += 1


async def _bound_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host`` and ``port`` that does not listen yet: the port is
    held, and every connection to it is refused until it listens."""
    loop = asyncio.get_running_loop()
    addresses = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, protocol, _, address = addresses[0]
    bound = socket.socket(family, kind, protocol)
    try:
        # As asyncio's own servers do, so a restart need not wait out TIME_WAIT.
        bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        bound.bind(address)
    except OSError:
        bound.close()
        raise
    return bound


def _is_json_below_500(answer: web.StreamResponse) -> bool:
    return (
        isinstance(answer, web.Response)
        and answer.status < 500
        and answer.content_type == "application/json"
    )


def _echo(text: str, sent: str | None) -> str:
    """A JSON object's text with ``sent`` (an Authorization header) echoed in it."""
    if sent is None:
        return text
    body = json.loads(text)
    body["echo"] = {"authorization": sent}
    if isinstance(body.get("error"), dict):
        body["error"]["message"] += f" (Authorization: {sent})"
    return json.dumps(body)


def _nest(text: str, levels: int) -> str:
    """A JSON object's text with a ``nested`` field ``levels`` deep added. Spliced in as
    text: the json module cannot encode a value a thousand levels deep."""
    if not levels:
        return text
    opens = "".join("[" if level % 2 == 0 else '{"deeper": ' for level in range(levels))
    closes = "".join("]" if level % 2 == 0 else "}" for level in reversed(range(levels)))
    # Every answer is a non-empty object, so a field goes before its closing brace.
    return f'{text[:-1]}, "nested": {opens}null{closes}}}'


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
