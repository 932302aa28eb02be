"""The journal: one JSON line per finished id, and the idempotency seed beside it."""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO


def already_done(path: Path) -> tuple[set[str], int]:
    """Ids a journal records as accepted by the server, and how many of those had an
    answer that could not be read (the change was made; sending again would only
    replay it). A line cut short by a kill is ignored."""
    done: set[str] = set()
    unreadable = 0
    if not path.exists():
        return done, unreadable
    with path.open(encoding="utf-8") as journal:
        for line in journal:
            with contextlib.suppress(ValueError, TypeError, KeyError):
                record = json.loads(line)
                if record["ok"] is True or record.get("accepted") is True:
                    done.add(record["id"])
                    unreadable += record["ok"] is not True
    return done, unreadable


def journal_keys(path: Path, *, resume: bool) -> Callable[[str], str]:
    """Idempotency keys tied to a journal: a resumed run sends each id the key of the run
    it resumes, so a call that reached Whop before a kill is replayed, not repeated.

    The seed lives beside the journal; a run that does not resume draws a new one.
    """
    seed_file = path.with_name(path.name + ".idempotency-seed")
    if resume and seed_file.exists():
        seed = seed_file.read_text(encoding="utf-8").strip()
    else:
        seed = secrets.token_hex(16)
        seed_file.write_text(seed + "\n", encoding="utf-8")

    def key(ad_group_id: str) -> str:
        return hashlib.sha256(f"{seed}:{ad_group_id}".encode()).hexdigest()[:40]

    return key


def open_journal(path: Path) -> IO[str]:
    """Open for appending, starting on a fresh line if a kill cut the last one short."""
    cut_short = path.exists() and path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")
    journal = path.open("a", encoding="utf-8")
    if cut_short:
        journal.write("\n")
    return journal
