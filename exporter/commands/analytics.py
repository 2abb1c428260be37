"""`orchex analytics FILE...`: the legacy routing reports from selection logs."""

import argparse
import datetime
import os
import sys
import time
from typing import Any

from exporter.analytics import render, stats
from exporter.errors import UsageError, write_output
from exporter.inputfile import open_regular
from exporter.selectionlog.reader import expand, read
from exporter.selectionlog.tally import Tally


def add_parser(sub: Any) -> None:
    p = sub.add_parser("analytics", help="routing reports from selection logs",
                       description="Summarise selection logs (files, globs, .gz, - for standard input). "
                                   "Without --report: a console summary. With --report: the full report, and "
                                   "nothing else, on standard output (or --output).")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--report", action="store_true", help="the full report instead of the summary")
    p.add_argument("--format", choices=("text", "markdown", "json"),
                   help="report format (default markdown); only with --report")
    p.add_argument("--output", metavar="PATH", help="write the report here instead of standard output")
    p.add_argument("--since", metavar="T", help="only rows at or after T (YYYY-MM-DD[ HH:MM:SS])")
    p.add_argument("--until", metavar="T", help="only rows before T")
    p.add_argument("--strict", action="store_true", help="exit 1 when any row was rejected")
    p.set_defaults(run=run)


def _time(flag: str, text: str | None) -> str | None:
    """`YYYY-MM-DD HH:MM:SS` from a --since/--until value: a real date, or a UsageError naming the flag."""
    if text is None:
        return None
    for fmt in ("%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.datetime.strptime(text.strip(), fmt).strftime("%Y-%m-%d %H:%M:%S")
        except ValueError:
            continue
    raise UsageError(f"{flag}: expected YYYY-MM-DD or 'YYYY-MM-DD HH:MM[:SS]', a real date, got {text[:40]!r}")


def generated_time() -> str:
    """ISO 8601 UTC; SOURCE_DATE_EPOCH fixes it so identical input gives byte-identical reports."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch is not None:
        try:
            seconds = int(epoch)
            if not 0 <= seconds <= MAX_EPOCH:
                raise ValueError
            return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
        except (ValueError, OverflowError, OSError):
            raise UsageError(f"SOURCE_DATE_EPOCH: not a whole number of seconds from 0 to {MAX_EPOCH} "
                             f"(year 9999): {epoch[:40]!r}") from None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


MAX_EPOCH = 253402300799  # 9999-12-31T23:59:59Z


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


def _nothing_counted(total: Tally, paths: list[str], since: str | None, until: str | None) -> int:
    """No valid row at all is bad input (exit 2, with why); valid rows all outside --since/--until
    is an empty answer (exit 1), said in words of its own."""
    if total.rejected:
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(total.rejected.items()))
        where = "; first at " + ":".join(map(str, total.examples[0][:2])) if total.examples else ""
        raise UsageError(f"{', '.join(paths)}: no valid selection row ({sum(total.rejected.values())} "
                         f"rejected: {reasons}{where})")
    print(f"orchex: no row falls in the window{' from ' + since if since else ''}"
          f"{' until ' + until if until else ''}; {total.outside} valid row(s) lie outside it", file=sys.stderr)
    return 1


def _check_files(paths: list[str]) -> None:
    """Refuse FIFOs, devices, sockets and empty files by type and size, before reading any."""
    for p in paths:
        if p != "-":
            os.close(open_regular(p))
            if os.path.getsize(p) == 0:
                raise UsageError(f"{p}: empty file")


def run(args: argparse.Namespace) -> int | None:
    since, until = _time("--since", args.since), _time("--until", args.until)
    if since and until and since >= until:
        raise UsageError(f"--since {since} is not before --until {until}")
    if args.format and not args.report:
        raise UsageError("--format: applies to --report; without --report the summary is plain text")
    if args.output and not args.report:
        raise UsageError("--output: applies to --report")
    paths = expand(args.files)
    _check_files(paths)
    total = Tally(since=since, until=until)
    big = sum(os.path.getsize(p) for p in paths if p != "-")
    bar = Progress(big) if big > 50_000_000 and sys.stderr.isatty() else None
    done_before = 0
    for p in paths:
        before = total.rows + total.outside + sum(total.rejected.values())
        progress = bar and (lambda done, base=done_before: bar(base + done))
        read(p, total, progress)
        done_before += os.path.getsize(p) if p != "-" else 0
        if total.rows + total.outside + sum(total.rejected.values()) == before:
            raise UsageError(f"{p}: no selection rows")
    if bar:
        bar.close()
    if not total.rows:
        return _nothing_counted(total, paths, since, until)
    report = stats.compute(total, paths, generated_time())
    if not args.report:
        sys.stdout.write(render.summary(report))
    else:
        render_as = {"json": render.as_json, "markdown": render.markdown, "text": render.text}
        body = render_as[args.format or "markdown"](report)
        if args.output:
            write_output(args.output, body)
        else:
            sys.stdout.write(body)
    if args.strict and report["rejected"]["total"]:
        print(f"orchex: {report['rejected']['total']} row(s) rejected (--strict)", file=sys.stderr)
        return 1
    return 0
