"""``python -m whop_async``: the whop-async command line."""

from .cli import run

run()
