"""`orchex serve` settings: every flag has a config-file key of the same name (`--web.listen-address`
is `web.listen-address:`), and a flag given on the command line wins over the file."""

import importlib.util
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from exporter import webconfig, yamlfile
from exporter.collectors import NAMES as COLLECTORS
from exporter.collectors import OFF_BY_DEFAULT
from exporter.errors import UsageError
from exporter.gpu import BACKENDS
from exporter.gpu.health import Thresholds
from exporter.gpu.simulated import load_fleet
from exporter.httpserver import parse_address
from exporter.kubernetes.apiserver import ApiServer, in_cluster
from exporter.kubernetes.attribution import DEFAULT_RESOURCES
from exporter.logfmt import LEVELS
from exporter.policy import POLICY
from exporter.routing import registry
from exporter.routing.registry import Registry
from exporter.webconfig import WebConfig

DEFAULTS: dict[str, Any] = {
    "web.listen-address": ":9847",
    "web.telemetry-path": "/metrics",
    "web.config.file": None,
    "gpu-backend": "nvml",  # as dcgm-exporter: the real device or nothing; `auto` is for demos
    "fleet": None,
    "registry": None,
    "selection-log": [],
    "selection-log.max-open-files": 256,
    "routing.max-label-values": 100,
    "routing.max-series": 10_000,
    "gpu-processes.max-per-gpu": 16,
    "path.procfs": "/proc",
    "log.level": "info",
    **{f"collector.{name}": name not in OFF_BY_DEFAULT for name in COLLECTORS},
    "kubernetes.pod-resources-socket": "/var/lib/kubelet/pod-resources/kubelet.sock",
    "kubernetes.refresh-interval": 10.0,
    "kubernetes.resource-names": list(DEFAULT_RESOURCES),
    "kubernetes.max-series": 2000,
    "kubernetes.pod-memory": False,
    "kubernetes.service-account-dir": "/var/run/secrets/kubernetes.io/serviceaccount",
    # The health model's thresholds (exporter/gpu/health.py), from the policy the alerts share.
    "health.temperature-celsius": POLICY.temperature_celsius,
    "health.utilization-ratio": POLICY.utilization_ratio,
    "health.power-ratio": POLICY.power_ratio,
    "health.xid-window-seconds": float(POLICY.xid_window_seconds),
    "health.critical-xids": list(POLICY.critical_xids),
}


@dataclass(frozen=True)
class Settings:
    """Everything `orchex serve` runs on, checked whole before any of it is used: the merged values,
    and the registry and web config they name, loaded."""

    values: dict[str, Any]
    registry: Registry
    web: WebConfig
    api_server: ApiServer | None = None  # where this node's pods are listed, with --kubernetes.pod-memory

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def collector(self, name: str) -> bool:
        return bool(self.values[f"collector.{name}"])

    def thresholds(self) -> Thresholds:
        v = self.values
        return Thresholds(float(v["health.temperature-celsius"]), float(v["health.utilization-ratio"]),
                          float(v["health.power-ratio"]), frozenset(v["health.critical-xids"]),
                          float(v["health.xid-window-seconds"]))


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _positive(hi: float) -> Callable[[Any], str | None]:
    return lambda v: None if _is_number(v) and 0 < v <= hi else f"must be a positive number up to {hi:,g}"


def _ratio(v: Any) -> str | None:
    return None if _is_number(v) and 0 < v <= 1 else "must be a positive number up to 1"


def _whole(lo: int, hi: int) -> Callable[[Any], str | None]:
    return lambda v: None if isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi \
        else f"must be an integer from {lo:,} to {hi:,}"


def _boolean(v: Any) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


def _directory(v: Any) -> str | None:
    return None if isinstance(v, str) and v else "must be a directory"


RESERVED_PATHS = ("/", "/healthz", "/-/ready")


def _telemetry_path(v: Any) -> str | None:
    if not isinstance(v, str) or not v.startswith("/") or len(v) > 200 or not v.isprintable() \
            or any(c in v for c in " ?#%"):
        return "must be a path such as /metrics"
    return f"{v} is taken by another endpoint" if v in RESERVED_PATHS else None


def _address(v: Any) -> str | None:
    try:
        parse_address(v)
    except UsageError:
        return "expected [HOST]:PORT, such as :9847 or 127.0.0.1:9847"
    return None


def _one_of(choices: tuple[str, ...]) -> Callable[[Any], str | None]:
    said = ", ".join(choices[:-1]) + " or " + choices[-1]
    return lambda v: None if v in choices else f"must be {said}, not {v!r}"


def _path(v: Any) -> str | None:
    # An empty path is refused rather than read as "none": `--web.config.file ''` must not
    # silently serve without the TLS and auth it was meant to name.
    return None if v is None or isinstance(v, str) and v else "must be a non-empty path"


# key -> check(value): None when the value is valid, else what is wrong with it.
CHECKS: dict[str, Callable[[Any], str | None]] = {
    "web.listen-address": _address,
    "web.telemetry-path": _telemetry_path,
    "web.config.file": _path,
    "gpu-backend": _one_of(BACKENDS),
    "fleet": _path,
    "registry": _path,
    "selection-log": lambda v: None if isinstance(v, list) and all(isinstance(p, str) and p for p in v)
    else "must be a list of paths or globs",
    "selection-log.max-open-files": _whole(1, 1_000_000),
    "routing.max-label-values": lambda v: None if isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 100_000
    else "must be a positive integer up to 100,000",
    "routing.max-series": _whole(100, 1_000_000),
    "gpu-processes.max-per-gpu": _whole(1, 1_000),
    "path.procfs": _directory,
    "kubernetes.pod-resources-socket": lambda v: None if isinstance(v, str) and v else "must be a socket path",
    "kubernetes.refresh-interval": lambda v: None if _is_number(v) and 1 <= v <= 3600
    else "must be a number of seconds from 1 to 3,600",
    "kubernetes.resource-names": lambda v: None if isinstance(v, list) and v and all(
        isinstance(r, str) and r for r in v) else "must be a list of resource names or globs, such as nvidia.com/gpu",
    "kubernetes.max-series": _whole(1, 1_000_000),
    "kubernetes.pod-memory": _boolean,
    "kubernetes.service-account-dir": _directory,
    "log.level": _one_of(LEVELS),
    **{f"collector.{name}": _boolean for name in COLLECTORS},
    "health.temperature-celsius": _positive(200),
    "health.utilization-ratio": _ratio,
    "health.power-ratio": _positive(2),
    "health.xid-window-seconds": _positive(31_536_000),
    "health.critical-xids": lambda v: None if isinstance(v, list) and 0 < len(v) <= 256 and all(
        isinstance(x, int) and not isinstance(x, bool) and 0 < x < 1000 for x in v)
    else "must be a list of XID numbers",
}


def _check(key: str, v: Any, where: str) -> Any:
    problem = CHECKS[key](v)
    if problem:
        raise UsageError(f"{where}: {problem}")
    return v


def load(flags: dict[str, Any], config_path: str | None, env: Mapping[str, str] | None = None) -> Settings:
    """Merge `flags` (key -> value, None when not given) over the config file over the defaults;
    `env`, the process's environment, says where the API server is for --kubernetes.pod-memory."""
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
    if values["collector.kubernetes"] and importlib.util.find_spec("grpc") is None:
        raise UsageError("collector kubernetes needs grpcio: pip install 'orchex[kubernetes]' (the image has it)")
    api_server = None
    if values["collector.kubernetes"] and values["kubernetes.pod-memory"]:
        api_server = in_cluster(env or {}, values["kubernetes.service-account-dir"])
    if values["gpu-backend"] != "nvml":
        load_fleet(values["fleet"])  # a bad fleet is refused now, not found by a later scrape
    return Settings(values, registry.load(values["registry"]), webconfig.load(values["web.config.file"]), api_server)
