"""Push benchmark results to a Pushgateway as orchex_bench_* gauges.

A dedicated registry (no process metrics); job `orchex_bench` unless --job; grouping key `instance`
(host name unless given) plus `registry` (the registry file's SHA-256, first 12 hex digits), so runs
against different registries keep separate groups. POST (pushadd) replaces only the metrics it
sends: a failed run leaves the last success timestamp of the last good one in place."""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Gauge

    from exporter.bench.run import Result


def collector_registry(r: Result, elapsed: float, now: float | None = None) -> CollectorRegistry:
    from prometheus_client import CollectorRegistry, Gauge

    reg = CollectorRegistry()

    def gauge(name: str, doc: str, labelnames: Sequence[str] = ()) -> Gauge:
        return Gauge(name, doc, labelnames, registry=reg)

    med = gauge("orchex_bench_selection_median_seconds", "Median selection time per category.", ["category"])
    p95 = gauge("orchex_bench_selection_p95_seconds", "95th percentile selection time per category.", ["category"])
    p99 = gauge("orchex_bench_selection_p99_seconds", "99th percentile selection time per category.", ["category"])
    rate = gauge("orchex_bench_selections_per_second", "Selections per second per category.", ["category"])
    cons = gauge("orchex_bench_consistency_ratio", "Share of identical answers to one input (1 required).",
                 ["category"])
    cov = gauge("orchex_bench_coverage_ratio", "Share of a category's listed models present in the registry.",
                ["category"])
    uncovered = gauge("orchex_bench_uncovered_categories", "Categories that list no models at all.")
    scaling = gauge("orchex_bench_scaling_median_seconds", "Median selection time on a synthetic registry.",
                    ["models"])
    passed = gauge("orchex_bench_passed", "1 when every check of the run passed, else 0.")
    failures = gauge("orchex_bench_failed_checks", "Checks that failed in the run.")
    run_at = gauge("orchex_bench_last_run_timestamp_seconds", "Unix time the run finished.")
    took = gauge("orchex_bench_duration_seconds", "Wall time of the whole run.")
    for cid, c in r.categories.items():
        if "error" in c:
            continue
        med.labels(cid).set(c["median_s"])
        p95.labels(cid).set(c["p95_s"])
        p99.labels(cid).set(c["p99_s"])
        rate.labels(cid).set(c["selections_per_second"] if math.isfinite(c["selections_per_second"]) else 0)
        cons.labels(cid).set(c["consistency_ratio"])
    for cid, c in r.coverage.items():
        if not c["uncovered"]:
            cov.labels(cid).set(c["ratio"])
    uncovered.set(sum(1 for c in r.coverage.values() if c["uncovered"]))
    for size, s in r.scaling.items():
        scaling.labels(size).set(s["median_s"])
    now = now or time.time()
    passed.set(1 if r.passed else 0)
    failures.set(len(r.failures))
    run_at.set(now)
    took.set(elapsed)
    if r.passed:
        gauge("orchex_bench_last_success_timestamp_seconds", "Unix time of the last run whose checks all "
              "passed.").set(now)
    return reg


def grouping_key(r: Result, labels: dict[str, str]) -> dict[str, str]:
    key = {"instance": socket.gethostname(), "registry": r.registry_digest[:12]}
    key.update(labels)
    return key


def push(url: str, job: str, r: Result, elapsed: float, labels: dict[str, str]) -> None:
    """Push, or raise OSError with a one-line reason."""
    from prometheus_client import pushadd_to_gateway
    from prometheus_client.exposition import basic_auth_handler, default_handler

    user, password = os.environ.get("ORCHEX_PUSH_USERNAME"), os.environ.get("ORCHEX_PUSH_PASSWORD")

    def handler(url: str, method: str, timeout: float | None, headers: list[tuple[str, str]],
                data: bytes) -> Callable[[], None]:
        if user is not None:
            return basic_auth_handler(url, method, timeout, headers, data, user, password or "")
        return default_handler(url, method, timeout, headers, data)

    try:
        pushadd_to_gateway(url, job=job, registry=collector_registry(r, elapsed), grouping_key=grouping_key(r, labels),
                           timeout=10, handler=handler)
    except OSError as e:
        raise OSError(str(getattr(e, "reason", None) or e)) from None
    except Exception as e:  # prometheus_client raises plain IOError/HTTPError subclasses and ValueError
        raise OSError(str(e)) from None
