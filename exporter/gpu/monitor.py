"""What `orchex gpu-monitor` prints and logs, and its exit summary: pure functions of snapshots."""

from collections.abc import Iterable
from typing import Any

from exporter.common.csvtext import csv_field
from exporter.gpu.health import DOWN, FAULT, HEALTHY, STATES
from exporter.gpu.snapshot import GpuSnapshot, MigInstance

# The legacy header, exactly: existing parsers of gpu_monitor.log keep working.
LOG_HEADER = ("timestamp,gpu_id,name,utilization_%,memory_used_mb,memory_free_mb,memory_total_mb,"
              "memory_percent,temperature_c,power_w,power_limit_w,health_status")
MIB = 1024 * 1024
GREEN, YELLOW, RED, RESET = "\033[32m", "\033[33m", "\033[31m", "\033[0m"


def _num(v: float | None, fmt: str = "{:.1f}") -> str:
    return "" if v is None else fmt.format(v)


def memory_percent(s: GpuSnapshot) -> float | None:
    if s.memory_used is None or not s.memory_total:
        return None
    return 100.0 * s.memory_used / s.memory_total


def log_row(when: float, s: GpuSnapshot) -> str:
    """One legacy log line; a value the GPU does not report is an empty field, never a crash."""
    def mib(b: int | None) -> str:
        return _num(None if b is None else b // MIB, "{:d}")

    util = None if s.utilization is None else s.utilization * 100
    return ",".join((
        str(int(when)), str(s.index), csv_field(s.name), _num(util), mib(s.memory_used), mib(s.memory_free),
        mib(s.memory_total), _num(memory_percent(s)), _num(s.temperature), _num(s.power),
        _num(s.power_limit), s.health or "",
    )) + "\n"


def colour(state: str | None) -> str:
    return GREEN if state == HEALTHY else RED if state in (FAULT, DOWN) else YELLOW


def console_line(s: GpuSnapshot, use_colour: bool) -> str:
    """`GPU 0: NAME | Util: 45% | Mem: 8192/16384MB (50%) | Temp: 65°C | Power: 71.5/700W | Status: HEALTHY`"""
    util = "N/A" if s.utilization is None else f"{s.utilization * 100:.0f}%"
    if s.memory_total:
        mem = f"{(s.memory_used or 0) // MIB}/{s.memory_total // MIB}MB ({memory_percent(s):.0f}%)"
    else:
        mem = "N/A"
    temp = "N/A" if s.temperature is None else f"{s.temperature:.0f}°C"
    power = "N/A" if s.power is None else f"{s.power:.1f}W"
    if s.power is not None and s.power_limit:
        power = f"{s.power:.1f}/{s.power_limit:.0f}W"
    status = s.health or "UNKNOWN"
    if use_colour:
        status = f"{colour(s.health)}{status}{RESET}"
    line = f"GPU {s.index}: {s.name or 'unknown'} | Util: {util} | Mem: {mem} | Temp: {temp} | " \
           f"Power: {power} | Status: {status}"
    return "\n".join([line, *map(mig_line, s.mig_instances)])


def mig_line(m: MigInstance) -> str:
    """`  MIG 1g.10gb (GPU instance 7, compute instance 0) | Mem: 512/10240MB (5%)`, under its GPU."""
    ids = f"GPU instance {'?' if m.gpu_instance is None else m.gpu_instance}, " \
          f"compute instance {'?' if m.compute_instance is None else m.compute_instance}"
    mem = "N/A"
    if m.memory_total:
        mem = f"{(m.memory_used or 0) // MIB}/{m.memory_total // MIB}MB ({(m.memory_used or 0) / m.memory_total:.0%})"
    return f"  MIG {m.profile or 'unknown'} ({ids}) | Mem: {mem}"


def _present(v: Any) -> bool:
    """A field the device reported: not None, and not an empty collection."""
    return v is not None and v != {} and v != []


def as_json(s: GpuSnapshot) -> dict[str, Any]:
    """A snapshot as plain JSON-ready values: absent fields are left out."""
    out: dict[str, Any] = {}
    for k, v in vars(s).items():
        if not _present(v):
            continue
        if k in ("mig_instances", "processes"):
            v = [{a: b for a, b in vars(m).items() if _present(b)} for m in v]
        elif k == "ecc_errors":
            v = {f"{a}_{b}": n for (a, b), n in v.items()}
        elif isinstance(v, dict):
            v = {str(a): b for a, b in v.items()}
        out[k] = v
    return out


class Summary:
    """Min/mean/max of utilisation, memory, temperature and power, and time in each health state."""

    FIELDS = ("utilization_%", "memory_%", "temperature_c", "power_w")

    def __init__(self) -> None:
        # index -> {"name", "values": {field: [min, sum, max, n]}, "states": {state: seconds}}
        self.gpus: dict[int, dict[str, Any]] = {}

    def add(self, snapshots: Iterable[GpuSnapshot], seconds: float) -> None:
        for s in snapshots:
            g = self.gpus.setdefault(s.index, {"name": s.name, "values": {}, "states": {}})
            util = None if s.utilization is None else s.utilization * 100
            for name, v in zip(self.FIELDS, (util, memory_percent(s), s.temperature, s.power)):
                if v is None:
                    continue
                acc = g["values"].setdefault(name, [v, 0.0, v, 0])
                acc[0], acc[1], acc[2], acc[3] = min(acc[0], v), acc[1] + v, max(acc[2], v), acc[3] + 1
            state = s.health or "UNKNOWN"
            g["states"][state] = g["states"].get(state, 0.0) + seconds

    def lines(self) -> list[str]:
        out = []
        for index in sorted(self.gpus):
            g = self.gpus[index]
            out.append(f"GPU {index}: {g['name']}")
            for name in self.FIELDS:
                if name in g["values"]:
                    lo, total, hi, n = g["values"][name]
                    out.append(f"  {name:14s} min {lo:8.1f}  mean {total / n:8.1f}  max {hi:8.1f}")
                else:
                    out.append(f"  {name:14s} N/A")
            states = ", ".join(f"{st} {g['states'][st]:.1f}s" for st in STATES + ("UNKNOWN",)
                               if st in g["states"])
            out.append(f"  time in state  {states}")
        return out
