"""The GPU-aware model selector. Pure: no I/O and no clock; the caller passes the registry, the
constraints and the GPU snapshots (with their health already judged).

Scoring (`default` policy), for each candidate that meets every constraint:
    base   = 50 + 30 if preferred + 20 if the chosen variant needs < 4 GB (else +10 if < 8 GB)
    bonus  = 0.2 x the weighted mean of the category's benchmark scores (0-100), when the model has any
    score  = (base + bonus) x confidence                       confidence: 0.95 / 0.9 / 0.7
    final  = score x (1 - load) on the chosen GPU, when GPUs are given
The `legacy` policy is the old selector's: final = base, times (1 - load) when GPUs are given.
Ties: higher final score, then earlier in the category's candidate list, then model name.
"""

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from exporter.common.memory import format_size
from exporter.gpu.health import HEALTHY, load_score
from exporter.gpu.snapshot import GpuSnapshot
from exporter.routing.registry import Entry, Registry, fallback_entries

POLICIES = ("default", "legacy")
Place = tuple[float, int, int]  # a healthy GPU: (load score, index, free bytes)
Best = tuple[Entry, tuple[str, int], float, int | None, float | None]  # entry, variant, score, gpu, load
GB = 10**9


@dataclass(frozen=True)
class Constraints:
    max_memory: int | None = None  # bytes
    agent_type: str | None = None
    prefer: frozenset[str] = frozenset()
    exclude: frozenset[str] = frozenset()
    min_benchmark: float | None = None
    min_context: int | None = None


NONE = Constraints()


class Selection(NamedTuple):
    """A NamedTuple rather than a frozen dataclass: building one is 5x cheaper, and the selector
    builds one per call."""

    category: str
    model: str
    variant: str
    memory: int  # bytes the chosen variant needs
    gpu: int | None
    final_score: float
    confidence: float
    primary: bool
    load: float | None  # load score of the chosen GPU
    policy: str
    fallback: bool = False
    reason: str = ""


class SelectionError(Exception):
    pass


class UnknownCategory(SelectionError):
    def __init__(self, category: str | None, suggestions: list[str]) -> None:
        self.category, self.suggestions = category, suggestions
        hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"unknown category {category!r}{hint}")


class NoSuitableModel(SelectionError):
    def __init__(self, category: str, rejections: list[tuple[str, str]]) -> None:
        self.category, self.rejections = category, rejections  # [(model, reason)]
        why = "; ".join(f"{m}: {r}" for m, r in rejections) or "the category has no candidate models"
        super().__init__(f"no suitable model for {category!r}: {why}")


def select(registry: Registry, category: str | None = None, constraints: Constraints = NONE,
           gpus: Sequence[GpuSnapshot] | None = None, policy: str = "default") -> Selection:
    """The best model for `category` under `constraints`, placed on a GPU when `gpus` is given."""
    if category is None:
        category = registry.default_category
    entries = registry.candidates.get(category) if category is not None else None
    if category is None or entries is None:
        raise UnknownCategory(category, _close(category, registry.categories))
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}")
    legacy = policy == "legacy"
    places = _places(gpus) if gpus is not None else None
    best = _best(entries, constraints, places, legacy)
    if best is not None:
        return _selection(category, best, legacy, False, "")
    fb = _fallback(registry, category, constraints, places, legacy)
    if fb is not None:
        return fb
    raise NoSuitableModel(category, [(e.model.name, explain(e, constraints, places))
                                     for e in entries])


def _places(gpus: Iterable[GpuSnapshot]) -> list[Place]:
    """Healthy GPUs as (load, index, free bytes), least loaded first."""
    return sorted((load_score(g), g.index, g.memory_free) for g in gpus
                  if g.health == HEALTHY and g.memory_free is not None)


def _best(entries: Iterable[Entry], c: Constraints, places: list[Place] | None, legacy: bool) -> Best | None:
    best: Best | None = None
    best_key: tuple[float, int] | None = None
    max_memory, agent, exclude = c.max_memory, c.agent_type, c.exclude
    for e in entries:
        m = e.model
        if exclude and m.name in exclude:
            continue
        if agent is not None and agent not in m.agent_types:
            continue
        if c.min_context is not None and (m.context_length or 0) < c.min_context:
            continue
        if c.min_benchmark is not None and (e.benchmark is None or e.benchmark < c.min_benchmark):
            continue
        if max_memory is not None and m.variants[0][1] > max_memory:
            continue
        load = gpu = None
        if places is None:
            variant = _variant(m.variants, max_memory)
        else:
            # The least-loaded healthy GPU that holds the smallest variant, then the largest variant
            # that both the limit and that GPU allow.
            for place in places:
                if place[2] >= m.variants[0][1]:
                    load, gpu = place[0], place[1]
                    break
            else:
                continue
            variant = _variant(m.variants, place[2] if max_memory is None else min(max_memory, place[2]))
        if variant is None:  # cannot happen: the smallest variant fits both limits, checked above
            continue
        score = _score(e, variant[1], m.name in c.prefer, legacy)
        if load is not None:
            score *= 1.0 - load
        key = (score, -e.position)
        if best is None or best_key is None or key > best_key or (key == best_key and m.name < best[0].model.name):
            best, best_key = (e, variant, score, gpu, load), key
    return best


def _variant(variants: tuple[tuple[str, int], ...], limit: int | None) -> tuple[str, int] | None:
    """The largest variant within `limit` bytes (any, when there is no limit)."""
    if limit is None:
        return variants[-1]
    fit = None
    for v in variants:
        if v[1] <= limit:
            fit = v
    return fit


def _score(e: Entry, memory: int, preferred: bool, legacy: bool) -> float:
    base = 50.0 + (30.0 if preferred else 0.0) + (20.0 if memory < 4 * GB else 10.0 if memory < 8 * GB else 0.0)
    if legacy:
        return base
    if e.benchmark is not None:
        base += 0.2 * e.benchmark
    return base * e.confidence


def _selection(category: str, best: Best, legacy: bool, fallback: bool, reason: str) -> Selection:
    e, variant, score, gpu, load = best
    return Selection(category, e.model.name, variant[0], variant[1], gpu, round(score, 6), e.confidence,
                     e.primary, load, "legacy" if legacy else "default", fallback, reason)


def _fallback(registry: Registry, category: str, c: Constraints, places: list[Place] | None,
              legacy: bool) -> Selection | None:
    """The routing rules' fallback model when it meets the constraints, else the best other model in
    the registry that does (entries precomputed by the registry, confidence 0.5 when foreign)."""
    rule, others = fallback_entries(registry, category)
    why = f"no candidate of {category!r} met the constraints"
    if rule is not None:
        best = _best((rule,), c, places, legacy)
        if best is not None:
            return _selection(category, best, legacy, True, why + "; routing fallback_model used")
        why += f"; nor did fallback_model {rule.model.name}"
    best = _best(others, c, places, legacy)
    if best is not None:
        return _selection(category, best, legacy, True, why + "; best other model used")
    return None


def explain(e: Entry, c: Constraints, places: list[Place] | None) -> str:
    """Which constraint removed candidate `e` (used only on the failure path)."""
    m = e.model
    if m.name in c.exclude:
        return "excluded"
    if c.agent_type is not None and c.agent_type not in m.agent_types:
        return f"agent type {c.agent_type} not supported ({', '.join(sorted(m.agent_types)) or 'none'})"
    if c.min_context is not None and (m.context_length or 0) < c.min_context:
        return f"context length {m.context_length or 'unknown'} < {c.min_context}"
    if c.min_benchmark is not None:
        if e.benchmark is None:
            return "no benchmark scores for this category"
        if e.benchmark < c.min_benchmark:
            return f"benchmark {e.benchmark:.1f} < {c.min_benchmark:g}"
    if c.max_memory is not None and _variant(m.variants, c.max_memory) is None:
        return f"needs {format_size(m.min_memory)} > max {format_size(c.max_memory)}"
    if places is not None:
        if not places:
            return "no healthy GPU"
        return f"no healthy GPU with {format_size(m.min_memory)} free"
    return "not selected"


def _close(category: str | None, categories: Iterable[str]) -> list[str]:
    return difflib.get_close_matches(str(category), list(categories), n=3, cutoff=0.5)
