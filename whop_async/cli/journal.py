"""The journal of a run (``--output``): a run line for each run, then one JSON line per
finished id, and the lock that keeps it to one run at a time.

A journal is a regular file, reached by its name, a symlink or a hardlink: ``--resume``
reads it back, and the lock is held on the file itself, so every name for it meets the
same lock. Anything else (a FIFO, a device, a socket) is refused without being waited
on, and so is every problem with the path (a missing folder, a folder where the file
should be, a file where a folder should be, no permission): before anything is sent,
in one line that names it.

Each run writes a run line first, ``{"run": {"resume", "seed", "fingerprint"}}``: the
seed its Idempotency-Keys are derived from, and salted hashes of the base URL and key
it was made against (never the key). They live in the journal, not beside it, so a
journal moved, copied or linked under another name keeps them: a resumed run sends
each id the key of the run it resumes, and a journal made against one base URL or key
(the sandbox) is refused against another (live), where its ids would be skipped.

A run of many accounts (``--keys``) journals each line with its account: what is done,
and each Idempotency-Key, is per (account, id).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import attrs

from .. import Outcome
from .exits import UsageError

Done = str | tuple[str, str]
"""What a journal line is done for: an id, or an (account, id) pair."""

# Opening never waits (a FIFO with no reader) nor takes a terminal for the process's
# own. Windows has neither flag, nor FIFOs to wait on.
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_NEVER_WAIT = _NONBLOCK | getattr(os, "O_NOCTTY", 0)
_BINARY = getattr(os, "O_BINARY", 0)  # Windows would write each \n as \r\n
_NOT_REGULAR = "a journal must be a regular file (--resume reads it back)"
_KINDS = {
    stat.S_ISDIR: "a folder",
    stat.S_ISFIFO: "a FIFO",
    stat.S_ISCHR: "a character device",
    stat.S_ISBLK: "a block device",
    stat.S_ISSOCK: "a socket",
}
_PID = ".pid"
# Where releases before run lines kept the seed.
_EARLIER_SEED = ".idempotency-seed"


class JournalWriteError(Exception):
    """The journal stopped taking lines mid-run; ``written`` lines made it."""

    def __init__(self, path: Path, error: OSError, written: int) -> None:
        super().__init__(f"cannot write {path} ({error.strerror or error})")
        self.written = written


@attrs.frozen(kw_only=True)
class _Recorded:
    """What a journal holds: the ids recorded ok, the ids answered 2xx with something
    that could not be read, and each run's seed and fingerprint."""

    done: set[Done]
    unreadable: set[Done]
    runs: list[tuple[str, dict[str, Any]]]


class Journal:
    """An open journal, held by this run alone until it is closed; ``begin`` reads it
    and starts the run's part.

    Attributes:
        path: the ``--output`` file, as given.
        identity: the file's device and inode, whatever name led to it.
        done: ids recorded ok (with ``resume``; else empty): they are skipped.
        resent: with ``resume``, how many ids were answered 2xx with something that
            could not be read, and never ok since: they are sent again, with the key
            they were sent with.
        notices: what to tell before the run starts.
        written: outcome lines this run has written.
    """

    def __init__(self, path: Path) -> None:
        """Open and lock the journal: nothing is read or written yet."""
        self.path = path
        self.written = 0
        self.notices: list[str] = []
        self.done: set[Done] = set()
        self.resent = 0
        # Files beside the journal go beside the file a symlink leads to.
        self._real = Path(os.path.realpath(path))
        lock_descriptor = _filelock()  # first: without it, no file is made
        with contextlib.ExitStack() as opening:
            self._fd = _open(path, path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
            opening.callback(os.close, self._fd)
            status = os.fstat(self._fd)
            self.identity = (status.st_dev, status.st_ino)
            self._pid_file = _beside(self._real, _PID)
            _lock(path, self._fd, self._pid_file, lock_descriptor)
            _write_pid(path, self._pid_file)
            opening.pop_all()  # opened: close() closes them from now on

    async def begin(self, *, resume: bool, base_url: str, api_key: str) -> None:
        """Read what the journal records (letting the event loop run between slices
        of it, so that Ctrl-C and SIGTERM are handled at once however long it is),
        refuse it if it was made against another base URL or key, and write this
        run's line."""
        recorded = await self._recorded()
        _refuse_if_made_elsewhere(self.path, recorded, base_url=base_url, api_key=api_key)
        self._seed = self._seed_for(recorded, self._real, resume=resume, base_url=base_url)
        if resume:
            self.done = recorded.done
            self.resent = len(recorded.unreadable - recorded.done)
        self._begin_run(resume=resume, fingerprint=_fingerprint(self._seed, base_url, api_key))

    def idempotency_key(self, ad_group_id: str) -> str:
        """The Idempotency-Key of ``ad_group_id`` in this journal: a resumed run sends
        each id the key of the run it resumes, so a call that reached Whop before a
        stop is replayed, not repeated."""
        return hashlib.sha256(f"{self._seed}:{ad_group_id}".encode()).hexdigest()[:40]

    def account_idempotency_key(self, account: str, ad_group_id: str) -> str:
        """The Idempotency-Key of an account's id in this journal, as
        ``idempotency_key`` (account names hold no ``:``)."""
        return self.idempotency_key(f"{account}:{ad_group_id}")

    def write(self, outcome: Outcome) -> None:
        """Append ``outcome`` as one line, straight to the file: nothing is held back
        in a buffer to be lost, or to fail a second time on close.

        Raises:
            JournalWriteError: the line could not be written (a full disk, an I/O
                error); it may be cut short, which a resumed run passes over (an ok
                line whose id is whole still counts that id done, as it was).
        """
        try:
            _write_all(self._fd, (outcome.to_json() + "\n").encode())
        except OSError as error:
            raise JournalWriteError(self.path, error, self.written) from None
        self.written += 1

    def close(self) -> None:
        """Close the journal and let the next run have it."""
        _remove(self._pid_file)  # while the lock is held: the next holder writes its own
        os.close(self._fd)  # closing the descriptor releases the lock

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _seed_for(self, recorded: _Recorded, real: Path, *, resume: bool, base_url: str) -> str:
        """The seed of the run being resumed, or a new one."""
        if not resume:
            return secrets.token_hex(16)
        if recorded.runs:
            seed, _ = recorded.runs[-1]
            return seed
        if recorded.done:  # ids would be skipped on the word of a journal not bound yet
            self.notices.append(
                f"{self.path} was made by an earlier release, which did not record the base"
                f" URL and key it was made with: resuming it against {base_url}, and bound"
                " to it and this key from now on"
            )
        return _earlier_seed(self.path, _beside(real, _EARLIER_SEED)) or secrets.token_hex(16)

    async def _recorded(self) -> _Recorded:
        try:
            return await _read(self._fd)
        except OSError as error:
            raise _unusable(self.path, self.path, error) from None

    def _begin_run(self, *, resume: bool, fingerprint: dict[str, str]) -> None:
        """Write this run's line, on a line of its own: a run killed mid-write leaves
        its last line cut short."""
        run = {"resume": resume, "seed": self._seed, "fingerprint": fingerprint}
        try:
            size = os.fstat(self._fd).st_size
            if size:
                os.lseek(self._fd, size - 1, os.SEEK_SET)
                if os.read(self._fd, 1) != b"\n":
                    _write_all(self._fd, b"\n")
            _write_line(self._fd, {"run": run})
        except OSError as error:
            raise _unusable(self.path, self.path, error) from None


def _fingerprint(seed: str, base_url: str, api_key: str) -> dict[str, str]:
    """Hashes of what a run was made against, salted with its seed: equal for the same
    base URL and key, and of no use to anyone looking for the key."""
    return {
        name: hmac.new(seed.encode(), value.encode(), hashlib.sha256).hexdigest()[:32]
        for name, value in (("base_url", base_url), ("api_key", api_key))
    }


def _refuse_if_made_elsewhere(
    path: Path, recorded: _Recorded, *, base_url: str, api_key: str
) -> None:
    """Refuse a journal any of whose runs was made against another base URL or key: a
    resumed run would skip the ids done there, and a new run would mix its ids with
    theirs for the next resume."""
    for seed, theirs in recorded.runs:
        ours = _fingerprint(seed, base_url, api_key)
        if theirs.get("base_url") != ours["base_url"]:
            elsewhere = f"another base URL than this run's ({base_url})"
        elif theirs.get("api_key") != ours["api_key"]:
            elsewhere = "another API key than this run's"
        else:
            continue
        raise UsageError(
            f"--output {path} holds runs made against {elsewhere}: a journal keeps to one"
            " base URL and key, so that --resume never skips ids done elsewhere. Nothing"
            " was sent; give another --output."
        )


# How an ok record as this release writes it begins: its id (and account) are all a
# resumed run needs of it, so it is not decoded. Even cut short (a disk that filled up
# mid-line), such a line says its id was done.
_OK_RECORD = re.compile(
    rb'\{(?:"account":"([A-Za-z0-9_.@-]{1,128})",)?"id":"([A-Za-z0-9_-]{1,128})","ok":true,'
)
# Bytes of journal read between two looks at the event loop: a few milliseconds.
_SLICE = 1 << 20


async def _read(fd: int) -> _Recorded:
    """Read the journal through its locked descriptor (on Windows the lock keeps every
    other handle out), a slice at a time. A line that is no record, or cut short (but
    for the head of an ok record), is passed over."""
    recorded = _Recorded(done=set(), unreadable=set(), runs=[])
    for lines in _slices(fd):
        for line in lines:
            _take(line, recorded)
        await asyncio.sleep(0)
    return recorded


def _slices(fd: int) -> Iterator[list[bytes]]:
    """The lines of the file, from its start, about ``_SLICE`` bytes of them at a time."""
    os.lseek(fd, 0, os.SEEK_SET)
    with open(fd, "rb", closefd=False) as journal:
        while lines := journal.readlines(_SLICE):
            yield lines


def _take(line: bytes, recorded: _Recorded) -> None:
    """What ``line`` tells: an id done, an id whose answer could not be read, a run."""
    if ok := _OK_RECORD.match(line):
        account, ad_group_id = ok.groups()
        recorded.done.add(
            ad_group_id.decode() if account is None else (account.decode(), ad_group_id.decode())
        )
        return
    if b"true" not in line and b'"run"' not in line:
        return  # a failed id: not done, nor accepted
    with contextlib.suppress(ValueError, TypeError, KeyError, RecursionError):
        record = json.loads(line)
        if "run" in record:
            run = record["run"]
            recorded.runs.append((str(run["seed"]), dict(run["fingerprint"])))
            return
        key: Done = record["id"] if "account" not in record else (record["account"], record["id"])
        if record["ok"] is True:
            recorded.done.add(key)
        elif record.get("accepted") is True:
            recorded.unreadable.add(key)


def _earlier_seed(output: Path, seed_file: Path) -> str | None:
    """The seed an earlier release kept beside the journal, if it did."""
    try:
        fd = _open(output, seed_file, os.O_RDONLY, reading=True)
    except FileNotFoundError:
        return None
    try:
        return os.read(fd, 256).decode(errors="replace").strip() or None
    finally:
        os.close(fd)


def _filelock() -> Callable[..., bool]:
    """filelock's lock of a descriptor (of the cli extra), or a refusal naming the extra."""
    try:
        from filelock import lock_descriptor
    except ImportError:
        raise UsageError(
            "--output needs the cli extra, whose filelock holds the journal for one run:"
            " pip install 'whop-async[cli]'"
        ) from None
    return lock_descriptor


def _lock(path: Path, fd: int, pid_file: Path, lock_descriptor: Callable[..., bool]) -> None:
    """Hold the journal for this run, or refuse at once naming its holder.

    The lock is taken on the open journal (flock, or LockFileEx on Windows), so it
    holds the file whatever name leads to it; and it belongs to the open file, so the
    system releases it when its holder exits, however it exits: a killed run never
    blocks the next one.
    """
    try:
        locked = lock_descriptor(fd, blocking=False)
    except OSError as error:
        raise UsageError(
            f"--output {path}: cannot lock it ({error.strerror or error}); one run per"
            " journal needs a file lock: give a journal on a local disk"
        ) from None
    if not locked:
        raise UsageError(
            f"--output {path} is in use by another run{_holder(pid_file)}; one run per"
            " journal: wait for it to end, or give another --output"
        )


def _holder(pid_file: Path) -> str:
    """`` (pid N)`` of the run holding the journal, as beside the file it holds; a name
    that is a hardlink has none beside it."""
    with contextlib.suppress(OSError, UsageError):
        fd = _open(pid_file, pid_file, os.O_RDONLY)
        try:
            pid = os.read(fd, 32).decode(errors="replace").strip()
        finally:
            os.close(fd)
        if pid.isdigit():
            return f" (pid {pid})"
    return ""


def _write_pid(output: Path, pid_file: Path) -> None:
    fd = _open(output, pid_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        _write_all(fd, f"{os.getpid()}\n".encode())
    except OSError as error:
        raise _unusable(output, pid_file, error) from None
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def _open(output: Path, path: Path, flags: int, *, reading: bool = False) -> int:
    """Open a regular file of the journal (``path``) without waiting, or refuse in one
    line. FileNotFoundError is left to a caller that reads."""
    try:
        fd = os.open(path, flags | _NEVER_WAIT | _BINARY, 0o644)
    except OSError as error:
        if reading and isinstance(error, FileNotFoundError):
            raise
        raise _unusable(output, path, error, reading=reading) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = next((name for test, name in _KINDS.items() if test(mode)), "not a regular file")
        where = _which(output, path, reading)
        raise UsageError(f"--output {output}: {where}it is {kind}; {_NOT_REGULAR}")
    if _NONBLOCK:  # it only mattered for opening: writes wait for the disk, as they should
        os.set_blocking(fd, True)
    return fd


def _write_line(fd: int, record: dict[str, Any]) -> None:
    _write_all(fd, (json.dumps(record, separators=(",", ":")) + "\n").encode())


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def _beside(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _which(output: Path, path: Path, reading: bool) -> str:
    """The file beside the journal that failed, if that is not the journal itself."""
    if path == output:
        return ""
    return f"cannot {'read' if reading else 'write'} {path}: "


def _unusable(output: Path, path: Path, error: OSError, *, reading: bool = False) -> UsageError:
    """One line saying why ``--output`` cannot be used, naming it (and the file beside
    it that failed, if that is not the journal itself)."""
    if error.errno == errno.ENOENT:
        reason = f"the folder {output.parent} does not exist"
    elif error.errno == errno.ENOTDIR:
        reason = f"{_first_file_among(output.parents)} is a file, not a folder"
    elif error.errno == errno.EISDIR:
        reason = "it is a folder; give the journal a file name"
    elif error.errno == errno.ENXIO:  # what opening a socket (or a FIFO to write) says
        reason = f"it is a socket; {_NOT_REGULAR}"
    elif error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        reason = f"not {'readable' if reading else 'writable'} ({error.strerror})"
    else:
        reason = error.strerror or str(error)
    return UsageError(f"--output {output}: {_which(output, path, reading)}{reason}")


def _first_file_among(folders: Sequence[Path]) -> Path:
    return next((folder for folder in reversed(folders) if folder.is_file()), folders[0])
