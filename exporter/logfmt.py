"""The daemon's log lines in logfmt (`ts=... level=info msg="..."`), as Prometheus and its exporters
write them, so the same log pipelines parse orchex."""

import logging
import threading
import time
from collections.abc import Callable

LEVELS = ("debug", "info", "warn", "error")
MAX_THROTTLED_KEYS = 256  # keys come from exception names and reasons, but are bounded all the same


def quote(text: str) -> str:
    """A logfmt value in double quotes: backslash, quote and line breaks escaped, so one record is
    always one line however hostile the text it carries (a file name, an exception)."""
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + text.replace("\n", "\\n").replace("\r", "\\r") + '"'


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        level = record.levelname.lower().replace("warning", "warn")
        out = f"ts={ts} level={level} msg={quote(record.getMessage())}"
        if record.exc_info:
            out += " err=" + quote(self.formatException(record.exc_info).splitlines()[-1])
        return out


def set_level(log: logging.Logger, level: str) -> None:
    log.setLevel({"warn": "WARNING"}.get(level, level.upper()))


def setup(level: str) -> logging.Logger:
    """The `orchex` logger, writing logfmt to standard error at `level` (one of LEVELS)."""
    log = logging.getLogger("orchex")
    handler = logging.StreamHandler()
    handler.setFormatter(LogfmtFormatter())
    log.handlers[:] = [handler]
    set_level(log, level)
    log.propagate = False
    return log


class Throttled:
    """Log lines that outside parties can cause (a client's bad request, a reset connection): one
    line per `key` per `every` seconds, the next one saying how many were left out, so a flood of
    them cannot fill a disk and the first of them is still seen."""

    def __init__(self, log: logging.Logger, every: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.log, self.every, self.clock = log, every, clock
        self.last: dict[str, tuple[float, int]] = {}  # key -> (when it was last written, left out since)
        self.lock = threading.Lock()

    def debug(self, msg: str, key: str) -> None:
        self._say(logging.DEBUG, msg, key)

    def warning(self, msg: str, key: str) -> None:
        self._say(logging.WARNING, msg, key)

    def _say(self, level: int, msg: str, key: str) -> None:
        if not self.log.isEnabledFor(level):
            return
        now = self.clock()
        with self.lock:
            when, left_out = self.last.get(key, (-self.every, 0))
            if now - when < self.every:
                self.last[key] = (when, left_out + 1)
                return
            if len(self.last) >= MAX_THROTTLED_KEYS:
                self.last.clear()
            self.last[key] = (now, 0)
        self.log.log(level, msg + (f" ({left_out} more like it in the last {now - when:.0f} s)" if left_out else ""))
