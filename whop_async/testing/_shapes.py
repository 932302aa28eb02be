"""The shapes Whop has answered an ad group in, as FakeWhop answers them."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, Literal

Shape = Literal["seed", "sdk-2026", "docs-2026-11"]
SHAPES: tuple[Shape, ...] = ("seed", "sdk-2026", "docs-2026-11")


def example_ad_group(shape: Shape = "docs-2026-11") -> dict[str, Any]:
    """An ad group as Whop has answered it, in one of its real shapes (a fresh copy).

    - ``"seed"``: the unpause reference page's nine fields, ``budget`` in dollars;
    - ``"sdk-2026"``: whop-sdk 2.6.0's dated version (``Api-Version-Date:
      2026-10-15-1``), about 80 fields;
    - ``"docs-2026-11"``: the example on Whop's Ad Group object page, late 2026: no
      ``platform``, no ``budget`` but ``budget_amount``, ``delivery_status`` and
      ``issues``.
    """
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {', '.join(SHAPES)}, got {shape!r}")
    text = resources.files(__package__).joinpath("shapes", f"{shape}.json").read_text("utf-8")
    example: dict[str, Any] = json.loads(text)
    return example
