"""Answers nested deeper than any decoder or encoder copes with: each ends as its typed
error or an ad group, with either decoder, and whatever whop_async keeps of it can be
written back (a journal line, a log, ``repr``) without a RecursionError.

orjson decodes 1,024 levels; the json module as many as the recursion limit allows
(about 990, less the caller's stack), and encodes no deeper; orjson encodes 254. The
tests run here with the decoder installed (orjson, with the ``fast`` extra), and all of
them again in a fresh interpreter where orjson cannot be imported, as for users
without that extra.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import whop_async
from whop_async import WhopClient
from whop_async.testing import FakeWhop, run_virtual

from .helpers import API_KEY, BASE_URL, MockAPI, ad_group_json

T = TypeVar("T")

# The edges: whop_async's bound (128), orjson's encoder (254), the json module's
# decoder and encoder (about 950 to 995 here), orjson's decoder (1,024), and beyond.
DEPTHS = [1, 2, 127, 128, 129, 254, 255, 256, 900, 980, 995, 1000, 1023, 1024, 1025, 5000]
UNPAUSE_URL = f"{BASE_URL}/ad_groups/adgrp_1/unpause"
# A wait longer than any cap: a call refused with it (a 429 too) raises at once.
BEYOND_THE_CAP = {"Retry-After": "100000"}


def nested(depth: int, kinds: str = "[") -> str:
    """JSON ``depth`` levels deep, an empty list innermost: the containers around it
    opened in turn as ``kinds`` says."""
    opened = [kinds[level % len(kinds)] for level in range(depth - 1)]
    text = "[]"
    for kind in reversed(opened):
        text = f"[{text}]" if kind == "[" else f'{{"k":{text}}}'
    return text


def ad_group_nested(depth: int, field: str = "extra", kinds: str = "[") -> str:
    """An ad group (itself one level) with ``field`` holding JSON ``depth - 1`` deep."""
    group = json.dumps(ad_group_json("adgrp_1"))
    return group[:-1] + f', "{field}": {nested(depth - 1, kinds)}}}'


def error_nested(depth: int) -> str:
    """Whop's error body (two levels) with a detail that takes it ``depth`` deep."""
    detail = nested(depth - 2)
    return f'{{"error": {{"type": "not_found", "message": "No such group.", "d": {detail}}}}}'


def written_back(value: object) -> None:
    """What a journal, a log or a copy does to what whop_async keeps."""
    json.dumps(value)
    repr(value)


@pytest.mark.virtual_time
@pytest.mark.parametrize("depth", [depth for depth in DEPTHS if depth >= 3])
async def test_an_error_answer_nested_at_any_depth_is_its_typed_error(
    client: WhopClient, mock_api: MockAPI, depth: int
) -> None:
    mock_api.post(UNPAUSE_URL, status=404, body=error_nested(depth))
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


@pytest.mark.virtual_time
@pytest.mark.parametrize("depth", DEPTHS)
async def test_a_2xx_nested_at_any_depth_is_an_ad_group_or_unreadable(
    client: WhopClient, mock_api: MockAPI, depth: int
) -> None:
    mock_api.post(UNPAUSE_URL, body=ad_group_nested(depth + 1))
    if depth + 1 <= 128:
        group = await client.ad_groups.unpause("adgrp_1")
        written_back(group.to_dict())
        assert json.loads(group.to_json()) == json.loads(ad_group_nested(depth + 1))
        return
    with pytest.raises(whop_async.APIResponseValidationError, match="128 levels") as caught:
        await client.ad_groups.unpause("adgrp_1")
    assert caught.value.accepted
    assert caught.value.body == ad_group_nested(depth + 1)


@pytest.mark.virtual_time
async def test_a_bulk_run_accounts_for_every_id_and_journals_each_whatever_the_depth(
    client: WhopClient, mock_api: MockAPI
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
        ids, on_outcome=lambda outcome: lines.append(outcome.to_json())
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
    # Each ad group as the server sent it, spliced into its line.
    assert {record["id"]: record["ad_group"] for record in journal if record["ok"]} == {
        f"adgrp_ok{depth}": json.loads(ad_group_nested(depth + 1)) for depth in shallow
    }


@pytest.mark.parametrize("nesting", [127, 128, 1000])
async def test_the_stand_in_nesting_every_answer_deep_ends_each_id_right(nesting: int) -> None:
    # Every answer below 500 is an object holding a field ``nesting`` levels deep.
    readable = nesting + 1 <= 128
    lines: list[str] = []
    async with (
        FakeWhop(groups=2, nesting=nesting, rate_limit=None) as fake,
        WhopClient(fake.api_key, base_url=fake.base_url) as client,
    ):
        ids = [*fake.ids, "adgrp_nosuchgroup"]
        result = await client.ad_groups.unpause_many(
            ids, on_outcome=lambda outcome: lines.append(outcome.to_json())
        )
    assert fake.statuses() == {"active": 2}
    assert len(result.succeeded if readable else result.unreadable) == 2
    written_back([group.to_dict() for group in result.succeeded])
    [missing] = result.failed.values()
    assert isinstance(missing, whop_async.NotFoundError)
    assert missing.error_type == ("not_found" if readable else None)
    assert isinstance(missing.body, dict if readable else str)
    written_back(missing.body)
    assert sorted(json.loads(line)["id"] for line in lines) == sorted(ids)


# --- over the whole space, from a deep caller's stack -----------------------------------


def at_stack_depth(frames: int, work: Callable[[], T]) -> T:
    """``work()`` called ``frames`` frames deeper than here: a caller's stack."""
    return work() if frames == 0 else at_stack_depth(frames - 1, work)


def unpaused(status: int, body: str) -> Any:
    """What an unpause answered ``status`` with ``body`` returns, or the error it raises
    (sent once, in a fresh event loop on the caller's stack)."""

    async def unpause() -> Any:
        with MockAPI() as mocked:
            mocked.post(UNPAUSE_URL, status=status, body=body, headers=BEYOND_THE_CAP)
            async with WhopClient(API_KEY, base_url=BASE_URL, max_retries=0) as whop:
                try:
                    return await whop.ad_groups.unpause("adgrp_1")
                except whop_async.WhopError as error:
                    return error

    return run_virtual(unpause())


@settings(max_examples=60, deadline=None)
@given(
    depth=st.integers(2, 1_100),
    kinds=st.sampled_from(["[", "{", "[{", "{["]),
    status=st.sampled_from([200, 201, 400, 404, 429, 500, 503]),
    stack=st.sampled_from([0, 200, 500]),
)
def test_any_depth_is_an_ad_group_or_a_typed_error_that_can_be_written_back(
    depth: int, kinds: str, status: int, stack: int
) -> None:
    body = ad_group_nested(depth, kinds=kinds)
    answer = at_stack_depth(stack, lambda: unpaused(status, body))
    if isinstance(answer, whop_async.AdGroup):
        assert status < 300
        assert depth <= 128
        assert answer.to_dict() == json.loads(body)
        at_stack_depth(stack, lambda: written_back(answer.to_dict()))
        return
    assert isinstance(answer, (whop_async.APIStatusError, whop_async.APIResponseValidationError))
    assert answer.status_code == status
    assert status >= 300 or depth > 128
    assert answer.body == (json.loads(body) if depth <= 128 else body)
    at_stack_depth(stack, lambda: written_back(answer.body))


# --- without orjson ------------------------------------------------------------------

# Runs this module's other tests in a fresh interpreter where ``import orjson`` fails.
WITHOUT_ORJSON = """
import sys

sys.modules["orjson"] = None  # what an interpreter without the fast extra has
import pytest

options = ["-q", "-p", "no:cacheprovider", "-k", "not json_module"]
raise SystemExit(pytest.main([*options, *sys.argv[1:]]))
"""


def test_every_case_ends_the_same_when_the_json_module_decodes() -> None:
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("PYTEST_")
    }
    ran = subprocess.run(
        [sys.executable, "-c", WITHOUT_ORJSON, __file__],
        cwd=Path(__file__).parents[1],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    # Every other test passed: none failed or was skipped, and only this one was left out.
    assert re.fullmatch(r"\d+ passed, 1 deselected in .*", ran.stdout.splitlines()[-1])
