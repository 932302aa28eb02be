"""AdGroup structuring: the documented shape, the 2026 shape, and what must fail readably."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import attrs
import pytest

from whop_async import AdCampaignRef, AdGroup, AdGroupStatus, AdPlatform, BudgetType
from whop_async._converter import ShapeError, structure

from .helpers import ad_group_json, load_fixture


def test_the_documented_answer_becomes_an_ad_group() -> None:
    group = structure(load_fixture("ad_group.json"), AdGroup)
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
    assert group.status is AdGroupStatus.ACTIVE
    assert group.status == "active"


def test_the_2026_shape_parses_and_its_extra_fields_are_ignored() -> None:
    group = structure(load_fixture("ad_group_2026_shape.json"), AdGroup)
    assert group.id == "adgrp_2026shape0001"
    assert group.title == "Spring retargeting"
    assert not hasattr(group, "impressions")


@pytest.mark.parametrize(
    ("field", "value"),
    [("status", "duplicating"), ("platform", "google"), ("budget_type", "weekly")],
)
def test_unknown_enum_values_are_kept_as_plain_strings(field: str, value: str) -> None:
    group = structure(ad_group_json(**{field: value}), AdGroup)
    assert getattr(group, field) == value
    assert type(getattr(group, field)) is str


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("status", "paused", AdGroupStatus.PAUSED),
        ("status", "in_review", AdGroupStatus.IN_REVIEW),
        ("platform", "tiktok", AdPlatform.TIKTOK),
        ("budget_type", "lifetime", BudgetType.LIFETIME),
        ("budget_type", None, None),
    ],
)
def test_known_enum_values_become_members(field: str, value: str | None, expected: object) -> None:
    assert getattr(structure(ad_group_json(**{field: value}), AdGroup), field) is expected


def test_nullable_fields_may_be_null_or_absent() -> None:
    data = ad_group_json(title=None, budget=None)
    del data["budget_type"]
    group = structure(data, AdGroup)
    assert (group.title, group.budget, group.budget_type) == (None, None, None)


def test_an_integer_budget_becomes_a_float() -> None:
    budget = structure(ad_group_json(budget=7), AdGroup).budget
    assert budget == 7.0
    assert type(budget) is float


def test_dates_without_an_offset_are_taken_as_utc() -> None:
    group = structure(ad_group_json(updated_at="2024-02-03T04:05:06"), AdGroup)
    assert group.updated_at == datetime(2024, 2, 3, 4, 5, 6, tzinfo=UTC)


def test_dates_with_an_offset_keep_it() -> None:
    group = structure(ad_group_json(created_at="2024-02-03T04:05:06+02:00"), AdGroup)
    assert group.created_at.utcoffset() is not None
    assert group.created_at == datetime(2024, 2, 3, 2, 5, 6, tzinfo=UTC)


def test_a_missing_field_is_named_with_its_path() -> None:
    data = ad_group_json()
    del data["updated_at"]
    with pytest.raises(ShapeError, match=r"required field missing @ \$\.updated_at"):
        structure(data, AdGroup)


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"id": 5}, r"\$\.id"),
        ({"status": 3}, r"\$\.status"),
        ({"budget": "6.9"}, r"\$\.budget"),
        ({"budget": True}, r"\$\.budget"),
        ({"created_at": "yesterday"}, r"\$\.created_at"),
        ({"created_at": 1700000000}, r"\$\.created_at"),
        ({"ad_campaign": {}}, r"\$\.ad_campaign\.id"),
        ({"ad_campaign": "adcamp_1"}, r"\$\.ad_campaign"),
    ],
)
def test_wrong_types_are_errors_with_their_path(changes: dict[str, Any], path: str) -> None:
    with pytest.raises(ShapeError, match=path):
        structure(ad_group_json(**changes), AdGroup)


@pytest.mark.parametrize("data", [[], "adgrp", None, 3])
def test_data_that_is_not_an_object_is_an_error(data: object) -> None:
    with pytest.raises(ShapeError, match=r"expected a JSON object, got \w+ @ \$"):
        structure(data, AdGroup)


def test_ad_groups_are_frozen_and_keyword_only() -> None:
    group = structure(ad_group_json(), AdGroup)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        group.status = "paused"  # type: ignore[misc]
    assert attrs.evolve(group, title="new").title == "new"
    with pytest.raises(TypeError):
        AdCampaignRef("adcamp_1")  # type: ignore[misc]
