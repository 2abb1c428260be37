"""orchex: routing core, GPU telemetry and a Prometheus exporter for hosts serving local LLMs."""

__version__ = "0.1.0"
