"""`orchex bench [ITERATIONS]`: the routing benchmark; exit 0 only when every check passes."""

import argparse
import re
import sys
import time
from typing import Any

from exporter.cliargs import whole


def _label(text: str) -> tuple[str, str]:
    k, sep, v = text.partition("=")
    if not sep or not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", k) or k == "job" or k.startswith("__"):
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE with a label name other than job: {text!r}")
    return k, v


def _gateway(text: str) -> str:
    """A Pushgateway URL, checked before the benchmark runs rather than after it: `http://HOST:PORT`,
    `https://...`, or `HOST[:PORT]` (http, as prometheus_client reads it)."""
    from urllib.parse import urlsplit

    schemed = "://" in text
    try:
        parts = urlsplit(text if schemed else f"http://{text}")
        port = parts.port  # ValueError for a port that is not a number from 0 to 65535
    except ValueError:
        parts, port = None, None
    # A bare word without a scheme or a port (`notaurl`) is a mistake far more often than a host.
    bare = not schemed and port is None and parts is not None and "." not in (parts.hostname or "") \
        and parts.hostname != "localhost"
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or bare:
        raise argparse.ArgumentTypeError(f"expected a Pushgateway URL such as http://127.0.0.1:9091, got {text!r}")
    return text


def add_parser(sub: Any) -> None:
    p = sub.add_parser("bench", help="benchmark the selector; optionally push the results",
                       description="Time selections per category, the legacy constraint combinations and "
                                   "GPU-aware ones, check consistency and coverage, measure scaling. Exit 0 when "
                                   "every check passes, 1 when one fails, 3 when the push fails.")
    p.add_argument("iterations", nargs="?", type=whole(2, 10_000_000), default=1000, metavar="ITERATIONS",
                   help="selections timed per category (at least 2: a standard deviation needs two)")
    p.add_argument("--registry", metavar="FILE")
    p.add_argument("--policy", choices=("default", "legacy"), default="default")
    p.add_argument("--gpus", choices=("none", "simulated"), default="none",
                   help="place selections on the simulated fleet")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--output", metavar="PATH", help="also write the report here")
    p.add_argument("--push", metavar="URL", type=_gateway, help="Pushgateway URL (e.g. http://127.0.0.1:9091)")
    p.add_argument("--job", default="orchex_bench")
    p.add_argument("--label", action="append", type=_label, default=[], metavar="K=V",
                   help="grouping label (repeatable); instance defaults to the host name")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int | None:
    from exporter.bench import report
    from exporter.bench.run import run as bench
    from exporter.errors import write_output
    from exporter.routing import registry

    started = time.perf_counter()
    reg = registry.load(args.registry, allow_missing_models=True)
    gpus = None
    if args.gpus == "simulated":
        from exporter.gpu.backends import judged
        from exporter.gpu.simulated import SimulatedBackend

        gpus = judged(SimulatedBackend().read(), time.time())
    result = bench(reg, args.iterations, args.policy, gpus)
    elapsed = time.perf_counter() - started
    text = (report.as_json if args.format == "json" else report.as_text)(result, elapsed)
    sys.stdout.write(text)
    if args.output:
        write_output(args.output, text)
    if args.push:
        from exporter.bench.push import push

        try:
            push(args.push, args.job, result, elapsed, dict(args.label))
        except OSError as e:
            print(f"orchex: push to {args.push} failed: {e}", file=sys.stderr)
            return 3
        print(f"orchex: pushed to {args.push} (job {args.job})", file=sys.stderr)
    return 0 if result.passed else 1
