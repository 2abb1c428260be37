"""A simulated GPU fleet for machines without GPUs, described in YAML (see default_fleet.yaml).

Each GPU's utilisation follows a sine wave plus seeded noise; memory, temperature, power and clocks
follow from it. Readings are a function of the seed and the clock passed in, so tests can replay them.
"""

import math
import os
import random
import re
import time
from collections.abc import Callable
from typing import Any

from exporter import yamlfile
from exporter.common.memory import parse_size
from exporter.errors import ProblemList
from exporter.gpu.snapshot import GpuProcess, GpuSnapshot, MigInstance

DEFAULT_FLEET = os.path.join(os.path.dirname(__file__), "default_fleet.yaml")


def _number(lo: float, hi: float) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and lo <= v <= hi  # false for NaN
        return None if ok else f"must be a number from {lo:,g} to {hi:,.0f}"
    return check


MIG_PROFILE = re.compile(r"([1-7])g\.([1-9][0-9]{0,2})gb")
MIG_SLICES = 7  # an A100/H100/H200 splits into at most 7 compute slices


def _mig(v: Any) -> str | None:
    if not isinstance(v, list) or not v or not all(isinstance(p, str) and MIG_PROFILE.fullmatch(p) for p in v):
        return "must be a list of MIG profiles such as 1g.10gb or 3g.40gb"
    if sum(int(p[0]) for p in v) > MIG_SLICES:
        return f"the profiles take more than the GPU's {MIG_SLICES} slices"
    return None


def _commands(v: Any) -> str | None:
    ok = isinstance(v, list) and len(v) <= 64 and all(
        isinstance(c, str) and 0 < len(c) <= 15 and c.isprintable() for c in v)
    return None if ok else "must be a list of up to 64 process names of 1 to 15 characters"


def _flag(v: Any) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


def _memory(v: Any) -> str | None:
    try:
        parse_size(v)
    except ValueError as e:
        return str(e)
    return None


# What each key of a simulated GPU may hold.
GPU_KEYS: dict[str, Callable[[Any], str | None]] = {
    "name": lambda v: None if isinstance(v, str) and 0 < len(v) <= 200 and v.isprintable()
    else "must be text of 1 to 200 printable characters",
    "memory_total": _memory,
    "power_limit": _number(1, 5000), "idle_power": _number(0, 5000),
    "base_utilization": _number(0, 1), "wave_amplitude": _number(0, 1),
    "wave_period_seconds": _number(1, 31_536_000), "extra_temperature": _number(-50, 100),
    "power_reads_na": _flag, "lost": _flag,
    "mig": _mig,  # MIG mode with these instances
    "processes": _commands,  # model servers running on it, by name; under MIG, one per instance in turn
    "gpm": _flag,  # GPM profiling metrics (a Hopper GPU), derived from the load
}
MAX_GPUS = 64


def load_fleet(path: str | None = None) -> tuple[int, list[dict[str, Any]]]:
    """(seed, GPUs) of a fleet file; ProblemList naming every problem with its line."""
    path = path or DEFAULT_FLEET
    data, lines = yamlfile.load(path)
    if not isinstance(data, dict):
        raise ProblemList(path, [(1, "a fleet is a mapping with a 'gpus' list (and an optional seed)")])
    problems: list[tuple[int | None, str]] = []
    for key in data:
        if key not in ("seed", "gpus"):
            problems.append((lines.get((key,)), f"unknown fleet key {key!r} (keys: seed, gpus)"))
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        problems.append((lines.get(("seed",)), "seed must be a whole number from 0 to 4294967295"))
    gpus = data.get("gpus")
    if not isinstance(gpus, list) or not 0 < len(gpus) <= MAX_GPUS:
        problems.append((lines.get(("gpus",), 1), f"a fleet needs a 'gpus' list of 1 to {MAX_GPUS} GPUs"))
        gpus = []
    for i, g in enumerate(gpus):
        if not isinstance(g, dict):
            problems.append((lines.get(("gpus", i)), "each GPU is a mapping"))
            continue
        for key, value in g.items():
            check = GPU_KEYS.get(key)
            problem = f"unknown GPU key {key!r}" if check is None else check(value)
            if problem:
                problems.append((lines.get(("gpus", i, key)), f"gpus[{i}].{key}: {problem}" if check else problem))
    if problems:
        raise ProblemList(path, problems)
    return seed, [dict(g, memory_total=parse_size(g.get("memory_total", "16GiB"))) for g in gpus]


def activity(load: float) -> dict[str, float]:
    """GPM activity for a load: a serving LLM keeps its SMs and memory busier than its tensor pipes."""
    return {"graphics_engine_active_ratio": load, "sm_active_ratio": 0.9 * load, "sm_occupancy_ratio": 0.5 * load,
            "tensor_active_ratio": 0.6 * load, "dram_active_ratio": 0.7 * load, "fp64_active_ratio": 0.01 * load,
            "fp32_active_ratio": 0.2 * load, "fp16_active_ratio": 0.3 * load,
            "pcie_transmit_bytes_per_second": 2e9 * load, "pcie_receive_bytes_per_second": 1e9 * load,
            "nvlink_transmit_bytes_per_second": 0.0, "nvlink_receive_bytes_per_second": 0.0}


class SimulatedBackend:
    name = "simulated"

    def __init__(self, fleet_path: str | None = None, clock: Callable[[], float] = time.time) -> None:
        self.seed, self.fleet = load_fleet(fleet_path)
        self.clock = clock
        self.started = clock()
        self.error_counts: dict[tuple[str, str], int] = {}

    def close(self) -> None:
        pass

    def __enter__(self) -> "SimulatedBackend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self) -> list[GpuSnapshot]:
        now = self.clock()
        return [self._gpu(i, g, now) for i, g in enumerate(self.fleet)]

    def _gpu(self, i: int, g: dict[str, Any], now: float) -> GpuSnapshot:
        rng = random.Random(self.seed * 1_000_003 + i * 7919 + int(now))
        period = float(g.get("wave_period_seconds", 60))
        phase = 2 * math.pi * ((now / period) + i / max(len(self.fleet), 1))
        util = g.get("base_utilization", 0.4) + g.get("wave_amplitude", 0.2) * math.sin(phase)
        util = min(1.0, max(0.0, util + rng.uniform(-0.05, 0.05)))
        s = GpuSnapshot(index=i, name=g.get("name", "Simulated GPU"),
                        uuid=f"GPU-5{self.seed:07x}-0000-4000-8000-{i:012x}",
                        pci_bus_id=f"00000000:{0x18 + i:02X}:00.0", driver_version="simulated",
                        cuda_driver_version="12.4", vbios_version="simulated", mig_mode=False,
                        minor_number=i)
        if g.get("lost"):
            s.up = False
            return s
        total = g["memory_total"]
        s.memory_total = total
        s.memory_reserved = total // 100
        s.memory_used = int(total * min(0.97, 0.08 + 0.7 * util))
        s.memory_free = total - s.memory_used - s.memory_reserved
        s.utilization = round(util, 2)
        s.memory_utilization = round(util * 0.6, 2)
        s.temperature = round(32 + 50 * util + g.get("extra_temperature", 0) + rng.uniform(-1, 1))
        s.memory_temperature = s.temperature + 4  # HBM runs a few degrees above the die
        limit = float(g.get("power_limit", 300))
        idle = float(g.get("idle_power", limit / 10))
        s.power_limit = s.enforced_power_limit = limit
        if not g.get("power_reads_na"):
            s.power = round(idle + (limit - idle) * util * 0.92, 1)
            # A counter: the energy of a load at the wave's mean since the simulation started.
            s.energy = round((idle + (limit - idle) * g.get("base_utilization", 0.4) * 0.92)
                             * (now - self.started + 3600.0), 3)
        boost = 1980e6 if "H100" in s.name else 1590e6
        s.clocks = {"sm": boost * (0.5 + 0.5 * util), "graphics": boost * (0.5 + 0.5 * util),
                    "memory": 2619e6 if "H100" in s.name else 5001e6}
        s.max_clocks = {"sm": boost, "graphics": boost, "memory": s.clocks["memory"]}
        s.performance_state = 0 if util > 0.1 else 8
        s.clock_events = {"gpu_idle": util < 0.05, "sw_power_cap": util > 0.9,
                          "hw_thermal": s.temperature >= 88, "sw_thermal": s.temperature >= 85}
        s.ecc_errors = {("volatile", "corrected"): 0, ("volatile", "uncorrected"): 0,
                        ("aggregate", "corrected"): 0, ("aggregate", "uncorrected"): 0}
        s.remapped_rows = {"corrected": 0, "uncorrected": 0}
        s.row_remap_pending = s.row_remap_failure = False
        s.pcie_link_generation, s.pcie_link_width, s.pcie_replays = (5, 16, 0) if "H100" in s.name else (3, 16, 0)
        s.gpm_supported = bool(g.get("gpm"))
        if g.get("mig"):
            self._split(s, g["mig"], rng, now)  # GPM per instance there
        elif s.gpm_supported:
            s.gpm = activity(round(util, 2))
        self._run(s, g.get("processes", []), util)
        return s

    def _split(self, s: GpuSnapshot, profiles: list[str], rng: random.Random, now: float) -> None:
        """MIG mode: one instance per profile, each busy on a wave of its own; the device
        utilisation is then unsupported, as on a real GPU, and its memory is the instances' sum."""
        s.mig_mode = True
        s.utilization = s.memory_utilization = None
        for slot, profile in enumerate(profiles):
            total = int(MIG_PROFILE.fullmatch(profile)[2]) * 2**30  # type: ignore[index]
            load = 0.5 + 0.4 * math.sin(slot + now / 60) + rng.uniform(-0.05, 0.05)
            s.mig_instances.append(MigInstance(
                uuid=f"MIG-5{self.seed:07x}-{s.index:04x}-4000-8000-{slot:012x}", gpu_instance=slot + 1,
                compute_instance=0, profile=profile, memory_total=total,
                memory_used=int(total * min(0.97, max(0.02, load))),
                gpm=activity(min(1.0, max(0.0, load))) if s.gpm_supported else {}))
        s.memory_used = sum(i.memory_used or 0 for i in s.mig_instances)
        s.memory_free = s.memory_total - s.memory_used - s.memory_reserved  # type: ignore[operator]

    def _run(self, s: GpuSnapshot, commands: list[str], util: float) -> None:
        """Processes with PIDs of their own: under MIG, one instance each in turn, sharing its memory;
        otherwise the GPU's memory and utilisation shared by weight (the first the largest)."""
        s.processes = []
        weights = [len(commands) - k for k in range(len(commands))]
        for k, command in enumerate(commands):
            p = GpuProcess(pid=40000 + 100 * s.index + k, command=command)
            if s.mig_instances:
                inst = s.mig_instances[k % len(s.mig_instances)]
                sharing = len(commands[k % len(s.mig_instances)::len(s.mig_instances)])
                p.gpu_instance, p.memory_used = inst.gpu_instance, (inst.memory_used or 0) // sharing
            else:
                share = weights[k] / sum(weights)
                p.memory_used = int((s.memory_used or 0) * 0.9 * share)
                p.sm_utilization = round(util * share, 3)
            s.processes.append(p)
        s.compute_processes = len(s.processes)
