"""Benchmarks behind `make perf`: each module prints its figures and writes perf/results/<name>.json."""
