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


def generate_distinct(path, rows, seed=12, header=True, start_row=0):
    """Write `rows` in the legacy eight columns as another router writes them: it times the whole
    request (durations 0-2000 ms with three decimals) and logs a classifier's probability as the
    confidence (three decimals), so nearly every duration and confidence is new. Categories, models
    and GPUs are the packaged registry's, spread as a busy router's are. Seeded: the same arguments
    give the same file; `start_row` continues an earlier call's timestamps."""
    reg = registry.load()
    rng = random.Random(seed * 1_000_003 + start_row)
    cats, models = list(reg.categories), list(reg.models)
    with open(path, "a" if not header else "w") as f:
        if header:
            f.write(",".join(COLUMNS) + "\n")
        for block in range(start_row, start_row + rows, 10000):
            f.write("".join(
                f"{_stamp(i)},{rng.choice(cats)},{rng.choice(models)},{'true' if rng.random() < 0.6 else 'false'},"
                f"{rng.random():.3f},{rng.uniform(0, 100):.2f},{rng.randrange(8)},{rng.uniform(0, 2000):.3f}\n"
                for i in range(block, min(block + 10000, start_row + rows))))


def _stamp(i):
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(START + i // 20))
