"""The NVML GPM (GPU Performance Monitoring, Hopper and later) metrics orchex exports: what a GPU's
SMs, tensor pipes and memory really do, which the device utilisation (the share of time any kernel
ran) cannot say. The backend reads them; the gpu collector names them; both from this one table."""

from typing import NamedTuple

MIB = 1 << 20


class GpmMetric(NamedTuple):
    key: str  # the family is orchex_gpu_<key>
    metric_id: int  # NVML_GPM_METRIC_*, a stable ABI number
    scale: float  # GPM's unit (percent, MiB/s) to the base unit (ratio, bytes per second)
    help: str


GPM_METRICS = (
    GpmMetric("graphics_engine_active_ratio", 1, 0.01, "Share of time the graphics or compute engine was active."),
    GpmMetric("sm_active_ratio", 2, 0.01, "Share of time at least one warp was resident on an SM, averaged over SMs."),
    GpmMetric("sm_occupancy_ratio", 3, 0.01, "Warps resident on the SMs as a share of the most they can hold."),
    GpmMetric("tensor_active_ratio", 5, 0.01, "Share of cycles any tensor pipe was active: the LLM workload's own."),
    GpmMetric("dram_active_ratio", 10, 0.01, "Share of cycles device memory was sending or receiving data."),
    GpmMetric("fp64_active_ratio", 11, 0.01, "Share of cycles the FP64 pipe was active."),
    GpmMetric("fp32_active_ratio", 12, 0.01, "Share of cycles the FP32 pipe was active."),
    GpmMetric("fp16_active_ratio", 13, 0.01, "Share of cycles the FP16 pipe was active."),
    GpmMetric("pcie_transmit_bytes_per_second", 20, MIB, "PCIe bytes sent per second."),
    GpmMetric("pcie_receive_bytes_per_second", 21, MIB, "PCIe bytes received per second."),
    GpmMetric("nvlink_receive_bytes_per_second", 60, MIB, "NVLink bytes received per second, all links."),
    GpmMetric("nvlink_transmit_bytes_per_second", 61, MIB, "NVLink bytes sent per second, all links."),
)
# A window shorter than this is mostly sampling noise: the previous window's values are served again.
MIN_WINDOW_SECONDS = 1.0
