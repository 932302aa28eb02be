"""whop-async on a disk that fills up mid-run: writes to one file fail after N of them.

    python failing_writes.py PATH N ERRNO_NAME [whop-async arguments...]

Every os.write to PATH after the first N raises OSError(ERRNO_NAME), as a full disk
(ENOSPC) or a failing one (EIO) would; everything else runs as the installed command.
"""

from __future__ import annotations

import errno
import os
import sys

from whop_async.cli import run


def fail_writes_to(path: str, allowed: int, code: int) -> None:
    real_write = os.write
    written = 0

    def write(fd: int, data: bytes) -> int:
        nonlocal written
        if os.path.exists(path) and os.path.samestat(os.fstat(fd), os.stat(path)):
            written += 1
            if written > allowed:
                raise OSError(code, os.strerror(code))
        return real_write(fd, data)

    os.write = write


if __name__ == "__main__":
    path, allowed, name, *arguments = sys.argv[1:]
    fail_writes_to(path, int(allowed), getattr(errno, name))
    sys.argv = ["whop-async", *arguments]
    run()
