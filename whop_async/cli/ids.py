"""Ids from a file or standard input."""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from typing import IO

from .exits import UsageError


class IdFile:
    """Ids from a file or standard input, read lazily: one per line (blank lines and
    ``#`` comments skipped), or a CSV whose header has an ``id`` column."""

    def __init__(self, path: str) -> None:
        self._path = path
        self.name = "standard input" if path == "-" else path
        try:
            self._stream: IO[str] = sys.stdin if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115
        except OSError as error:
            raise UsageError(f"cannot read {path}: {error.strerror}") from None
        self._lines = self._meaningful_lines()
        first = next(self._lines, None)
        self._first: str | None = first
        self._column: int | None = None
        if first is not None and "," in first:
            header = [name.strip().lower() for name in next(csv.reader([first]))]
            if "id" not in header:
                raise UsageError(f"{self.name}: a CSV needs an 'id' column, found {header}")
            self._column = header.index("id")
            self._first = None

    def _meaningful_lines(self) -> Iterator[str]:
        for line in self._stream:
            stripped = line.strip()
            if stripped and not stripped.startswith("#"):
                yield stripped

    def __iter__(self) -> Iterator[str]:
        if self._first is not None:
            yield self._first
        if self._column is None:
            yield from self._lines
            return
        for row in csv.reader(self._lines):
            if len(row) > self._column:
                yield row[self._column].strip()

    def count(self, skip: set[str]) -> int | None:
        """How many ids of a regular file are not in ``skip`` (a second, quick pass);
        None for standard input, which can be read only once."""
        if self._stream is sys.stdin:
            return None
        again = IdFile(self._path)
        try:
            return sum(1 for ad_group_id in again if ad_group_id not in skip)
        finally:
            again.close()

    def close(self) -> None:
        """Close the file (standard input stays open)."""
        if self._stream is not sys.stdin:
            self._stream.close()
