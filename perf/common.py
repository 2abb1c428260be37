import json
import os
import platform
import statistics
import time

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def timed(fn, n, repeat=5):
    """Per-call wall times (seconds) of fn over `repeat` batches of `n` calls, one sample per call."""
    samples = []
    for _ in range(repeat):
        for _ in range(n):
            t = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t)
    return samples


def quantile(samples, q):
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


def summary(samples):
    return {"n": len(samples), "median_s": statistics.median(samples), "p99_s": quantile(samples, 0.99),
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
