"""Ids from whatever a shell hands over, each read exactly once.

``--file`` may name a regular file, ``-`` or ``/dev/stdin``, a FIFO or a process
substitution (``<(...)``): only a regular file can be read twice, so only a regular
file is counted ahead for the progress bar, and what it is comes from ``fstat`` on the
open file, never from its name (``/dev/stdin`` is a regular file when the shell
redirects one into it).

Lines are UTF-8, a byte-order mark first is dropped, CRLF line ends are fine. Either
one id a line (blank lines skipped, ``#`` starts a comment), or a CSV whose first line
is a header naming an ``id`` column. A value ``id`` is a header, never an id. With
``accounts``, a CSV whose header names an ``account`` column too, read as (account, id)
pairs.
"""

from __future__ import annotations

import csv
import itertools
import os
import stat
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from .exits import UsageError

_HEADER = "id"
_ACCOUNT = "account"


class IdFile:
    """The ids of ``--file PATH`` (``-``: standard input), opened and its first line
    read at once, so a missing file or a CSV without an ``id`` column is refused before
    anything is sent."""

    def __init__(self, path: str, *, accounts: bool = False) -> None:
        self.name = "standard input" if path == "-" else path
        try:
            # Standard input's descriptor stays open: closefd=False.
            self._stream: BinaryIO = open(0 if path == "-" else path, "rb", closefd=path != "-")  # noqa: SIM115
            self._rereadable = stat.S_ISREG(os.fstat(self._stream.fileno()).st_mode)
        except OSError as error:
            raise UsageError(f"--file {path}: cannot read it: {error.strerror}") from None
        self._lines = _meaningful_lines(self._stream)
        first = next(self._lines, None)
        self._column = None if first is None else _id_column(first, self.name)
        self._account = None
        if accounts and first is not None:
            self._account = _account_column(first, self.name, self._column)
        # One id a line: the first line is an id (or the header "id") and is read again.
        self._first = [first] if first is not None and self._column is None else []

    def __iter__(self) -> Iterator[str]:
        return _ids_in(itertools.chain(self._first, self._lines), self._column)

    def pairs(self) -> Iterator[tuple[str, str]]:
        """The (account, id) pairs of a CSV with ``account`` and ``id`` columns."""
        assert self._column is not None
        assert self._account is not None
        account, column = self._account, self._column
        for row in csv.reader(self._lines):
            if len(row) > max(account, column) and row[column].strip():
                yield row[account].strip(), row[column].strip()

    def distinct_ids(self) -> set[str] | None:
        """Every id still to be read, without consuming them: a regular file is read
        to its end, then rewound to where it was. None for a pipe, a FIFO or a
        terminal, which can be read only once."""
        if not self._rereadable:
            return None
        start = self._stream.tell()
        try:
            rest = _meaningful_lines(self._stream)
            return set(_ids_in(itertools.chain(self._first, rest), self._column))
        finally:
            self._stream.seek(start)

    def close(self) -> None:
        """Close the file (standard input's descriptor stays open)."""
        self._stream.close()


def _meaningful_lines(stream: BinaryIO) -> Iterator[str]:
    """The lines that are not blank nor a whole-line comment, decoded. Bytes that are
    not UTF-8 become U+FFFD: such an id is then refused as not a Whop id, and the
    others still go."""
    for raw in stream:
        line = raw.decode("utf-8", errors="replace").lstrip("\ufeff").strip()
        if line and not line.startswith("#"):
            yield line


def _id_column(first: str, name: str) -> int | None:
    """Which column of a CSV holds the ids (its header must name one ``id``), or None
    when the file holds one id a line."""
    if "," not in _without_comment(first):
        return None
    header = [column.strip().lower() for column in next(csv.reader([first]))]
    if _HEADER not in header:
        raise UsageError(f"{name}: a CSV needs an 'id' column in its first line, found {header}")
    return header.index(_HEADER)


def _account_column(first: str, name: str, id_column: int | None) -> int:
    """Which column of a CSV of pairs names the account."""
    header = [column.strip().lower() for column in next(csv.reader([first]))]
    if id_column is None or _ACCOUNT not in header:
        raise UsageError(
            f"{name}: with --keys, a CSV needs 'account' and 'id' columns in its first line,"
            f" found {header}"
        )
    return header.index(_ACCOUNT)


def _ids_in(lines: Iterable[str], column: int | None) -> Iterator[str]:
    if column is None:
        values: Iterable[str] = map(_without_comment, lines)
    else:
        values = (row[column].strip() for row in csv.reader(lines) if len(row) > column)
    return (value for value in values if value and value.lower() != _HEADER)


def _without_comment(line: str) -> str:
    # A Whop id never holds '#': whatever follows one is a comment. (Not so in a CSV,
    # whose other columns may: only the first line is looked at this way there.)
    return line.split("#", 1)[0].strip()
