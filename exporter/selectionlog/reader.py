"""Feed files to a Tally: whole files for reports (`read`), growing files for the exporter (`Follower`).

Files are read in 1 MiB blocks (BLOCK) cut at the last newline, so memory stays flat however large the input.
"""

from __future__ import annotations

import errno
import glob
import gzip
import io
import logging
import os
import stat
import sys
import zlib
from collections.abc import Callable, Iterable
from typing import IO, Any

from exporter.errors import UsageError
from exporter.inputfile import open_regular
from exporter.selectionlog.rows import MAX_LINE
from exporter.selectionlog.tally import Source, Tally

Progress = Callable[[int], None]  # told the bytes read so far


log = logging.getLogger("orchex")

BLOCK = 1 << 20  # a few MB of working memory per chunk
GZIP_MAX_RATIO = 100  # selection logs compress about 10:1; a bomb, 1,000:1
GZIP_MIN_ALLOWANCE = 64 << 20
# Stands for the partial line while an over-long one is being skipped; it holds a newline, which a
# real partial line never does, so it cannot be mistaken for one.
SKIPPING = b"\n(skipping an over-long line)"
TAIL = 64  # bytes that identify where a followed file was read to


def _feed(tally: Tally, src: Source, data: bytes, end: int | None = None, final: bool = False) -> None:
    """Count the lines of data[:end]: whole lines, and, when final, a last one without its newline.
    The C kernel reads plain rows from the bytes as they are; only a header and what it declines are
    decoded."""
    view = memoryview(data)[:end]
    if not final:
        start = 0
        if data.startswith(b"timestamp,"):  # a file's header: on its own, so its rows stay as they are
            start = data.find(b"\n", 0, len(view)) + 1 or len(view)
            _add_decoded(tally, src, view[:start])
        if start == len(view) or tally.add_plain(view[start:], src):
            return
        view = view[start:]
    _add_decoded(tally, src, view, final)


def _add_decoded(tally: Tally, src: Source, data: bytes | memoryview, final: bool = False) -> None:
    """Decode bytes of whole lines (and, when final, a last partial one) into the tally."""
    try:
        text = str(data, "utf-8")
    except UnicodeDecodeError:
        # Only the lines that are not UTF-8 are lost; their neighbours still count.
        parts = bytes(data).split(b"\n")
        good = []
        for i, part in enumerate(parts):
            try:
                good.append(part.decode("utf-8"))
            except UnicodeDecodeError:
                if good:
                    tally.add_text("\n".join(good) + "\n", src)
                    good = []
                tally.reject("encoding", src, src.line)
                src.line += 1
                if i == len(parts) - 1:
                    return
        text = "\n".join(good)
    tally.add_text(text, src, final=final)


def open_input(path: str) -> IO[bytes]:
    """A binary stream for a regular file, `-` (standard input) or a gzip file (by its magic bytes),
    whose decompressed size is bounded (GZIP_MAX_RATIO x its own size, at least GZIP_MIN_ALLOWANCE)."""
    if path == "-":
        return sys.stdin.buffer
    f = os.fdopen(open_regular(path), "rb")
    if f.peek(2)[:2] == b"\x1f\x8b":
        limit = max(GZIP_MIN_ALLOWANCE, GZIP_MAX_RATIO * os.fstat(f.fileno()).st_size)
        return io.BufferedReader(_Bounded(gzip.GzipFile(fileobj=f), limit, path))
    return f


class _Bounded(io.RawIOBase):
    """A decompressing stream that stops with a UsageError past `limit` bytes (a decompression bomb:
    497 KiB that expand to 500 MiB of newlines) and turns a corrupt stream into one line."""

    def __init__(self, inner: gzip.GzipFile, limit: int, path: str) -> None:
        self.inner, self.limit, self.path, self.done = inner, limit, path, 0
        self.corrupt = (OSError, EOFError, zlib.error)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            n = self.inner.readinto(buffer)
        except self.corrupt as e:
            raise UsageError(f"{self.path}: corrupt gzip stream: {e}") from None
        self.done += n
        if self.done > self.limit:
            raise UsageError(f"{self.path}: gzip expands past {self.limit:,} bytes ({GZIP_MAX_RATIO}x its size): "
                             "refused as a decompression bomb")
        return n

    def close(self) -> None:
        self.inner.close()
        super().close()


def _feed_stream(f: IO[bytes], tally: Tally, src: Source, rest: bytes = b"", limit: int | None = None,
                 progress: Progress | None = None) -> tuple[bytes, int, bytes]:
    """Feed the whole lines of binary stream `f` (at most `limit` bytes) to the tally, after the
    partial line `rest` left from before. Returns (the partial last line, bytes read, the last TAIL
    bytes read). A line longer than MAX_LINE is rejected as it streams by, never held whole, so a
    100 MB line costs time linear in its length."""
    done, tail = 0, b""
    while limit is None or done < limit:
        try:
            block = f.read(BLOCK if limit is None else min(BLOCK, limit - done))
        except (OSError, EOFError) as e:
            raise UsageError(f"{src.name}: cannot read: {e}") from None
        if not block:
            break
        done += len(block)
        tail = (tail + block[-TAIL:])[-TAIL:]
        if rest is SKIPPING:  # inside an over-long line: drop up to its end
            end = block.find(b"\n")
            if end < 0:
                continue
            block, rest = block[end + 1:], b""
        data = rest + block
        cut = data.rfind(b"\n") + 1
        if cut:
            _feed(tally, src, data, cut)
        rest = data[cut:]
        if len(rest) > MAX_LINE:
            tally.reject("length", src, src.line)
            src.line += 1
            rest = SKIPPING
        if progress:
            progress(done)
    return (b"" if rest is SKIPPING else rest), done, tail


def read(path: str, tally: Tally, progress: Progress | None = None) -> Source:
    """Count every row of one file; `progress(bytes_read)` is called after each block."""
    src = Source("<stdin>" if path == "-" else path)
    f = open_input(path)
    try:
        rest, _, _ = _feed_stream(f, tally, src, progress=progress)
    finally:
        if f is not sys.stdin.buffer:
            f.close()
    if rest:
        _feed(tally, src, rest, final=True)
    return src


def matching(pattern: str) -> list[str]:
    """The paths a glob matches, sorted; a name without glob characters, as it is (a file that is not
    there yet is still followed by its name)."""
    if not glob.has_magic(pattern):
        return [pattern]
    return sorted(glob.glob(pattern))


def expand(patterns: Iterable[str]) -> list[str]:
    """Paths for file names and globs, in order, each once; `-` stays as is. A pattern matching
    nothing is an error naming it."""
    out = []
    for p in patterns:
        matches = [p] if p == "-" else matching(p)
        if not matches:
            raise UsageError(f"{p}: no file matches")
        out += [m for m in matches if m not in out]
    return out


MAX_OPEN_FILES = 256  # the default of --selection-log.max-open-files
READ_PER_POLL = 16 << 20  # bytes read from one file in one poll; the rest waits for the next
HOLE_STEP = 4096  # a filesystem block: NUL bytes at the end of a hole are stepped over this much at a time
# Why a file could not be followed, by errno: the reason label of orchex_router_selection_log_errors_total.
ERRNO_REASONS = {errno.EACCES: "permission", errno.EPERM: "permission", errno.EMFILE: "open_files",
                 errno.ENFILE: "open_files"}
ERROR_REASONS = ("permission", "open_files", "not_regular", "io")


class Follower:
    """Follows files named by paths or globs as they grow, rotate and are truncated.

    Each file is known by (device, inode), as `tail -F` knows it: a file renamed away by rotation is
    read to its end while it is held open, and its successor under the old name starts from its first
    byte, so nothing is lost or counted twice; a file that shrinks was truncated and is read again from
    its start; a last line without its newline waits for the rest of it.

    Bounded whatever the files: at most `max_open` are held open, those that grew most recently; the
    others are opened again when they grow and checked to be the same file with the same last bytes.
    (One closed this way that is renamed out of the patterns before its last rows are read loses them:
    only files that stopped growing are closed.) At most READ_PER_POLL bytes are read from a file per
    poll, so a huge or sparse file is caught up with over several polls; `poll` says whether any is
    behind. A file that cannot be opened or read is a warning naming it (again when the reason
    changes), counted in `errors` by reason, and not counted in `matched`."""

    def __init__(self, patterns: Iterable[str], tally: Tally, max_open: int = MAX_OPEN_FILES) -> None:
        self.patterns, self.tally, self.max_open = list(patterns), tally, max_open
        self.files: dict[tuple[int, int], _Followed] = {}  # (dev, ino) -> _Followed
        self.matched: dict[str, int] = {}  # pattern -> files it matched at the last poll that are followed
        self.errors: dict[str, int] = dict.fromkeys(ERROR_REASONS, 0)  # reason -> failures, ever
        self.problems: dict[str, str] = {}  # path -> the reason it is not followed, said once each
        self.polls = 0

    def poll(self) -> bool:
        """Read what was appended since the last call, at most READ_PER_POLL per file; True when a
        file has more to read than this poll took. Each file is read as it is found, so one closed
        to make room for the next has had its turn."""
        self.polls += 1
        current: set[tuple[int, int]] = set()
        behind = False
        for pattern in self.patterns:
            found = 0
            for path in matching(pattern):
                try:
                    st = os.stat(path)
                except FileNotFoundError:
                    continue  # not there yet, or rotated away between glob and stat
                except OSError as e:
                    self._failed(path, e)
                    continue
                if not stat.S_ISREG(st.st_mode):  # a FIFO or a device would block or never end
                    self._failed(path, None)
                    continue
                key = (st.st_dev, st.st_ino)
                if key in current:  # matched by an earlier pattern too: read once
                    found += 1
                    continue
                followed = self.files.get(key) or _Followed(path)
                grown = st.st_size != followed.offset or not followed.opened
                if followed.f is None and grown and not self._open(key, followed, path):
                    continue
                self.files[key] = followed
                followed.path = path
                current.add(key)
                found += 1
                self._recovered(path)
                behind |= self._read(followed)
            self._say_matches(pattern, found)
        for key, followed in list(self.files.items()):
            if key in current:
                continue
            # Renamed out of the patterns or deleted: read to its end while it is still held open.
            more = followed.f is not None and self._read(followed)
            behind |= more
            if not more:
                followed.close()
                del self.files[key]
        return behind

    def _read(self, followed: _Followed) -> bool:
        if followed.f is None:
            return False
        try:
            more = followed.read(self.tally)
        except OSError as e:
            self._failed(followed.path, e)
            return False
        if followed.grew:
            followed.last_grew = self.polls
        return more

    def _open(self, key: tuple[int, int], followed: _Followed, path: str) -> bool:
        """Open `path` for `followed`, closing the open file that grew least recently when the budget
        is spent; False (and a warning) when it cannot be opened or is no longer that file."""
        held = sorted((f for f in self.files.values() if f.f is not None), key=lambda f: f.last_grew)
        for stale in held[:max(0, len(held) - self.max_open + 1)]:  # more than one after a reload lowered it
            stale.close()
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        except OSError as e:
            self._failed(path, e)
            return False
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != key or not stat.S_ISREG(st.st_mode):  # replaced since the stat
            os.close(fd)
            return False
        os.set_blocking(fd, True)
        followed.f = os.fdopen(fd, "rb")
        followed.opened = True
        followed.last_grew = self.polls
        return True

    def _failed(self, path: str, error: OSError | None) -> None:
        reason = "not_regular" if error is None else ERRNO_REASONS.get(error.errno or 0, "io")
        self.errors[reason] += 1
        if self.problems.get(path) != reason:
            self.problems[path] = reason
            detail = "not a regular file" if error is None else error.strerror
            log.warning(f"selection log {path}: cannot be followed ({reason}): {detail}")
        if len(self.problems) > 4 * self.max_open:  # paths come from globs: bounded, said again at worst
            self.problems.clear()

    def _recovered(self, path: str) -> None:
        if self.problems.pop(path, None) is not None:
            log.info(f"selection log {path}: followed again")

    def _say_matches(self, pattern: str, found: int) -> None:
        before = self.matched.get(pattern)
        self.matched[pattern] = found
        if found == 0 and before != 0:
            log.warning(f"selection log pattern {pattern!r} matches no file (yet); it is checked on every scrape")
        elif found and before == 0:
            log.info(f"selection log pattern {pattern!r} now matches {found} file(s)")

    def close(self) -> None:
        for followed in self.files.values():
            followed.close()
        self.files.clear()


class _Followed:
    """One followed file: where reading reached, the partial line waiting for its end, and the last
    bytes read, which identify the content: a file truncated and written again, even past its old
    size before the next read, no longer has those bytes there, and is read again from its start.
    `f` is None while the file is closed to keep within the budget of open files."""

    def __init__(self, path: str) -> None:
        self.f: IO[bytes] | None = None
        self.path, self.opened = path, False
        self.offset, self.pending, self.tail, self.src = 0, b"", b"", Source(path)
        self.grew, self.last_grew = False, 0

    def _replaced(self, fd: int) -> bool:
        if os.fstat(fd).st_size < self.offset:
            return True
        return bool(self.tail) and os.pread(fd, len(self.tail), self.offset - len(self.tail)) != self.tail

    def read(self, tally: Tally) -> bool:
        """Read at most READ_PER_POLL bytes, and none of a hole; True when more is waiting."""
        assert self.f is not None
        fd = self.f.fileno()
        if self._replaced(fd):  # truncated in place: what it holds is new
            self.offset, self.pending, self.tail, self.src = 0, b"", b"", Source(self.src.name)
        self._skip_hole(fd, tally)
        until = self._data_until(fd)
        limit = min(READ_PER_POLL, until - self.offset)
        self.f.seek(self.offset)
        self.pending, read, tail = _feed_stream(self.f, tally, self.src, self.pending, limit=limit)
        self.offset += read
        self.tail = (self.tail + tail)[-TAIL:]
        self.grew = read > 0
        # More waits past the per-poll limit, or past a hole that the next poll steps over.
        return read >= READ_PER_POLL or (read > 0 and read >= limit and until < os.fstat(fd).st_size)

    def _data_until(self, fd: int) -> int:
        """Where the data from `offset` on ends: the next hole, which is the end of the file when
        the file has none (or the filesystem cannot say)."""
        try:
            return os.lseek(fd, self.offset, os.SEEK_HOLE)
        except OSError:
            return os.fstat(fd).st_size

    def _skip_hole(self, fd: int, tally: Tally) -> None:
        """Step over a hole longer than a line without reading it: a writer that keeps its offset
        after copytruncate leaves gigabytes of them, which read as NUL bytes. A hole is not a line:
        the line it interrupts is rejected as over-long, as reading it would have been, and reading
        goes on at the first byte after it that is not NUL, where the writer's next row starts."""
        try:
            data_at = os.lseek(fd, self.offset, os.SEEK_DATA)
        except OSError as e:  # ENXIO: a hole up to the end; else the filesystem cannot tell
            data_at = os.fstat(fd).st_size if e.errno == errno.ENXIO else self.offset
        if data_at - self.offset <= MAX_LINE:
            return
        if self.pending and self.pending is not SKIPPING and self.pending.strip(b"\0"):
            tally.reject("length", self.src, self.src.line)
            self.src.line += 1
        self.pending, self.offset = b"", data_at
        for _ in range(MAX_LINE // HOLE_STEP):  # the hole's last block is data too, NUL up to the row
            head = os.pread(fd, HOLE_STEP, self.offset)
            nuls = len(head) - len(head.lstrip(b"\0"))
            self.offset += nuls
            if nuls < HOLE_STEP:
                break
        self.tail = os.pread(fd, TAIL, self.offset - TAIL)

    def close(self) -> None:
        if self.f is not None:
            self.f.close()
            self.f = None
