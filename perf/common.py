import json
import os
import platform
import statistics
import time

from exporter.common.quantile import nearest_rank_sorted

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "perf", "results")


def timed(fn, n, repeat=5):
    """Per-call wall times (seconds) of fn over `repeat` batches of `n` calls, one sample per call."""
    samples = []
    for _ in range(repeat):
        for _ in range(n):
            t = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t)
    return samples


def summary(samples):
    s = sorted(samples)
    return {"n": len(s), "median_s": statistics.median(s), "p99_s": nearest_rank_sorted(s, 0.99),
            "min_s": min(samples), "mean_s": statistics.fmean(samples)}


def save(name, result):
    os.makedirs(RESULTS, exist_ok=True)
    result = {"benchmark": name, "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                             "platform": platform.platform()},
              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **result}
    with open(os.path.join(RESULTS, f"{name}.json"), "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    return result


def verdict(value, target, lower_is_better=True):
    ok = value <= target if lower_is_better else value >= target
    return "PASS" if ok else "MISS"


def rss_mb(pid):
    """Resident memory of process `pid`, in MB."""
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def ingest_seconds(path, registry):
    """Seconds from a routing collector's start until its reader has counted every row of `path`,
    and the rows counted: done when a poll that began after the last count finds nothing new."""
    from exporter.collectors.routing import RoutingCollector

    started = time.perf_counter()
    c = RoutingCollector([str(path)], registry)
    rows = -1
    while rows != c.tally.rows:
        rows = c.tally.rows
        c.collect(0)
    took = time.perf_counter() - started
    c.close()
    return took, rows
