"""The report as markdown (the legacy sections, in order), plain text, or JSON; and the console
summary."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any


def _f(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _table(head: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def _accuracy(r: dict[str, Any]) -> str:
    d = r["duration_percentiles"]
    if d["method"] == "exact":
        return "percentiles exact"
    return f"percentiles within {d['relative_error']:.0%}: too many distinct durations to keep them all"


def markdown(r: dict[str, Any]) -> str:
    e = r["effectiveness"]
    out = ["# Multi-Category Routing Analytics Report", "",
           f"- **Generated:** {r['generated']}",
           f"- **Metrics file:** {', '.join(r['files'])}",
           f"- **Total requests:** {r['total_requests']}",
           f"- **Time range:** {r['time_range']['first'] or '-'} to {r['time_range']['last'] or '-'}", "",
           "## Overall Effectiveness", "",
           f"- **Unique models:** {e['unique_models']}",
           f"- **Multi-category models:** {e['multi_category_models']}",
           f"- **Secondary category selections:** {e['secondary_selections']} ({e['secondary_share']:.1%})",
           f"- **Mean secondary confidence:** {e['mean_secondary_confidence']:.2f}",
           f"- **Mean selection duration:** {e['mean_duration_ms']:.3f} ms "
           f"(p50 {_f(e['duration_ms_p50'], 3)}, p95 {_f(e['duration_ms_p95'], 3)}, p99 {_f(e['duration_ms_p99'], 3)}; "
           f"{_accuracy(r)})"]
    if "fallbacks" in e:
        out.append(f"- **Fallback selections:** {e['fallbacks']}")
    if r["rejected"]["total"]:
        reasons = ", ".join(f"{k}: {v}" for k, v in r["rejected"]["by_reason"].items())
        out.append(f"- **Rejected rows:** {r['rejected']['total']} ({reasons})")
    out += ["", "### GPU Distribution", ""]
    out += _table(["GPU", "Selections", "Share"],
                  [(g["gpu"], g["selections"], f"{g['share']:.1%}") for g in e["gpus"]])
    out += ["", "## Performance by Category", ""]
    fb = any("fallbacks" in c for c in r["categories"])
    head = ["Category", "Requests", "Models used", "Mean score", "Mean confidence", "Mean duration (ms)",
            "p50 (ms)", "p95 (ms)", "p99 (ms)"] + (["Fallbacks"] if fb else [])
    out += _table(head, [(c["category"], c["requests"], c["models_used"], _f(c["mean_score"]),
                          _f(c["mean_confidence"]), _f(c["mean_duration_ms"], 3), _f(c["duration_ms_p50"], 3),
                          _f(c["duration_ms_p95"], 3), _f(c["duration_ms_p99"], 3))
                         + ((c.get("fallbacks", 0),) if fb else ()) for c in r["categories"]])
    out += ["", "## Model Usage", ""]
    out += _table(["Model", "Requests", "Categories served", "Mean score", "Primary", "Secondary"],
                  [(m["model"], m["requests"], m["categories_served"], _f(m["mean_score"]), m["primary"],
                    m["secondary"]) for m in r["models"]])
    out += ["", "## Multi-Category Model Utilization", ""]
    if r["multi_category_models"]:
        out += _table(["Model", "Categories", "Requests", "Primary", "Secondary"],
                      [(m["model"], ", ".join(m["categories"]), m["requests"], m["primary"], m["secondary"])
                       for m in r["multi_category_models"]])
    else:
        out.append("No model served more than one category.")
    out += ["", "## Recommendations", ""]
    out += [f"- {x['text']}" for x in r["recommendations"]] or ["- No recommendations: neither legacy threshold "
                                                                 "was crossed."]
    if r["rejected"]["examples"]:
        out += ["", "## Rejected Rows", ""]
        out += [f"- {x['file']}:{x['line']}: {x['reason']}" for x in r["rejected"]["examples"]]
    return "\n".join(out) + "\n"


def text(r: dict[str, Any]) -> str:
    """Markdown without its markup, for a terminal or a mail; tables in aligned columns (numbers to
    the right)."""
    out: list[str] = []
    table: list[list[str]] = []
    for line in markdown(r).splitlines() + [""]:
        if line.startswith("|"):
            if not line.startswith("|---"):
                table.append([c.strip() for c in line.strip("|").split("|")])
            continue
        if table:
            out += _aligned(table)
            table = []
        out.append(line.replace("**", "").lstrip("#").strip() if line.startswith("#") else line.replace("**", ""))
    return "\n".join(out[:-1]) + "\n"


def _aligned(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    numeric = [all(re.fullmatch(_NUMBER, row[i]) for row in rows[1:]) for i in range(len(widths))]
    return ["  " + "  ".join(cell.rjust(w) if num else cell.ljust(w) for cell, w, num in zip(row, widths, numeric))
            .rstrip() for row in rows]


_NUMBER = r"-?[\d.,]+%?|-"


def as_json(r: dict[str, Any]) -> str:
    return json.dumps(r, indent=2) + "\n"


def summary(r: dict[str, Any]) -> str:
    """The console summary: totals, secondary usage, mean duration, top 5 models."""
    e = r["effectiveness"]
    out = [f"Total requests: {r['total_requests']}",
           f"Unique models: {e['unique_models']}  (serving several categories: {e['multi_category_models']})",
           f"Secondary category usage: {e['secondary_selections']} ({e['secondary_share']:.1%}), "
           f"mean confidence {e['mean_secondary_confidence']:.2f}",
           f"Mean selection duration: {e['mean_duration_ms']:.3f} ms", "Top models:"]
    out += [f"  {i}. {m['model']}: {m['requests']}" for i, m in enumerate(r["models"][:5], 1)]
    if r["rejected"]["total"]:
        out.append(f"Rejected rows: {r['rejected']['total']} "
                   f"({', '.join(f'{k}: {v}' for k, v in r['rejected']['by_reason'].items())})")
    return "\n".join(out) + "\n"
