"""whop-async as it runs on Windows, as far as Linux can play it: ``import fcntl`` fails,
and the event loop cannot add signal handlers (Windows' loops raise
NotImplementedError); everything else runs as the installed command.

    python as_on_windows.py [whop-async arguments...]
"""

from __future__ import annotations

import sys

sys.modules["fcntl"] = None  # type: ignore[assignment]  # what makes ``import fcntl`` fail

import asyncio  # noqa: E402


def no_signal_handlers(*_: object) -> None:
    raise NotImplementedError


asyncio.SelectorEventLoop.add_signal_handler = no_signal_handlers  # type: ignore[assignment,method-assign]

from whop_async.cli import run  # noqa: E402

if __name__ == "__main__":
    sys.argv = ["whop-async", *sys.argv[1:]]
    run()
