"""`orchex bench 1000` on the default registry, whole process (interpreter start included), median of
ten runs. Target: under 0.6 x the legacy compiled benchmark's 0.25 s for the same work (1,000
iterations over 9 categories and the same four tests), i.e. 0.15 s. orchex's run does more than that
work: a tenth category (translation), two GPU-aware combinations, p95/p99, and the scaling test."""

import json
import statistics
import subprocess
import sys
import time

from perf.common import ROOT, save, verdict


def main(tmp):
    walls = []
    for _ in range(10):
        t = time.perf_counter()
        res = subprocess.run([sys.executable, "-m", "exporter", "bench", "1000", "--format", "json"], cwd=ROOT,
                             capture_output=True, text=True)
        walls.append(time.perf_counter() - t)
        assert res.returncode == 0, res.stdout + res.stderr
    report = json.loads(res.stdout)
    median = statistics.median(walls)
    target = 0.6 * 0.25
    code = report["categories"]["code"]
    print(f"orchex bench 1000, whole process: median {median:.3f} s (min {min(walls):.3f}, max {max(walls):.3f}) "
          f"over 10 runs; target {target:.2f} s (0.6 x legacy 0.25 s)  {verdict(median, target)}")
    print(f"  code: median {code['median_s'] * 1e6:.2f} us, p95 {code['p95_s'] * 1e6:.2f} us, "
          f"p99 {code['p99_s'] * 1e6:.2f} us, {code['selections_per_second']:,.0f} selections/s")
    return save("bench", {"results": {"whole_process_median_s": median, "runs_s": walls, "target_s": target,
                                      "verdict": verdict(median, target), "report_code": code,
                                      "categories": len(report["categories"]),
                                      "combinations": len(report["combinations"])}})
