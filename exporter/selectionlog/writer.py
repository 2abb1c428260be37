"""Append-only writer of the legacy selection-metrics CSV.

The first eight columns are the legacy schema, so every reader of the old file still works; with
`extra=True` three more follow: fallback, reason, policy. Several processes may append to one file:
each row is one write(2) to an O_APPEND descriptor, which the kernel keeps whole, and the header is
written under an exclusive lock only while the file is empty.
"""

import fcntl
import os
import time
from types import TracebackType
from typing import TYPE_CHECKING

from exporter.common.csvtext import csv_field
from exporter.selectionlog.rows import COLUMNS, EXTRA

if TYPE_CHECKING:
    from exporter.routing.selector import Selection


def format_row(sel: "Selection", when: float, duration_seconds: float, extra: bool = False) -> str:
    """One CSV line for Selection `sel` made at unix time `when` (local time, as the legacy files)."""
    fields = [
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when)),
        sel.category, sel.model, "true" if sel.primary else "false",
        f"{sel.confidence:.2f}", f"{sel.final_score:.2f}",
        "" if sel.gpu is None else str(sel.gpu),
        f"{duration_seconds * 1000:.3f}",
    ]
    if extra:
        fields += ["true" if sel.fallback else "false", sel.reason, sel.policy]
    return ",".join(csv_field(f) for f in fields) + "\n"


class SelectionLog:
    def __init__(self, path: str, extra: bool = False) -> None:
        self.path, self.extra = path, extra
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if os.fstat(self.fd).st_size == 0:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            try:
                if os.fstat(self.fd).st_size == 0:
                    os.write(self.fd, (",".join(COLUMNS + (EXTRA if extra else ())) + "\n").encode())
            finally:
                fcntl.flock(self.fd, fcntl.LOCK_UN)

    def write(self, sel: "Selection", when: float, duration_seconds: float) -> None:
        os.write(self.fd, format_row(sel, when, duration_seconds, self.extra).encode("utf-8"))

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> "SelectionLog":
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
