"""GPU telemetry: snapshots, backends (NVML, simulated) and the health model."""
