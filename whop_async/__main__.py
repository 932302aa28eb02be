"""``python -m whop_async``: the whop-async command line."""

from ._cli import run

run()
