"""Turn user-given constraint values (flags, config) into selector Constraints, checking each."""

from collections.abc import Iterable

from exporter.common.memory import parse_size
from exporter.errors import UsageError
from exporter.routing.registry import Registry
from exporter.routing.selector import Constraints


def parse_max_memory(text: str | None, reg: Registry) -> int | None:
    """Bytes from a size (`14GB`) or a GPU class name of the registry (`t4_16gb`, any case)."""
    if text is None:
        return None
    classes = {k.lower(): v for k, v in reg.gpu_classes.items()}
    if str(text).lower() in classes:
        return classes[str(text).lower()]
    try:
        return parse_size(text)
    except ValueError as e:
        raise UsageError(f"--max-gpu-memory: {e}; or a GPU class: {', '.join(reg.gpu_classes)}") from None


def build_constraints(reg: Registry, max_memory: str | None = None, agent_type: str | None = None,
                      prefer: Iterable[str] = (), exclude: Iterable[str] = (), min_context: int | None = None,
                      min_benchmark: float | None = None) -> Constraints:
    for flag, names in (("--prefer", prefer), ("--exclude", exclude)):
        for name in names:
            if name not in reg.models:
                raise UsageError(f"{flag}: unknown model {name!r}")
    if min_context is not None and min_context <= 0:
        raise UsageError("--min-context: must be a positive number of tokens")
    return Constraints(parse_max_memory(max_memory, reg), agent_type, frozenset(prefer),
                       frozenset(exclude), min_benchmark, min_context)
