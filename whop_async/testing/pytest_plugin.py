"""The ``fake_whop`` pytest fixture: a FakeWhop per test, with the environment set; and
the ``virtual_time`` marker: a test (and its async fixtures) on a VirtualTimeLoop.

Enable both with one line in a ``conftest.py``:

    pytest_plugins = ["whop_async.testing.pytest_plugin"]

It needs pytest-asyncio (1.4 or newer for the marker).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest
import pytest_asyncio

from ._fake import FakeWhop
from ._virtual import VirtualTimeLoop

DEFAULT_GROUPS = 10


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "fake_whop(**options): options for the fake_whop fixture's FakeWhop"
    )
    config.addinivalue_line(
        "markers",
        "virtual_time: run the test and its async fixtures on whop_async.testing's"
        " VirtualTimeLoop, where every wait is instant and exact",
    )


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The loop an async test runs on: virtual time when marked ``virtual_time``."""
    if item.get_closest_marker("virtual_time") is not None:
        return {"virtual time": VirtualTimeLoop}
    return {"real time": asyncio.new_event_loop}


@pytest_asyncio.fixture
async def fake_whop(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[FakeWhop]:
    """A running FakeWhop (10 paused groups unless a ``fake_whop`` marker says
    otherwise), with ``WHOP_API_KEY`` and ``WHOP_BASE_URL`` pointing at it. It keeps
    the event loop's time, so in a ``virtual_time`` test its limits are virtual too."""
    marker = request.node.get_closest_marker("fake_whop")
    options: dict[str, Any] = {
        "groups": DEFAULT_GROUPS,
        "clock": asyncio.get_running_loop().time,
        **(marker.kwargs if marker else {}),
    }
    async with FakeWhop(**options) as fake:
        monkeypatch.setenv("WHOP_API_KEY", fake.api_key)
        monkeypatch.setenv("WHOP_BASE_URL", fake.base_url)
        yield fake
