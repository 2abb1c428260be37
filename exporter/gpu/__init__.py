"""GPU telemetry: snapshots, backends (NVML, simulated) and the health model."""

BACKENDS = ("auto", "nvml", "simulated")  # what --gpu-backend names; exporter/gpu/backends.py opens each
