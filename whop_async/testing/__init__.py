"""A stand-in Whop API for tests and demos: ``FakeWhop``, and a pytest fixture.

``FakeWhop`` plays Whop's API and the ways real servers limit, fail and misbehave
(429s with hints at the edges, refusals that come and go, ids that always fail,
answers that never come, connections refused while it restarts, a captive portal,
answers that echo the key or nest deep, many credentials each with its own budget).

The ``fake_whop`` fixture (enabled by ``pytest_plugins = ["whop_async.testing.pytest_plugin"]``
in a conftest.py) starts a FakeWhop, points ``WHOP_API_KEY`` and ``WHOP_BASE_URL`` at it,
and yields it:

    async def test_unpause(fake_whop):
        async with whop_async.WhopClient() as client:
            await client.ad_groups.unpause(fake_whop.ids[0])
        assert fake_whop.status_of(fake_whop.ids[0]) == "active"

Options go in a marker: ``@pytest.mark.fake_whop(groups=50, fault_rate=0.1)``.
"""

from ._fake import FakeStats, FakeWhop
from ._hints import EDGE_HINTS, HINTS, Hint
from ._options import DEFAULT_API_KEY
from ._shapes import SHAPES, Shape, example_ad_group
from ._styles import LIMITERS, Limiter
from ._virtual import VirtualTimeLoop, run_virtual

__all__ = [
    "DEFAULT_API_KEY",
    "EDGE_HINTS",
    "HINTS",
    "LIMITERS",
    "SHAPES",
    "FakeStats",
    "FakeWhop",
    "Hint",
    "Limiter",
    "Shape",
    "VirtualTimeLoop",
    "example_ad_group",
    "run_virtual",
]
