"""FakeWhop: an in-memory stand-in for the parts of Whop's API that whop_async uses."""

from __future__ import annotations

import asyncio
import base64
import collections
import itertools
import json
import math
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib import resources
from types import TracebackType
from typing import Any, Literal

import attrs
from aiohttp import web

DEFAULT_API_KEY = "sk_test_fake_whop"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Shape = Literal["seed", "sdk-2026", "docs-2026-11"]
SHAPES: tuple[Shape, ...] = ("seed", "sdk-2026", "docs-2026-11")
_ID_WIDTH = 12
_MAX_PAGE = 100


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
        faults: injected 500/502/503 answers and dropped connections.
        attempts: per ad-group id, how many unpause or pause requests reached it.
    """

    requests: int = 0
    rate_limited: int = 0
    faults: int = 0
    attempts: collections.Counter[str] = attrs.field(factory=collections.Counter)

    def as_json(self) -> dict[str, Any]:
        """The counters as JSON-ready data (``attempts`` as a plain dict)."""
        return {**attrs.asdict(self, recurse=False), "attempts": dict(self.attempts)}


class _Limiter:
    """Whop-style fixed windows per operation, or a token bucket."""

    def __init__(
        self, limit: int, per: float, style: Literal["window", "bucket"], burst: int
    ) -> None:
        self._limit, self._per, self._style, self._burst = limit, per, style, burst
        self._windows: dict[str, tuple[float, int]] = {}
        self._buckets: dict[str, tuple[float, float]] = {}

    def wait_for(self, operation: str, now: float) -> float | None:
        """None when the request may pass (and is counted), else seconds until it may."""
        if self._style == "bucket":
            return self._take_token(operation, now)
        start = math.floor(now / self._per) * self._per
        window_start, used = self._windows.get(operation, (start, 0))
        if window_start != start:
            used = 0
        if used < self._limit:
            self._windows[operation] = (start, used + 1)
            return None
        return start + self._per - now

    def _take_token(self, operation: str, now: float) -> float | None:
        rate = self._limit / self._per
        tokens, stamp = self._buckets.get(operation, (float(self._burst), now))
        tokens = min(float(self._burst), tokens + (now - stamp) * rate)
        if tokens >= 1:
            self._buckets[operation] = (tokens - 1, now)
            return None
        self._buckets[operation] = (tokens, now)
        return (1 - tokens) / rate


class FakeWhop:
    """A stand-in Whop API on 127.0.0.1, for tests and demos.

    Ad groups live in memory with their state: ``POST /ad_groups/{id}/unpause`` and
    ``/pause`` change it and answer in one of Whop's real shapes (``shape``);
    ``GET /ad_groups/{id}`` and ``GET /ad_groups`` (cursor paging, newest first) read
    it. It checks the bearer key (401), knows only its ids (404), limits each operation
    like Whop (a 429 whose only hint is "Try again in N seconds." unless
    ``retry_after`` is set), replays answers by Idempotency-Key, and can inject seeded
    faults.

    Use it as ``async with FakeWhop(groups=100) as fake:``, then point a client at
    ``fake.base_url`` with ``fake.api_key``.

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
        limiter: "window" (Whop-style fixed windows) or "bucket" (a token bucket).
        burst: the bucket's size, with ``limiter="bucket"`` (10).
        retry_after: also send ``Retry-After`` and ``retry-after-ms`` on a 429.
        fault_rate: share of requests answered 500, 502 or 503.
        drop_rate: share of requests whose connection is closed without an answer.
        latency: seconds added to every answer.
        seed: seeds the faults, so a run can be repeated.
        accept_any_id: answer any id as if it existed, without keeping it (for load
            tests over more ids than are worth holding); unknown ids get 404 otherwise.
        host: the address to listen on ("127.0.0.1").
        port: the port; 0 picks a free one.

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
        limiter: Literal["window", "bucket"] = "window",
        burst: int = 10,
        retry_after: bool = False,
        fault_rate: float = 0.0,
        drop_rate: float = 0.0,
        latency: float = 0.0,
        seed: int = 0,
        accept_any_id: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_limit is not None and not (rate_limit > 0 and per > 0 and burst > 0):
            raise ValueError("rate_limit, per and burst must be positive")
        if not (0 <= fault_rate <= 1 and 0 <= drop_rate <= 1 and fault_rate + drop_rate <= 1):
            raise ValueError("fault_rate and drop_rate are shares: together at most 1")
        if latency < 0:
            raise ValueError(f"latency must be 0 or more seconds, got {latency!r}")
        self.api_key = api_key
        self.shape = shape
        self._template = example_ad_group(shape)
        self.stats = FakeStats()
        self._starting_status = status
        self._options = (rate_limit, per, limiter, burst)
        self._limiter = self._new_limiter()
        self._retry_after = retry_after
        self._fault_rate, self._drop_rate, self._latency = fault_rate, drop_rate, latency
        self._seed = seed
        self._accept_any_id = accept_any_id
        self._chance = random.Random(seed)
        self._clock = clock
        self._host, self._port = host, port
        self._groups: dict[str, dict[str, Any]] = {}
        self._replies: dict[str, tuple[int, str]] = {}
        self._answers = 0
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        for number in range(1, groups + 1):
            campaign = (number - 1) % max(1, campaigns) + 1
            self.add_group(f"adgrp_{number:0{_ID_WIDTH}d}", status=status, campaign=campaign)

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
        stored replies, and restart the limits and the seeded faults."""
        for group in self._groups.values():
            group["status"] = self._starting_status
        self.stats = FakeStats()
        self._replies.clear()
        self._limiter = self._new_limiter()
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
        """Count the request; a refusal (401, 429, an injected fault) or None."""
        self.stats.requests += 1
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(401, "unauthorized", "Invalid API key")
        if self._limiter is not None:
            wait = self._limiter.wait_for(operation, self._clock())
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
            status = self._chance.choice((500, 502, 503))
            return _error(status, "server_error", "Something went wrong on our end")
        return None

    def _rate_limited(self, wait: float) -> web.Response:
        seconds = max(1, math.ceil(wait))
        headers = {}
        if self._retry_after:
            headers = {"Retry-After": str(seconds), "retry-after-ms": str(math.ceil(wait * 1000))}
        return _error(429, "rate_limit_exceeded", f"Try again in {seconds} seconds.", headers)

    def _new_limiter(self) -> _Limiter | None:
        rate_limit, per, limiter, burst = self._options
        return None if rate_limit is None else _Limiter(rate_limit, per, limiter, burst)


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
