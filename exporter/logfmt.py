"""The daemon's log lines in logfmt (`ts=... level=info msg="..."`), as Prometheus and its exporters
write them, so the same log pipelines parse orchex."""

import logging
import time

LEVELS = ("debug", "info", "warn", "error")


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
