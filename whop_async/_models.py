"""The shapes the API answers with, as frozen attrs classes.

Enum fields are open: a value the API added after this release is kept as a plain
``str`` instead of failing, so a newer API never breaks an older client.
"""

from __future__ import annotations

import datetime
import enum

import attrs

from ._exceptions import WhopError


class AdGroupStatus(enum.StrEnum):
    """Documented ad-group statuses. Newer values (e.g. ``"duplicating"``) arrive as str."""

    ACTIVE = "active"
    PAUSED = "paused"
    INACTIVE = "inactive"
    IN_REVIEW = "in_review"
    REJECTED = "rejected"
    FLAGGED = "flagged"


class AdPlatform(enum.StrEnum):
    """Documented ad platforms. Newer values (e.g. ``"google"``) arrive as str."""

    META = "meta"
    TIKTOK = "tiktok"


class BudgetType(enum.StrEnum):
    """How ``budget`` is spent: per day or over the ad group's lifetime."""

    DAILY = "daily"
    LIFETIME = "lifetime"


@attrs.frozen(kw_only=True)
class AdCampaignRef:
    """A reference to the campaign an ad group belongs to."""

    id: str


@attrs.frozen(kw_only=True)
class AdGroup:
    """An ad group, as the unpause endpoint answers it.

    Fields the API sends beyond these (the 2026 shape has about 80) are ignored.

    Attributes:
        id: e.g. ``"adgrp_xxxxxxxxxxxx"``.
        title: the name shown on the ad platform, or None.
        status: an AdGroupStatus member, or the raw str of a status newer than this release.
        platform: an AdPlatform member, or the raw str of a newer platform.
        created_at: timezone-aware (UTC when the API sends no offset).
        updated_at: timezone-aware (UTC when the API sends no offset).
        budget: in dollars, or None.
        budget_type: a BudgetType member, a newer value as str, or None.
        ad_campaign: the campaign it belongs to.
    """

    id: str
    title: str | None = None
    status: AdGroupStatus | str
    platform: AdPlatform | str
    created_at: datetime.datetime
    updated_at: datetime.datetime
    budget: float | None = None
    budget_type: BudgetType | str | None = None
    ad_campaign: AdCampaignRef


@attrs.frozen(kw_only=True)
class PageInfo:
    """Where a page of a list sits: the cursors around it and whether more follow."""

    end_cursor: str | None = None
    start_cursor: str | None = None
    has_next_page: bool = False
    has_previous_page: bool = False


@attrs.frozen(kw_only=True)
class AdGroupPage:
    """One page of ``GET /ad_groups``: its ad groups (newest first) and ``page_info``."""

    data: list[AdGroup]
    page_info: PageInfo


@attrs.frozen(kw_only=True)
class Outcome:
    """How one id of a bulk call ended: ``ad_group`` on success, else ``error``."""

    id: str
    ad_group: AdGroup | None = None
    error: WhopError | None = None

    @property
    def ok(self) -> bool:
        """True when the id was unpaused (or paused)."""
        return self.error is None


@attrs.frozen(kw_only=True)
class BulkResult:
    """What a bulk call did to every id it was given.

    Attributes:
        succeeded: the ad groups as the API answered them, in input order.
        failed: id -> the typed error that ended its call.
    """

    succeeded: list[AdGroup]
    failed: dict[str, WhopError]

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not self.failed
