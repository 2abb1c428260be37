"""Synthetic registries of any size, for scaling benchmarks: deterministic for a given size."""

import random
from typing import Any

from exporter.routing import registry

CATEGORIES = ("math", "code", "reasoning", "summarization", "time_series", "relational", "graph",
              "vector_search", "ocr_extraction")
AGENTS = ("inference", "tool", "orchestrator")


def build(n_models: int, seed: int = 1) -> registry.Registry:
    """A Registry of `n_models` models over the nine legacy categories."""
    rng = random.Random(seed)
    models: list[dict[str, Any]] = []
    for i in range(n_models):
        cats = rng.sample(CATEGORIES, rng.randint(1, 3))
        gb = rng.choice((1, 2, 3, 6, 7, 12, 20, 24, 40, 48))
        memory = f"{gb}GB" if rng.random() < 0.7 else f"{gb}GB (Q4_K_M), {gb * 3 // 2}GB (Q8_0)"
        models.append({
            "name": f"model-{i:05d}", "hf_repo": f"synthetic/model-{i:05d}", "memory": memory,
            "categories": cats, "agent_types": rng.sample(AGENTS, rng.randint(1, 2)),
            "context_length": rng.choice((2048, 4096, 8192, 32768, 131072)),
            "benchmarks": {f"B{cats[0]}": round(rng.uniform(20, 90), 1)},
        })
    categories = {
        c: {"models": [m["name"] for m in models if m["categories"][0] == c][:5],
            "agent_types": list(AGENTS), "benchmarks": {f"B{c}": 1.0}}
        for c in CATEGORIES
    }
    data = {"models": models, "categories": categories,
            "routing": {"default_category": "code", "fallback_model": models[0]["name"]}}
    return registry.build(data, {}, f"<synthetic {n_models}>", f"synthetic-{n_models}-{seed}")
