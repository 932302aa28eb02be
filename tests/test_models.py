"""AdGroup as the client reads it from an answer: every real shape, tolerance of drift,
and the answer kept whole.

Every model here is read the way users get one: the answer served (through
aioresponses) to a call of the client.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from whop_async import (
    AdCampaignRef,
    AdGroup,
    AdGroupIssue,
    AdGroupPage,
    AdGroupStatus,
    AdPlatform,
    APIResponseValidationError,
    BudgetType,
    DeliveryStatus,
    PageInfo,
    WhopClient,
)
from whop_async.testing import SHAPES, example_ad_group, run_virtual

from .helpers import API_KEY, BASE_URL, MockAPI, ad_group_json

UNPAUSE_URL = f"{BASE_URL}/ad_groups/adgrp_xxxxxxxxxxxx/unpause"
LIST_URL = f"{BASE_URL}/ad_groups"


def answered(body: object) -> AdGroup:
    """The AdGroup an unpause returns when the server answers 200 with ``body``."""

    async def unpause() -> AdGroup:
        with MockAPI() as mocked:
            mocked.post(UNPAUSE_URL, body=json.dumps(body))
            async with WhopClient(API_KEY, base_url=BASE_URL) as whop:
                return await whop.ad_groups.unpause("adgrp_xxxxxxxxxxxx")

    return run_virtual(unpause())


def unreadable(body: object) -> APIResponseValidationError:
    """The error an unpause raises when the server answers 200 with ``body``."""
    with pytest.raises(APIResponseValidationError) as caught:
        answered(body)
    return caught.value


def listed(body: object) -> AdGroupPage:
    """The page a listing yields when the server answers 200 with ``body``."""

    async def first_page() -> AdGroupPage:
        with MockAPI() as mocked:
            mocked.get(LIST_URL, body=json.dumps(body))
            async with WhopClient(API_KEY, base_url=BASE_URL) as whop:
                return await anext(whop.ad_groups.list().pages())

    return run_virtual(first_page())


OPTIONAL_FIELDS = [field.name for field in attrs.fields(AdGroup) if field.init][2:]


@pytest.mark.parametrize("shape", SHAPES)
def test_every_real_shape_parses_and_keeps_the_whole_answer(shape: str) -> None:
    answer = example_ad_group(shape)  # type: ignore[arg-type]
    group = answered(answer)
    assert group.id == answer["id"]
    assert group.status is AdGroupStatus.ACTIVE
    assert group.to_dict() == answer
    assert json.loads(group.to_json()) == answer


def test_the_documented_answer_becomes_an_ad_group() -> None:
    group = answered(example_ad_group("seed"))
    assert group == AdGroup(
        id="adgrp_xxxxxxxxxxxx",
        title="<string>",
        status=AdGroupStatus.ACTIVE,
        platform=AdPlatform.META,
        created_at=datetime(2023, 12, 1, 5, 0, 0, 401000, tzinfo=UTC),
        updated_at=datetime(2023, 12, 1, 5, 0, 0, 401000, tzinfo=UTC),
        budget=6.9,
        budget_type=BudgetType.DAILY,
        ad_campaign=AdCampaignRef(id="adcamp_xxxxxxxxxxx"),
    )
    assert group.status == "active"


def test_the_object_page_shape_has_no_platform_and_budget_amount_apart_from_budget() -> None:
    group = answered(example_ad_group("docs-2026-11"))
    assert (group.platform, group.budget, group.budget_amount) == (None, None, 100.0)
    assert group.delivery_status is DeliveryStatus.ISSUES
    assert group.starts_at == datetime(2026, 6, 1, 12, tzinfo=UTC)
    assert group.ends_at == datetime(2026, 7, 1, 12, tzinfo=UTC)
    assert group.issues == (
        AdGroupIssue(
            id="adiss_xxxxxxxxxxx",
            message="The audience is too narrow to deliver. Broaden the targeting to reach more"
            " people.",
            resource_id="adgrp_xxxxxxxxxxx",
            resource_type="ad_group",
        ),
    )
    assert group.ad_campaign == AdCampaignRef(id="adcamp_xxxxxxxxxx")
    assert group.to_dict()["spend_currency"] == "usd"


def test_the_sdk_shape_has_budget_currency_and_an_empty_issue_list() -> None:
    group = answered(example_ad_group("sdk-2026"))
    assert (group.budget, group.budget_currency, group.issues) == (6.9, "usd", ())
    assert group.delivery_status is DeliveryStatus.ACTIVE


def test_only_id_and_status_are_required() -> None:
    group = answered({"id": "adgrp_1", "status": "paused"})
    assert group == AdGroup(id="adgrp_1", status=AdGroupStatus.PAUSED)
    assert all(getattr(group, name) is None for name in OPTIONAL_FIELDS)
    for missing in ("id", "status"):
        data = {"id": "adgrp_1", "status": "paused"}
        del data[missing]
        assert f"required field missing @ $.{missing}" in str(unreadable(data))


@pytest.mark.parametrize(("field", "value"), [("id", 5), ("id", None), ("status", 3)])
def test_a_required_field_of_the_wrong_type_is_an_error_with_its_path(
    field: str, value: object
) -> None:
    assert f"@ $.{field}" in str(unreadable(ad_group_json(**{field: value})))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("budget", "6.9"),
        ("budget", True),
        ("title", 7),
        ("created_at", "yesterday"),
        ("created_at", 1700000000),
        ("ends_at", "2026-13-45"),
        ("platform", ["meta"]),
        ("ad_campaign", "adcamp_1"),
        ("ad_campaign", {}),
        ("issues", "none"),
        ("issues", {"id": "adiss_1"}),
    ],
)
def test_an_optional_field_of_the_wrong_type_is_none_and_stays_in_to_dict(
    field: str, value: object
) -> None:
    answer = ad_group_json(**{field: value})
    group = answered(answer)
    assert getattr(group, field) is None
    assert group.to_dict()[field] == value
    assert group.status is AdGroupStatus.ACTIVE


def test_nested_models_follow_the_same_rule() -> None:
    group = answered(ad_group_json(issues=[{"id": 1, "message": "m"}]))
    assert group.issues == (AdGroupIssue(message="m"),)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("status", "archived"),
        ("platform", "snapchat"),
        ("budget_type", "weekly"),
        ("delivery_status", "warming_up"),
    ],
)
def test_unknown_enum_values_are_kept_as_plain_strings(field: str, value: str) -> None:
    group = answered(ad_group_json(**{field: value}))
    assert getattr(group, field) == value
    assert type(getattr(group, field)) is str


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("status", "duplicating", AdGroupStatus.DUPLICATING),
        ("status", "in_review", AdGroupStatus.IN_REVIEW),
        ("platform", "google", AdPlatform.GOOGLE),
        ("budget_type", "lifetime", BudgetType.LIFETIME),
        ("budget_type", None, None),
        ("delivery_status", "learning_limited", DeliveryStatus.LEARNING_LIMITED),
    ],
)
def test_known_enum_values_become_members(field: str, value: str | None, expected: object) -> None:
    assert getattr(answered(ad_group_json(**{field: value})), field) is expected


def test_an_integer_budget_becomes_a_float() -> None:
    budget = answered(ad_group_json(budget=7)).budget
    assert budget == 7.0
    assert type(budget) is float


def test_dates_without_an_offset_are_taken_as_utc_and_offsets_are_kept() -> None:
    group = answered(
        ad_group_json(updated_at="2024-02-03T04:05:06", created_at="2024-02-03T04:05:06+02:00")
    )
    assert group.updated_at == datetime(2024, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert group.created_at is not None
    assert group.created_at.utcoffset() is not None
    assert group.created_at == datetime(2024, 2, 3, 2, 5, 6, tzinfo=UTC)


@pytest.mark.parametrize("data", [[], "adgrp", None, 3])
def test_data_that_is_not_an_object_is_an_error(data: object) -> None:
    assert re.search(r"expected a JSON object, got \w+ @ \$$", str(unreadable(data)))


def test_what_the_server_adds_does_not_make_equal_groups_unequal() -> None:
    plain = answered(ad_group_json())
    richer = answered(ad_group_json(impressions=20000, targeting={"languages": ["en"]}))
    assert plain == richer
    assert hash(plain) == hash(richer)
    assert len({plain, richer}) == 1
    assert richer.to_dict()["targeting"] == {"languages": ["en"]}
    assert "targeting" not in repr(richer)


def test_to_dict_is_a_copy_and_the_model_stays_frozen() -> None:
    group = answered(example_ad_group("docs-2026-11"))
    copy = group.to_dict()
    copy["status"] = "paused"
    copy["regions"]["include"]["countries"].append("FR")
    assert group.to_dict() == example_ad_group("docs-2026-11")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        group.status = "paused"  # type: ignore[misc]
    with pytest.raises(TypeError):
        AdCampaignRef("adcamp_1")  # type: ignore[misc]


def test_a_model_built_or_evolved_in_code_serialises_its_own_fields() -> None:
    group = answered(ad_group_json())
    renamed = attrs.evolve(group, title="new")
    assert renamed.title == "new"
    assert renamed.to_dict()["title"] == "new"
    assert renamed.to_dict()["created_at"] == "2023-12-01T05:00:00.401000+00:00"
    built = AdGroup(id="adgrp_1", status="archived", issues=(AdGroupIssue(message="m"),))
    assert built.to_dict()["issues"] == [
        {"id": None, "message": "m", "resource_id": None, "resource_type": None}
    ]
    assert answered(built.to_dict()) == built


def test_pages_keep_their_answer_too() -> None:
    answer = {
        "data": [ad_group_json("adgrp_1"), example_ad_group("docs-2026-11")],
        "page_info": {"end_cursor": "c2", "has_next_page": True, "total": 2},
    }
    page = listed(answer)
    assert [group.id for group in page.data] == ["adgrp_1", "adgrp_xxxxxxxxxxx"]
    assert page.page_info == PageInfo(end_cursor="c2", has_next_page=True)
    assert page.to_dict() == answer
    assert hash(page) == hash(listed(answer))


# --- property-based: drift in any direction still parses ---------------------------

# What JSON carries between programs (RFC 8259): finite numbers, integers within a
# double's exact range.
_exact = 2**53 - 1
_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-_exact, _exact)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
_known_fields = {field.name for field in attrs.fields(AdGroup)} | {"_raw"}
_unknown_names = st.text(min_size=1).filter(lambda name: name not in _known_fields)


@settings(max_examples=50)
@given(
    shape=st.sampled_from(SHAPES),
    removed=st.sets(st.sampled_from(OPTIONAL_FIELDS)),
    added=st.dictionaries(_unknown_names, _json_values, max_size=5),
    status=st.sampled_from([*AdGroupStatus]) | st.text(),
)
def test_any_drift_of_the_shape_still_parses_with_id_and_status_right(
    shape: Any, removed: set[str], added: dict[str, Any], status: str
) -> None:
    answer = {**example_ad_group(shape), **added, "status": str(status)}
    for name in removed:
        answer.pop(name, None)
    group = answered(answer)
    assert group.id == answer["id"]
    assert group.status == str(status)
    assert group.to_dict() == answer
    for name in removed:
        assert getattr(group, name) is None


@settings(max_examples=50)
@given(field=st.sampled_from(OPTIONAL_FIELDS), value=_json_values)
def test_any_value_in_an_optional_field_parses(field: str, value: Any) -> None:
    group = answered(ad_group_json(**{field: value}))
    assert group.id == "adgrp_xxxxxxxxxxxx"
    assert group.to_dict()[field] == value
