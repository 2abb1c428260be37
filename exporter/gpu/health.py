"""The health model and the load score, pure functions of a snapshot, shared by the selector, the
exporter and the console monitor so that all three agree."""

from dataclasses import dataclass

from exporter.gpu.snapshot import GpuSnapshot
from exporter.policy import POLICY

HEALTHY, HOT, OVERLOADED, HIGH_POWER, FAULT, DOWN = (
    "HEALTHY", "HOT", "OVERLOADED", "HIGH_POWER", "FAULT", "DOWN")
STATES = (HEALTHY, HOT, OVERLOADED, HIGH_POWER, FAULT, DOWN)


@dataclass(frozen=True)
class Thresholds:
    """Defaults come from exporter/policy.py, which the alert rules and dashboards share."""

    temperature_celsius: float = POLICY.temperature_celsius  # at or above: HOT (legacy said HIGH_POWER at 85)
    utilization_ratio: float = POLICY.utilization_ratio  # at or above: OVERLOADED
    power_ratio: float = POLICY.power_ratio  # power at or above this share of the limit: HIGH_POWER
    critical_xids: frozenset[int] = frozenset(POLICY.critical_xids)
    xid_window_seconds: float = float(POLICY.xid_window_seconds)


DEFAULT_THRESHOLDS = Thresholds()


def health(s: GpuSnapshot, now: float, t: Thresholds = DEFAULT_THRESHOLDS) -> str:
    """DOWN, FAULT, HOT, OVERLOADED, HIGH_POWER or HEALTHY, checked in that order.

    A field the GPU does not report cannot trip its rule: a card whose power reads N/A is judged on
    temperature and utilisation alone."""
    if not s.up:
        return DOWN
    if s.ecc_errors.get(("volatile", "uncorrected"), 0) > 0 or s.row_remap_failure:
        return FAULT
    for xid, seen in s.xid_last_seen.items():
        if xid in t.critical_xids and now - seen <= t.xid_window_seconds:
            return FAULT
    if s.temperature is not None and s.temperature >= t.temperature_celsius:
        return HOT
    if s.utilization is not None and s.utilization >= t.utilization_ratio:
        return OVERLOADED
    if s.power is not None and s.power_limit and s.power >= t.power_ratio * s.power_limit:
        return HIGH_POWER
    return HEALTHY


def load_score(s: GpuSnapshot) -> float:
    """0.5 x memory used/total + 0.3 x utilisation + 0.2 x temperature/85; a missing term counts 0."""
    mem = s.memory_used / s.memory_total if s.memory_used is not None and s.memory_total else 0.0
    return 0.5 * mem + 0.3 * (s.utilization or 0.0) + 0.2 * (s.temperature or 0.0) / 85.0
