"""The one source of every threshold and list that the health model, the alert rules and the dashboards
share. `exporter/gpu/health.py` and `orchex serve`'s defaults read it; `prometheus/generate.py` and
`grafana/generate.py` write the rules and dashboards from it, so a change here reaches all of them with
`make rules dashboards`, and a test fails while any of them is stale."""


class Policy:
    """Read-only (no instance attributes: `__slots__` is empty); a variant is a subclass. A plain class,
    not a dataclass or NamedTuple, for `orchex analytics`' start-up: see exporter/__init__.py."""

    __slots__ = ()

    # XID classes from the public alert sets (shared/reference/GPU-EXPORTERS.md section 5): a critical
    # XID makes the GPU FAULT and pages; a warning XID warns and leaves the health state alone.
    # Application-caused (13, 31, 43) and informational (63, 92) XIDs are exported, never alerted.
    critical_xids: tuple[int, ...] = (48, 62, 64, 74, 79, 95, 119, 120)
    warning_xids: tuple[int, ...] = (94,)
    xid_window_seconds: int = 600  # an XID counts (FAULT, alert) for this long after it was seen

    # The legacy GPU monitor's health rules: at or above these, HOT, OVERLOADED and HIGH_POWER.
    temperature_celsius: float = 85.0
    utilization_ratio: float = 0.95
    power_ratio: float = 0.95  # of the power management limit

    memory_pressure_ratio: float = 0.9  # used / total, as the public GPU alert sets
    # A GPU (or MIG instance) that holds over loaded_memory_ratio of its memory while its tensor and SM
    # activity (GPM) stay under idle_activity_ratio holds a model that serves nothing.
    loaded_memory_ratio: float = 0.5
    idle_activity_ratio: float = 0.01
    fallback_share: float = 0.5  # share of a category's selections that fall back

    # The legacy analytics report's recommendations.
    secondary_share_good: float = 0.30  # above: good multi-category utilisation
    secondary_confidence_low: float = 0.75  # mean secondary-category confidence below: low confidence

    bench_stale_seconds: int = 2 * 86400  # no passing benchmark for this long: stale


POLICY = Policy()
