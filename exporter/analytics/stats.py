"""Every figure of the report, computed from a Tally. Pure: no I/O, no clock.

Legacy thresholds (exporter/policy.py, which the dashboards share): a secondary-category share above
30 % is good multi-category utilisation; a mean secondary confidence below 0.75 is low confidence."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from exporter.common.quantile import RELATIVE_ERROR, grouped_nearest_ranks, sketch_value
from exporter.policy import POLICY
from exporter.selectionlog.tally import Tally

SCHEMA = "orchex.analytics/2"  # /2 added duration_percentiles
SECONDARY_SHARE_GOOD = POLICY.secondary_share_good
SECONDARY_CONFIDENCE_LOW = POLICY.secondary_confidence_low
PERCENTILES = (0.50, 0.95, 0.99)


def _duration_percentiles(t: Tally) -> tuple[dict[str, dict[str, float | None]], dict[str, float | None]]:
    """p50, p95 and p99 of each category and of all, by nearest rank over exact durations, or over
    sketch buckets (each within RELATIVE_ERROR of the durations it counts) once the log held more
    distinct durations than are kept exactly."""
    def named(values: Sequence[float | None]) -> dict[str, float | None]:
        return {f"duration_ms_p{round(q * 100)}": v for q, v in zip(PERCENTILES, values)}

    if t.sketch is None:
        by_category, overall = grouped_nearest_ranks(t.durations, PERCENTILES)
        return {c: named(v) for c, v in by_category.items()}, named(overall)
    by_bucket, buckets = grouped_nearest_ranks(t.sketch, PERCENTILES)
    return ({c: named(list(map(sketch_value, v))) for c, v in by_bucket.items()},
            named([None if i is None else sketch_value(i) for i in buckets]))


def _by_requests(items: Iterable[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """Rows sorted by requests (most first), then name: never hash order."""
    return sorted(items, key=lambda kv: (-kv[1]["requests"], kv[0]))


def compute(t: Tally, files: list[str], generated: str) -> dict[str, Any]:
    n = t.rows
    cats: dict[str, dict[str, Any]] = {}
    models: dict[str, dict[str, Any]] = {}
    gpus: dict[str, int] = {}
    for (c, m, primary, g), k in t.selections.items():
        cat = cats.setdefault(c, {"requests": 0, "models": set(), "fallbacks": 0})
        cat["requests"] += k
        cat["models"].add(m)
        mod = models.setdefault(m, {"requests": 0, "categories": set(), "primary": 0, "secondary": 0})
        mod["requests"] += k
        mod["categories"].add(c)
        mod["primary" if primary else "secondary"] += k
        gpus[g] = gpus.get(g, 0) + k
    score_by_cat: dict[str, float] = {}
    score_by_model: dict[str, float] = {}
    for (c, m), s in t.score_sum.items():
        score_by_cat[c] = score_by_cat.get(c, 0.0) + s
        score_by_model[m] = score_by_model.get(m, 0.0) + s
    conf_by_cat: dict[str, float] = {}
    secondary_conf = 0.0
    for (c, _, primary), s in t.confidence_sum.items():
        conf_by_cat[c] = conf_by_cat.get(c, 0.0) + s
        if not primary:
            secondary_conf += s
    secondary = sum(k for (_, _, p, _), k in t.selections.items() if not p)
    percentiles, all_percentiles = _duration_percentiles(t)
    no_durations = dict.fromkeys(all_percentiles)
    per_category = []
    for c, v in _by_requests(cats.items()):
        row = {"category": c, "requests": v["requests"], "models_used": len(v["models"]),
               "mean_score": score_by_cat.get(c, 0.0) / v["requests"],
               "mean_confidence": conf_by_cat.get(c, 0.0) / v["requests"],
               "mean_duration_ms": t.duration_sum.get(c, 0.0) / v["requests"], **percentiles.get(c, no_durations)}
        if t.extended:
            row["fallbacks"] = sum(k for (fc, _), k in t.fallbacks.items() if fc == c)
        per_category.append(row)
    per_model = [{"model": m, "requests": v["requests"], "categories_served": len(v["categories"]),
                  "categories": sorted(v["categories"]), "mean_score": score_by_model.get(m, 0.0) / v["requests"],
                  "primary": v["primary"], "secondary": v["secondary"]}
                 for m, v in _by_requests(models.items())]
    multi = [row for row in per_model if row["categories_served"] > 1]
    share = secondary / n if n else 0.0
    mean_secondary_conf = secondary_conf / secondary if secondary else 0.0
    effectiveness = {
        "unique_models": len(models), "multi_category_models": len(multi),
        "secondary_selections": secondary, "secondary_share": share,
        "mean_secondary_confidence": mean_secondary_conf,
        "mean_duration_ms": sum(t.duration_sum.values()) / n if n else 0.0, **all_percentiles,
        "gpus": [{"gpu": g or "none", "selections": k, "share": k / n}
                 for g, k in sorted(gpus.items(), key=lambda kv: (-kv[1], kv[0]))],
    }
    if t.extended:
        effectiveness["fallbacks"] = sum(t.fallbacks.values())
    recommendations = []
    low_confidence = secondary and mean_secondary_conf < SECONDARY_CONFIDENCE_LOW
    if low_confidence:
        # Much secondary use is only good when it is confident: one finding, not "good" beside "low".
        usage = (f"{share:.1%} of selections use a model's secondary category (above "
                 f"{SECONDARY_SHARE_GOOD:.0%}), but " if share > SECONDARY_SHARE_GOOD else "")
        recommendations.append({"id": "low_secondary_confidence", "text":
                                f"Low confidence in secondary selections: {usage}their mean confidence is "
                                f"{mean_secondary_conf:.2f} (below {SECONDARY_CONFIDENCE_LOW}); review the models' "
                                "category assignments."})
    elif share > SECONDARY_SHARE_GOOD:
        recommendations.append({"id": "good_multi_category_utilization", "text":
                                f"Good multi-category utilization: {share:.1%} of selections use a model's "
                                f"secondary category (above {SECONDARY_SHARE_GOOD:.0%}) with mean confidence "
                                f"{mean_secondary_conf:.2f}."})
    return {
        "schema": SCHEMA, "generated": generated, "files": files, "total_requests": n,
        "duration_percentiles": {"method": "sketch" if t.sketch is not None else "exact",
                                 "relative_error": RELATIVE_ERROR if t.sketch is not None else 0.0},
        "time_range": {"first": t.first, "last": t.last},
        "effectiveness": effectiveness, "categories": per_category, "models": per_model,
        "multi_category_models": multi, "recommendations": recommendations,
        "rejected": {"total": sum(t.rejected.values()), "by_reason": dict(sorted(t.rejected.items())),
                     "examples": [{"file": f, "line": line, "reason": r} for f, line, r in t.examples]},
    }
