"""The one quantile definition used everywhere: nearest rank, the value at rank ceil(q x n) among
the n sorted samples (never interpolated, so a reported p99 is a value that was really seen)."""

import math
from collections.abc import Mapping, Sequence


def nearest_rank(counts: Mapping[float, int], q: float) -> float | None:
    """Nearest-rank quantile over {value: how many times it was seen}; None when there is none."""
    total = sum(counts.values())
    if not total:
        return None
    need = max(1, math.ceil(total * q))
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        if seen >= need:
            break
    return value


def nearest_rank_sorted(samples: Sequence[float], q: float) -> float:
    """Nearest-rank quantile of samples already sorted ascending (at least one)."""
    return samples[max(0, math.ceil(q * len(samples)) - 1)]
