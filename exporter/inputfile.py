"""Open the files users name, refusing what is not a regular file before reading a byte of it: a
FIFO or a character device (`/dev/zero`) would block or never end, a socket cannot be read whole."""

import os
import stat

from exporter.errors import UsageError

KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
         stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a directory"}


def open_regular(path: str) -> int:
    """A file descriptor open for reading on the regular file `path`; UsageError otherwise. Opened
    without blocking (a FIFO would wait for a writer) and checked on the descriptor itself, so a file
    swapped between a check and the open cannot slip through."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise UsageError(f"{path}: cannot read: {e.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise UsageError(f"{path}: not a regular file ({KINDS.get(stat.S_IFMT(mode), 'a special file')})")
    os.set_blocking(fd, True)
    return fd


def read_regular(path: str, max_bytes: int) -> bytes:
    """The whole content of the regular file `path`, at most `max_bytes` of it."""
    fd = open_regular(path)
    with os.fdopen(fd, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UsageError(f"{path}: larger than {max_bytes:,} bytes: not a file orchex reads whole")
    return data
