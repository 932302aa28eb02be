"""The public surface: exactly what __all__ lists, each documented, the rest private."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import whop_async

EXPECTED = {
    "WhopClient", "Accounts", "AccountsResult", "AccountsBulkOptions", "TokenProvider",
    "TokenProviderError", "UnknownAccountError", "AdGroup", "AdCampaignRef", "AdGroupStatus",
    "AdPlatform", "BudgetType",
    "WhopError", "APIError", "APIStatusError", "BadRequestError", "AuthenticationError",
    "PermissionDeniedError", "NotFoundError", "ConflictError", "UnprocessableEntityError",
    "RateLimitError", "InternalServerError", "APIConnectionError", "APITimeoutError",
    "APIResponseValidationError", "__version__", "RateLimit", "BulkResult", "Outcome",
    "InvalidIdError", "NotFinishedError", "ClientStats", "AdGroupList", "AdGroupPage",
    "PageInfo", "AdGroupIssue", "DeliveryStatus", "RawResponse", "SentRequest", "CallOptions",
    "BulkOptions", "StopReason", "WHOP_RATE_LIMIT", "BULK_CONCURRENCY",
}  # fmt: skip


def test_all_lists_the_public_names() -> None:
    assert set(whop_async.__all__) == EXPECTED
    for name in whop_async.__all__:
        assert hasattr(whop_async, name)


def test_every_public_name_and_public_method_has_a_docstring() -> None:
    import whop_async.testing

    public = [getattr(whop_async, name) for name in whop_async.__all__]
    public += [getattr(whop_async.testing, name) for name in whop_async.testing.__all__]
    for obj in public:
        name = getattr(obj, "__name__", repr(obj))
        if not inspect.isclass(obj):
            continue
        assert inspect.getdoc(obj), name
        for attribute, member in vars(obj).items():
            if attribute.startswith("_") or not callable(member):
                continue
            assert inspect.getdoc(member), f"{name}.{attribute}"
    assert inspect.getdoc(whop_async.WhopClient(api_key="k").ad_groups.unpause)


def test_modules_are_private() -> None:
    public = [
        module.name
        for module in pkgutil.walk_packages(whop_async.__path__, "whop_async.")
        if not any(part.startswith("_") for part in module.name.split(".")[1:])
    ]
    # The command line's modules are named for their jobs: a program, not library API.
    assert public == [
        "whop_async.cli",
        "whop_async.cli.commands",
        "whop_async.cli.exits",
        "whop_async.cli.ids",
        "whop_async.cli.journal",
        "whop_async.cli.parser",
        "whop_async.cli.progress",
        "whop_async.cli.telemetry",
        "whop_async.resources",
        "whop_async.resources.ad_groups",
        "whop_async.testing",
        "whop_async.testing.pytest_plugin",
    ]


def test_error_tree() -> None:
    assert issubclass(whop_async.APIError, whop_async.WhopError)
    assert issubclass(whop_async.APIStatusError, whop_async.APIError)
    assert issubclass(whop_async.APIConnectionError, whop_async.APIError)
    assert issubclass(whop_async.APITimeoutError, whop_async.APIConnectionError)
    assert issubclass(whop_async.APIResponseValidationError, whop_async.APIError)
    assert issubclass(whop_async.InvalidIdError, whop_async.WhopError)
    assert issubclass(whop_async.InvalidIdError, ValueError)
    for status_class in (
        whop_async.BadRequestError, whop_async.AuthenticationError,
        whop_async.PermissionDeniedError, whop_async.NotFoundError, whop_async.ConflictError,
        whop_async.UnprocessableEntityError, whop_async.RateLimitError,
        whop_async.InternalServerError,
    ):  # fmt: skip
        assert issubclass(status_class, whop_async.APIStatusError)


def test_only_the_transport_imports_aiohttp_on_the_client_side() -> None:
    package = Path(whop_async.__file__).parent
    importers = sorted(
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if "import aiohttp" in path.read_text() or "from aiohttp" in path.read_text()
    )
    # testing/ is the other side of the wire: the stand-in server.
    assert importers == ["_transport.py", "testing/_fake.py"]


def test_the_package_ships_type_information() -> None:
    assert (Path(whop_async.__file__).parent / "py.typed").exists()
    importlib.import_module("whop_async.resources.ad_groups")


def test_the_reference_page_lists_every_public_name() -> None:
    import whop_async.testing

    reference = (Path(__file__).parent.parent / "docs" / "reference.md").read_text()
    listed = set(re.findall(r"^\s+- (\w+)$", reference, re.MULTILINE))
    assert set(whop_async.__all__) - {"__version__"} <= listed
    assert set(whop_async.testing.__all__) <= listed
