"""Feed files to a Tally: whole files for reports (`read`), growing files for the exporter (`Follower`).

Files are read in 1 MiB blocks (BLOCK) cut at the last newline, so memory stays flat however large the input.
"""

from __future__ import annotations

import io
import os
import stat
import sys
from collections.abc import Callable, Iterable

from exporter.errors import UsageError
from exporter.inputfile import open_regular
from exporter.selectionlog.rows import MAX_LINE, fallback_column, is_header
from exporter.selectionlog.tally import Source, Tally

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing: see exporter/__init__.py
if TYPE_CHECKING:
    import gzip
    import logging
    from typing import IO, Any

Progress = Callable[[int], None]  # told the bytes read so far


def _log() -> logging.Logger:
    """The exporter's logger, imported only by the Follower: a report does not pay for logging."""
    import logging

    return logging.getLogger("orchex")


# Per-chunk working memory stays a few MB in each of two processes. A log of 10,000 rows is one block,
# so its keys are added to the counts once: 4-6 ms less on 10,000 rows of another router's log than 384 KiB.
BLOCK = 1 << 20
GZIP_MAX_RATIO = 100  # selection logs compress about 10:1; a bomb, 1,000:1
GZIP_MIN_ALLOWANCE = 64 << 20
# Stands for the partial line while an over-long one is being skipped; it holds a newline, which a
# real partial line never does, so it cannot be mistaken for one.
SKIPPING = b"\n(skipping an over-long line)"
TAIL = 64  # bytes that identify where a followed file was read to


def _feed(tally: Tally, src: Source, data: bytes, end: int | None = None, final: bool = False) -> None:
    """Count the lines of data[:end]: whole lines, and, when final, a last one without its newline.
    The C kernel reads plain rows from the bytes as they are; only a header and what it declines are
    decoded. A decoded 1 MiB block is 256 new pages of memory, and cutting the header off it 256
    more: 2 ms of a 10,000-row report."""
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
        import gzip  # here, not above: a report on a plain file does not pay for it at start-up

        limit = max(GZIP_MIN_ALLOWANCE, GZIP_MAX_RATIO * os.fstat(f.fileno()).st_size)
        return io.BufferedReader(_Bounded(gzip.GzipFile(fileobj=f), limit, path))
    return f


class _Bounded(io.RawIOBase):
    """A decompressing stream that stops with a UsageError past `limit` bytes (a decompression bomb:
    497 KiB that expand to 500 MiB of newlines) and turns a corrupt stream into one line."""

    def __init__(self, inner: gzip.GzipFile, limit: int, path: str) -> None:
        import zlib

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


GLOB_MAGIC = frozenset("*?[")  # what glob.has_magic looks for


def matching(pattern: str) -> list[str]:
    """The paths a glob matches, sorted; a name without glob characters, as it is. glob is imported
    only for a glob: a report on a named file does not pay its 2 ms at start-up."""
    if not GLOB_MAGIC.intersection(pattern):
        return [pattern]
    import glob

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


class Follower:
    """Follows files named by paths or globs as they grow, rotate and are truncated.

    Each file is held open and known by (device, inode), as `tail -F` does: a file renamed away by
    rotation is read to its end before it is let go, and its successor under the old name starts
    from its first byte, so nothing is lost or counted twice; a file that shrinks was truncated and
    is read again from its start; a last line without its newline waits for the rest of it."""

    def __init__(self, patterns: Iterable[str], tally: Tally) -> None:
        self.patterns, self.tally = list(patterns), tally
        self.files: dict[tuple[int, int], _Followed] = {}  # (dev, ino) -> _Followed
        self.matched: dict[str, int] = {}  # pattern -> regular files it matched at the last poll
        self.refused: set[str] = set()  # paths that are not regular files, said once each

    def poll(self) -> int:
        """Read whatever was appended since the last call; returns the number of bytes read."""
        current = set()
        for pattern in self.patterns:
            found = 0
            for path in matching(pattern):
                try:
                    st = os.stat(path)
                except OSError:
                    continue  # not there yet, or rotated away between glob and stat
                if not stat.S_ISREG(st.st_mode):  # a FIFO or a device would block or never end
                    if path not in self.refused:
                        self.refused.add(path)
                        _log().warning(f"selection log {path}: not a regular file; not followed")
                    continue
                found += 1
                key = (st.st_dev, st.st_ino)
                current.add(key)
                if key not in self.files:
                    try:
                        self.files[key] = _Followed(path)
                    except UsageError:
                        continue
            self._say_matches(pattern, found)
        total = 0
        for key, followed in list(self.files.items()):
            total += followed.read(self.tally)
            if key not in current:  # renamed or deleted, and now read to its end
                followed.close()
                del self.files[key]
        return total

    def _say_matches(self, pattern: str, found: int) -> None:
        before = self.matched.get(pattern)
        self.matched[pattern] = found
        if found == 0 and before != 0:
            _log().warning(f"selection log pattern {pattern!r} matches no file (yet); it is checked on every scrape")
        elif found and before == 0:
            _log().info(f"selection log pattern {pattern!r} now matches {found} file(s)")

    def close(self) -> None:
        for followed in self.files.values():
            followed.close()
        self.files.clear()


class _Followed:
    """One followed file: where reading reached, the partial line waiting for its end, and the last
    bytes read, which identify the content: a file truncated and written again, even past its old
    size before the next read, no longer has those bytes there, and is read again from its start."""

    def __init__(self, path: str) -> None:
        self.f = os.fdopen(open_regular(path), "rb")
        self.offset, self.pending, self.tail, self.src = 0, b"", b"", Source(path)

    def _replaced(self) -> bool:
        if os.fstat(self.f.fileno()).st_size < self.offset:
            return True
        return bool(self.tail) and os.pread(self.f.fileno(), len(self.tail), self.offset - len(self.tail)) != self.tail

    def read(self, tally: Tally) -> int:
        if self._replaced():  # truncated in place: what it holds is new
            self.offset, self.pending, self.tail, self.src = 0, b"", b"", Source(self.src.name)
        self.f.seek(self.offset)
        self.pending, read, tail = _feed_stream(self.f, tally, self.src, self.pending)
        self.offset += read
        self.tail = (self.tail + tail)[-TAIL:]
        return read

    def close(self) -> None:
        self.f.close()


PARALLEL_MIN_BYTES = 16 << 20


def _header_fallback(path: str) -> int:
    """The fallback column index a file's header names, read before the file is split."""
    with open(path, "rb") as f:
        first = f.readline(4096).decode("utf-8", "replace").rstrip("\r\n").split(",")
    return fallback_column(first) if is_header(first) else Source(path).fallback


def _read_range(path: str, start: int, end: int, tally: Tally, src: Source,
                progress: Progress | None = None) -> None:
    """Count the lines that start in [start, end) of a file."""
    with open(path, "rb") as f:
        f.seek(start)
        rest, _, _ = _feed_stream(f, tally, src, limit=end - start, progress=progress)
    if rest:
        _feed(tally, src, rest, final=True)


def read_split(path: str, make_tally: Callable[[], Tally],
               progress: Progress | None = None) -> tuple[Tally, Source]:
    """Count a large plain file in two processes, one per half, and merge: the result is the one
    `read` gives (same counts, same example lines), in about half the time on two cores. Smaller
    files, gzip and standard input are read here, in one process."""
    tally = make_tally()
    if path == "-" or os.path.getsize(path) < PARALLEL_MIN_BYTES or _is_gzip(path):
        return tally, read(path, tally, progress)
    import multiprocessing

    size = os.path.getsize(path)
    middle = _next_line(path, size // 2)  # the second half starts on a line of its own
    fallback = _header_fallback(path)
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)

    def second_half() -> None:
        t, src = make_tally(), Source(path)
        src.fallback = fallback
        try:
            _read_range(path, middle, size, t, src)
            send.send((t, src.line - 1, None))
        except Exception as e:  # reported by the parent as its own error
            send.send((None, 0, e))

    child = ctx.Process(target=second_half, daemon=True)
    child.start()
    src = Source(path)
    _read_range(path, 0, middle, tally, src, progress and (lambda done: progress(done * size // max(middle, 1))))
    while not receive.poll(0.5):
        if not child.is_alive():  # died without a word (killed, out of memory): say so, never hang
            raise UsageError(f"{path}: the process reading the second half died (exit code {child.exitcode})")
    other, _, error = receive.recv()
    child.join()
    if error is not None:
        raise error
    # The second half never saw the header: its fallback column came from it above.
    tally.merge(other, line_offset=src.line - 1)
    return tally, src


def _next_line(path: str, offset: int) -> int:
    """Where the first line starting after `offset` starts (the file's size when none does), found
    block by block: a 100 MB line is never read whole."""
    with open(path, "rb") as f:
        f.seek(offset)
        while block := f.read(BLOCK):
            end = block.find(b"\n")
            if end >= 0:
                return offset + end + 1
            offset += len(block)
    return offset


def _is_gzip(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"
