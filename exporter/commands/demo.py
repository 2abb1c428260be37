"""`orchex demo`: routing traffic through the real selector, appended to a selection log."""

import argparse
import random
import signal
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from exporter.cliargs import number, whole
from exporter.gpu import BACKENDS
from exporter.procname import name_process

if TYPE_CHECKING:
    from exporter.routing.registry import Registry
    from exporter.routing.selector import Constraints


def add_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help="generate routing traffic into a selection log",
                       description="Drive the real selector against the GPU backend's snapshots and append "
                                   "each decision to a selection log (the embedded default of `make run`).")
    p.add_argument("--log", default="logs/selection_metrics.csv", metavar="FILE")
    p.add_argument("--rate", type=number(0, 100_000, low_open=True), default=20.0, metavar="PER_SECOND",
                   help="selections per second")
    p.add_argument("--count", type=whole(1, 10**9), metavar="N",
                   help="stop after N selections (default: run until stopped)")
    p.add_argument("--registry", metavar="FILE")
    p.add_argument("--gpu-backend", choices=BACKENDS, default="auto")
    p.add_argument("--fleet", metavar="FILE")
    p.add_argument("--policy", choices=("default", "legacy"), default="default")
    p.add_argument("--seed", type=whole(0, 2**32 - 1), default=1)
    p.set_defaults(run=run)


def requests(reg: "Registry", rng: random.Random) -> Iterator[tuple[str, "Constraints"]]:
    """Endless (category, Constraints): every category, GPU classes, agent types, preferences."""
    from exporter.routing.selector import Constraints

    cats = list(reg.categories)
    classes = [None] + list(reg.gpu_classes.values())
    names = list(reg.models)
    while True:
        cat = rng.choice(cats)
        agents = sorted(reg.categories[cat].agent_types)
        yield cat, Constraints(
            max_memory=rng.choice(classes),
            agent_type=rng.choice(agents) if agents and rng.random() < 0.5 else None,
            prefer=frozenset([rng.choice(names)]) if rng.random() < 0.2 else frozenset(),
        )


def run(args: argparse.Namespace) -> int | None:
    from exporter.gpu import backends
    from exporter.routing import registry, selector
    from exporter.selectionlog.writer import SelectionLog

    name_process("orchex-demo")  # not matched by `pkill -HUP -x orchex`, which reloads the daemon
    reg = registry.load(args.registry)
    backend = backends.open_backend(args.gpu_backend, fleet=args.fleet)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    rng = random.Random(args.seed)
    made = failed = 0
    gpus, read_at = None, 0.0
    period = 1.0 / args.rate
    next_at = time.monotonic()
    tty, shown_at = sys.stderr.isatty(), 0.0  # progress on a terminal, four times a second
    try:
        with SelectionLog(args.log, extra=True) as log:
            for cat, constraints in requests(reg, rng):
                if stop or (args.count is not None and made + failed >= args.count):
                    break
                if time.monotonic() - read_at >= 1.0:  # GPU readings once a second, as a router would cache
                    gpus, read_at = backends.judged(backend.read(), time.time()), time.monotonic()
                started = time.perf_counter()
                try:
                    sel = selector.select(reg, cat, constraints, gpus, args.policy)
                except selector.SelectionError:
                    failed += 1
                else:
                    log.write(sel, time.time(), time.perf_counter() - started)
                    made += 1
                if tty and time.monotonic() >= shown_at + 0.25:
                    shown_at = time.monotonic()
                    of = f"/{args.count}" if args.count else ""
                    sys.stderr.write(f"\rorchex demo: {made + failed}{of} selections, {failed} without a model ")
                    sys.stderr.flush()
                next_at += period
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
    except KeyboardInterrupt:
        pass
    finally:
        backend.close()
        if tty:
            sys.stderr.write("\n")
    print(f"orchex demo: {made} selections written to {args.log}, {failed} without a suitable model",
          file=sys.stderr)
    return 0
