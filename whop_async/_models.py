"""The shapes the API answers with, as frozen attrs classes.

Whop's ad group has changed shape several times, and its own sources disagree on it, so
a model requires only what every shape has (an ad group's ``id`` and ``status``). Every
other field is optional, and everything the server sent stays reachable through
``to_dict()``. Enum fields are open: a value newer than this release is kept as a
plain ``str`` instead of failing.
"""

from __future__ import annotations

import datetime
import enum
from typing import Any

import attrs

from . import _json
from ._converter import unstructure
from ._exceptions import APIResponseValidationError, WhopError, public_name


class AdGroupStatus(enum.StrEnum):
    """Ad-group statuses seen in Whop's sources. Newer values arrive as str."""

    ACTIVE = "active"
    PAUSED = "paused"
    INACTIVE = "inactive"
    IN_REVIEW = "in_review"
    REJECTED = "rejected"
    FLAGGED = "flagged"
    DUPLICATING = "duplicating"


class DeliveryStatus(enum.StrEnum):
    """Why an ad group is or is not delivering, as the 2026 shapes report it.

    Newer values arrive as str.
    """

    ALL_ADS_REJECTED = "all_ads_rejected"
    REJECTED = "rejected"
    DRAFT = "draft"
    NO_ADS = "no_ads"
    CAMPAIGN_PAUSED = "campaign_paused"
    PAUSED = "paused"
    PROCESSING = "processing"
    ISSUES = "issues"
    SCHEDULED = "scheduled"
    COMPLETED = "completed"
    ADS_OFF = "ads_off"
    LEARNING_LIMITED = "learning_limited"
    LEARNING = "learning"
    ACTIVE = "active"


class AdPlatform(enum.StrEnum):
    """Ad platforms seen in Whop's sources. Newer values arrive as str."""

    META = "meta"
    TIKTOK = "tiktok"
    GOOGLE = "google"


class BudgetType(enum.StrEnum):
    """How a budget is spent: per day or over the ad group's lifetime."""

    DAILY = "daily"
    LIFETIME = "lifetime"


@attrs.frozen(kw_only=True)
class _Model:
    """What every model answers with: the JSON the server sent.

    A model read from an answer keeps that answer; ``to_dict()`` returns a copy of it,
    unknown fields included. A model built (or ``attrs.evolve``-d) in code has no
    answer behind it, and ``to_dict()`` returns its own fields instead.
    """

    # Set once, right after structuring: the answer's bytes for a whole answer (bytes
    # are no burden to the garbage collector, which a retained dict tree would be in a
    # bulk run of thousands), its JSON object for a model read from inside one. Left
    # out of eq, hash and repr: two groups that agree on every field are equal whatever
    # else the server sent.
    _raw: bytes | dict[str, Any] | None = attrs.field(
        default=None, init=False, eq=False, repr=False
    )

    def to_dict(self) -> dict[str, Any]:
        """The answer as plain JSON values (a fresh copy: changing it changes nothing)."""
        raw = self._raw
        if isinstance(raw, bytes):
            parsed: dict[str, Any] = _json.loads(raw)
            return parsed
        copy: dict[str, Any] = _json.copied(raw if raw is not None else unstructure(self))
        return copy

    def to_json(self) -> str:
        """The answer as one line of JSON."""
        raw = self._raw
        if isinstance(raw, bytes):
            text = raw.decode("utf-8")
            # JSON holds no raw line break inside a string: those between its tokens go.
            return text if "\n" not in text else text.replace("\r", "").replace("\n", "")
        return _json.dumps(raw if raw is not None else unstructure(self))


@attrs.frozen(kw_only=True)
class AdCampaignRef(_Model):
    """A reference to the campaign an ad group belongs to."""

    id: str


@attrs.frozen(kw_only=True)
class AdGroupIssue(_Model):
    """A problem the ad platform reports on an ad group (the 2026 shapes' ``issues``)."""

    id: str | None = None
    message: str | None = None
    resource_id: str | None = None
    resource_type: str | None = None


@attrs.frozen(kw_only=True)
class AdGroup(_Model):
    """An ad group, in any of the shapes Whop has answered with.

    Only ``id`` and ``status`` are required: they are the only fields every source
    agrees on. Every other field is None when the answer lacks it, and also when it
    holds a value of the wrong type (the raw value stays in ``to_dict()``): the answer
    to an unpause that the server carried out is never turned into a failure by a
    field the caller may not even read. Fields the model does not name (the 2026
    shapes have about 80) are kept and reachable through ``to_dict()``.

    Attributes:
        id: e.g. ``"adgrp_xxxxxxxxxxxx"``.
        status: an AdGroupStatus member, or the raw str of a status newer than this release.
        title: the name shown on the ad platform.
        delivery_status: a DeliveryStatus member, or a newer value as str.
        platform: an AdPlatform member, or a newer value as str (the late-2026 object
            page has no platform).
        created_at: timezone-aware (UTC when the API sends no offset).
        updated_at: timezone-aware (UTC when the API sends no offset).
        starts_at: when delivery starts, timezone-aware.
        ends_at: when delivery ends, timezone-aware.
        budget: in dollars (the documented shape and whop-sdk 2.6.0's).
        budget_amount: in the ad account's currency; None when the campaign holds the
            budget (the late-2026 shape). Never merged into ``budget``: the units differ.
        budget_amount_local: the budget in the local currency, where sent.
        budget_currency: the currency of the budget, e.g. ``"usd"``.
        budget_type: a BudgetType member, or a newer value as str.
        ad_campaign: the campaign it belongs to.
        issues: the problems the ad platform reports, when the shape has them.
    """

    id: str
    status: AdGroupStatus | str
    title: str | None = None
    delivery_status: DeliveryStatus | str | None = None
    platform: AdPlatform | str | None = None
    created_at: datetime.datetime | None = None
    updated_at: datetime.datetime | None = None
    starts_at: datetime.datetime | None = None
    ends_at: datetime.datetime | None = None
    budget: float | None = None
    budget_amount: float | None = None
    budget_amount_local: float | None = None
    budget_currency: str | None = None
    budget_type: BudgetType | str | None = None
    ad_campaign: AdCampaignRef | None = None
    issues: tuple[AdGroupIssue, ...] | None = None


@attrs.frozen(kw_only=True)
class PageInfo(_Model):
    """Where a page of a list sits: the cursors around it and whether more follow."""

    end_cursor: str | None = None
    start_cursor: str | None = None
    has_next_page: bool = False
    has_previous_page: bool = False


@attrs.frozen(kw_only=True)
class AdGroupPage(_Model):
    """One page of ``GET /ad_groups``: its ad groups (newest first) and ``page_info``."""

    data: tuple[AdGroup, ...]
    page_info: PageInfo = PageInfo()


@attrs.frozen(kw_only=True)
class Outcome:
    """How one id of a bulk call ended: ``ad_group`` on success, else ``error``.

    ``account`` names the account whose id it was, in a bulk run of ``Accounts``
    (None in a client's own).
    """

    id: str
    ad_group: AdGroup | None = None
    error: WhopError | None = None
    account: str | None = None

    @property
    def ok(self) -> bool:
        """True when the call returned an ad group."""
        return self.error is None

    @property
    def accepted(self) -> bool:
        """True when the server accepted the request: ``ok``, or an answer of 2xx that
        could not be read (``APIResponseValidationError``), so the change was made."""
        return self.error is None or isinstance(self.error, APIResponseValidationError)

    @property
    def error_name(self) -> str | None:
        """The class of ``error`` as whop_async exports it (e.g. ``"NotFoundError"``;
        a private subclass is named by its public base); None when ok."""
        return None if self.error is None else public_name(self.error)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record: ``{"id", "ok": true, "ad_group": {...as sent}}``, or
        ``{"id", "ok": false, "accepted", "error", "message"}`` plus ``status_code``
        and ``request_id`` when the error has them; ``"account"`` first when it has
        one."""
        if self.ad_group is not None:
            return {**self._named(), "ok": True, "ad_group": self.ad_group.to_dict()}
        record: dict[str, Any] = {
            **self._named(),
            "ok": False,
            "accepted": self.accepted,
            "error": self.error_name,
        }
        for name in ("status_code", "request_id"):
            value = getattr(self.error, name, None)
            if value is not None:
                record[name] = value
        record["message"] = str(self.error)
        return record

    def to_json(self) -> str:
        """``to_dict()`` as one line of JSON (the ad group as the server sent it,
        spliced in: never decoded and encoded again)."""
        if self.ad_group is None:
            return _json.dumps(self.to_dict())
        head = _json.dumps({**self._named(), "ok": True})
        return f'{head[:-1]},"ad_group":{self.ad_group.to_json()}}}'

    def _named(self) -> dict[str, Any]:
        if self.account is None:
            return {"id": self.id}
        return {"account": self.account, "id": self.id}


@attrs.frozen(kw_only=True)
class BulkResult:
    """What a bulk call did to every id it was given.

    Attributes:
        succeeded: the ad groups as the API answered them, in input order.
        failed: id -> the typed error that ended its call, for ids the server did not
            accept (refused, never answered, or never sent).
        unreadable: id -> the APIResponseValidationError of ids the server accepted
            (2xx) but whose answer was not an ad group: the change was made.
    """

    succeeded: list[AdGroup]
    failed: dict[str, WhopError]
    unreadable: dict[str, APIResponseValidationError] = attrs.field(factory=dict)

    @property
    def ok(self) -> bool:
        """True when every id returned an ad group."""
        return not self.failed and not self.unreadable


@attrs.frozen(kw_only=True)
class AccountsResult:
    """What a bulk call of ``Accounts`` did, account by account.

    Attributes:
        by_account: each account's BulkResult (``succeeded`` in input order), under
            the name its pairs gave (a name no account has holds their
            UnknownAccountErrors).
    """

    by_account: dict[str, BulkResult]

    def __getitem__(self, account: str) -> BulkResult:
        return self.by_account[account]

    @property
    def ok(self) -> bool:
        """True when every id of every account returned an ad group."""
        return all(result.ok for result in self.by_account.values())

    @property
    def failed(self) -> dict[tuple[str, str], WhopError]:
        """(account, id) -> the error of every id the server did not accept."""
        return {
            (account, ad_group_id): error
            for account, result in self.by_account.items()
            for ad_group_id, error in result.failed.items()
        }
