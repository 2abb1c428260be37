"""`orchex gpu-monitor [INTERVAL] [LOG]`: the legacy console monitor, without its bugs."""

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from typing import Any

from exporter.errors import RunFailed, UsageError
from exporter.gpu import BACKENDS


def _interval(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not v > 0 or v != v or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return v


def add_parser(sub: Any) -> None:
    p = sub.add_parser("gpu-monitor", help="console GPU monitor with a CSV log",
                       description="Print one line per GPU every INTERVAL seconds and append it to LOG. "
                                   "Ctrl+C or SIGTERM prints a summary per GPU and exits 0.")
    p.add_argument("interval", nargs="?", type=_interval, default=5.0, metavar="INTERVAL",
                   help="seconds between readings, fractions allowed (default 5)")
    p.add_argument("log", nargs="?", default="logs/gpu_monitor.log", metavar="LOG",
                   help="CSV log to append to (default logs/gpu_monitor.log)")
    p.add_argument("--once", action="store_true", help="one reading, then exit")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="json: one object per cycle on standard output")
    p.add_argument("--backend", choices=BACKENDS, default="auto")
    p.add_argument("--fleet", metavar="FILE", help="fleet YAML for the simulated backend")
    p.set_defaults(run=run)


class RowLog:
    """The CSV log, a whole row at a time: one write per row, and a write that fails part-way (a full
    disk) is cut back to the row before, so the file never ends in a partial row."""

    def __init__(self, path: str) -> None:
        from exporter.gpu.monitor import LOG_HEADER

        self.path = path
        try:
            if os.path.dirname(path):
                os.makedirs(os.path.dirname(path), exist_ok=True)
            self.fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            size = os.fstat(self.fd).st_size
            last = os.pread(self.fd, 1, size - 1) if size else b"\n"
        except OSError as e:
            raise UsageError(f"{path}: cannot append: {e.strerror}") from None
        if size == 0:
            self.write(LOG_HEADER + "\n")
        elif last != b"\n":
            self.write("\n")  # a row cut short by a crash must not swallow the next one

    def write(self, row: str) -> None:
        data = memoryview(row.encode("utf-8"))
        before = os.fstat(self.fd).st_size
        try:
            while data:  # a short write is followed by one that says why (ENOSPC), or finishes the row
                data = data[os.write(self.fd, data):]
        except OSError as e:
            with contextlib.suppress(OSError):  # not a regular file (/dev/full): nothing to cut back
                os.ftruncate(self.fd, before)
            raise RunFailed(f"{self.path}: cannot write: {e.strerror}") from None

    def close(self) -> None:
        os.close(self.fd)


def run(args: argparse.Namespace) -> int | None:
    from exporter.gpu import backends
    from exporter.gpu.monitor import Summary, as_json, console_line, log_row

    backend = backends.open_backend(args.backend, fleet=args.fleet)
    log = RowLog(args.log)
    failed: RunFailed | None = None
    use_colour = args.format == "text" and sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    summary = Summary()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append("SIGTERM"))
    last = None
    try:
        while not stop:
            started = time.monotonic()
            now = time.time()
            snaps = backends.judged(backend.read(), now)
            summary.add(snaps, 0.0 if last is None else started - last)
            last = started
            try:
                for s in snaps:
                    log.write(log_row(now, s))
            except RunFailed as e:
                failed = e
                break
            if args.format == "json":
                print(json.dumps({"timestamp": now, "backend": backend.name,
                                  "gpus": [as_json(s) for s in snaps]}), flush=True)
            else:
                if use_colour and not args.once:
                    sys.stdout.write("\033[H\033[J")  # redraw in place, as the legacy monitor did
                print(time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)))
                for s in snaps:
                    print(console_line(s, use_colour))
                sys.stdout.flush()
            if args.once:
                return 0
            # Sleep from cycle start, so the period is the interval however long the reading took.
            deadline = started + args.interval
            while not stop and time.monotonic() < deadline:
                time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
    except KeyboardInterrupt:
        pass
    finally:
        log.close()
        backend.close()
    if last is not None:
        summary.add([], 0.0)
        print("\nSummary", file=sys.stderr if args.format == "json" else sys.stdout)
        for line in summary.lines():
            print(line, file=sys.stderr if args.format == "json" else sys.stdout)
    if failed is not None:  # after the summary: what was seen until then still counts
        raise failed
    return 0
