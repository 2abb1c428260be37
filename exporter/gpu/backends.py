"""Choose and open a GPU backend: `nvml`, `simulated`, or `auto`.

`auto` means NVML whenever an NVIDIA library is installed, even one whose driver is not loaded yet
(it is retried, as `nvml` is), and the simulated fleet only on a machine with no NVIDIA library at
all: made-up data is never served because a real driver was slow to come up. The names and this rule
live here alone; every command and the exporter ask this module."""

import sys
from collections.abc import Callable, Iterable
from functools import partial
from typing import Protocol

from exporter.errors import UsageError
from exporter.gpu import BACKENDS
from exporter.gpu.health import DEFAULT_THRESHOLDS, Thresholds, health
from exporter.gpu.snapshot import GpuSnapshot


class Backend(Protocol):
    """What the collector, the selector's callers and the monitor read GPUs through."""

    name: str
    error_counts: dict[tuple[str, str], int]  # (function, error code name) -> failures

    def read(self) -> list[GpuSnapshot]: ...

    def close(self) -> None: ...


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def factory(name: str, fleet: str | None = None,
            notice: Callable[[str], None] = _stderr) -> Callable[[], Backend]:
    """A function that opens backend `name`, decided now: `auto` looks for the NVML library once and,
    when there is none, settles on the simulated fleet (`notice` hears why). A bad fleet file is an
    error here, at start-up, not on every later open."""
    if name not in BACKENDS:
        raise UsageError(f"unknown GPU backend {name!r} (expected one of {', '.join(BACKENDS)})")
    from exporter.gpu.simulated import SimulatedBackend, load_fleet

    if name == "auto":
        from exporter.gpu.nvml import NvmlBackend, NvmlUnavailable

        try:
            NvmlBackend(watch_xids=False).close()
            name = "nvml"
        except NvmlUnavailable as e:
            if e.library_missing:
                notice(f"{e}; using the simulated GPU fleet (orchex_nvml_up is 0)")
                name = "simulated"
            else:
                notice(f"{e}; an NVIDIA library is installed, so NVML is used and retried")
                name = "nvml"
    if name == "simulated":
        load_fleet(fleet)
        return partial(SimulatedBackend, fleet)
    from exporter.gpu.nvml import NvmlBackend

    return NvmlBackend


def open_backend(name: str, fleet: str | None = None,
                 notice: Callable[[str], None] | None = None) -> Backend:
    """An open backend for a command that needs one now: NVML that cannot start is a usage error."""
    from exporter.gpu.nvml import NvmlUnavailable

    opener = factory(name, fleet, notice or (lambda m: _stderr(f"orchex: {m}")))
    try:
        return opener()
    except NvmlUnavailable as e:
        raise UsageError(f"GPU backend nvml: {e}") from None


def judged(snapshots: Iterable[GpuSnapshot], now: float,
           thresholds: Thresholds = DEFAULT_THRESHOLDS) -> list[GpuSnapshot]:
    """The snapshots with their health state set, as the selector and the exporter read it."""
    out = list(snapshots)
    for s in out:
        s.health = health(s, now, thresholds)
    return out
