"""Median wall time of one `select` call: default registry without GPUs, with 8 simulated GPUs,
and a synthetic 1,000-model registry. Targets 5 us, 20 us, 100 us."""

import time

from exporter.gpu.backends import judged
from exporter.gpu.simulated import SimulatedBackend
from exporter.routing import registry, synthetic
from exporter.routing.selector import Constraints, select
from perf.common import save, summary, timed, verdict

FLEET8 = """\
seed: 3
gpus:
""" + "".join(f"  - {{name: NVIDIA H100 80GB HBM3, memory_total: 81559MiB, power_limit: 700, "
              f"base_utilization: 0.{i + 1}}}\n" for i in range(8))


def main(tmp):
    reg = registry.load()
    c = Constraints(max_memory=14 * 10**9, agent_type="inference")
    fleet = tmp / "fleet8.yaml"
    fleet.write_text(FLEET8)
    gpus = judged(SimulatedBackend(str(fleet), clock=lambda: 1000.0).read(), 1000.0)
    big = synthetic.build(1000)
    cases = {
        "default_registry_no_gpus": (lambda: select(reg, "code", c), 5e-6),
        "default_registry_8_gpus": (lambda: select(reg, "code", c, gpus), 20e-6),
        "synthetic_1000_models": (lambda: select(big, "code", Constraints(agent_type="inference")), 100e-6),
    }
    out = {}
    for name, (fn, target) in cases.items():
        for _ in range(1000):
            fn()
        s = summary(timed(fn, 20000 if "1000" not in name else 2000))
        s["target_s"] = target
        s["verdict"] = verdict(s["median_s"], target)
        out[name] = s
        print(f"select {name:28s} median {s['median_s'] * 1e6:7.2f} us  p99 {s['p99_s'] * 1e6:7.2f} us"
              f"  target {target * 1e6:.0f} us  {s['verdict']}")
    out["reference"] = "legacy compiled (Zig, ReleaseFast) selector: median 21 us per code selection"
    return save("select", {"results": out, "timer": time.get_clock_info("perf_counter").implementation})
