"""One reading of one GPU in base units. A field the device does not report stays None: never 0,
never a sentinel, so the exporter can omit its series."""

from dataclasses import dataclass, field


@dataclass
class MigInstance:
    """One MIG instance of a GPU, known by its UUID: the driver reuses instance ids."""

    uuid: str
    gpu_instance: int | None = None
    compute_instance: int | None = None
    profile: str = ""  # 1g.10gb, 3g.40gb: what nvmlDeviceGetName says after "MIG "
    memory_used: int | None = None  # bytes
    memory_total: int | None = None
    gpm: dict = field(default_factory=dict)  # GPM key (exporter/gpu/gpm.py) -> value over the last window


@dataclass
class GpuProcess:
    """A compute process on a GPU, by its host PID."""

    pid: int
    memory_used: int | None = None  # bytes; None where the driver does not say
    gpu_instance: int | None = None  # the MIG GPU instance it runs in; None outside MIG
    sm_utilization: float | None = None  # 0..1 since the last reading; None where not available (MIG)
    command: str | None = None  # set by a backend that knows it (the simulated fleet); else read from /proc


@dataclass
class GpuSnapshot:
    index: int
    uuid: str = ""
    name: str = ""
    up: bool = True  # False: the GPU answered GPU_IS_LOST or an unknown error
    pci_bus_id: str | None = None
    driver_version: str | None = None
    cuda_driver_version: str | None = None
    vbios_version: str | None = None
    serial: str | None = None
    minor_number: int | None = None  # N of /dev/nvidiaN, which GKE's device ids name
    mig_mode: bool | None = None
    mig_instances: list[MigInstance] = field(default_factory=list)  # in MIG mode; utilisation is then None
    utilization: float | None = None  # ratios 0..1
    memory_utilization: float | None = None  # memory interface busy, not memory used
    encoder_utilization: float | None = None
    decoder_utilization: float | None = None
    memory_used: int | None = None  # bytes
    memory_free: int | None = None
    memory_total: int | None = None
    memory_reserved: int | None = None
    temperature: float | None = None  # celsius
    memory_temperature: float | None = None
    power: float | None = None  # watts
    power_limit: float | None = None
    enforced_power_limit: float | None = None
    energy: float | None = None  # joules since driver load
    clocks: dict = field(default_factory=dict)  # sm/memory/graphics/video -> hertz
    max_clocks: dict = field(default_factory=dict)
    fan_speed: float | None = None  # ratio; can exceed 1
    performance_state: int | None = None
    clock_events: dict = field(default_factory=dict)  # reason -> bool (active)
    ecc_errors: dict = field(default_factory=dict)  # ("volatile"|"aggregate", "corrected"|"uncorrected") -> n
    retired_pages: dict = field(default_factory=dict)  # cause -> count
    retired_pages_pending: bool | None = None
    remapped_rows: dict = field(default_factory=dict)  # corrected/uncorrected -> rows
    row_remap_pending: bool | None = None
    row_remap_failure: bool | None = None
    pcie_link_generation: int | None = None
    pcie_link_width: int | None = None
    pcie_replays: int | None = None
    compute_processes: int | None = None
    processes: list[GpuProcess] | None = None  # None when the driver could not list them
    gpm_supported: bool | None = None
    gpm: dict = field(default_factory=dict)  # outside MIG; under MIG each instance has its own
    xid_counts: dict = field(default_factory=dict)  # xid code -> events seen
    xid_last_seen: dict = field(default_factory=dict)  # xid code -> unix time
    errors: dict = field(default_factory=dict)  # NVML function -> error name, for fields that failed
    health: str | None = None  # set by gpu.backends.judged(); the selector places only on HEALTHY
