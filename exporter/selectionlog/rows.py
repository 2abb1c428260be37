"""One selection-log row: its columns, and why a row is rejected.

The legacy file has eight columns; extra columns may follow (orchex writes fallback, reason, policy).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

COLUMNS = ("timestamp", "task_category", "selected_model", "primary_category", "confidence_score",
           "final_score", "gpu_id", "selection_duration_ms")
# orchex's own columns after the eight: `orchex select --log` and `orchex demo` write them.
EXTRA = ("fallback", "reason", "policy")
HEADER_LINE = ",".join(COLUMNS)
# Rejection reasons: a fixed set, so they can be a metric label.
REASONS = ("columns", "timestamp", "category", "model", "primary", "confidence", "score", "gpu", "duration",
           "encoding", "quoting", "truncated", "length")
MAX_LINE = 64 << 10  # a row longer than this is rejected ("length") and skipped unread
# ASCII digits only, [0-9] and never \d: \d and float() also take Arabic-Indic and full-width digits,
# which the C kernel refuses, and GPU "٣" would be a series apart from "3".
TIMESTAMP = r"[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01]) (?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
GPU = r"[0-9]{1,6}"
# The number grammar of _fold.c's number(): what float() reads, less its spaces, underscores,
# words (nan, inf) and digits of other scripts.
NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
# Beyond these a value is not a measurement but garbage, and summing it could overflow to infinity
# and poison every later sum: such a row is rejected by reason, like any other bad row.
SCORE_LIMIT = 1e6  # |final_score|; selectors score 0-100
DURATION_LIMIT_MS = 1e7  # selection_duration_ms, about 2.8 hours


def fullmatcher(pattern: str) -> Callable[[str], bool]:
    """Whether a text matches `pattern` whole."""
    compiled = re.compile(pattern)
    return lambda text: compiled.fullmatch(text) is not None


timestamp_ok = fullmatcher(TIMESTAMP)
_gpu = fullmatcher(GPU)
_number = fullmatcher(NUMBER)


def number(text: str) -> float | None:
    """The value of a plain ASCII decimal number (NUMBER); None for anything else, and for one
    too large to be finite."""
    if not _number(text):
        return None
    v = float(text)
    return v if v - v == 0 else None  # 1e400 reads as inf


def gpu_ok(v: str) -> bool:
    return not v or _gpu(v)


def confidence_ok(v: str) -> bool:
    x = number(v)
    return x is not None and 0 <= x <= 1


def duration_ok(v: str) -> bool:
    x = number(v)
    return x is not None and 0 <= x <= DURATION_LIMIT_MS


def score_ok(v: str) -> bool:
    x = number(v)
    return x is not None and abs(x) <= SCORE_LIMIT


def check(fields: Sequence[str]) -> str | None:
    """None when the eight leading fields make a valid row, else the rejection reason."""
    if len(fields) < 8:
        return "columns"
    ts, cat, model, primary, conf, score, gpu, dur = fields[:8]
    if not timestamp_ok(ts):
        return "timestamp"
    if not cat:
        return "category"
    if not model:
        return "model"
    if primary not in ("true", "false"):
        return "primary"
    if not confidence_ok(conf):
        return "confidence"
    if not score_ok(score):
        return "score"
    if not gpu_ok(gpu):
        return "gpu"
    if not duration_ok(dur):
        return "duration"
    return None


def is_header(fields: Sequence[str]) -> bool:
    return tuple(fields[:8]) == COLUMNS


def fallback_column(header: Sequence[str]) -> int:
    """Where a header puts orchex's `fallback` column (past the end when it has none)."""
    return header.index("fallback") if "fallback" in header else len(header) + 1
