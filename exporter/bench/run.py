"""The routing benchmark: what the legacy `benchmark` measured, with the checks it never made.

`run(registry, iterations, select=..., clock=...)` takes the selector and the clock as arguments, so
a test can hand it a non-deterministic selector and see the consistency check fail."""

import math
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from exporter.common.quantile import nearest_rank_sorted
from exporter.gpu.health import HEALTHY, HOT, health
from exporter.gpu.snapshot import GpuSnapshot
from exporter.routing import selector as selector_mod
from exporter.routing import synthetic
from exporter.routing.registry import Registry
from exporter.routing.selector import Constraints, Selection, SelectionError

Selector = Callable[..., Selection]
GB = 10**9
# The legacy benchmark's four combinations, by its names.
LEGACY_COMBINATIONS = (
    ("T4 GPU (14GB)", "code", Constraints(max_memory=14 * GB, agent_type="inference")),
    ("A100 GPU (40GB)", "code", Constraints(max_memory=40 * GB, agent_type="inference")),
    ("Translation (tool)", "relational", Constraints(max_memory=16 * GB, agent_type="tool")),
    ("Small model only", "code", Constraints(max_memory=4 * GB)),
)
SCALING_SIZES = (7, 100, 1000)


def bench_fleet() -> list[GpuSnapshot]:
    """Eight GPUs: six ordinary, GPU 2 hot (88 C), GPU 5 nearly full (1 GB free)."""
    out = []
    for i in range(8):
        total = 80 * GB
        free = 1 * GB if i == 5 else (60 - 5 * i % 40) * GB
        s = GpuSnapshot(index=i, name="NVIDIA H100 80GB HBM3", memory_total=total, memory_free=free,
                        memory_used=total - free, utilization=0.1 + 0.1 * (i % 4), temperature=88.0 if i == 2 else 45.0,
                        power=200.0, power_limit=700.0)
        s.health = health(s, now=0.0)
        out.append(s)
    assert out[2].health == HOT
    return out


GPU_COMBINATIONS = (
    ("GPU-aware code (8 GPUs, one hot, one full)", "code", Constraints(max_memory=40 * GB, agent_type="inference")),
    ("GPU-aware relational tool (8 GPUs)", "relational", Constraints(agent_type="tool")),
)


@dataclass
class Timing:
    samples: list[float]  # seconds

    def stats(self) -> dict[str, float]:
        s = sorted(self.samples)
        n = len(s)
        mean = math.fsum(s) / n
        # Sample standard deviation in floats: statistics.stdev is exact (fractions) and 50x slower.
        stdev = math.sqrt(math.fsum((x - mean) ** 2 for x in s) / (n - 1)) if n > 1 else 0.0
        return {
            "count": n, "mean_s": mean, "median_s": statistics.median(s),
            "stdev_s": stdev, "min_s": s[0], "max_s": s[-1],
            "p95_s": nearest_rank_sorted(s, 0.95), "p99_s": nearest_rank_sorted(s, 0.99),
            "selections_per_second": n / math.fsum(s) if math.fsum(s) > 0 else math.inf,
        }


@dataclass
class Result:
    iterations: int
    policy: str
    registry_digest: str
    categories: dict = field(default_factory=dict)  # id -> timing stats + pick + consistency
    combinations: list = field(default_factory=list)
    coverage: dict = field(default_factory=dict)
    scaling: dict = field(default_factory=dict)
    failures: list = field(default_factory=list)
    warnings: list = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def time_selections(select: Selector, registry: Registry, category: str, constraints: Constraints,
                    gpus: list[GpuSnapshot] | None, policy: str, n: int,
                    clock: Callable[[], float]) -> tuple[list[float], Counter[Selection], SelectionError | None]:
    """n timed selections of one input: (samples, Counter of the answers, first error or None)."""
    samples: list[float] = []
    answers: list[Selection] = []
    try:
        for _ in range(n):
            t = clock()
            sel = select(registry, category, constraints, gpus, policy)
            samples.append(clock() - t)
            answers.append(sel)
    except SelectionError as e:
        return samples, Counter(answers), e
    return samples, Counter(answers), None


def meets(registry: Registry, sel: Selection, constraints: Constraints,
          gpus: list[GpuSnapshot] | None) -> str | None:
    """Why a selection breaks its constraints, or None: checked apart from the selector."""
    m = registry.models[sel.model]
    if constraints.max_memory is not None and sel.memory > constraints.max_memory:
        return f"{sel.model} needs {sel.memory} bytes > {constraints.max_memory}"
    if constraints.agent_type and constraints.agent_type not in m.agent_types:
        return f"{sel.model} lacks agent type {constraints.agent_type}"
    if gpus is not None:
        g = next((g for g in gpus if g.index == sel.gpu), None)
        if g is None or g.health != HEALTHY:
            return f"placed on GPU {sel.gpu}, which is not HEALTHY"
        if g.memory_free is None or g.memory_free < sel.memory:
            return f"placed on GPU {sel.gpu} with {g.memory_free} bytes free < {sel.memory}"
    return None


def run(registry: Registry, iterations: int = 1000, policy: str = "default", gpus: list[GpuSnapshot] | None = None,
        select: Selector = selector_mod.select, clock: Callable[[], float] | None = None,
        scaling_sizes: Iterable[int] = SCALING_SIZES) -> Result:

    clock = clock or time.perf_counter
    r = Result(iterations, policy, registry.digest)
    # 1. time per category; 2. consistency from the same runs (same input every time)
    for cid in registry.categories:
        samples, picks, err = time_selections(select, registry, cid, Constraints(), gpus, policy, iterations, clock)
        if err is not None:
            r.failures.append(f"category {cid}: selection failed: {err}")
            r.categories[cid] = {"error": str(err)}
            continue
        top, top_n = picks.most_common(1)[0]
        consistency = top_n / iterations
        r.categories[cid] = dict(Timing(samples).stats(), model=top.model, gpu=top.gpu, consistency_ratio=consistency,
                                 distinct_picks=len(picks))
        if consistency < 1.0:
            r.failures.append(f"category {cid}: consistency {consistency:.1%} (same input, {len(picks)} answers)")
    # 3. constraint combinations: the legacy four, then GPU-aware on an 8-GPU fleet
    fleet = bench_fleet()
    for name, cid, c in LEGACY_COMBINATIONS + GPU_COMBINATIONS:
        on = fleet if name.startswith("GPU-aware") else gpus
        entry: dict[str, Any] = {"name": name, "category": cid}
        if cid not in registry.categories:
            r.failures.append(f"{name}: category {cid} is not in the registry")
            entry["error"] = f"unknown category {cid}"
            r.combinations.append(entry)
            continue
        samples, picks, err = time_selections(select, registry, cid, c, on, policy, iterations, clock)
        if err is not None:
            r.failures.append(f"{name}: selection failed: {err}")
            entry["error"] = str(err)
        else:
            sel = select(registry, cid, c, on, policy)
            entry.update(Timing(samples).stats(), model=sel.model, variant=sel.variant, gpu=sel.gpu,
                         final_score=sel.final_score, fallback=sel.fallback)
            broken = meets(registry, sel, c, on)
            if broken:
                r.failures.append(f"{name}: {broken}")
                entry["error"] = broken
            if len(picks) > 1:
                r.failures.append(f"{name}: {len(picks)} different answers to the same input")
        r.combinations.append(entry)
    # 4. coverage: listed models present in the registry; nothing listed is "uncovered", not 100 %
    for cid, listed in registry.listed.items():
        present = [n for n in listed if n in registry.models]
        if not listed:
            r.coverage[cid] = {"listed": 0, "present": 0, "ratio": None, "uncovered": True}
            r.warnings.append(f"category {cid}: uncovered (lists no models; served by fallback only)")
            continue
        ratio = len(present) / len(listed)
        r.coverage[cid] = {"listed": len(listed), "present": len(present), "ratio": ratio, "uncovered": False,
                           "missing": [n for n in listed if n not in registry.models]}
        if ratio < 1.0:
            r.failures.append(f"category {cid}: coverage {ratio:.0%}, missing "
                              f"{', '.join(r.coverage[cid]['missing'])}")
    # 5. scaling on synthetic registries
    for size in scaling_sizes:
        reg = synthetic.build(size)
        n = max(50, iterations // 5)
        samples, _, err = time_selections(select, reg, "code", Constraints(), None, policy, n, clock)
        if err is not None:
            r.failures.append(f"scaling at {size} models: {err}")
            continue
        r.scaling[str(size)] = {"models": size, "median_s": statistics.median(samples),
                                "p99_s": nearest_rank_sorted(sorted(samples), 0.99), "count": n}
    return r
