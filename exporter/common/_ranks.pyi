# The C twin of quantile.grouped_nearest_ranks (_ranks.c); None leaves the work to Python.
from collections.abc import Mapping, Sequence
from typing import TypeVar

K = TypeVar("K", bound=float)

def ranks(counts: Mapping[tuple[str, K], int], qs: Sequence[float]) -> tuple[dict[str, list[K]], list[K]] | None: ...
