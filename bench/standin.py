"""A stand-in Whop unpause endpoint for the benchmarks, run as its own process.

    python bench/standin.py PORT MODE [SEED]

MODE: "open" (no limit), "bucket" (token bucket 100/s, burst 10, retry-after-ms hint),
"window" (fixed window of 50 per second, the only hint Whop's message), or "faults"
(10 % of answers 500/502/503 or a dropped connection). GET /stats returns the counters.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from collections import Counter

from aiohttp import web

ANSWER = {
    "title": "t", "status": "active", "platform": "meta",
    "created_at": "2023-12-01T05:00:00.401Z", "updated_at": "2023-12-01T05:00:00.401Z",
    "budget": 6.9, "budget_type": "daily", "ad_campaign": {"id": "adcamp_xxxxxxxxxxx"},
}  # fmt: skip


class Limits:
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.tokens, self.stamp = 10.0, time.monotonic()
        self.window, self.used = math.floor(time.monotonic()), 0

    def refusal(self) -> web.Response | None:
        now = time.monotonic()
        if self.mode == "bucket":
            self.tokens = min(10.0, self.tokens + (now - self.stamp) * 100)
            self.stamp = now
            if self.tokens >= 1:
                self.tokens -= 1
                return None
            wait_ms = math.ceil((1 - self.tokens) / 100 * 1000)
            return rate_limited(math.ceil(wait_ms / 1000), {"retry-after-ms": str(wait_ms)})
        if self.mode == "window":
            if math.floor(now) != self.window:
                self.window, self.used = math.floor(now), 0
            self.used += 1
            if self.used <= 50:
                return None
            return rate_limited(math.ceil(self.window + 1 - now), {})
        return None


def rate_limited(seconds: int, headers: dict[str, str]) -> web.Response:
    message = f"Try again in {seconds} seconds."
    body = {"error": {"type": "rate_limit_exceeded", "message": message}}
    return web.json_response(body, status=429, headers=headers)


def build(mode: str, seed: int) -> web.Application:
    limits, stats, chance = Limits(mode), Counter[str](), random.Random(seed)
    done: set[str] = set()

    async def unpause(request: web.Request) -> web.StreamResponse:
        stats["requests"] += 1
        refusal = limits.refusal()
        if refusal is not None:
            stats["429"] += 1
            return refusal
        if mode == "faults" and chance.random() < 0.10:
            stats["faults"] += 1
            if chance.random() < 0.25:
                assert request.transport is not None
                request.transport.close()
                return web.Response(status=500)
            return web.json_response({"error": {"type": "x", "message": "boom"}},
                                     status=chance.choice([500, 502, 503]))  # fmt: skip
        stats["ok"] += 1
        ad_group_id = request.match_info["id"]
        done.add(ad_group_id)
        return web.Response(body=json.dumps({"id": ad_group_id, **ANSWER}),
                            content_type="application/json")  # fmt: skip

    async def read_stats(_: web.Request) -> web.Response:
        return web.json_response({**stats, "unpaused": len(done)})

    async def reset(_: web.Request) -> web.Response:
        nonlocal limits
        stats.clear()
        done.clear()
        limits = Limits(mode)
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/api/v1/ad_groups/{id}/unpause", unpause)
    app.router.add_get("/stats", read_stats)
    app.router.add_post("/reset", reset)
    return app


if __name__ == "__main__":
    port, mode = int(sys.argv[1]), sys.argv[2]
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    web.run_app(build(mode, seed), host="127.0.0.1", port=port, print=None,
                access_log=None)  # fmt: skip
