"""`orchex serve` settings: every flag has a config-file key of the same name (`--web.listen-address`
is `web.listen-address:`), and a flag given on the command line wins over the file."""

from dataclasses import dataclass

from exporter import yamlfile
from exporter.collectors import NAMES as COLLECTORS
from exporter.errors import UsageError

DEFAULTS = {
    "web.listen-address": ":9847",
    "web.telemetry-path": "/metrics",
    "web.config.file": None,
    "gpu-backend": "auto",
    "fleet": None,
    "registry": None,
    "selection-log": [],
    "routing.max-label-values": 100,
    "log.level": "info",
    **{f"collector.{name}": True for name in COLLECTORS},
    # The health model's thresholds (exporter/gpu/health.py); defaults are the legacy monitor's.
    "health.temperature-celsius": 85.0,
    "health.utilization-ratio": 0.95,
    "health.power-ratio": 0.95,
    "health.xid-window-seconds": 600.0,
    "health.critical-xids": [48, 79, 94, 95],
}
LEVELS = ("debug", "info", "warn", "error")


@dataclass(frozen=True)
class Settings:
    values: dict

    def __getitem__(self, key):
        return self.values[key]

    def collector(self, name):
        return self.values[f"collector.{name}"]

    def thresholds(self):
        from exporter.gpu.health import Thresholds

        v = self.values
        return Thresholds(float(v["health.temperature-celsius"]), float(v["health.utilization-ratio"]),
                          float(v["health.power-ratio"]), frozenset(v["health.critical-xids"]),
                          float(v["health.xid-window-seconds"]))


def _check(key, v, where):
    def bad(msg):
        raise UsageError(f"{where}: {msg}")

    if key == "gpu-backend" and v not in ("auto", "nvml", "simulated"):
        bad(f"must be auto, nvml or simulated, not {v!r}")
    if key == "log.level" and v not in LEVELS:
        bad(f"must be one of {', '.join(LEVELS)}, not {v!r}")
    if key.startswith("collector.") and not isinstance(v, bool):
        bad("must be true or false")
    if key == "routing.max-label-values" and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
        bad("must be a positive integer")
    if key == "web.telemetry-path" and (not isinstance(v, str) or not v.startswith("/") or v == "/"):
        bad("must be a path such as /metrics")
    if key == "selection-log" and (not isinstance(v, list) or not all(isinstance(p, str) and p for p in v)):
        bad("must be a list of paths or globs")
    if key.startswith("health.") and key != "health.critical-xids":
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
            bad("must be a positive number")
        if key == "health.utilization-ratio" and v > 1:
            bad("must be a positive number up to 1")
    if key == "health.critical-xids" and (not isinstance(v, list) or not all(
            isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in v)):
        bad("must be a list of XID numbers")
    if key in ("web.listen-address", "fleet", "registry", "web.config.file") and v is not None \
            and not isinstance(v, str):
        bad("must be a string")
    return v


def load(flags, config_path):
    """Merge `flags` (key -> value, None when not given) over the config file over the defaults."""
    values = dict(DEFAULTS)
    if config_path:
        data, lines = yamlfile.load(config_path)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise UsageError(f"{config_path}:1: a config file is a mapping of flag names to values")
        for key, v in data.items():
            line = lines.get((key,), 1)
            if key not in DEFAULTS:
                raise UsageError(f"{config_path}:{line}: unknown key {key!r} (keys are the flag names, e.g. "
                                 "web.listen-address)")
            if key == "selection-log" and isinstance(v, str):
                v = [v]
            values[key] = _check(key, v, f"{config_path}:{line}: {key}")
    for key, v in flags.items():
        if v is not None and v != []:
            values[key] = _check(key, v, f"--{key}")
    return Settings(values)
