"""The one quantile definition used everywhere: nearest rank, the value at rank ceil(q x n) among
the n sorted samples (never interpolated, so a reported p99 is a value that was really seen)."""

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import repeat
from operator import mul
from typing import TypeVar

K = TypeVar("K", bound=float)


def nearest_ranks(counts: Mapping[K, int], qs: Sequence[float]) -> list[K | None]:
    """Nearest-rank quantiles, for each of `qs` (ascending), over {value: how many times it was seen},
    sorting the values once; None for each when there is none."""
    total = sum(counts.values())
    if not total:
        return [None] * len(qs)
    needs = [max(1, math.ceil(total * q)) for q in qs]
    out: list[K | None] = []
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        while len(out) < len(needs) and seen >= needs[len(out)]:
            out.append(value)
        if len(out) == len(needs):
            break
    return out


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


def sketch_quantiles(buckets: Mapping[int, int], qs: Sequence[float]) -> list[float | None]:
    """Nearest-rank quantiles over {bucket: count}, for each of `qs` (ascending), as the values their
    buckets stand for."""
    return [None if i is None else sketch_value(int(i)) for i in nearest_ranks(buckets, qs)]
