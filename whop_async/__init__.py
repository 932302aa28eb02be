"""whop_async: an async client for Whop's ad-group API, built for unpausing at scale."""

from ._client import WhopClient
from ._exceptions import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    InvalidIdError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
    WhopError,
)
from ._limits import ClientStats, RateLimit
from ._models import (
    AdCampaignRef,
    AdGroup,
    AdGroupPage,
    AdGroupStatus,
    AdPlatform,
    BudgetType,
    BulkResult,
    Outcome,
    PageInfo,
)
from ._version import __version__
from .resources.ad_groups import AdGroupList

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AdCampaignRef",
    "AdGroup",
    "AdGroupList",
    "AdGroupPage",
    "AdGroupStatus",
    "AdPlatform",
    "AuthenticationError",
    "BadRequestError",
    "BudgetType",
    "BulkResult",
    "ClientStats",
    "ConflictError",
    "InternalServerError",
    "InvalidIdError",
    "NotFoundError",
    "Outcome",
    "PageInfo",
    "PermissionDeniedError",
    "RateLimit",
    "RateLimitError",
    "UnprocessableEntityError",
    "WhopClient",
    "WhopError",
    "__version__",
]
