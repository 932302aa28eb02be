"""Answers nested deeper than any decoder or encoder copes with: each ends as its typed
error or its data, with either decoder, and whatever whop_async keeps of it can be
written back (a journal line, a log, ``repr``) without a RecursionError.

orjson decodes 1,024 levels; the json module as many as the recursion limit allows
(about 990, less the caller's stack), and encodes no deeper; orjson encodes 254.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

import whop_async
from whop_async import WhopClient, _json, _sansio

from .helpers import BASE_URL, MockAPI, ad_group_json

T = TypeVar("T")

# The edges: whop_async's bound (128), orjson's encoder (254), the json module's
# decoder and encoder (about 950 to 995 here), orjson's decoder (1,024), and beyond.
DEPTHS = [1, 2, 127, 128, 129, 254, 255, 256, 900, 980, 995, 1000, 1023, 1024, 1025, 5000]
DECODERS = {"orjson": _json.fast_loads, "json module": _json.stdlib_loads}
UNPAUSE = _sansio.Request("POST", "/ad_groups/adgrp_1/unpause", "ad_groups.unpause")


@pytest.fixture(params=list(DECODERS))
def decoder(request: pytest.FixtureRequest) -> Iterator[str]:
    """Runs the test once with orjson and once with the json module decoding answers
    (the json module is what users without the ``fast`` extra have)."""
    with mock.patch.object(_json, "loads", DECODERS[request.param]):
        yield request.param


def nested(depth: int, kinds: str = "[") -> str:
    """JSON ``depth`` levels deep, an empty list innermost: the containers around it
    opened in turn as ``kinds`` says."""
    opened = [kinds[level % len(kinds)] for level in range(depth - 1)]
    text = "[]"
    for kind in reversed(opened):
        text = f"[{text}]" if kind == "[" else f'{{"k":{text}}}'
    return text


def ad_group_nested(depth: int, field: str = "extra") -> str:
    """An ad group (itself one level) with ``field`` holding JSON ``depth - 1`` deep."""
    group = json.dumps(ad_group_json("adgrp_1"))
    return group[:-1] + f', "{field}": {nested(depth - 1)}}}'


def error_nested(depth: int) -> str:
    """Whop's error body (two levels) with a detail that takes it ``depth`` deep."""
    detail = nested(depth - 2)
    return f'{{"error": {{"type": "not_found", "message": "No such group.", "d": {detail}}}}}'


def written_back(value: object) -> None:
    """What a journal, a log or a copy does to what whop_async keeps."""
    json.dumps(value)
    repr(value)


@pytest.mark.parametrize("depth", [depth for depth in DEPTHS if depth >= 3])
async def test_an_error_answer_nested_at_any_depth_is_its_typed_error(
    client: WhopClient, mock_api: MockAPI, decoder: str, depth: int
) -> None:
    mock_api.post(f"{BASE_URL}/ad_groups/adgrp_1/unpause", status=404, body=error_nested(depth))
    with pytest.raises(whop_async.NotFoundError) as caught:
        await client.ad_groups.unpause("adgrp_1")
    error = caught.value
    written_back(error.body)
    if depth <= 128:
        assert error.message == "404 from POST /ad_groups/adgrp_1/unpause: No such group."
        assert error.error_type == "not_found"
    else:  # kept as the text it came as, like a body that is not JSON
        assert error.body == error_nested(depth)
        assert error.message.startswith('404 from POST /ad_groups/adgrp_1/unpause: {"error"')


@pytest.mark.parametrize("depth", DEPTHS)
async def test_a_2xx_nested_at_any_depth_is_an_ad_group_or_unreadable(
    client: WhopClient, mock_api: MockAPI, decoder: str, depth: int
) -> None:
    mock_api.post(f"{BASE_URL}/ad_groups/adgrp_1/unpause", body=ad_group_nested(depth + 1))
    if depth + 1 <= 128:
        group = await client.ad_groups.unpause("adgrp_1")
        written_back(group.to_dict())
        assert json.loads(group.to_json()) == json.loads(ad_group_nested(depth + 1))
        return
    with pytest.raises(whop_async.APIResponseValidationError, match="128 levels") as caught:
        await client.ad_groups.unpause("adgrp_1")
    assert caught.value.accepted
    assert caught.value.body == ad_group_nested(depth + 1)


async def test_a_bulk_run_accounts_for_every_id_and_journals_each_whatever_the_depth(
    client: WhopClient, mock_api: MockAPI, decoder: str
) -> None:
    ids = []
    for depth in DEPTHS:
        ok, missing = f"adgrp_ok{depth}", f"adgrp_missing{depth}"
        ids += [ok, missing]
        mock_api.post(f"{BASE_URL}/ad_groups/{ok}/unpause", body=ad_group_nested(depth + 1))
        mock_api.post(
            f"{BASE_URL}/ad_groups/{missing}/unpause", status=404, body=error_nested(depth + 2)
        )
    lines: list[str] = []
    result = await client.ad_groups.unpause_many(
        ids,
        on_outcome=lambda outcome: lines.append(outcome.to_json()),
        concurrency=1,  # one at a time: the fake clock adds up concurrent sleeps
    )
    shallow = [depth for depth in DEPTHS if depth + 1 <= 128]
    assert [group.to_dict()["extra"] for group in result.succeeded] == [
        json.loads(nested(depth)) for depth in shallow
    ]
    assert set(result.unreadable) == {f"adgrp_ok{depth}" for depth in DEPTHS if depth + 1 > 128}
    assert all(isinstance(error, whop_async.NotFoundError) for error in result.failed.values())
    assert len(result.failed) == len(DEPTHS)
    journal = [json.loads(line) for line in lines]
    assert sorted(record["id"] for record in journal) == sorted(ids)
    assert {record["id"] for record in journal if record["ok"]} == {
        f"adgrp_ok{depth}" for depth in shallow
    }


# --- the pure layer, over the whole space --------------------------------------------


def at_stack_depth(frames: int, work: Callable[[], T]) -> T:
    """``work()`` called ``frames`` frames deeper than here: a caller's stack."""
    return work() if frames == 0 else at_stack_depth(frames - 1, work)


@given(
    depth=st.integers(1, 1_100),
    kinds=st.sampled_from(["[", "{", "[{", "{["]),
    status=st.sampled_from([200, 201, 400, 404, 429, 500, 503]),
    decoder=st.sampled_from(list(DECODERS)),
    stack=st.sampled_from([0, 200, 500]),
)
def test_any_depth_decodes_to_data_or_a_typed_error_that_can_be_written_back(
    depth: int, kinds: str, status: int, decoder: str, stack: int
) -> None:
    body = nested(depth, kinds=kinds).encode()
    answer = _sansio.Response(status, CIMultiDict(), body)

    def decode() -> object:
        return _sansio.decode(
            UNPAUSE, "https://x/ad_groups/adgrp_1/unpause", answer, now=lambda: 0.0
        )

    with mock.patch.object(_json, "loads", DECODERS[decoder]):
        try:
            data: Any = at_stack_depth(stack, decode)
        except whop_async.APIStatusError as error:
            failed: whop_async.APIStatusError | whop_async.APIResponseValidationError = error
        except whop_async.APIResponseValidationError as error:
            failed = error
        else:
            assert status < 300
            assert depth <= 128
            assert data == json.loads(body)
            at_stack_depth(stack, lambda: written_back(data))
            return
    assert failed.status_code == status
    assert status >= 300 or depth > 128
    at_stack_depth(stack, lambda: written_back(failed.body))
