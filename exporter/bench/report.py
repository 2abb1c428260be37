"""The benchmark report as text or JSON (schema `orchex.bench/1`)."""

import json
from typing import Any

from exporter.bench.run import Result

SCHEMA = "orchex.bench/1"


def as_dict(r: Result, elapsed: float) -> dict[str, Any]:
    return {"schema": SCHEMA, "iterations": r.iterations, "policy": r.policy, "registry_sha256": r.registry_digest,
            "passed": r.passed, "failures": r.failures, "warnings": r.warnings, "elapsed_s": elapsed,
            "categories": r.categories, "combinations": r.combinations, "coverage": r.coverage, "scaling": r.scaling}


def as_json(r: Result, elapsed: float) -> str:
    return json.dumps(as_dict(r, elapsed), indent=2, sort_keys=False) + "\n"


def _ms(v: float) -> str:
    return f"{v * 1e3:8.4f}"


def as_text(r: Result, elapsed: float) -> str:
    out = [f"orchex bench: {r.iterations} iterations, policy {r.policy}, registry {r.registry_digest[:12]}", ""]
    out.append("Selection time per category (ms)")
    out.append(f"  {'category':16s} {'mean':>8s} {'median':>8s} {'stdev':>8s} {'min':>8s} {'max':>8s} "
               f"{'p95':>8s} {'p99':>8s} {'sel/s':>10s}  pick")
    for cid, c in r.categories.items():
        if "error" in c:
            out.append(f"  {cid:16s} ERROR {c['error']}")
            continue
        out.append(f"  {cid:16s} {_ms(c['mean_s'])} {_ms(c['median_s'])} {_ms(c['stdev_s'])} {_ms(c['min_s'])} "
                   f"{_ms(c['max_s'])} {_ms(c['p95_s'])} {_ms(c['p99_s'])} {c['selections_per_second']:10.0f}  "
                   f"{c['model']}")
    out += ["", "Constraint combinations"]
    for c in r.combinations:
        if "error" in c and "model" not in c:
            out.append(f"  {c['name']:44s} ERROR {c['error']}")
            continue
        gpu = f" on GPU {c['gpu']}" if c["gpu"] is not None else ""
        flag = " (fallback)" if c["fallback"] else ""
        bad = f"  FAIL {c['error']}" if "error" in c else ""
        out.append(f"  {c['name']:44s} {c['model']}{(' ' + c['variant']) if c['variant'] else ''}{gpu} "
                   f"score {c['final_score']:.2f}{flag}  median {c['median_s'] * 1e6:.1f} us{bad}")
    out += ["", "Consistency (same input, same answer)"]
    for cid, c in r.categories.items():
        if "consistency_ratio" in c:
            out.append(f"  {cid:16s} {c['consistency_ratio']:7.1%}")
    out += ["", "Category coverage (listed models present in the registry)"]
    for cid, c in r.coverage.items():
        text = "uncovered (lists no models)" if c["uncovered"] else f"{c['ratio']:7.1%} ({c['present']}/{c['listed']})"
        out.append(f"  {cid:16s} {text}")
    out += ["", "Scaling (median selection time, synthetic registries)"]
    for size, s in r.scaling.items():
        out.append(f"  {size:>5s} models  {s['median_s'] * 1e6:8.2f} us")
    out.append("")
    for w in r.warnings:
        out.append(f"warning: {w}")
    if r.failures:
        out.append(f"FAILED: {len(r.failures)} check(s)")
        out += [f"  - {f}" for f in r.failures]
    else:
        out.append(f"PASSED: every check ({elapsed:.2f} s)")
    return "\n".join(out) + "\n"
