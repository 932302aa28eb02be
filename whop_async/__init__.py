"""whop_async: an async client for Whop's ad-group API, built for unpausing at scale."""

from ._accounts import Accounts
from ._client import WhopClient
from ._credentials import TokenProvider
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
    NotFinishedError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    TokenProviderError,
    UnknownAccountError,
    UnprocessableEntityError,
    WhopError,
)
from ._limits import ClientStats, RateLimit
from ._models import (
    AccountsResult,
    AdCampaignRef,
    AdGroup,
    AdGroupIssue,
    AdGroupPage,
    AdGroupStatus,
    AdPlatform,
    BudgetType,
    BulkResult,
    DeliveryStatus,
    Outcome,
    PageInfo,
)
from ._options import AccountsBulkOptions, BulkOptions, CallOptions
from ._response import RawResponse, SentRequest
from ._version import __version__
from .resources.ad_groups import AdGroupList

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "Accounts",
    "AccountsBulkOptions",
    "AccountsResult",
    "AdCampaignRef",
    "AdGroup",
    "AdGroupIssue",
    "AdGroupList",
    "AdGroupPage",
    "AdGroupStatus",
    "AdPlatform",
    "AuthenticationError",
    "BadRequestError",
    "BudgetType",
    "BulkOptions",
    "BulkResult",
    "CallOptions",
    "ClientStats",
    "ConflictError",
    "DeliveryStatus",
    "InternalServerError",
    "InvalidIdError",
    "NotFinishedError",
    "NotFoundError",
    "Outcome",
    "PageInfo",
    "PermissionDeniedError",
    "RateLimit",
    "RateLimitError",
    "RawResponse",
    "SentRequest",
    "TokenProvider",
    "TokenProviderError",
    "UnknownAccountError",
    "UnprocessableEntityError",
    "WhopClient",
    "WhopError",
    "__version__",
]
