"""The `gpu` collector: orchex_gpu_* and orchex_nvml_* families, from the shared GPU reading
(exporter/gpu/reading.py) on scrape."""

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from exporter.collectors import CollectorFailed, Settings
from exporter.exposition import Family, labels
from exporter.gpu.backends import Backend
from exporter.gpu.gpm import GPM_METRICS
from exporter.gpu.health import STATES
from exporter.gpu.reading import SharedReading, Unavailable
from exporter.gpu.snapshot import GpuSnapshot

if TYPE_CHECKING:
    from exporter.routing.registry import Registry

# (family, type, help, value from a snapshot): one series per GPU labelled gpu and uuid, omitted
# when the value is None (the device does not report it).
PER_GPU = [
    ("orchex_gpu_utilization_ratio", "gauge", "Share of time a kernel ran on the GPU (0-1).",
     lambda s: s.utilization),
    ("orchex_gpu_memory_utilization_ratio", "gauge",
     "Share of time device memory was read or written (memory interface busy, not memory used).",
     lambda s: s.memory_utilization),
    ("orchex_gpu_encoder_utilization_ratio", "gauge", "Video encoder utilisation (0-1).",
     lambda s: s.encoder_utilization),
    ("orchex_gpu_decoder_utilization_ratio", "gauge", "Video decoder utilisation (0-1).",
     lambda s: s.decoder_utilization),
    ("orchex_gpu_memory_used_bytes", "gauge", "Device memory used.", lambda s: s.memory_used),
    ("orchex_gpu_memory_free_bytes", "gauge", "Device memory free.", lambda s: s.memory_free),
    ("orchex_gpu_memory_total_bytes", "gauge", "Device memory installed.", lambda s: s.memory_total),
    ("orchex_gpu_memory_reserved_bytes", "gauge", "Device memory reserved by the driver.",
     lambda s: s.memory_reserved),
    ("orchex_gpu_temperature_celsius", "gauge", "GPU die temperature.", lambda s: s.temperature),
    ("orchex_gpu_memory_temperature_celsius", "gauge", "Memory (HBM) temperature.",
     lambda s: s.memory_temperature),
    ("orchex_gpu_power_watts", "gauge", "Power draw.", lambda s: s.power),
    ("orchex_gpu_power_limit_watts", "gauge", "Power management limit.", lambda s: s.power_limit),
    ("orchex_gpu_enforced_power_limit_watts", "gauge", "Power limit the driver enforces.",
     lambda s: s.enforced_power_limit),
    ("orchex_gpu_energy_joules", "counter", "Energy consumed since the driver was loaded; rate() gives watts.",
     lambda s: s.energy),
    ("orchex_gpu_fan_speed_ratio", "gauge", "Fan speed as a share of its maximum (can exceed 1).",
     lambda s: s.fan_speed),
    ("orchex_gpu_performance_state", "gauge", "Performance state: 0 (P0, maximum) to 15 (minimum).",
     lambda s: s.performance_state),
    ("orchex_gpu_retired_pages_pending", "gauge", "1 when retired pages wait for a reboot to take effect.",
     lambda s: s.retired_pages_pending),
    ("orchex_gpu_row_remap_pending", "gauge", "1 when a row remap waits for a GPU reset.",
     lambda s: s.row_remap_pending),
    ("orchex_gpu_row_remap_failure", "gauge", "1 when a row remap failed (NVIDIA's RMA criterion).",
     lambda s: s.row_remap_failure),
    ("orchex_gpu_pcie_link_generation", "gauge", "Current PCIe link generation.",
     lambda s: s.pcie_link_generation),
    ("orchex_gpu_pcie_link_width", "gauge", "Current PCIe link width (lanes).", lambda s: s.pcie_link_width),
    ("orchex_gpu_pcie_replays", "counter", "PCIe replay counter.", lambda s: s.pcie_replays),
    ("orchex_gpu_compute_processes", "gauge", "Compute processes running on the GPU.",
     lambda s: s.compute_processes),
]
CLOCKS = ("sm", "memory", "graphics", "video")
INFO_LABELS = ("pci_bus_id", "driver_version", "cuda_driver_version", "vbios_version", "serial", "minor_number")


class GpuCollector:
    name = "gpu"

    def __init__(self, reading: SharedReading) -> None:
        self.reading = reading
        self.lock = threading.Lock()
        self.built: tuple[list[GpuSnapshot] | None, list[Family]] = (None, [])  # snapshots -> their families

    def reconfigure(self, settings: Settings, registry: "Registry") -> None:
        pass  # the shared reading adopts the GPU settings (commands/serve.py)

    def collect(self, now: float) -> list[Family]:
        """The GPU families; raises CollectorFailed (with nvml_up 0 and the error counts) when no
        backend could be opened or the open one failed, so the scrape says the collector failed.
        Within the reading's sharing window the very same list is returned, so it is not rendered again."""
        try:
            snaps, backend = self.reading.read(now)
        except Unavailable as e:
            raise CollectorFailed(str(e), self._status(None)) from None
        with self.lock:
            if self.built[0] is not snaps:
                self.built = (snaps, self._status(backend) + gpu_families(snaps))
            return self.built[1]

    def close(self) -> None:
        pass  # the reading is shared, and closed by its owner

    def _status(self, answering: Backend | None) -> list[Family]:
        """orchex_nvml_up, which backend produced the GPU series, the XID watcher and error counts."""
        up = Family("orchex_nvml_up", "gauge",
                    "1 when NVML answered this scrape; 0 when it did not, or when the GPU series are simulated.")
        up.add(1 if answering is not None and answering.name == "nvml" else 0)
        out = [up]
        if answering is not None:
            info = Family("orchex_backend", "info",
                          "The backend that produced this scrape's orchex_gpu_* series: nvml, or simulated "
                          "(made-up data for machines without GPUs).")
            info.add(1, labels(backend=answering.name), "_info")
            out.append(info)
            watching = getattr(answering, "xid_watcher_up", None)
            if watching is not None:
                xid = Family("orchex_nvml_xid_watcher_up", "gauge",
                             "1 while the thread that receives XID events runs; restarted within a minute.")
                xid.add(1 if watching else 0)
                out.append(xid)
        f = Family("orchex_nvml_errors", "counter",
                   "NVML calls that failed with an error other than NOT_SUPPORTED, by function and code.")
        for (function, code), n in sorted(self.reading.error_counts().items()):
            f.add(n, labels(function=function, code=code), "_total")
        return out + [f]


def gpu_families(snaps: Iterable[GpuSnapshot]) -> list[Family]:
    """The orchex_gpu_* families for judged snapshots."""
    info = Family("orchex_gpu", "info", "GPU identity; join on gpu/uuid with group_left.")
    up = Family("orchex_gpu_up", "gauge", "1 when the GPU answered, 0 when it is lost or failing.")
    state = Family("orchex_gpu_health_state", "gauge",
                   "1 for the GPU's current health state, 0 for the others (the health model: docs/metrics.md).")
    per = [Family(n, t, h) for n, t, h, _ in PER_GPU]
    clocks = Family("orchex_gpu_clock_hertz", "gauge", "Current clock by domain (sm, memory, graphics, video).")
    max_clocks = Family("orchex_gpu_max_clock_hertz", "gauge", "Maximum clock by domain.")
    events = Family("orchex_gpu_clock_event_active", "gauge",
                    "1 while the named clock-event (throttle) reason holds the clocks down.")
    ecc = Family("orchex_gpu_ecc_errors", "counter",
                 "ECC errors since the driver was loaded (volatile; a reload resets it), by error.")
    ecc_life = Family("orchex_gpu_ecc_lifetime_errors", "counter", "ECC errors over the GPU's life (aggregate).")
    pages = Family("orchex_gpu_retired_pages", "gauge", "Retired memory pages by cause.")
    rows = Family("orchex_gpu_remapped_rows", "gauge", "Remapped memory rows by error.")
    xids = Family("orchex_gpu_xid_errors", "counter", "XID events seen since the exporter started, by XID.")
    xid_last = Family("orchex_gpu_xid_last_timestamp_seconds", "gauge", "Unix time of the last event per XID.")
    for s in snaps:
        lab = labels(gpu=s.index, uuid=s.uuid)
        info.add(1, labels(gpu=s.index, uuid=s.uuid, model_name=s.name,
                           **{k: getattr(s, k) for k in INFO_LABELS if getattr(s, k) is not None},
                           **({"mig_mode": "enabled" if s.mig_mode else "disabled"} if s.mig_mode is not None
                              else {})), "_info")
        up.add(1 if s.up else 0, lab)
        for st in STATES:
            state.add(1 if s.health == st else 0, labels(gpu=s.index, uuid=s.uuid, state=st))
        if not s.up:
            continue
        for fam, (_, typ, _, get) in zip(per, PER_GPU):
            v = get(s)
            if v is not None:
                fam.add(v, lab, "_total" if typ == "counter" else "")
        for d in CLOCKS:
            if d in s.clocks:
                clocks.add(s.clocks[d], labels(gpu=s.index, uuid=s.uuid, clock=d))
            if d in s.max_clocks:
                max_clocks.add(s.max_clocks[d], labels(gpu=s.index, uuid=s.uuid, clock=d))
        for reason, active in sorted(s.clock_events.items()):
            events.add(1 if active else 0, labels(gpu=s.index, uuid=s.uuid, reason=reason))
        for (counter, error), n in sorted(s.ecc_errors.items()):
            target = ecc if counter == "volatile" else ecc_life
            target.add(n, labels(gpu=s.index, uuid=s.uuid, error=error), "_total")
        for cause, n in sorted(s.retired_pages.items()):
            pages.add(n, labels(gpu=s.index, uuid=s.uuid, cause=cause))
        for error, n in sorted(s.remapped_rows.items()):
            rows.add(n, labels(gpu=s.index, uuid=s.uuid, error=error))
    # XID counts survive a GPU going down: that is when they matter most.
    for s in snaps:
        for xid in sorted(s.xid_counts):
            xlab = labels(gpu=s.index, uuid=s.uuid, xid=xid)
            xids.add(s.xid_counts[xid], xlab, "_total")
            xid_last.add(s.xid_last_seen[xid], xlab)
    return [f for f in [info, up, state, *per, clocks, max_clocks, events, ecc, ecc_life, pages, rows, xids,
                        xid_last, *mig_families(s for s in snaps if s.up),
                        *gpm_families(s for s in snaps if s.up)] if f.samples]


def mig_families(snaps: Iterable[GpuSnapshot]) -> list[Family]:
    """One series set per MIG instance of the GPUs in MIG mode, built afresh on every reading, so
    instances destroyed since the last one are gone and new ones appear."""
    mig = Family("orchex_gpu_mig", "info", "A MIG instance of the GPU: its GPU and compute instance ids, its profile "
                 "(1g.10gb) and its UUID; instance ids are reused after a reconfiguration, the UUID is not.")
    used = Family("orchex_gpu_mig_memory_used_bytes", "gauge", "Memory used in the MIG instance.")
    total = Family("orchex_gpu_mig_memory_total_bytes", "gauge", "Memory of the MIG instance.")
    for s in snaps:
        for inst in s.mig_instances:
            ids = {"gpu_instance": "" if inst.gpu_instance is None else inst.gpu_instance,
                   "compute_instance": "" if inst.compute_instance is None else inst.compute_instance}
            mig.add(1, labels(gpu=s.index, uuid=s.uuid, **ids, profile=inst.profile, mig_uuid=inst.uuid), "_info")
            if "" in ids.values():  # unknown ids would give every instance the same labels: no memory series
                continue
            if inst.memory_used is not None:
                used.add(inst.memory_used, labels(gpu=s.index, uuid=s.uuid, **ids))
            if inst.memory_total is not None:
                total.add(inst.memory_total, labels(gpu=s.index, uuid=s.uuid, **ids))
    return [mig, used, total]


def gpm_families(snaps: Iterable[GpuSnapshot]) -> list[Family]:
    """The GPM families (exporter/gpu/gpm.py), averaged over the window since the previous reading: a
    series per GPU, or under MIG per instance (labelled gpu_instance); orchex_gpu_gpm_supported says
    which GPUs have GPM at all."""
    supported = Family("orchex_gpu_gpm_supported", "gauge",
                       "1 when the GPU has NVML GPM (Hopper and later), which the orchex_gpu_*_active_ratio and "
                       "*_bytes_per_second families come from; they appear from the second reading on.")
    families = [Family(f"orchex_gpu_{m.key}", "gauge", m.help + " From NVML GPM, over the window since the previous "
                       "reading; per MIG instance under MIG.") for m in GPM_METRICS]
    for s in snaps:
        if s.gpm_supported is not None:
            supported.add(1 if s.gpm_supported else 0, labels(gpu=s.index, uuid=s.uuid))
        for fam, m in zip(families, GPM_METRICS):
            if m.key in s.gpm:
                fam.add(s.gpm[m.key], labels(gpu=s.index, uuid=s.uuid))
            for inst in s.mig_instances:
                if m.key in inst.gpm:
                    fam.add(inst.gpm[m.key], labels(gpu=s.index, uuid=s.uuid, gpu_instance=inst.gpu_instance))
    return [supported, *families]
