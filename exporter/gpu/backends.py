"""Choose and open a GPU backend: `nvml`, `simulated`, or `auto` (nvml when a driver answers)."""

import sys

from exporter.errors import UsageError
from exporter.gpu.health import DEFAULT_THRESHOLDS, health

NAMES = ("auto", "nvml", "simulated")


def open_backend(name, fleet=None, notice=None):
    """An open backend; `notice` (default: standard error) hears why `auto` fell back."""
    if name not in NAMES:
        raise UsageError(f"unknown GPU backend {name!r} (expected one of {', '.join(NAMES)})")
    if name in ("auto", "nvml"):
        from exporter.gpu.nvml import NvmlBackend, NvmlUnavailable

        try:
            return NvmlBackend()
        except NvmlUnavailable as e:
            if name == "nvml":
                raise UsageError(f"GPU backend nvml: {e}") from None
            (notice or (lambda m: print(m, file=sys.stderr)))(
                f"orchex: {e}; using the simulated GPU fleet")
    from exporter.gpu.simulated import SimulatedBackend

    return SimulatedBackend(fleet)


def judged(snapshots, now, thresholds=DEFAULT_THRESHOLDS):
    """The snapshots with their health state set, as the selector and the exporter read it."""
    for s in snapshots:
        s.health = health(s, now, thresholds)
    return snapshots
