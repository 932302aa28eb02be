"""The journal of a run (``--output``): one JSON line per finished id, the
idempotency seed beside it, and the lock that keeps it to one run at a time.

Every problem with the path (a missing folder, a folder where the file should be, a
file where a folder should be, no permission) is found before anything is sent, and
told in one line that names it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import secrets
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

from .. import Outcome
from .exits import UsageError

# How long a refused run waits for the holder to write its pid, which it does right
# after taking the lock.
_PID_WAIT = 1.0


class JournalWriteError(Exception):
    """The journal stopped taking lines mid-run; ``written`` lines made it."""

    def __init__(self, path: Path, error: OSError, written: int) -> None:
        super().__init__(f"cannot write {path} ({error.strerror or error})")
        self.written = written


class Journal:
    """An open journal, held by this run alone until it is closed.

    Attributes:
        path: the ``--output`` file.
        done: ids recorded as accepted by the server (with ``resume``; else empty).
        unreadable: how many of those had an answer that could not be read.
        written: lines this run has written.
    """

    def __init__(self, path: Path, *, resume: bool) -> None:
        self.path = path
        self._resume = resume
        self.written = 0
        with contextlib.ExitStack() as opening:
            self._fd = _open(path, path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
            opening.callback(os.close, self._fd)
            self._lock = _hold_lock(path)
            opening.callback(os.close, self._lock)
            try:
                self.done, self.unreadable = _already_done(path) if resume else (set(), 0)
                self._start_on_a_fresh_line()
            except OSError as error:
                raise _unusable(path, path, error) from None
            opening.pop_all()  # opened: close() closes them from now on

    def idempotency_keys(self) -> Callable[[str], str]:
        """Idempotency keys tied to this journal: a resumed run sends each id the key
        of the run it resumes, so a call that reached Whop before a kill is replayed,
        not repeated. The seed lives beside the journal; a run that does not resume
        draws a new one (only the lock's holder ever writes it)."""
        seed_file = _beside(self.path, ".idempotency-seed")
        try:
            if self._resume and seed_file.exists():
                seed = seed_file.read_text(encoding="utf-8").strip()
            else:
                seed = secrets.token_hex(16)
                seed_file.write_text(seed + "\n", encoding="utf-8")
        except OSError as error:
            raise _unusable(self.path, seed_file, error) from None

        def key(ad_group_id: str) -> str:
            return hashlib.sha256(f"{seed}:{ad_group_id}".encode()).hexdigest()[:40]

        return key

    def write(self, outcome: Outcome) -> None:
        """Append ``outcome`` as one line, straight to the file: nothing is held back
        in a buffer to be lost, or to fail a second time on close.

        Raises:
            JournalWriteError: the line could not be written (a full disk, an I/O
                error); it may be cut short, which a resumed run skips.
        """
        try:
            _write_all(self._fd, (outcome.to_json() + "\n").encode())
        except OSError as error:
            raise JournalWriteError(self.path, error, self.written) from None
        self.written += 1

    def close(self) -> None:
        """Close the journal and let the next run have it."""
        os.close(self._fd)
        os.close(self._lock)  # closing the descriptor releases the lock

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _start_on_a_fresh_line(self) -> None:
        # A run killed mid-write leaves its last line cut short.
        size = os.fstat(self._fd).st_size
        if size and os.pread(self._fd, 1, size - 1) != b"\n":
            _write_all(self._fd, b"\n")


def _already_done(path: Path) -> tuple[set[str], int]:
    """Ids a journal records as accepted by the server, and how many of those had an
    answer that could not be read (the change was made; sending again would only
    replay it). A line cut short by a kill is ignored."""
    done: set[str] = set()
    unreadable = 0
    with path.open(encoding="utf-8", errors="replace") as journal:
        for line in journal:
            with contextlib.suppress(ValueError, TypeError, KeyError):
                record = json.loads(line)
                if record["ok"] is True or record.get("accepted") is True:
                    done.add(record["id"])
                    unreadable += record["ok"] is not True
    return done, unreadable


def _hold_lock(path: Path) -> int:
    """Take ``<output>.lock`` for this run, or refuse at once naming its holder.

    flock belongs to the open file, so the kernel releases it when the holder exits,
    however it exits: a killed run never blocks the next one. The file stays (removing
    it would let two runs lock two different files).
    """
    lock_path = _beside(path, ".lock")
    fd = _open(path, lock_path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise UsageError(
            f"--output {path} is in use by another run (pid {holder}); one run per journal:"
            " wait for it to end, or give another --output"
        ) from None
    try:
        os.ftruncate(fd, 0)
        _write_all(fd, f"{os.getpid()}\n".encode())
    except OSError as error:
        os.close(fd)
        raise _unusable(path, lock_path, error) from None
    return fd


def _holder(fd: int) -> str:
    deadline = time.monotonic() + _PID_WAIT
    while not (pid := os.pread(fd, 32, 0).decode(errors="replace").strip()):
        if time.monotonic() > deadline:
            return "unknown"
        time.sleep(0.01)
    return pid


def _open(output: Path, path: Path, flags: int) -> int:
    try:
        return os.open(path, flags, 0o644)
    except OSError as error:
        raise _unusable(output, path, error) from None


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def _beside(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _unusable(output: Path, path: Path, error: OSError) -> UsageError:
    """One line saying why ``--output`` cannot be used, naming it (and the file beside
    it that failed, if that is not the journal itself)."""
    if error.errno == errno.ENOENT:
        reason = f"the folder {output.parent} does not exist"
    elif error.errno == errno.ENOTDIR:
        reason = f"{_first_file_among(output.parents)} is a file, not a folder"
    elif error.errno == errno.EISDIR:
        reason = "it is a folder; give the journal a file name"
    elif error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        reason = f"not writable ({error.strerror})"
    else:
        reason = error.strerror or str(error)
    where = "" if path == output else f"cannot write {path}: "
    return UsageError(f"--output {output}: {where}{reason}")


def _first_file_among(folders: Sequence[Path]) -> Path:
    return next((folder for folder in reversed(folders) if folder.is_file()), folders[0])
