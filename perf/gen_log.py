"""Generated selection logs for the analytics benchmarks: rows the real selector produced for the
demo's request mix on the simulated fleet, with seeded durations; extra columns as orchex writes."""

import random

from exporter.commands.demo import requests
from exporter.gpu.backends import judged
from exporter.gpu.simulated import SimulatedBackend
from exporter.routing import registry, selector
from exporter.selectionlog.rows import COLUMNS, EXTRA
from exporter.selectionlog.writer import format_row

START = 1769155200  # 2026-01-23 08:00:00 UTC


def generate(path, rows, seed=11):
    """Write `rows` selections: one a second from START, GPUs read every 10 selections."""
    reg = registry.load()
    rng = random.Random(seed)
    clock = [float(START)]
    fleet = SimulatedBackend(clock=lambda: clock[0])
    stream = requests(reg, rng)
    with open(path, "w") as f:
        f.write(",".join(COLUMNS + EXTRA) + "\n")
        out = []
        gpus = None
        i = written = 0
        while written < rows:
            if i % 10 == 0:
                clock[0] = START + i
                gpus = judged(fleet.read(), clock[0])
            cat, c = next(stream)
            i += 1
            try:
                sel = selector.select(reg, cat, c, gpus)
            except selector.SelectionError:
                continue
            out.append(format_row(sel, START + i, rng.lognormvariate(-5.3, 0.5) / 1000, extra=True))
            written += 1
            if len(out) >= 10000:
                f.write("".join(out))
                out = []
        f.write("".join(out))
