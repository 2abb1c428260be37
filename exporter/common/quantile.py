"""The one quantile definition used everywhere: nearest rank, the value at rank ceil(q x n) among
the n sorted samples (never interpolated, so a reported p99 is a value that was really seen)."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import accumulate, repeat
from operator import itemgetter, mul
from typing import TypeVar

K = TypeVar("K", bound=float)


def grouped_nearest_ranks(counts: Mapping[tuple[str, K], int],
                          qs: Sequence[float]) -> tuple[dict[str, list[K]], list[K | None]]:
    """Nearest-rank quantiles of each group and of all groups together, over {(group, value): how many
    times it was seen}: sorted, accumulate and bisect."""
    keys = list(counts)
    if not keys:
        return {}, [None] * len(qs)
    values, groups, seen = list(map(itemgetter(1), keys)), list(map(itemgetter(0), keys)), list(counts.values())
    order = sorted(range(len(keys)), key=values.__getitem__)
    overall = _at_ranks(list(map(values.__getitem__, order)), list(map(seen.__getitem__, order)), qs)
    order.sort(key=groups.__getitem__)  # stable: values stay ascending within each group
    by_group, start = {}, 0
    for group, size in sorted(Counter(groups).items()):
        part = order[start:start + size]
        by_group[group] = _at_ranks(list(map(values.__getitem__, part)), list(map(seen.__getitem__, part)), qs)
        start += size
    return by_group, overall


def _at_ranks(values: Sequence[K], seen: Iterable[int], qs: Sequence[float]) -> list[K]:
    """The value at rank ceil(q x n) for each q, over ascending values each seen that many times."""
    upto = list(accumulate(seen))
    return [values[bisect_left(upto, max(1, math.ceil(upto[-1] * q)))] for q in qs]


def nearest_rank_sorted(samples: Sequence[float], q: float) -> float:
    """Nearest-rank quantile of samples already sorted ascending (at least one)."""
    return samples[max(0, math.ceil(q * len(samples)) - 1)]


# Quantiles of many distinct values in bounded memory, DDSketch-style (Masson, Rim, Lee, VLDB 2019):
# a value v is counted in bucket ceil(log(v) / log(GAMMA)), and a bucket stands for the value
# 2 GAMMA^i / (GAMMA + 1), within RELATIVE_ERROR of every value it holds. Buckets of two sketches add,
# so the halves of a split read merge exactly. Values below TINY share TINY's bucket.
RELATIVE_ERROR = 0.01
GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
TINY = 1e-6
_INV_LOG_GAMMA = 1 / math.log(GAMMA)


def sketch_indices(values: Iterable[float]) -> Iterator[int]:
    """The bucket of each value, computed at C level (map over math functions), one pass."""
    return map(math.ceil, map(mul, map(math.log, map(max, values, repeat(TINY))), repeat(_INV_LOG_GAMMA)))


def sketch_value(index: int) -> float:
    """The value a bucket stands for: within RELATIVE_ERROR of each value counted in it."""
    return 2 * GAMMA ** index / (GAMMA + 1)


