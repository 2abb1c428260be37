"""Convert the legacy MODEL_REGISTRY.json and task_categories.json into the orchex registry YAML.

Kept: everything the selector uses (memory variants, categories, agent types, context length,
numeric benchmark scores, category candidates, benchmark lists, routing rules). Dropped, with a note:
benchmark values that are not numbers, and free-text fields the selector never reads.
"""

import json
from collections.abc import Callable
from typing import Any

import yaml

from exporter.common.memory import format_size, parse_variants
from exporter.errors import UsageError
from exporter.inputfile import read_regular

MAX_JSON_BYTES = 16 << 20


def _read_json(path: str) -> Any:
    data = read_regular(path, MAX_JSON_BYTES)
    try:
        return json.loads(data)
    except json.JSONDecodeError as e:
        raise UsageError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from None
    except UnicodeDecodeError as e:
        raise UsageError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except RecursionError:
        raise UsageError(f"{path}: invalid JSON: nested too deeply") from None


def _text(v: Any) -> bool:
    return isinstance(v, str)


def _names(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) and x for x in v)


def _size(v: Any) -> bool:
    return isinstance(v, (str, int, float)) and not isinstance(v, bool)


# The shape of what convert() reads, key by key; anything else in the files is ignored.
MODEL_SHAPE: dict[str, tuple[Callable[[Any], bool], str]] = {
    "name": (lambda v: isinstance(v, str) and bool(v), "a non-empty string"),
    "hf_repo": (_text, "a string"), "description": (_text, "a string"), "gpu_memory": (_size, "a size"),
    "orchestration_categories": (_names, "a list of names"), "agent_types": (_names, "a list of names"),
    "specifications": (lambda v: isinstance(v, dict), "an object"),
    "benchmarks": (lambda v: isinstance(v, dict), "an object"),
}
CATEGORY_SHAPE: dict[str, tuple[Callable[[Any], bool], str]] = {
    "name": (_text, "a string"), "description": (_text, "a string"), "models": (_names, "a list of names"),
    "agent_types": (_names, "a list of names"),
    "benchmarks": (lambda v: isinstance(v, list) and all(
        isinstance(b, str) or isinstance(b, dict) and isinstance(b.get("name"), str) for b in v),
        "a list of names or objects with a name"),
}


def _check_shape(path: str, where: str, item: Any, shape: dict[str, tuple[Callable[[Any], bool], str]],
                 required: tuple[str, ...] = ()) -> None:
    if not isinstance(item, dict):
        raise UsageError(f"{path}: {where}: must be an object")
    for key in required:
        if key not in item:
            raise UsageError(f"{path}: {where}: has no {key!r}")
    for key, (ok, what) in shape.items():
        if key in item and item[key] is not None and not ok(item[key]):
            raise UsageError(f"{path}: {where}.{key}: must be {what}")


def _check_files(registry_path: str, reg: Any, categories_path: str, cats: Any) -> None:
    """Every part convert() reads has the type it needs, or one line names the file and the part."""
    if not isinstance(reg, dict) or not isinstance(reg.get("models"), list):
        raise UsageError(f"{registry_path}:1: expected an object with a 'models' list")
    for i, m in enumerate(reg["models"]):
        _check_shape(registry_path, f"models[{i}]", m, MODEL_SHAPE, required=("name",))
    raw = cats.get("categories") if isinstance(cats, dict) else None
    if not isinstance(raw, (dict, list)):
        raise UsageError(f"{categories_path}:1: expected an object with 'categories'")
    for cid, c in raw.items() if isinstance(raw, dict) else enumerate(raw):
        _check_shape(categories_path, f"categories[{cid!r}]", c, CATEGORY_SHAPE)
        if isinstance(raw, list) and not isinstance(c.get("id") or c.get("name"), str):
            raise UsageError(f"{categories_path}: categories[{cid}]: has no 'id' or 'name'")
    rules = cats.get("routing_rules")
    if rules is not None:
        _check_shape(categories_path, "routing_rules", rules, {
            "default_category": (_text, "a string"), "fallback_model": (_text, "a string"),
            "gpu_constraints": (lambda v: isinstance(v, dict) and all(isinstance(x, dict) for x in v.values()),
                                "an object of objects")})


def convert(registry_path: str, categories_path: str) -> tuple[dict[str, Any], list[str]]:
    """(registry dict ready for YAML, notes): notes say what was dropped or added."""
    reg, cats = _read_json(registry_path), _read_json(categories_path)
    _check_files(registry_path, reg, categories_path, cats)
    notes: list[str] = []
    raw_cats = cats["categories"]
    if isinstance(raw_cats, list):  # the pre-migration, array-shaped file
        raw_cats = {c.get("id") or c.get("name"): c for c in raw_cats}

    models = [_model(m, notes) for m in reg["models"]]
    categories = _categories(raw_cats, models, notes)

    rules = (cats.get("routing_rules") or {}) if isinstance(cats, dict) else {}
    routing = {}
    if rules.get("default_category"):
        routing["default_category"] = rules["default_category"]
    if rules.get("fallback_model"):
        routing["fallback_model"] = rules["fallback_model"]
    classes = {k: v["max_model_memory"] for k, v in (rules.get("gpu_constraints") or {}).items()
               if isinstance(v, dict) and "max_model_memory" in v}
    if classes:
        routing["gpu_classes"] = classes
    return {"version": 1, "models": models, "categories": categories, "routing": routing}, notes


def _model(m: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """One legacy model entry as a registry model."""
    name = m.get("name")
    out = {"name": name, "hf_repo": m.get("hf_repo", "")}
    if m.get("description"):
        out["description"] = m["description"]
    try:
        variants = parse_variants(m.get("gpu_memory", ""))
        multi = len(variants) > 1
        out["memory"] = {v: format_size(b) for v, b in variants} if multi else m["gpu_memory"]
    except ValueError as e:
        notes.append(f"model {name}: gpu_memory kept as written, it does not parse: {e}")
        out["memory"] = m.get("gpu_memory", "")
    out["categories"] = list(m.get("orchestration_categories") or [])
    out["agent_types"] = list(m.get("agent_types") or [])
    ctx = (m.get("specifications") or {}).get("context_length")
    if ctx is not None:
        try:
            out["context_length"] = int(ctx)
        except (ValueError, TypeError, OverflowError):
            notes.append(f"model {name}: context_length {ctx!r} is not a number; dropped")
    scores = {}
    for bench, value in (m.get("benchmarks") or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            scores[bench] = value
        else:
            notes.append(f"model {name}: benchmark {bench}={value!r} is not a number; dropped")
    if scores:
        out["benchmarks"] = scores
    return out


def _categories(raw_cats: dict[str, Any], models: list[dict[str, Any]], notes: list[str]) -> dict[str, Any]:
    """The legacy categories, plus any category that models declare but the file lacks."""
    categories = {}
    for cid, c in raw_cats.items():
        categories[cid] = {
            "name": c.get("name", cid),
            "description": c.get("description", ""),
            "models": list(c.get("models") or []),
            "agent_types": list(c.get("agent_types") or []),
            "benchmarks": {b["name"] if isinstance(b, dict) else str(b): 1.0
                           for b in c.get("benchmarks") or []},
        }
    # A category that models declare but the categories file lacks would make those models unroutable
    # for it and would change which category is their primary; keep it as a category of its own.
    for m in models:
        for cid in m["categories"]:
            if cid not in categories:
                declared = [x for x in models if cid in x["categories"]]
                categories[cid] = {
                    "name": cid, "description": "declared by models; absent from the legacy categories file",
                    "models": [x["name"] for x in declared],
                    "agent_types": sorted({a for x in declared for a in x["agent_types"]}),
                    "benchmarks": {},
                }
                notes.append(f"category {cid}: declared by {', '.join(x['name'] for x in declared)} "
                             "but missing from the categories file; added")
    return categories


def dump(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110)
