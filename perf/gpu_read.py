"""Time to read one full snapshot of 8 GPUs: through pynvml on the fake libnvidia-ml.so.1 (our own
overhead per scrape: the fake answers at once) and from the simulated backend.
Target: under 1 ms per GPU through pynvml. On a machine with a real GPU, `--real` reads it instead."""

import ctypes
import os
import sys

from perf.common import save, summary, timed, verdict

TESTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")


def main(tmp, real=False):
    from exporter.gpu.simulated import SimulatedBackend

    out = {}
    if not real:
        sys.path.insert(0, TESTS)
        import fake_nvml

        fake_nvml.build()
        ctypes.CDLL(fake_nvml.LIB, mode=ctypes.RTLD_GLOBAL)
        scenario = str(tmp / "scenario.txt")
        fake_nvml.write(scenario, [fake_nvml.gpu(i) for i in range(8)])
        os.environ["FAKE_NVML_SCENARIO"] = scenario
    from exporter.gpu.nvml import NvmlBackend

    with NvmlBackend(watch_xids=False) as nvml:
        n_gpus = len(nvml.read())
        s = summary(timed(nvml.read, 200))
        per_gpu = s["median_s"] / n_gpus
        s.update(gpus=n_gpus, per_gpu_median_s=per_gpu, target_per_gpu_s=1e-3, verdict=verdict(per_gpu, 1e-3),
                 library="real NVML" if real else "fake libnvidia-ml.so.1 (tests/fake_nvml)")
        out["nvml"] = s
        print(f"nvml      {n_gpus} GPUs  snapshot median {s['median_s'] * 1e3:6.3f} ms  p99 "
              f"{s['p99_s'] * 1e3:6.3f} ms  per GPU {per_gpu * 1e3:6.3f} ms  target 1 ms  {s['verdict']}"
              f"  ({s['library']})")
    fleet = tmp / "fleet8.yaml"
    fleet.write_text("gpus:\n" + "".join("  - {name: NVIDIA H100 80GB HBM3, memory_total: 80GiB}\n"
                                         for _ in range(8)))
    sim = SimulatedBackend(str(fleet))
    s = summary(timed(sim.read, 2000))
    s["per_gpu_median_s"] = s["median_s"] / 8
    out["simulated"] = s
    print(f"simulated 8 GPUs  snapshot median {s['median_s'] * 1e3:6.3f} ms  p99 {s['p99_s'] * 1e3:6.3f} ms"
          f"  per GPU {s['per_gpu_median_s'] * 1e3:6.3f} ms")
    out["reference"] = "legacy: one nvidia-smi spawn per reading (claimed 3.5 ms per query; target 1 ms)"
    return save("gpu_read_real" if real else "gpu_read", {"results": out})


if __name__ == "__main__":  # on a GPU host: python -m perf.gpu_read --real
    import pathlib
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        main(pathlib.Path(d), real="--real" in sys.argv)
