"""The ``fake_whop`` pytest fixture: a FakeWhop per test, with the environment set.

Enable it with one line in a ``conftest.py``:

    pytest_plugins = ["whop_async.testing.pytest_plugin"]

It needs pytest-asyncio.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from ._fake import FakeWhop

DEFAULT_GROUPS = 10


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "fake_whop(**options): options for the fake_whop fixture's FakeWhop"
    )


@pytest_asyncio.fixture
async def fake_whop(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[FakeWhop]:
    """A running FakeWhop (10 paused groups unless a ``fake_whop`` marker says
    otherwise), with ``WHOP_API_KEY`` and ``WHOP_BASE_URL`` pointing at it."""
    marker = request.node.get_closest_marker("fake_whop")
    options: dict[str, Any] = {"groups": DEFAULT_GROUPS, **(marker.kwargs if marker else {})}
    async with FakeWhop(**options) as fake:
        monkeypatch.setenv("WHOP_API_KEY", fake.api_key)
        monkeypatch.setenv("WHOP_BASE_URL", fake.base_url)
        yield fake
