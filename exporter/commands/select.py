"""`orchex select`: one routing decision, printed and optionally appended to the selection log."""

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from exporter.cliargs import number, whole
from exporter.gpu import BACKENDS

if TYPE_CHECKING:
    from exporter.routing.registry import Registry
    from exporter.routing.selector import Constraints


def add_parser(sub: Any) -> None:
    p = sub.add_parser("select", help="pick a model (and a GPU) for a task category",
                       description="Run the selector once and print its decision.")
    p.add_argument("--category", help="task category (default: the registry's default_category)")
    p.add_argument("--max-gpu-memory", metavar="SIZE|CLASS",
                   help="memory limit: a size (14GB, 1.5GiB) or a GPU class of the registry (t4_16gb)")
    p.add_argument("--agent-type", choices=("inference", "tool", "orchestrator"))
    p.add_argument("--prefer", action="append", default=[], metavar="MODEL")
    p.add_argument("--exclude", action="append", default=[], metavar="MODEL")
    p.add_argument("--min-context", type=whole(1, 10**12), metavar="TOKENS")
    p.add_argument("--min-benchmark", type=number(0, 1_000_000), metavar="SCORE")
    p.add_argument("--policy", choices=("default", "legacy"), default="default")
    p.add_argument("--registry", metavar="FILE", help="registry YAML (default: the packaged one)")
    p.add_argument("--gpus", choices=("none", *BACKENDS), default="none",
                   help="place on GPUs read from this backend")
    p.add_argument("--fleet", metavar="FILE", help="fleet YAML for --gpus simulated")
    p.add_argument("--log", metavar="FILE", help="append the decision to this selection log")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(run=run)


def constraints_from(args: argparse.Namespace, reg: "Registry") -> "Constraints":
    from exporter.routing.constraints import build_constraints

    return build_constraints(reg, max_memory=args.max_gpu_memory, agent_type=args.agent_type,
                             prefer=args.prefer, exclude=args.exclude, min_context=args.min_context,
                             min_benchmark=args.min_benchmark)


def run(args: argparse.Namespace) -> int | None:
    from exporter.errors import UsageError
    from exporter.gpu import backends
    from exporter.routing import registry, selector

    reg = registry.load(args.registry)
    constraints = constraints_from(args, reg)
    gpus = None
    if args.gpus != "none":
        backend = backends.open_backend(args.gpus, fleet=args.fleet)
        try:
            gpus = backends.judged(backend.read(), time.time())
        finally:
            backend.close()
    started = time.perf_counter()
    try:
        sel = selector.select(reg, args.category, constraints, gpus, args.policy)
    except selector.SelectionError as e:
        raise UsageError(str(e)) from None
    took = time.perf_counter() - started
    if args.log:
        from exporter.selectionlog.writer import SelectionLog

        with SelectionLog(args.log, extra=True) as log:
            log.write(sel, time.time(), took)
    if args.format == "json":
        out = dict(sel._asdict(), duration_seconds=took)
        json.dump(out, sys.stdout, indent=2)
        print()
        return 0
    from exporter.common.memory import format_size

    place = f"GPU {sel.gpu} (load {sel.load:.3f})" if sel.gpu is not None else "no GPU placement"
    print(f"{sel.model}{' ' + sel.variant if sel.variant else ''}  needs {format_size(sel.memory)}  {place}")
    print(f"  category {sel.category}  final_score {sel.final_score:.2f}  confidence {sel.confidence:.2f}  "
          f"primary {str(sel.primary).lower()}  policy {sel.policy}")
    if sel.fallback:
        print(f"  fallback: {sel.reason}")
    return 0
