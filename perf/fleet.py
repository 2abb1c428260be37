"""The fleet's figures (make perf): `tools/fleet.py --hosts 20 --check 75` runs 20 exporters, a
Prometheus agent and VictoriaMetrics, and records series per host, samples ingested per second and
the exporters' CPU per scrape in perf/results/fleet.json."""

import shutil
import subprocess
import sys

from perf.common import ROOT


def main(tmp):
    if shutil.which("victoria-metrics") is None:
        print("  (victoria-metrics not installed: `make fleet-deps` adds it)")
        return None
    res = subprocess.run([sys.executable, "tools/fleet.py", "--hosts", "20", "--check", "75"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    print("\n".join(line for line in res.stdout.splitlines() if line.startswith(("fleet", "  MISS", "  REFUSED"))))
    return res.returncode
