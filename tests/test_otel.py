"""OpenTelemetry (the otel extra): the spans, attributes and metric points an
application's OpenTelemetry set-up receives, the traceparent each request carries, and
nothing at all without the extra."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Iterator
from typing import Any

import aiohttp
import attrs
import pytest
from aioresponses import CallbackResult
from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from yarl import URL

import whop_async
from whop_async.testing import FakeWhop

from . import scenarios
from .helpers import (
    API_KEY,
    BASE_URL,
    MockAPI,
    ShimResponse,
    Traceparents,
    ad_group_json,
    python_alone,
)

Points = dict[str, dict[frozenset[tuple[str, Any]], Any]]


@attrs.define
class Collected:
    """The OpenTelemetry SDK set up in memory, as an application would set it up."""

    exporter: InMemorySpanExporter = attrs.field(factory=InMemorySpanExporter)
    reader: InMemoryMetricReader = attrs.field(factory=InMemoryMetricReader)
    tracer_provider: TracerProvider = attrs.field(factory=TracerProvider)
    meter_provider: MeterProvider = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def client(
        self, api_key: str = API_KEY, base_url: str = BASE_URL, **options: Any
    ) -> whop_async.WhopClient:
        return whop_async.WhopClient(
            api_key,
            base_url=base_url,
            tracer_provider=self.tracer_provider,
            meter_provider=self.meter_provider,
            **options,
        )

    @property
    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.spans if span.name == name]

    def points(self) -> Points:
        """Every metric's points by their attributes: a sum's value, a histogram's
        (count, sum)."""
        found: Points = {}
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data is not None else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        value = (
                            (point.count, pytest.approx(point.sum))
                            if hasattr(point, "count")
                            else point.value
                        )
                        found.setdefault(metric.name, {})[labels(point.attributes)] = value
        return found


def labels(attributes: Any) -> frozenset[tuple[str, Any]]:
    return frozenset(dict(attributes or {}).items())


def attributes_of(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


@pytest.fixture
def collected() -> Iterator[Collected]:
    otel = Collected()
    yield otel
    otel.tracer_provider.shutdown()
    otel.meter_provider.shutdown()


UNPAUSE = f"{BASE_URL}/ad_groups/adgrp_1/unpause"
SCENARIO_URL = "https://api.scenario.example/api/v1"
ROUND_TRIP = 0.25
SERVER = {"server.address": "api.test.whop.example", "server.port": 443}
UNPAUSE_OPERATION = {"whop.operation": "ad_groups.unpause"}


class Answers:
    """A mocked endpoint answering ``responses`` in turn, each ROUND_TRIP (virtual)
    seconds after its request, keeping the headers each request carried."""

    def __init__(self, *responses: tuple[int, dict[str, str], Any]) -> None:
        self.pending = list(responses)
        self.sent: list[dict[str, str]] = []

    async def answer(self, url: URL, **kwargs: Any) -> CallbackResult:
        self.sent.append(dict(kwargs["headers"]))
        await asyncio.sleep(ROUND_TRIP)
        status, headers, body = self.pending.pop(0)
        return CallbackResult(
            status=status, headers=headers, payload=body, response_class=ShimResponse
        )


def traceparent_of(span: ReadableSpan) -> str:
    context = span.get_span_context()
    assert context is not None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


@pytest.mark.virtual_time
async def test_a_call_that_meets_a_503_then_a_429_then_succeeds(
    collected: Collected, mock_api: MockAPI
) -> None:
    server = Answers(
        (503, {"Retry-After": "1", "X-Request-Id": "req_1"}, {"error": {"message": "down"}}),
        (
            429,
            {"X-Request-Id": "req_2"},
            {"error": {"type": "rate_limit_exceeded", "message": "Try again in 2 seconds."}},
        ),
        (200, {"X-Request-Id": "req_3"}, ad_group_json("adgrp_1")),
    )
    mock_api.post(UNPAUSE, callback=server.answer, repeat=True)
    async with collected.client() as client:
        await client.ad_groups.unpause("adgrp_1")

    *attempts, call = collected.spans
    assert (call.name, call.kind, call.status.status_code) == (
        "ad_groups.unpause",
        SpanKind.INTERNAL,
        StatusCode.UNSET,
    )
    # Waited: the 503's Retry-After (1 s), then the gate after the 429 until its probe
    # (the hint's lower bound, 1 s, and one step of 0.1 s at 10 a second).
    assert attributes_of(call) == {
        "whop.operation": "ad_groups.unpause",
        "whop.ad_group.id": "adgrp_1",
        "whop.attempts": 3,
        "whop.rate_limit.waited": pytest.approx(2.1),
        "whop.rate_limit.wait.backoff": pytest.approx(1.0),
        "whop.rate_limit.wait.gate": pytest.approx(1.1),
        "whop.rate_limit.hint": 2.0,
    }
    assert call.events == ()
    common = {
        "http.request.method": "POST",
        **SERVER,
        "url.full": UNPAUSE,
        "url.template": "/ad_groups/{id}/unpause",
    }
    assert [
        (span.name, span.kind, span.status.status_code, attributes_of(span)) for span in attempts
    ] == [
        (
            "POST /ad_groups/{id}/unpause",
            SpanKind.CLIENT,
            StatusCode.ERROR,
            {
                **common,
                "http.response.status_code": 503,
                "error.type": "503",
                "whop.request_id": "req_1",
                "whop.retry_after": 1.0,
            },
        ),
        (
            "POST /ad_groups/{id}/unpause",
            SpanKind.CLIENT,
            StatusCode.ERROR,
            {
                **common,
                "http.request.resend_count": 1,
                "http.response.status_code": 429,
                "error.type": "429",
                "whop.request_id": "req_2",
                "whop.retry_after": 2.0,
            },
        ),
        (
            "POST /ad_groups/{id}/unpause",
            SpanKind.CLIENT,
            StatusCode.UNSET,
            {
                **common,
                "http.request.resend_count": 2,
                "http.response.status_code": 200,
                "whop.request_id": "req_3",
            },
        ),
    ]
    # The status code says why: no description beside it.
    assert [span.status.description for span in attempts] == [None, None, None]
    assert all(span.parent == call.context for span in attempts)
    assert [sent["traceparent"] for sent in server.sent] == [
        traceparent_of(span) for span in attempts
    ]

    answered = {"http.request.method": "POST", **SERVER}
    assert collected.points() == {
        "http.client.request.duration": {
            labels({**answered, "http.response.status_code": 503, "error.type": "503"}): (1, 0.25),
            labels({**answered, "http.response.status_code": 429, "error.type": "429"}): (1, 0.25),
            labels({**answered, "http.response.status_code": 200}): (1, 0.25),
        },
        "whop.rate_limit.wait": {
            labels({**UNPAUSE_OPERATION, "whop.rate_limit.reason": "backoff"}): (1, 1.0),
            labels({**UNPAUSE_OPERATION, "whop.rate_limit.reason": "gate"}): (1, 1.1),
        },
        "whop.rate_limit.refusals": {labels(UNPAUSE_OPERATION): 1},
        "whop.client.active_calls": {labels(UNPAUSE_OPERATION): 0},
    }


@pytest.mark.virtual_time
async def test_a_call_that_fails_ends_its_span_with_the_error(
    collected: Collected, mock_api: MockAPI
) -> None:
    server = Answers(
        (404, {"X-Request-Id": "req_9"}, {"error": {"type": "not_found", "message": "no"}})
    )
    mock_api.post(UNPAUSE, callback=server.answer)
    async with collected.client() as client:
        with pytest.raises(whop_async.NotFoundError) as raised:
            await client.ad_groups.unpause("adgrp_1")

    attempt, call = collected.spans
    assert attempt.status.status_code is StatusCode.ERROR  # a 4xx on a CLIENT span
    assert attributes_of(attempt)["error.type"] == "404"
    assert call.status.status_code is StatusCode.ERROR
    assert call.status.description == str(raised.value)
    assert attributes_of(call)["error.type"] == "whop_async.NotFoundError"
    [event] = call.events
    assert event.name == "exception"
    assert dict(event.attributes or {})["exception.message"] == str(raised.value)


@pytest.mark.virtual_time
@pytest.mark.parametrize(
    ("failure", "error_type"),
    [
        (aiohttp.ServerDisconnectedError(), "whop_async.APIConnectionError"),
        (TimeoutError(), "whop_async.APITimeoutError"),
    ],
    ids=["dropped", "timed out"],
)
async def test_an_attempt_without_an_answer_is_an_error_of_its_class(
    collected: Collected, mock_api: MockAPI, failure: Exception, error_type: str
) -> None:
    mock_api.post(UNPAUSE, exception=failure)
    async with collected.client(max_retries=0) as client:
        with pytest.raises(whop_async.APIConnectionError) as raised:
            await client.ad_groups.unpause("adgrp_1")

    attempt, _ = collected.spans
    assert attempt.status.status_code is StatusCode.ERROR
    assert attempt.status.description == str(raised.value)
    assert attributes_of(attempt)["error.type"] == error_type
    assert "http.response.status_code" not in attributes_of(attempt)
    [(point, (count, _))] = collected.points()["http.client.request.duration"].items()
    assert (point, count) == (
        labels({"http.request.method": "POST", **SERVER, "error.type": error_type}),
        1,
    )


@pytest.mark.virtual_time
async def test_spans_are_named_by_route_never_by_id(
    collected: Collected, mock_api: MockAPI
) -> None:
    mock_api.get(f"{BASE_URL}/ad_groups/adgrp_1", payload=ad_group_json("adgrp_1"))
    page = {"data": [], "page_info": {"end_cursor": None, "has_next_page": False}}
    mock_api.get(f"{BASE_URL}/ad_groups?first=5", payload=page)
    async with collected.client() as client:
        await client.ad_groups.retrieve("adgrp_1")
        async for _ in client.ad_groups.list(page_size=5):
            pass

    assert [(span.name, span.kind) for span in collected.spans] == [
        ("GET /ad_groups/{id}", SpanKind.CLIENT),
        ("ad_groups.retrieve", SpanKind.INTERNAL),
        ("GET /ad_groups", SpanKind.CLIENT),
        ("ad_groups.list", SpanKind.INTERNAL),
    ]
    assert attributes_of(collected.spans[2])["url.full"] == f"{BASE_URL}/ad_groups?first=5"


@pytest.mark.virtual_time
async def test_waits_are_reported_by_reason(collected: Collected) -> None:
    # Three calls at once against a limit of one a second: the first goes, the second
    # waits for its paced turn, the third queues behind it, then waits its own.
    with scenarios.serving(scenarios.unlimited()):
        async with collected.client(
            scenarios.API_KEY, SCENARIO_URL, rate_limit=whop_async.RateLimit(1, per=1.0)
        ) as client:
            await asyncio.gather(*(client.ad_groups.unpause(f"adgrp_{n}") for n in range(3)))

    waits = [
        {name: value for name, value in attributes_of(span).items() if "rate_limit" in name}
        for span in collected.named("ad_groups.unpause")
    ]
    assert waits == [
        {"whop.rate_limit.waited": 0.0},
        {"whop.rate_limit.waited": 1.0, "whop.rate_limit.wait.pacing": 1.0},
        {
            "whop.rate_limit.waited": 2.0,
            "whop.rate_limit.wait.queue": 1.0,
            "whop.rate_limit.wait.pacing": 1.0,
        },
    ]
    assert collected.points()["whop.rate_limit.wait"] == {
        labels({**UNPAUSE_OPERATION, "whop.rate_limit.reason": "pacing"}): (2, 2.0),
        labels({**UNPAUSE_OPERATION, "whop.rate_limit.reason": "queue"}): (1, 1.0),
    }


@pytest.mark.virtual_time
async def test_a_bulk_run_has_a_span_with_its_counts_and_its_calls_as_children(
    collected: Collected,
) -> None:
    server = scenarios.unlimited(groups=3, accept_any_id=False)
    with scenarios.serving(server):
        async with collected.client(scenarios.API_KEY, SCENARIO_URL) as client:
            assert server.fake is not None
            await client.ad_groups.unpause_many([*server.fake.ids, "adgrp_unknown"])

    [run] = collected.named("ad_groups.unpause_many")
    assert run.kind is SpanKind.INTERNAL
    assert run.status.status_code is StatusCode.UNSET  # one id's 404 is that id's
    assert attributes_of(run) == {
        "whop.operation": "ad_groups.unpause",
        "whop.bulk.succeeded": 3,
        "whop.bulk.failed": 1,
        "whop.bulk.unreadable": 0,
    }
    calls = collected.named("ad_groups.unpause")
    assert len(calls) == 4
    assert all(call.parent == run.context for call in calls)
    assert collected.points()["whop.bulk.ids"] == {
        labels({**UNPAUSE_OPERATION, "whop.bulk.outcome": "succeeded"}): 3,
        labels(
            {
                **UNPAUSE_OPERATION,
                "whop.bulk.outcome": "failed",
                "error.type": "whop_async.NotFoundError",
            }
        ): 1,
    }


@pytest.mark.virtual_time
async def test_an_answer_that_cannot_be_read_is_the_call_s_error_not_the_request_s(
    collected: Collected,
) -> None:
    # A captive portal: 200 and an HTML page for every request.
    with scenarios.serving(scenarios.unlimited(portal=True)):
        async with collected.client(scenarios.API_KEY, SCENARIO_URL) as client:
            result = await client.ad_groups.unpause_many(["adgrp_1", "adgrp_2"])

    assert len(result.unreadable) == 2
    attempts = collected.named("POST /ad_groups/{id}/unpause")
    assert [span.status.status_code for span in attempts] == [StatusCode.UNSET] * 2
    calls = collected.named("ad_groups.unpause")
    assert {attributes_of(call)["error.type"] for call in calls} == {
        "whop_async.APIResponseValidationError"
    }
    assert attributes_of(collected.named("ad_groups.unpause_many")[0])["whop.bulk.unreadable"] == 2
    assert collected.points()["whop.bulk.ids"] == {
        labels({**UNPAUSE_OPERATION, "whop.bulk.outcome": "unreadable"}): 2
    }


@pytest.mark.virtual_time
async def test_a_bulk_run_stopped_for_every_id_ends_its_span_in_error(
    collected: Collected,
) -> None:
    with scenarios.serving(scenarios.unlimited()):
        async with collected.client("sk_not_known", SCENARIO_URL) as client:
            result = await client.ad_groups.unpause_many(
                [f"adgrp_{n}" for n in range(40)], concurrency=1
            )

    assert not result.succeeded
    [run] = collected.named("ad_groups.unpause_many")
    assert run.status.status_code is StatusCode.ERROR
    assert attributes_of(run)["whop.bulk.stop_reason"] == "fatal"
    assert attributes_of(run)["error.type"] == "whop_async.NotFinishedError"
    assert attributes_of(run)["whop.bulk.failed"] == 40
    failed = collected.points()["whop.bulk.ids"]
    assert failed == {
        labels(
            {
                **UNPAUSE_OPERATION,
                "whop.bulk.outcome": "failed",
                "error.type": "whop_async.AuthenticationError",
            }
        ): 1,
        labels(
            {
                **UNPAUSE_OPERATION,
                "whop.bulk.outcome": "failed",
                "error.type": "whop_async.NotFinishedError",
            }
        ): 39,
    }


@pytest.mark.virtual_time
async def test_an_iter_unpause_left_early_ends_its_span_with_what_it_did(
    collected: Collected,
) -> None:
    with scenarios.serving(scenarios.unlimited()):
        async with collected.client(scenarios.API_KEY, SCENARIO_URL) as client:
            outcomes = client.ad_groups.iter_unpause(
                [f"adgrp_{n}" for n in range(100)], concurrency=1
            )
            async for _ in outcomes:
                break
            await outcomes.aclose()  # type: ignore[attr-defined]

    [run] = collected.named("ad_groups.unpause_many")
    assert run.status.status_code is StatusCode.UNSET
    assert attributes_of(run)["whop.bulk.succeeded"] >= 1


@pytest.mark.virtual_time
async def test_an_outage_shows_as_waits_for_the_breaker(collected: Collected) -> None:
    with scenarios.serving(scenarios.unlimited(outage=(0.0, 3.0))):
        async with collected.client(scenarios.API_KEY, SCENARIO_URL) as client:
            result = await client.ad_groups.unpause_many(
                [f"adgrp_{n}" for n in range(20)], concurrency=4
            )

    assert len(result.succeeded) == 20
    reasons = {
        dict(point)["whop.rate_limit.reason"]
        for point in collected.points()["whop.rate_limit.wait"]
    }
    assert "breaker" in reasons
    assert any(
        "whop.rate_limit.wait.breaker" in attributes_of(call)
        for call in collected.named("ad_groups.unpause")
    )


@pytest.mark.virtual_time
async def test_a_client_made_with_other_options_reports_where_its_parent_does(
    collected: Collected, mock_api: MockAPI
) -> None:
    mock_api.post(UNPAUSE, payload=ad_group_json("adgrp_1"))
    async with collected.client() as client:
        await client.with_options(timeout=5).ad_groups.unpause("adgrp_1")

    assert [span.name for span in collected.spans] == [
        "POST /ad_groups/{id}/unpause",
        "ad_groups.unpause",
    ]


@pytest.mark.virtual_time
async def test_every_account_reports_where_its_accounts_do_and_no_key_is_recorded(
    collected: Collected, mock_api: MockAPI
) -> None:
    other_key = "sk_test_globex_0123456789"
    mock_api.post(UNPAUSE, payload=ad_group_json("adgrp_1"), repeat=True)
    async with whop_async.Accounts(
        {"acme": API_KEY},
        base_url=BASE_URL,
        tracer_provider=collected.tracer_provider,
        meter_provider=collected.meter_provider,
    ) as accounts:
        accounts.add("globex", other_key)
        await accounts["acme"].ad_groups.unpause("adgrp_1")
        await accounts["acme"].with_options(api_key=other_key).ad_groups.unpause("adgrp_1")
        await accounts["globex"].ad_groups.unpause("adgrp_1")

    assert len(collected.named("ad_groups.unpause")) == 3
    recorded = repr([attributes_of(span) for span in collected.spans])
    assert API_KEY not in recorded
    assert other_key not in recorded


ACCOUNT_KEYS = {"acme": "sk_test_acme_0123456789", "globex": "sk_test_globex_0123456789"}


def accounts_of(
    collected: Collected, base_url: str, keys: dict[str, str] = ACCOUNT_KEYS
) -> whop_async.Accounts:
    return whop_async.Accounts(
        keys,
        base_url=base_url,
        rate_limit=None,
        tracer_provider=collected.tracer_provider,
        meter_provider=collected.meter_provider,
    )


async def test_an_accounts_run_is_one_span_with_each_account_s_part_under_it(
    collected: Collected,
) -> None:
    async with (
        FakeWhop(groups=6, api_keys=ACCOUNT_KEYS, rate_limit=None) as fake,
        accounts_of(collected, fake.base_url) as accounts,
    ):
        result = await accounts.unpause_many(
            [("acme", group) for group in [*fake.ids[:3], "adgrp_unknown"]]
            + [("globex", group) for group in fake.ids[3:]]
            + [("nobody", fake.ids[0])]
        )
    assert len(result.by_account["acme"].failed) == 1

    [run] = collected.named("ad_groups.unpause_many")
    assert run.kind is SpanKind.INTERNAL
    assert run.status.status_code is StatusCode.UNSET  # ids that failed on their own
    assert attributes_of(run) == {
        "whop.operation": "ad_groups.unpause",
        "whop.bulk.accounts": 2,
        "whop.bulk.succeeded": 6,
        "whop.bulk.failed": 2,  # the unknown id, and the pair that names no account
        "whop.bulk.unreadable": 0,
    }
    parts = {
        attributes_of(part)["whop.account"]: part
        for part in collected.named("ad_groups.unpause_many.account")
    }
    assert {account: attributes_of(part) for account, part in parts.items()} == {
        "acme": {
            "whop.operation": "ad_groups.unpause",
            "whop.account": "acme",
            "whop.bulk.succeeded": 3,
            "whop.bulk.failed": 1,
            "whop.bulk.unreadable": 0,
        },
        "globex": {
            "whop.operation": "ad_groups.unpause",
            "whop.account": "globex",
            "whop.bulk.succeeded": 3,
            "whop.bulk.failed": 0,
            "whop.bulk.unreadable": 0,
        },
    }
    assert all(part.parent == run.context for part in parts.values())
    calls = collected.named("ad_groups.unpause")
    assert len(calls) == 7
    in_part = [
        account for call in calls for account, part in parts.items() if call.parent == part.context
    ]
    assert sorted(in_part) == ["acme"] * 4 + ["globex"] * 3
    # Counted as a client's run counts its ids, by outcome: the accounts are in the spans.
    assert collected.points()["whop.bulk.ids"] == {
        labels({**UNPAUSE_OPERATION, "whop.bulk.outcome": "succeeded"}): 6,
        labels(
            {
                **UNPAUSE_OPERATION,
                "whop.bulk.outcome": "failed",
                "error.type": "whop_async.NotFoundError",
            }
        ): 1,
        labels(
            {
                **UNPAUSE_OPERATION,
                "whop.bulk.outcome": "failed",
                "error.type": "whop_async.UnknownAccountError",
            }
        ): 1,
    }


async def test_an_account_that_stops_ends_its_part_and_the_run_s_span_in_error(
    collected: Collected,
) -> None:
    refused = {**ACCOUNT_KEYS, "globex": "sk_test_revoked_0123456789"}
    async with (
        FakeWhop(groups=6, api_keys=ACCOUNT_KEYS, rate_limit=None) as fake,
        accounts_of(collected, fake.base_url, refused) as accounts,
    ):
        result = await accounts.unpause_many(
            [("acme", group) for group in fake.ids[:3]]
            + [("globex", group) for group in fake.ids[3:]],
            concurrency=2,
        )
    assert not result.ok

    [run] = collected.named("ad_groups.unpause_many")
    assert run.status.status_code is StatusCode.ERROR
    assert run.status.description == "stopped: 1 of 2 accounts"
    assert attributes_of(run)["error.type"] == "whop_async.NotFinishedError"
    assert attributes_of(run)["whop.bulk.failed"] == 3
    parts = {
        attributes_of(part)["whop.account"]: part
        for part in collected.named("ad_groups.unpause_many.account")
    }
    assert parts["acme"].status.status_code is StatusCode.UNSET
    assert parts["globex"].status.status_code is StatusCode.ERROR
    assert attributes_of(parts["globex"])["whop.bulk.stop_reason"] == "fatal"
    assert attributes_of(parts["globex"])["whop.bulk.failed"] == 3


async def test_an_accounts_iter_unpause_left_early_ends_its_span_with_what_it_did(
    collected: Collected,
) -> None:
    async with (
        FakeWhop(groups=40, api_keys=ACCOUNT_KEYS, rate_limit=None) as fake,
        accounts_of(collected, fake.base_url) as accounts,
    ):
        outcomes = accounts.iter_unpause([("acme", group) for group in fake.ids], concurrency=1)
        async for _ in outcomes:
            break
        await outcomes.aclose()  # type: ignore[attr-defined]

    [run] = collected.named("ad_groups.unpause_many")
    assert run.status.status_code is StatusCode.UNSET
    done = attributes_of(run)["whop.bulk.succeeded"]
    assert 1 <= done < 40
    assert collected.points()["whop.bulk.ids"] == {
        labels({**UNPAUSE_OPERATION, "whop.bulk.outcome": "succeeded"}): done
    }


async def test_nothing_secret_is_recorded(collected: Collected) -> None:
    # A careless server that echoes the key in its answers' bodies and headers.
    async with FakeWhop(groups=3, echo_key=True, rate_limit=None) as fake:
        async with collected.client(fake.api_key, fake.base_url) as client:
            await client.ad_groups.unpause(fake.ids[0])
            with pytest.raises(whop_async.NotFoundError):
                await client.ad_groups.unpause("adgrp_unknown")
            await client.ad_groups.unpause_many([*fake.ids, "adgrp_unknown"])
        async with collected.client("sk_wrong_key_0123456789", fake.base_url) as client:
            with pytest.raises(whop_async.AuthenticationError):
                await client.ad_groups.unpause(fake.ids[0])

    recorded = [
        (span.name, span.status.description, dict(span.attributes or {}))
        for span in collected.spans
    ] + [
        (event.name, None, dict(event.attributes or {}))
        for span in collected.spans
        for event in span.events
    ]
    assert any(event == "exception" for event, _, _ in recorded)
    text = repr(recorded) + repr(collected.points())
    for secret in (fake.api_key, "sk_wrong_key_0123456789"):
        assert secret not in text


async def test_without_a_set_up_nothing_is_sent_but_an_incoming_trace_is_passed_on(
    fake_whop: FakeWhop,
) -> None:
    sent = Traceparents()
    incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    # OpenTelemetry's global providers, never set up in this process: no-ops.
    async with (
        aiohttp.ClientSession(trace_configs=[sent.trace]) as session,
        whop_async.WhopClient(session=session) as client,
    ):
        await client.ad_groups.unpause(fake_whop.ids[0])
        token = otel_context.attach(propagate.extract({"traceparent": incoming}))
        try:
            await client.ad_groups.unpause(fake_whop.ids[1])
        finally:
            otel_context.detach(token)
    assert sent.seen == [None, incoming]


WITHOUT_THE_EXTRA = textwrap.dedent(
    """
    import asyncio, importlib.abc, sys

    class NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "opentelemetry":
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())

    import aiohttp
    import whop_async
    from whop_async.testing import FakeWhop

    async def main():
        sent = []

        async def keep(_, context, params):
            sent.append(sorted(params.headers))

        tracing = aiohttp.TraceConfig()
        tracing.on_request_start.append(keep)
        async with FakeWhop(groups=3, rate_limit=None) as fake:
            async with aiohttp.ClientSession(trace_configs=[tracing]) as session:
                async with whop_async.WhopClient(
                    fake.api_key, base_url=fake.base_url, session=session
                ) as client:
                    await client.ad_groups.unpause(fake.ids[0])
                    result = await client.ad_groups.unpause_many(fake.ids[1:])
        assert len(result.succeeded) == 2
        return sent

    sent = asyncio.run(main())
    assert not any("traceparent" in [h.lower() for h in headers] for headers in sent), sent
    imported = [
        name for name, module in sys.modules.items()
        if module is not None and (name.startswith("opentelemetry") or name == "whop_async._otel")
    ]
    assert imported == [], imported
    print("nothing of OpenTelemetry")
    """
)


def test_without_the_extra_nothing_of_opentelemetry_is_imported_or_sent() -> None:
    done = python_alone(WITHOUT_THE_EXTRA)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "nothing of OpenTelemetry\n"


SET_UP_LATER = textwrap.dedent(
    """
    import asyncio, sys
    import whop_async
    from whop_async.testing import run_virtual
    from tests.helpers import API_KEY, BASE_URL, MockAPI, ad_group_json

    def imported():
        return sorted(name for name in sys.modules if name.startswith("opentelemetry"))

    async def main():
        with MockAPI() as api:
            for n in range(3):
                api.post(
                    f"{BASE_URL}/ad_groups/adgrp_{n}/unpause", payload=ad_group_json(f"adgrp_{n}")
                )
            async with whop_async.WhopClient(API_KEY, base_url=BASE_URL) as client:
                await client.ad_groups.unpause("adgrp_0")
                assert imported() == [], imported()  # the application has not used it yet

                from opentelemetry import trace
                from opentelemetry.sdk.trace import TracerProvider
                from opentelemetry.sdk.trace.export import SimpleSpanProcessor
                from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
                    InMemorySpanExporter,
                )

                exporter = InMemorySpanExporter()
                provider = TracerProvider()
                provider.add_span_processor(SimpleSpanProcessor(exporter))
                trace.set_tracer_provider(provider)
                await asyncio.sleep(1.0)
                await client.ad_groups.unpause("adgrp_1")
                await client.ad_groups.unpause("adgrp_2")
        return sorted(
            span.attributes["whop.ad_group.id"]
            for span in exporter.get_finished_spans()
            if span.name == "ad_groups.unpause"
        )

    print(run_virtual(main()))
    """
)


def test_opentelemetry_is_imported_once_the_application_uses_it_and_its_set_up_picked_up() -> None:
    # In a process of its own: OpenTelemetry's global provider can be set once.
    done = python_alone(SET_UP_LATER)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "['adgrp_1', 'adgrp_2']\n"


@pytest.mark.virtual_time
async def test_a_traceparent_passed_in_extra_headers_is_replaced_not_doubled(
    collected: Collected, mock_api: MockAPI
) -> None:
    server = Answers((200, {}, ad_group_json("adgrp_1")))
    mock_api.post(UNPAUSE, callback=server.answer)
    theirs = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with collected.client() as client:
        await client.ad_groups.unpause("adgrp_1", extra_headers={"Traceparent": theirs})

    [sent] = server.sent
    attempt, _ = collected.spans
    assert [value for name, value in sent.items() if name.lower() == "traceparent"] == [
        traceparent_of(attempt)
    ]


async def test_the_docs_example_prints_the_spans_and_metrics_it_promises() -> None:
    from .doc_examples import examples, run_python, stand_in

    [code] = [code for name, code in examples() if name == "docs/observability.md#2"]
    async with stand_in() as fake:
        returncode, stdout, stderr = await run_python(fake, "-c", code)
    assert returncode == 0, stderr
    for promised in (
        '"name": "ad_groups.unpause_many"',
        '"name": "ad_groups.unpause"',
        '"name": "POST /ad_groups/{id}/unpause"',
        '"whop.ad_group.id": "adgrp_xxxxxxxxxxxx"',
        '"name": "http.client.request.duration"',
        '"name": "whop.bulk.ids"',
        "3 unpaused",
    ):
        assert promised in stdout
