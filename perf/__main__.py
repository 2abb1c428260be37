"""Run every benchmark (`make perf`), or those named: `python -m perf select analytics`."""

import importlib
import pathlib
import sys
import tempfile

ALL = ("select", "gpu_read", "exporter", "daemon", "attacks", "bench", "analytics", "fleet", "kubernetes")


def main(names):
    for name in names or ALL:
        with tempfile.TemporaryDirectory() as tmp:
            print(f"== {name}")
            importlib.import_module(f"perf.{name}").main(pathlib.Path(tmp))


main(sys.argv[1:])
