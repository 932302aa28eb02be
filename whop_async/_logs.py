"""WHOP_LOG: the library's logging on stderr, for a look at what a client does, without
writing logging setup."""

from __future__ import annotations

import logging
import os

LOG_ENV = "WHOP_LOG"
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO}

logger = logging.getLogger("whop_async")
# A library's records go where the application sends them, and nowhere otherwise (not
# to stderr through logging's last resort).
_SILENT = logging.NullHandler()
logger.addHandler(_SILENT)


def log_to_stderr_if_asked() -> None:
    """With ``WHOP_LOG=debug`` or ``info``, log whop_async's records to stderr, unless
    the application configured logging itself (then its handlers decide); once."""
    level = _LEVELS.get(os.environ.get(LOG_ENV, "").strip().lower())
    configured = [handler for handler in logger.handlers if handler is not _SILENT]
    if level is None or configured or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()  # stderr
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
