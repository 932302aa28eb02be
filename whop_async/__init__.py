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
    AdGroupStatus,
    AdPlatform,
    BudgetType,
    BulkResult,
    Outcome,
)
from ._version import __version__

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AdCampaignRef",
    "AdGroup",
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
    "PermissionDeniedError",
    "RateLimit",
    "RateLimitError",
    "UnprocessableEntityError",
    "WhopClient",
    "WhopError",
    "__version__",
]
