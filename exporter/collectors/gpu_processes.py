"""The `gpu-processes` collector: the compute processes on each GPU, their memory and SM utilisation,
named by /proc/<pid>/comm. Not to be confused with `process`, the exporter's own process metrics.

Series are bounded by `--gpu-processes.max-per-gpu`: the processes holding the most memory get their
own, the rest are summed into pid="other". NVML gives host PIDs: a name is read only where
`--path.procfs` shows the host's processes (exporter/procfs.py; `hostPID: true` in Kubernetes);
elsewhere a PID could name an unrelated process of the container, so none is named and
orchex_gpu_processes_unresolved counts them."""

import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from exporter.collectors import CollectorFailed, Settings
from exporter.exposition import Family, labels
from exporter.gpu.reading import SharedReading, Unavailable
from exporter.gpu.snapshot import GpuProcess, GpuSnapshot
from exporter.procfs import command, host_pid_namespace

if TYPE_CHECKING:
    from exporter.routing.registry import Registry

OTHER = "other"


def _merged(processes: Iterable[GpuProcess]) -> list[GpuProcess]:
    """One entry per PID: the driver lists a process once per MIG instance it uses, and two series
    with the same labels would make Prometheus refuse the whole scrape."""
    by_pid: dict[int, GpuProcess] = {}
    for p in processes:
        seen = by_pid.get(p.pid)
        if seen is None:
            by_pid[p.pid] = GpuProcess(p.pid, p.memory_used, p.gpu_instance, p.sm_utilization, p.command)
            continue
        if p.memory_used is not None:
            seen.memory_used = (seen.memory_used or 0) + p.memory_used
        if p.gpu_instance != seen.gpu_instance:
            seen.gpu_instance = None
        if p.sm_utilization is not None:
            seen.sm_utilization = max(seen.sm_utilization or 0.0, p.sm_utilization)
    return list(by_pid.values())


def _sum(values: Iterable[float | int | None]) -> float | int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def process_families(snaps: Iterable[GpuSnapshot], name: Callable[[int], str | None],
                     max_per_gpu: int) -> list[Family]:
    """The per-process families of GPUs that answered: at most `max_per_gpu` processes each by memory
    (ties by PID), the rest as pid="other". `name(pid)` is the command of a process whose backend did
    not name it, None where it is not visible."""
    memory = Family("orchex_gpu_process_memory_used_bytes", "gauge",
                    "GPU memory a process holds (gpu_instance: its MIG GPU instance, empty outside MIG); "
                    "beyond --gpu-processes.max-per-gpu, the rest summed as pid=\"other\".")
    sm = Family("orchex_gpu_process_sm_utilization_ratio", "gauge",
                "Share of the GPU's SM time a process used since the last reading (0-1); not available under MIG.")
    unresolved = Family("orchex_gpu_processes_unresolved", "gauge",
                        "Processes on the GPU whose PID this exporter cannot see (it needs the host's PID "
                        "namespace: hostPID in Kubernetes), so their command label is empty.")
    for s in snaps:
        if not s.up or s.processes is None:
            continue
        gpu = labels(gpu=s.index, uuid=s.uuid)
        processes = sorted(_merged(s.processes), key=lambda p: (p.memory_used is None, -(p.memory_used or 0), p.pid))
        names = {p.pid: p.command if p.command is not None else name(p.pid) for p in processes}
        unresolved.add(sum(1 for n in names.values() if n is None), gpu)
        shown, rest = processes[:max_per_gpu], processes[max_per_gpu:]
        rows: list[tuple[str, str, int | None, float | None, float | None]] = [
            (str(p.pid), names[p.pid] or "", p.gpu_instance, p.memory_used, p.sm_utilization) for p in shown]
        if rest:
            rows.append((OTHER, "", None, _sum(p.memory_used for p in rest), _sum(p.sm_utilization for p in rest)))
        for pid, cmd, instance, used, util in rows:
            if used is not None:
                memory.add(used, labels(gpu=s.index, uuid=s.uuid, gpu_instance="" if instance is None else instance,
                                        pid=pid, command=cmd))
            if util is not None:
                sm.add(util, labels(gpu=s.index, uuid=s.uuid, pid=pid, command=cmd))
    return [f for f in (memory, sm, unresolved) if f.samples]


class GpuProcessesCollector:
    name = "gpu-processes"

    def __init__(self, reading: SharedReading, max_per_gpu: int, proc: str = "/proc") -> None:
        self.reading, self.max_per_gpu, self.proc = reading, max_per_gpu, proc
        self.host_pids = host_pid_namespace(proc)  # a process does not change its PID namespace
        self.lock = threading.Lock()
        self.built: tuple[list[GpuSnapshot] | None, list[Family]] = (None, [])

    def reconfigure(self, settings: Settings, registry: "Registry") -> None:
        with self.lock:
            self.max_per_gpu, self.proc = settings["gpu-processes.max-per-gpu"], settings["path.procfs"]
            self.host_pids = host_pid_namespace(self.proc)
            self.built = (None, [])

    def collect(self, now: float) -> list[Family]:
        try:
            snaps, _ = self.reading.read(now)
        except Unavailable as e:
            raise CollectorFailed(str(e), []) from None
        with self.lock:
            if self.built[0] is not snaps:
                self.built = (snaps, process_families(snaps, self._name, self.max_per_gpu))
            return self.built[1]

    def _name(self, pid: int) -> str | None:
        return command(pid, self.proc) if self.host_pids else None

    def close(self) -> None:
        pass  # the reading is shared, and closed by its owner
