"""The model registry: models, task categories and routing rules, read from YAML and validated.

Every problem in a file is collected and reported at once as `FILE:LINE: message`.
"""

import hashlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeGuard

from exporter import yamlfile
from exporter.common.memory import parse_size, parse_variants
from exporter.errors import ProblemList

Lines = dict[tuple[Any, ...], int]  # key path -> line, from exporter.yamlfile
Bad = Callable[[tuple[Any, ...], str], None]  # report a problem at a key path
MAX_NAME = 200
NAME_RULE = f"text of 1 to {MAX_NAME} printable characters"
MAX_TEXT = 2000
TEXT_RULE = f"one line of at most {MAX_TEXT} printable characters"
MAX_CONTEXT = 100_000_000  # tokens
MAX_BENCHMARK = 1_000_000.0  # benchmark scores and weights: finite and not negative
AGENT_TYPES = ("inference", "tool", "orchestrator")
VERSIONS = (1,)  # registry formats this orchex reads; a later format must not be read as this one
DEFAULT_PATH = os.path.join(os.path.dirname(__file__), "default_registry.yaml")
DEFAULT_GPU_CLASSES = {"t4_16gb": 14 * 10**9, "a100_40gb": 38 * 10**9, "a100_80gb": 76 * 10**9}


@dataclass(frozen=True)
class Model:
    name: str
    hf_repo: str
    variants: tuple[tuple[str, int], ...]  # ((variant, bytes), ...) ascending by bytes
    categories: tuple[str, ...]  # first is the primary
    agent_types: frozenset[str]
    context_length: int | None = None
    benchmarks: dict[str, float] = field(default_factory=dict, hash=False, compare=False)
    description: str = ""

    @property
    def min_memory(self) -> int:
        return self.variants[0][1]


@dataclass(frozen=True)
class Category:
    id: str
    name: str
    models: tuple[str, ...]  # candidate names in preference order
    agent_types: frozenset[str]
    benchmarks: dict[str, float] = field(default_factory=dict, hash=False, compare=False)  # name -> weight
    description: str = ""


@dataclass(frozen=True)
class Entry:
    """A model as a candidate of one category, with what the selector derives from that pairing."""

    model: Model
    position: int  # order among the category's candidates: the tie-breaker after the score
    confidence: float  # 0.95 sole category, 0.9 primary, 0.7 secondary
    primary: bool
    benchmark: float | None  # weighted mean of the category's benchmarks the model has scores for


@dataclass(frozen=True, eq=False)
class Registry:
    models: dict[str, Model]  # name -> Model, in file order
    categories: dict[str, Category]  # id -> Category, in file order
    default_category: str | None
    fallback_model: str | None
    gpu_classes: dict[str, int]  # name -> bytes
    digest: str  # sha256 of the source text: identifies the registry in pushed benchmark results
    source: str = ""
    # category id -> (Entry, ...) in preference order
    candidates: dict[str, tuple[Entry, ...]] = field(default_factory=dict)
    # category id -> names its file lists, present or not
    listed: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # memo of fallback_entries(), filled on first use
    fallbacks: dict[str, tuple[Entry | None, tuple[Entry, ...]]] = field(default_factory=dict)


def entry(model: Model, category: Category, position: int) -> Entry:
    """How `model` stands as a candidate for `category`."""
    cats = model.categories
    if category.id in cats:
        primary = cats[0] == category.id
        confidence = 0.95 if len(cats) == 1 else 0.9 if primary else 0.7
    else:  # listed by the category without declaring it: a secondary use
        primary, confidence = False, 0.7
    weights = {b: w for b, w in category.benchmarks.items() if b in model.benchmarks and w > 0}
    total = sum(weights.values())
    bench = sum(model.benchmarks[b] * w for b, w in weights.items()) / total if total else None
    return Entry(model, position, confidence, primary, bench)


def fallback_entries(registry: Registry, cid: str) -> tuple[Entry | None, tuple[Entry, ...]]:
    """(the routing rules' fallback model as an Entry or None, every other model as Entries) for
    category `cid`; a model foreign to the category has confidence 0.5. Built on first use and kept:
    a 1,000-model registry would otherwise pay for 9,000 entries it may never need."""
    got = registry.fallbacks.get(cid)
    if got is None:
        cat, models, rule = registry.categories[cid], registry.models, registry.fallback_model

        def as_entry(m: Model, i: int) -> Entry:
            e = entry(m, cat, i)
            foreign = m.name not in cat.models and cid not in m.categories
            return replace(e, confidence=0.5) if foreign else e

        first = as_entry(models[rule], 0) if rule in models else None
        got = registry.fallbacks[cid] = (
            first, tuple(as_entry(m, i) for i, m in enumerate(models.values()) if m.name != rule))
    return got


def _candidates(models: dict[str, Model], categories: dict[str, Category]) -> dict[str, tuple[Entry, ...]]:
    """The category's own list first, then the models that declare the category, in file order."""
    out = {}
    for cid, cat in categories.items():
        names = list(cat.models) + [m.name for m in models.values()
                                    if cid in m.categories and m.name not in cat.models]
        out[cid] = tuple(entry(models[n], cat, i) for i, n in enumerate(names) if n in models)
    return out


def load(path: str | None = None, allow_missing_models: bool = False) -> Registry:
    path = path or DEFAULT_PATH
    data, lines = yamlfile.load(path)
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return build(data, lines, path, digest, allow_missing_models)


def loads(text: str, path: str = "<string>") -> Registry:
    data, lines = yamlfile.loads(text, path)
    return build(data, lines, path, hashlib.sha256(text.encode()).hexdigest())


def build(data: Any, lines: Lines, path: str, digest: str = "", allow_missing_models: bool = False) -> Registry:
    """Registry from parsed YAML, or ProblemList naming every problem with its line.

    `allow_missing_models` lets a category name models the registry lacks (they are left out of its
    candidates): `orchex bench` measures such a registry and reports its coverage instead of refusing."""
    problems: list[tuple[int | None, str]] = []

    def bad(at: tuple[Any, ...], msg: str) -> None:
        while at and at not in lines:
            at = at[:-1]
        problems.append((lines.get(at, 0), msg))

    if not isinstance(data, dict):
        raise ProblemList(path, [(1, "a registry is a mapping with keys models, categories, routing")])
    raw_models = data.get("models")
    if isinstance(raw_models, list) and any(isinstance(m, dict) and "gpu_memory" in m for m in raw_models) \
            or "routing_rules" in data:
        raise ProblemList(path, [(1, "this is a legacy registry or categories file: convert it with "
                                     "`orchex registry import-legacy MODEL_REGISTRY.json task_categories.json`")])
    for key in data:
        if key not in ("version", "models", "categories", "routing"):
            bad((key,), f"unknown top-level key {key!r}")
    if "version" in data and (isinstance(data["version"], bool) or data["version"] not in VERSIONS):
        bad(("version",), f"unknown registry version {data['version']!r} (this orchex reads version "
                          f"{', '.join(map(str, VERSIONS))})")
    placed = _models(_typed(data, "models", list, "a list", bad), bad)
    models = {model.name: model for _, model in placed}
    raw_cats = _typed(data, "categories", dict, "a mapping of id to category", bad)
    categories = {}
    for cid, c in raw_cats.items():
        if not _name_ok(cid):
            bad(("categories", cid), f"category id {cid!r}: {NAME_RULE}")
            continue
        cat = _category(cid, c, ("categories", cid), bad)
        if cat is not None:
            categories[cat.id] = cat
    _cross_check(placed, models, categories, allow_missing_models, bad)
    default_category, fallback, gpu_classes = _routing(_typed(data, "routing", dict, "a mapping", bad),
                                                       models, categories, bad)
    if problems:
        raise ProblemList(path, problems)
    return Registry(models, categories, default_category, fallback, gpu_classes, digest, str(path),
                    _candidates(models, categories), {cid: c.models for cid, c in categories.items()})


def _cross_check(placed: list[tuple[int, Model]], models: dict[str, Model], categories: dict[str, Category],
                 allow_missing_models: bool, bad: Bad) -> None:
    """Every category a model names exists, and every model a category names."""
    for i, model in placed:
        for j, cid in enumerate(model.categories):
            if cid not in categories:
                bad(("models", i, "categories", j), f"model {model.name!r} names unknown category {cid!r}")
    if not allow_missing_models:
        for cid, cat in categories.items():
            for j, name in enumerate(cat.models):
                if name not in models:
                    bad(("categories", cid, "models", j), f"category {cid!r} names unknown model {name!r}")


def _typed(data: dict[str, Any], key: str, kind: type, what: str, bad: Bad) -> Any:
    """data[key] when it is of `kind` (an empty one when absent), else an empty one and a problem."""
    value = data.get(key)
    if value is None:
        return kind()
    if not isinstance(value, kind):
        bad((key,), f"{key} must be {what}")
        return kind()
    return value


def _models(raw: list[Any], bad: Bad) -> list[tuple[int, Model]]:
    """(index in the file, model) of each model kept; duplicates are problems."""
    placed: list[tuple[int, Model]] = []
    seen: set[str] = set()
    for i, m in enumerate(raw):
        model = _model(m, ("models", i), bad)
        if model is None:
            continue
        if model.name in seen:
            bad(("models", i, "name"), f"duplicate model {model.name!r}")
            continue
        seen.add(model.name)
        placed.append((i, model))
    return placed


def _routing(routing: dict[str, Any], models: dict[str, Model], categories: dict[str, Category],
             bad: Bad) -> tuple[str | None, str | None, dict[str, int]]:
    """(default category, fallback model, GPU classes) from the `routing:` section."""
    for key in routing:
        if key not in ("default_category", "fallback_model", "gpu_classes"):
            bad(("routing", key), f"unknown routing key {key!r}")
    default_category = routing.get("default_category")
    if default_category is not None and (not isinstance(default_category, str)
                                         or default_category not in categories):
        bad(("routing", "default_category"), f"default_category {default_category!r} is not a category")
    fallback = routing.get("fallback_model")
    if fallback is not None and (not isinstance(fallback, str) or fallback not in models):
        bad(("routing", "fallback_model"), f"fallback_model {fallback!r} is not a model")
    gpu_classes = dict(DEFAULT_GPU_CLASSES)
    raw_classes = routing.get("gpu_classes", {})
    if not isinstance(raw_classes, dict):
        bad(("routing", "gpu_classes"), "gpu_classes must map a class name to a memory size")
        raw_classes = {}
    for name, size in raw_classes.items():
        try:
            gpu_classes[str(name)] = parse_size(size)
        except ValueError as e:
            bad(("routing", "gpu_classes", name), f"GPU class {name!r}: {e}")
    return default_category, fallback, gpu_classes


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _name_ok(v: Any) -> TypeGuard[str]:
    """A model or category name: it becomes a label value and a CSV field, so text of sane length
    without control characters."""
    return isinstance(v, str) and 0 < len(v) <= MAX_NAME and v.isprintable()


def _text_ok(v: Any) -> bool:
    return isinstance(v, str) and len(v) <= MAX_TEXT and v.isprintable()


def _strings(value: Any, at: tuple[Any, ...], what: str, bad: Bad) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(_name_ok(v) for v in value):
        bad(at, f"{what} must be a list of names ({NAME_RULE})")
        return []
    return value


def _model(m: Any, at: tuple[Any, ...], bad: Bad) -> Model | None:
    if not isinstance(m, dict):
        bad(at, "a model is a mapping with at least name and memory")
        return None
    known = ("name", "hf_repo", "memory", "categories", "agent_types", "context_length", "benchmarks",
             "description")
    for key in m:
        if key not in known:
            bad(at + (key,), f"unknown model key {key!r}")
    name = m.get("name")
    if not _name_ok(name):
        bad(at + ("name",) if "name" in m else at, f"a model needs a name: {NAME_RULE}")
        return None
    # A model with a bad field is still kept under its name, so that the categories naming it do not
    # add knock-on "unknown model" problems; any problem refuses the registry all the same.
    variants: tuple[tuple[str, int], ...] = (("", 0),)
    try:
        variants = tuple(sorted(parse_variants(m.get("memory", "")), key=lambda v: v[1]))
    except ValueError as e:
        bad(at + ("memory",), f"model {name!r}: unparseable memory: {e}")
    else:
        if any(size <= 0 for _, size in variants):
            bad(at + ("memory",), f"model {name!r}: memory must be more than 0 (the selector places models by it)")
    agents = _strings(m.get("agent_types"), at + ("agent_types",), "agent_types", bad)
    for j, a in enumerate(agents):
        if a not in AGENT_TYPES:
            bad(at + ("agent_types", j), f"model {name!r}: unknown agent type {a!r} "
                f"(expected one of {', '.join(AGENT_TYPES)})")
    ctx = m.get("context_length")
    if ctx is not None and (isinstance(ctx, bool) or not isinstance(ctx, int) or ctx <= 0):
        bad(at + ("context_length",), f"model {name!r}: context_length must be a positive integer")
        ctx = None
    elif ctx is not None and ctx > MAX_CONTEXT:
        bad(at + ("context_length",), f"model {name!r}: context_length must be at most {MAX_CONTEXT:,} tokens")
        ctx = None
    benchmarks = m.get("benchmarks", {})
    if not isinstance(benchmarks, dict) or not all(isinstance(k, str) and k for k in benchmarks) or not all(
            _finite(v) and 0 <= v <= MAX_BENCHMARK for v in benchmarks.values()):
        bad(at + ("benchmarks",), f"model {name!r}: benchmarks must map a benchmark name to a score "
            f"from 0 to {MAX_BENCHMARK:g}")
        benchmarks = {}
    for key in ("hf_repo", "description"):
        if key in m and not _text_ok(m[key]):
            bad(at + (key,), f"model {name!r}: {key} must be {TEXT_RULE}")
    cats = _strings(m.get("categories"), at + ("categories",), "categories", bad)
    return Model(name, str(m.get("hf_repo") or ""), variants, tuple(cats), frozenset(agents), ctx,
                 {str(k): float(v) for k, v in benchmarks.items()}, str(m.get("description") or ""))


def _category(cid: str, c: Any, at: tuple[Any, ...], bad: Bad) -> Category | None:
    if not isinstance(c, dict):
        bad(at, f"category {cid!r} must be a mapping")
        return None
    for key in c:
        if key not in ("name", "description", "models", "agent_types", "benchmarks"):
            bad(at + (key,), f"unknown category key {key!r}")
    names = _strings(c.get("models"), at + ("models",), "models", bad)
    if len(set(names)) != len(names):
        bad(at + ("models",), f"category {cid!r} lists a model twice")
    agents = _strings(c.get("agent_types"), at + ("agent_types",), "agent_types", bad)
    for j, a in enumerate(agents):
        if a not in AGENT_TYPES:
            bad(at + ("agent_types", j), f"category {cid!r}: unknown agent type {a!r}")
    for key in ("name", "description"):
        if key in c and not (_name_ok(c[key]) if key == "name" else _text_ok(c[key])):
            bad(at + (key,), f"category {cid!r}: {key} must be {NAME_RULE if key == 'name' else TEXT_RULE}")
    weights = c.get("benchmarks", {})
    if isinstance(weights, list) and all(isinstance(b, str) and b for b in weights):
        weights = {b: 1.0 for b in weights}  # a plain list of names weighs each benchmark 1
    if not isinstance(weights, dict) or not all(isinstance(k, str) and k for k in weights) or not all(
            _finite(w) and 0 <= w <= MAX_BENCHMARK for w in weights.values()):
        bad(at + ("benchmarks",), f"category {cid!r}: benchmarks must map a name to a weight >= 0")
        weights = {}
    return Category(cid, str(c.get("name") or cid), tuple(names), frozenset(agents),
                    {str(k): float(v) for k, v in weights.items()}, str(c.get("description") or ""))
