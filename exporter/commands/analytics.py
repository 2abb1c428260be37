"""`orchex analytics FILE...`: the legacy routing reports from selection logs."""

import argparse
import sys
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("analytics", help="routing reports from selection logs",
                       description="Summarise selection logs (files, globs, .gz, - for standard input). "
                                   "Without --report: a console summary. With --report: the full report, and "
                                   "nothing else, on standard output (or --output).")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--report", action="store_true", help="the full report instead of the summary")
    p.add_argument("--format", choices=("text", "markdown", "json"), default="markdown",
                   help="report format (default markdown)")
    p.add_argument("--output", metavar="PATH", help="write the report here instead of standard output")
    p.add_argument("--since", metavar="T", help="only rows at or after T (YYYY-MM-DD[ HH:MM:SS])")
    p.add_argument("--until", metavar="T", help="only rows before T")
    p.add_argument("--strict", action="store_true", help="exit 1 when any row was rejected")
    p.set_defaults(run=run)


def _time(flag: str, text: str | None) -> str | None:
    import re

    from exporter.errors import UsageError

    if text is None:
        return None
    m = re.fullmatch(r"(\d{4}-\d\d-\d\d)(?:[ T](\d\d:\d\d(?::\d\d)?))?", text.strip())
    if not m:
        raise UsageError(f"{flag}: expected YYYY-MM-DD or 'YYYY-MM-DD HH:MM[:SS]', got {text!r}")
    clock = (m.group(2) or "00:00:00") + (":00" if m.group(2) and len(m.group(2)) == 5 else "")
    return f"{m.group(1)} {clock}"


def generated_time() -> str:
    """ISO 8601 UTC; SOURCE_DATE_EPOCH fixes it so identical input gives byte-identical reports."""
    import os
    import time

    from exporter.errors import UsageError

    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch is not None:
        try:
            return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch)))
        except ValueError:
            raise UsageError(f"SOURCE_DATE_EPOCH: not a whole number of seconds: {epoch!r}") from None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Progress:
    """A progress bar on standard error, for inputs above about 50 MB when it is a terminal."""

    def __init__(self, total: int) -> None:
        self.total, self.shown = total, -1

    def __call__(self, done: int) -> None:
        pct = min(100, done * 100 // max(self.total, 1))
        if pct != self.shown:
            self.shown = pct
            bar = "#" * (pct // 4)
            sys.stderr.write(f"\r[{bar:<25}] {pct:3d}% of {self.total / 1e6:.0f} MB")
            sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")


def run(args: argparse.Namespace) -> int | None:
    import gc
    import os

    from exporter.analytics import render, stats
    from exporter.errors import UsageError, write_output
    from exporter.selectionlog.reader import expand, read_split
    from exporter.selectionlog.tally import Tally

    since, until = _time("--since", args.since), _time("--until", args.until)
    paths = expand(args.files)
    for p in paths:
        if p == "-":
            continue
        try:
            st = os.stat(p)
        except OSError as e:
            raise UsageError(f"{p}: cannot read: {e.strerror}") from None
        if not os.path.isfile(p):
            raise UsageError(f"{p}: not a file")
        if st.st_size == 0:
            raise UsageError(f"{p}: empty file")
    # Counting allocates millions of short-lived strings and no reference cycles: the cyclic
    # collector would only rescan them.
    gc.disable()

    def make() -> Tally:
        return Tally(since=since, until=until)

    total = make()
    big = sum(os.path.getsize(p) for p in paths if p != "-")
    bar = Progress(big) if big > 50_000_000 and sys.stderr.isatty() else None
    done_before = 0
    for p in paths:
        before = total.rows + sum(total.rejected.values())
        size = os.path.getsize(p) if p != "-" else 0
        progress = bar and (lambda done, base=done_before: bar(base + done))
        t, _ = read_split(p, make, progress)
        total.merge(t)
        done_before += size
        if total.rows + sum(total.rejected.values()) == before:
            raise UsageError(f"{p}: no selection rows")
    if bar:
        bar.close()
    report = stats.compute(total, paths, generated_time())
    if not args.report:
        sys.stdout.write(render.summary(report))
    else:
        body = {"json": render.as_json, "markdown": render.markdown, "text": render.text}[args.format](report)
        if args.output:
            write_output(args.output, body)
        else:
            sys.stdout.write(body)
    if args.strict and report["rejected"]["total"]:
        print(f"orchex: {report['rejected']['total']} row(s) rejected (--strict)", file=sys.stderr)
        return 1
    return 0
