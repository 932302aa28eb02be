"""Ids from whatever a shell hands over, each read exactly once.

``--file`` may name a regular file, ``-`` or ``/dev/stdin``, a FIFO or a process
substitution (``<(...)``), a terminal or a device. What it is comes from ``fstat`` on
the open file, never from its name (``/dev/stdin`` is a regular file when the shell
redirects one into it). A regular file is read where it is used, and counted ahead for
the progress bar. Anything else may make a read wait as long as its writer likes (or
the open itself, for a FIFO nobody has opened to write): it is opened and read in a
thread of its own, which hands the ids to the event loop as they arrive. The loop never
waits on the input, so ids are sent as they come, ids given as arguments go at once,
and Ctrl-C and SIGTERM are handled whenever they come.

Lines are UTF-8, a byte-order mark first is dropped, CRLF line ends are fine. Either
one id a line (blank lines skipped, ``#`` starts a comment, an id may be in double
quotes), or a CSV whose first line is a header naming an ``id`` column. A value ``id``
is a header, never an id. With ``accounts``, a CSV whose header names an ``account``
column too, read as (account, id) pairs.

A CSV row is one line, read alone: a quote left open ends with its line, and never
takes the lines after it into one field. No row is passed over unsaid: a row that is
not CSV, or lacks its id (or, with ``accounts``, its account), comes as a failed
Outcome naming its line, which the command journals and counts. Only rows that hold
nothing are passed over: a row of empty fields, as spreadsheets save one, and the
header again (as files joined with ``cat`` hold it).

A line longer than any line of ids (64 KiB) is read to its end
without being kept, and so is any id longer than a Whop id: either is one id that is
not a Whop id, shown shortened, and the run goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import itertools
import os
import stat
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

from .. import InvalidIdError, Outcome, UnknownAccountError
from .exits import UsageError

_HEADER = "id"
_ACCOUNT = "account"

_LINE_LIMIT = 65_536  # bytes: far more than a CSV row of ids needs
_ID_LIMIT = 128  # a Whop id's longest
_SHOWN = 100  # characters of a longer one shown, then "..." (which no id holds)
_CHUNK = 65_536
# Ids counted between two looks at the event loop: a few milliseconds.
_COUNTED_AT_ONCE = 10_000
# Chunks of ids a thread reads ahead of the run: the memory a fast writer can fill.
_READ_AHEAD = 8

# Opening never waits (a FIFO with no writer) nor takes a terminal for the process's
# own. Windows has neither flag, nor FIFOs to wait on.
_NEVER_WAIT = getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
_BINARY = getattr(os, "O_BINARY", 0)  # Windows would read each \r\n as \n
_STDIN = 0


class IdFile:
    """The ids of ``--file PATH`` (``-``: standard input), opened at once, without
    waiting: a FIFO is opened in the thread that reads it, once its writer comes. A
    regular file's first line is read at once too, so a CSV without an ``id`` column
    is refused before anything is sent; a stream's when it comes.

    Iterate it with ``async for``: ids, or with ``accounts``, (account, id) pairs; and
    the failed Outcome of each row that holds none.

    Attributes:
        identity: the file's device and inode, whatever name led to it.
    """

    def __init__(self, path: str, *, accounts: bool = False) -> None:
        self.name = "standard input" if path == "-" else path
        fd, status = _opened(path)
        self.identity = (status.st_dev, status.st_ino)
        self._regular = stat.S_ISREG(status.st_mode)
        self._thread: _ReadInAThread | None = None
        if not self._regular:
            # None: a FIFO, opened in the thread, where waiting for its writer is fine.
            self._thread = _ReadInAThread(fd, path, self.name, accounts=accounts)
            return
        assert fd is not None  # only a FIFO is left to open
        self._fd = fd
        self._start = os.lseek(fd, 0, os.SEEK_CUR)
        try:
            self._inline = _items(_chunks(fd, path), self.name, accounts=accounts)
        except UsageError:
            self.close()
            raise

    async def __aiter__(self) -> AsyncIterator[Any]:
        if self._thread is None:
            for item in self._inline:
                yield item
        else:
            async for item in self._thread:
                yield item

    async def distinct_ids(self) -> set[str | Outcome] | None:
        """Every id of the file (and each row that holds none), without consuming them:
        a regular file is read from where it started to its end (letting the event loop
        run now and then, so that Ctrl-C and SIGTERM are handled at once however long it
        is), then left where it was. None for a pipe, a FIFO or a terminal, which can be
        read only once."""
        if not self._regular:
            return None
        here = os.lseek(self._fd, 0, os.SEEK_CUR)
        os.lseek(self._fd, self._start, os.SEEK_SET)
        try:
            distinct: set[str | Outcome] = set()
            ids = _items(_chunks(self._fd, self.name), self.name, accounts=False)
            for count, ad_group_id in enumerate(ids, 1):
                distinct.add(ad_group_id)
                if not count % _COUNTED_AT_ONCE:
                    await asyncio.sleep(0)
            return distinct
        finally:
            os.lseek(self._fd, here, os.SEEK_SET)

    def stop(self) -> None:
        """Read no further: a stream ends once what was read ahead is used up. A
        regular file reads on (the ids left are quick to account for)."""
        if self._thread is not None:
            self._thread.stop()

    def close(self) -> None:
        """Close a regular file. A stream belongs to its thread, which may be waiting
        in a read: the thread closes it at its end, and the system at exit."""
        if self._regular and self._fd != _STDIN:
            os.close(self._fd)


def _opened(path: str) -> tuple[int | None, os.stat_result]:
    """``path`` opened without waiting, and what it is; None for a FIFO, which is
    opened where it may wait."""
    fd = _STDIN if path == "-" else None
    try:
        status = os.stat(path) if fd is None else os.fstat(fd)
        if fd is None and not stat.S_ISFIFO(status.st_mode):
            # Told by the open file, not by the name: a name may change what it leads to.
            fd = os.open(path, os.O_RDONLY | _NEVER_WAIT | _BINARY)
            status = os.fstat(fd)
    except OSError as error:
        raise UsageError(f"--file {path}: cannot read it: {error.strerror}") from None
    if _NEVER_WAIT and fd not in (None, _STDIN):
        os.set_blocking(fd, True)  # not waiting only mattered for opening
    if stat.S_ISDIR(status.st_mode):
        if fd not in (None, _STDIN):
            os.close(fd)
        raise UsageError(f"--file {path}: cannot read it: it is a folder")
    return fd, status


def _chunks(fd: int, path: str) -> Iterator[bytes]:
    """What ``fd`` holds, as it comes: a read of a pipe returns what is there."""
    while True:
        try:
            chunk = os.read(fd, _CHUNK)
        except OSError as error:
            raise UsageError(f"--file {path}: cannot read it: {error.strerror}") from None
        if not chunk:
            return
        yield chunk


def _lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The lines of ``chunks``. A line longer than _LINE_LIMIT is read to its end but
    only its first _LINE_LIMIT + 1 bytes are kept: memory stays bounded whatever comes
    (``/dev/zero`` holds one endless line), and the length says it was cut."""
    tail = b""
    cutting = False  # in a line too long, whose head has been yielded
    for chunk in chunks:
        *ended, rest = chunk.split(b"\n")
        if ended:
            ended[0] = tail + ended[0]
            yield from itertools.islice(ended, 1 if cutting else 0, None)
            tail, cutting = rest, False
        elif not cutting:
            tail += rest
        if len(tail) > _LINE_LIMIT:
            yield tail[: _LINE_LIMIT + 1]
            tail, cutting = b"", True
    if tail and not cutting:
        yield tail


class _TooLong(str):
    """A line too long to be a line of ids, as shown: shortened."""


Line = tuple[int, str]
"""A line that means something, and its number in the file (from 1)."""


def _meaningful_lines(lines: Iterable[bytes]) -> Iterator[Line]:
    """The lines that are not blank nor a whole-line comment, decoded and numbered.
    Bytes that are not UTF-8 become U+FFFD: such an id is then refused as not a Whop
    id, and the others still go."""
    for number, raw in enumerate(lines, 1):
        line = raw.decode("utf-8", errors="replace").lstrip("\ufeff").strip()
        if line and not line.startswith("#"):
            yield number, _TooLong(_shortened(line)) if len(raw) > _LINE_LIMIT else line


def _shortened(value: str) -> str:
    """A value too long to be a Whop id, shown shortened (and still no Whop id)."""
    return value if len(value) <= _ID_LIMIT else f"{value[:_SHOWN]}..."


def _items(chunks: Iterable[bytes], name: str, *, accounts: bool) -> Iterator[Any]:
    """The ids of ``chunks`` (with ``accounts``, the (account, id) pairs), and the
    failed Outcome of each CSV row that holds none. The first line is read at once: it
    says whether this is a CSV, and which columns hold what.

    Raises:
        UsageError: a CSV without an ``id`` column (or ``account``, with
            ``accounts``), or a read that failed.
    """
    lines = _meaningful_lines(_lines(chunks))
    first = next(lines, None)
    if first is None:
        return iter(())
    header = first[1]
    column = _id_column(header, name)
    if accounts:
        return _pairs_in(lines, name, *_pair_columns(header, name, column))
    if column is None:  # one id a line: the first line is an id (or the header "id")
        return _plain_ids(itertools.chain([first], lines))
    return _csv_ids(lines, name, column)


def _id_column(first: str, name: str) -> int | None:
    """Which column of a CSV holds the ids (its header must name one ``id``), or None
    when the file holds one id a line."""
    if isinstance(first, _TooLong) or "," not in _without_comment(first):
        return None
    header = _header(first, name)
    if _HEADER not in header:
        raise UsageError(f"{name}: a CSV needs an 'id' column in its first line, found {header}")
    return header.index(_HEADER)


def _pair_columns(first: str, name: str, id_column: int | None) -> tuple[int, int]:
    """Which columns of a CSV of pairs name the account and hold the id."""
    header = _header(first, name)
    if id_column is None or _ACCOUNT not in header:
        raise UsageError(
            f"{name}: with --keys, a CSV needs 'account' and 'id' columns in its first line,"
            f" found {header}"
        )
    return header.index(_ACCOUNT), id_column


def _header(first: str, name: str) -> list[str]:
    try:
        return [column.strip().lower() for column in next(csv.reader([first]))]
    except csv.Error as error:
        raise UsageError(f"{name}: its first line is not a CSV header: {_not_csv(error)}") from None


def _plain_ids(lines: Iterable[Line]) -> Iterator[str]:
    for _, line in lines:
        value = line if isinstance(line, _TooLong) else _unquoted(_without_comment(line))
        if value and value.lower() != _HEADER:
            yield _shortened(value)


def _csv_ids(lines: Iterable[Line], name: str, column: int) -> Iterator[str | Outcome]:
    """The values of a CSV's id column; a line too long stands for one id, whatever
    its columns."""
    for number, line in lines:
        if isinstance(line, _TooLong):
            yield line
            continue
        row = _row(number, line, name, account=None)
        if isinstance(row, Outcome):
            yield row
        elif any(row):  # a row of empty fields holds nothing to lose
            value = _field(row, column)
            if not value:
                yield _without_id(number, name, "no id", account=None)
            elif value.lower() != _HEADER:
                yield _shortened(value)


def _pairs_in(
    lines: Iterable[Line], name: str, account_column: int, column: int
) -> Iterator[tuple[str, str] | Outcome]:
    for number, line in lines:
        row = _row(number, line, name, account="")
        if isinstance(row, Outcome):
            yield row
            continue
        account, ad_group_id = _field(row, account_column), _field(row, column)
        if not any(row) or (account.lower(), ad_group_id.lower()) == (_ACCOUNT, _HEADER):
            continue  # nothing in it to lose: a blank row, or the header of a file joined on
        if not ad_group_id:
            why = "no id" if account else "no account and no id"
            yield _without_id(number, name, why, account=account)
        elif not account:
            error = _NoAccount(f"line {number} of {name}: no account")
            yield Outcome(id=_shortened(ad_group_id), error=error, account="")
        else:
            yield account, _shortened(ad_group_id)


def _row(number: int, line: str, name: str, *, account: str | None) -> list[str] | Outcome:
    """The fields of a CSV line, stripped; or, for a line that is not CSV, its failed
    Outcome, shown as the line itself (its id cannot be told from the rest)."""
    try:
        # strict: a line the csv module would have to guess at is refused, not guessed.
        return [field.strip() for field in next(csv.reader([line], strict=True), [])]
    except csv.Error as error:
        refused = InvalidIdError(f"line {number} of {name} is not a CSV row: {_not_csv(error)}")
        return Outcome(id=_shortened(line), error=refused, account=account)


def _not_csv(error: csv.Error) -> str:
    """What the csv module finds wrong with a line, in a file's reader's words."""
    said = str(error)
    if said == "unexpected end of data":
        return "a quote opened on it is never closed (a row is one line)"
    if said.startswith("new-line character"):  # worded differently from one Python to the next
        return "it holds a carriage return (lines end with LF or CRLF)"
    return said


def _field(row: list[str], column: int) -> str:
    return row[column] if column < len(row) else ""


def _without_id(number: int, name: str, why: str, *, account: str | None) -> Outcome:
    """The failed Outcome of a row with no id: its id is empty, as in the file."""
    return Outcome(id="", error=InvalidIdError(f"line {number} of {name}: {why}"), account=account)


class _NoAccount(UnknownAccountError):
    """A row that names no account. Its message names the row: UnknownAccountError's
    own would name an account ''."""

    def __init__(self, message: str) -> None:
        super(UnknownAccountError, self).__init__(message)
        self.account = ""


def _without_comment(line: str) -> str:
    # A Whop id never holds '#': whatever follows one is a comment. (Not so in a CSV,
    # whose other columns may: only the first line is looked at this way there.)
    return line.split("#", 1)[0].strip()


def _unquoted(value: str) -> str:
    """A value in double quotes, as a spreadsheet saves a one-column CSV, without
    them."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].strip()
    return value


class _Abandoned(Exception):
    """The event loop the ids were for has closed: the command is over."""


_END = object()


class _ReadInAThread:
    """The items of a stream, opened and read in a daemon thread and handed to the
    event loop as they arrive.

    A daemon thread, not the loop's executor, whose threads ``asyncio.run`` waits for
    at exit: a read may wait for a writer that never comes, and must not keep the
    command from ending. The thread hands over everything it has read each time it is
    about to wait for more, so an id is sent as soon as its line ends; it waits itself
    while ``_READ_AHEAD`` hand-overs are not yet used, so a fast writer does not fill
    memory either.
    """

    def __init__(self, fd: int | None, path: str, name: str, *, accounts: bool) -> None:
        """Read ``fd``, or with None, the FIFO at ``path`` once a writer opens it."""
        self._loop = asyncio.get_running_loop()
        self._ready: asyncio.Queue[Any] = asyncio.Queue()
        self._room = threading.Semaphore(_READ_AHEAD)
        threading.Thread(
            target=self._read, args=(fd, path, name, accounts), name="--file", daemon=True
        ).start()

    async def __aiter__(self) -> AsyncIterator[Any]:
        while (handed := await self._ready.get()) is not _END:
            self._room.release()
            if isinstance(handed, Exception):
                raise handed
            for item in handed:
                yield item

    def stop(self) -> None:
        """End the items once what was handed over before is used up."""
        self._ready.put_nowait(_END)

    def _read(self, fd: int | None, path: str, name: str, accounts: bool) -> None:
        read: list[Any] = []

        def handing_over(chunks: Iterator[bytes]) -> Iterator[bytes]:
            # Before each read, which may wait: what the chunks so far held goes.
            while True:
                if read:
                    self._hand_over(read.copy())
                    read.clear()
                chunk = next(chunks, None)
                if chunk is None:
                    return
                yield chunk

        try:
            try:
                if fd is None:
                    fd = os.open(path, os.O_RDONLY | _BINARY)
            except OSError as error:
                raise UsageError(f"--file {path}: cannot read it: {error.strerror}") from None
            try:
                for item in _items(handing_over(_chunks(fd, path)), name, accounts=accounts):
                    read.append(item)
            finally:
                if fd != _STDIN:
                    os.close(fd)
            if read:
                self._hand_over(read)
            self._hand_over(_END)
        except _Abandoned:
            return
        except Exception as error:  # UsageError, or a bug: raised where the ids are used
            with contextlib.suppress(_Abandoned):
                self._hand_over(error)

    def _hand_over(self, handed: Any) -> None:
        """Put ``handed`` in the loop's queue, once there is room for it."""
        self._room.acquire()
        try:
            self._loop.call_soon_threadsafe(self._ready.put_nowait, handed)
        except RuntimeError:  # the loop has closed
            raise _Abandoned from None
