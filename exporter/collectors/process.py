"""The `process` collector: the exporter's own CPU, memory, file descriptors and start time, with
the process_* names every client library uses. Read from /proc directly: importing prometheus_client
for its process collector would add about 13 MB of resident memory to a daemon that aims for under
40 MB."""

import os
from typing import TYPE_CHECKING

from exporter.collectors import Settings
from exporter.exposition import Family

if TYPE_CHECKING:
    from exporter.routing.registry import Registry

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _boot_time() -> float:
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("btime "):
                return float(line.split()[1])
    return 0.0


class ProcessCollector:
    name = "process"

    def __init__(self, proc: str = "/proc/self") -> None:
        self.proc = proc
        self.boot = _boot_time()

    def close(self) -> None:
        pass

    def reconfigure(self, settings: Settings, registry: "Registry") -> None:
        pass  # nothing to configure

    def collect(self, now: float) -> list[Family]:
        with open(f"{self.proc}/stat") as f:
            # Fields after the command name, which may itself hold spaces and parentheses.
            stat = f.read().rpartition(")")[2].split()
        utime, stime, start = int(stat[11]), int(stat[12]), int(stat[19])
        vsize, rss = int(stat[20]), int(stat[21]) * PAGE

        def gauge(name: str, help_: str, value: float, kind: str = "gauge") -> Family:
            fam = Family(name, kind, help_)
            fam.add(value, "", "_total" if kind == "counter" else "")
            return fam

        out = [
            gauge("process_cpu_seconds", "Total user and system CPU time spent in seconds.",
                  (utime + stime) / TICKS, "counter"),
            gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", vsize),
            gauge("process_resident_memory_bytes", "Resident memory size in bytes.", rss),
            gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
                  self.boot + start / TICKS),
            gauge("process_open_fds", "Number of open file descriptors.", len(os.listdir(f"{self.proc}/fd"))),
        ]
        with open(f"{self.proc}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    out.append(gauge("process_max_fds", "Maximum number of open file descriptors.",
                                     int(line.split()[3])))
        return out
