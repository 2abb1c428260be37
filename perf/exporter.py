"""`/metrics` of `orchex serve` with 8 GPUs (fake NVML) and 2,000 routing series: median and p99 over
HTTP alone and under 20 concurrent scrapers, resident memory over 10,000 scrapes, and the rows per
second the routing collector ingests. The peer, a plain prometheus_client registry of the same size
served by prometheus_client's own HTTP server, is measured in the same run.
Targets: median < 10 ms alone, p99 < 50 ms under load, RSS < 40 MB and flat, > 200,000 rows/s."""

import http.client
import os
import random
import subprocess
import sys
import threading
import time

from perf.common import ROOT, ingest_seconds, rss_mb, save, summary, verdict

CATEGORIES = [f"cat{i}" for i in range(10)]
MODELS = [f"model-{i:02d}" for i in range(25)]
GPUS = 8


def write_inputs(tmp):
    """A registry of 25 models in 10 categories and a log touching every (category, model, gpu)."""
    reg = tmp / "registry.yaml"
    reg.write_text("models:\n" + "".join(
        f"  - {{name: {m}, memory: 2GB, categories: [{', '.join(CATEGORIES)}]}}\n" for m in MODELS)
        + "categories:\n" + "".join(f"  {c}: {{models: [{', '.join(MODELS)}]}}\n" for c in CATEGORIES))
    rng = random.Random(4)
    rows = [f"2026-01-23 08:{i // 60 % 60:02d}:{i % 60:02d},{c},{m},{'true' if c == 'cat0' else 'false'},0.90,"
            f"{rng.uniform(20, 90):.2f},{g},{rng.choice(('0.004', '0.012', '1', '3'))}\n"
            for i, (c, m, g) in enumerate((c, m, g) for c in CATEGORIES for m in MODELS for g in range(GPUS))]
    log = tmp / "sel.csv"
    log.write_text("".join(rows))
    return reg, log


BACKEND = "--gpu-backend=nvml"


def start(tmp, reg, log, fake_dir):
    import socket

    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import fake_nvml

    scenario = tmp / "scenario.txt"
    fake_nvml.write(str(scenario), [fake_nvml.gpu(i) for i in range(GPUS)])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, LD_LIBRARY_PATH=fake_dir, FAKE_NVML_SCENARIO=str(scenario))
    proc = subprocess.Popen([sys.executable, "-m", "exporter", "serve", f"--web.listen-address=127.0.0.1:{port}",
                             BACKEND, f"--registry={reg}", f"--selection-log={log}"], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, port


def peer_server(port_holder):
    """prometheus_client with the same families as Gauge/Counter/Summary/Histogram objects."""
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary, start_http_server

    reg = CollectorRegistry()
    gauges = [Gauge(f"peer_gpu_metric_{i}", "A GPU gauge.", ["gpu", "uuid"], registry=reg) for i in range(30)]
    for g in gauges:
        for i in range(GPUS):
            g.labels(str(i), f"GPU-{i}").set(i * 1.5)
    sel = Counter("peer_router_selections", "Selections.", ["category", "model", "gpu", "primary"], registry=reg)
    conf = Summary("peer_router_selection_confidence", "Confidence.", ["category", "model"], registry=reg)
    score = Summary("peer_router_selection_score", "Score.", ["category", "model"], registry=reg)
    fb = Counter("peer_router_fallbacks", "Fallbacks.", ["category", "model"], registry=reg)
    hist = Histogram("peer_router_selection_duration_seconds", "Duration.", ["category"], registry=reg,
                     buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                              2.5, 5, 10))
    for c in CATEGORIES:
        hist.labels(c).observe(0.001)
        for m in MODELS:
            conf.labels(c, m).observe(0.9)
            score.labels(c, m).observe(50)
            fb.labels(c, m).inc(0)
            for g in range(GPUS):
                sel.labels(c, m, str(g), "false").inc()
    server, _ = start_http_server(0, addr="127.0.0.1", registry=reg)
    port_holder.append(server.server_port)
    return server


def scrape_times(port, n, gzip=False):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Accept-Encoding": "gzip"} if gzip else {}
    out, size = [], 0
    for _ in range(n):
        t = time.perf_counter()
        conn.request("GET", "/metrics", headers=headers)
        r = conn.getresponse()
        body = r.read()
        out.append(time.perf_counter() - t)
        size = len(body)
    conn.close()
    return out, size


def with_new_rows(port, log, n):
    """Scrape times when a selection arrives before every scrape: the routing families are rebuilt
    and rendered each time, as under continuous traffic."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    out = []
    with open(log, "a") as f:
        for i in range(n):
            f.write(f"2026-01-23 09:00:{i % 60:02d},cat1,model-03,false,0.90,55.00,{i % GPUS},0.004\n")
            f.flush()
            t = time.perf_counter()
            conn.request("GET", "/metrics")
            conn.getresponse().read()
            out.append(time.perf_counter() - t)
    conn.close()
    return out


def under_load(port, scrapers=20, per=50):
    results, threads = [], []

    def work():
        results.extend(scrape_times(port, per)[0])

    for _ in range(scrapers):
        threads.append(threading.Thread(target=work))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def ingest_rate(tmp):
    """Rows per second through the routing collector's follower and tally, 1,000,000 rows."""
    from exporter.routing import registry

    reg = registry.load()
    rng = random.Random(9)
    cats, models = list(reg.categories), list(reg.models)
    log = tmp / "big.csv"
    with open(log, "w") as f:
        for block in range(100):
            f.write("".join(
                f"2026-01-23 {i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d},{rng.choice(cats)},"
                f"{rng.choice(models)},{'true' if i % 3 else 'false'},0.{rng.choice((95, 90, 70))},"
                f"{rng.uniform(10, 90):.2f},{i % 8},{rng.choice(('0.004', '0.011', '0.020', '1', '12'))}\n"
                for i in range(block * 10000, block * 10000 + 10000)))
    took, rows = ingest_seconds(log, reg)
    assert rows == 1_000_000, rows
    return 1_000_000 / took, took


def main(tmp):
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import fake_nvml

    fake_dir = fake_nvml.build()
    reg, log = write_inputs(tmp)
    proc, port = start(tmp, reg, log, fake_dir)
    out = {}
    try:
        deadline = time.time() + 30
        while True:
            try:
                scrape_times(port, 1)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        body = http.client.HTTPConnection("127.0.0.1", port)
        body.request("GET", "/metrics")
        text = body.getresponse().read().decode()
        routing = sum(1 for line in text.splitlines() if line.startswith("orchex_router_"))
        gpu = sum(1 for line in text.splitlines() if line.startswith("orchex_gpu_"))
        selections = sum(1 for line in text.splitlines() if line.startswith("orchex_router_selections_total"))
        scrape_times(port, 100)  # warm up
        alone, size = scrape_times(port, 500)
        alone_gz, size_gz = scrape_times(port, 300, gzip=True)
        fresh = with_new_rows(port, log, 300)
        loaded = under_load(port)
        rss = []
        for _ in range(10):
            scrape_times(port, 1000)
            rss.append(round(rss_mb(proc.pid), 2))
        out["orchex"] = {
            "series": {"routing_samples": routing, "selection_series": selections, "gpu_samples": gpu,
                       "body_bytes": size, "gzip_body_bytes": size_gz},
            "alone": summary(alone), "alone_gzip": summary(alone_gz), "alone_new_row_each_scrape": summary(fresh),
            "under_20_scrapers": summary(loaded),
            "rss_mb_every_1000_scrapes": rss,
        }
    finally:
        proc.terminate()
        proc.wait()
    holder = []
    server = peer_server(holder)
    try:
        scrape_times(holder[0], 50)
        peer_alone, peer_size = scrape_times(holder[0], 300)
        peer_loaded = under_load(holder[0], per=20)
        out["peer_prometheus_client"] = {"alone": summary(peer_alone), "under_20_scrapers": summary(peer_loaded),
                                         "body_bytes": peer_size}
    finally:
        server.shutdown()
    rate, took = ingest_rate(tmp)
    o = out["orchex"]
    o["ingest_rows_per_second"] = rate
    med, p99 = o["alone"]["median_s"], o["under_20_scrapers"]["p99_s"]
    growth = o["rss_mb_every_1000_scrapes"][-1] - o["rss_mb_every_1000_scrapes"][0]
    o["verdicts"] = {"median_alone_10ms": verdict(med, 0.010), "p99_loaded_50ms": verdict(p99, 0.050),
                     "rss_40mb": verdict(max(o["rss_mb_every_1000_scrapes"]), 40.0),
                     "rss_flat_1mb": verdict(growth, 1.0), "ingest_200k": verdict(rate, 200_000, False)}
    p = out["peer_prometheus_client"]
    print(f"series: {selections} selection series, {routing} routing samples, {gpu} GPU samples; "
          f"body {size / 1024:.0f} KiB ({size_gz / 1024:.0f} KiB gzip)")
    ms = {k: v * 1e3 for k, v in (("med", med), ("p99", o["alone"]["p99_s"]), ("peer", p["alone"]["median_s"]),
                                  ("peer99", p["alone"]["p99_s"]), ("lmed", o["under_20_scrapers"]["median_s"]),
                                  ("l99", p99), ("lpeer", p["under_20_scrapers"]["median_s"]),
                                  ("lpeer99", p["under_20_scrapers"]["p99_s"]))}
    print(f"/metrics alone       orchex median {ms['med']:6.2f} ms  p99 {ms['p99']:6.2f} ms   peer prometheus_client "
          f"median {ms['peer']:6.2f} ms  p99 {ms['peer99']:6.2f} ms   target median 10 ms  "
          f"{o['verdicts']['median_alone_10ms']}")
    print(f"/metrics gzip        orchex median {o['alone_gzip']['median_s'] * 1e3:6.2f} ms")
    fr = o["alone_new_row_each_scrape"]
    print(f"/metrics, a new log row before every scrape (routing rebuilt and rendered each time): "
          f"median {fr['median_s'] * 1e3:6.2f} ms  p99 {fr['p99_s'] * 1e3:6.2f} ms")
    print(f"/metrics 20 scrapers orchex median {ms['lmed']:6.2f} ms  p99 {ms['l99']:6.2f} ms   peer median "
          f"{ms['lpeer']:6.2f} ms  p99 {ms['lpeer99']:6.2f} ms   target p99 50 ms  {o['verdicts']['p99_loaded_50ms']}")
    print(f"RSS after 1k..10k scrapes (MB): {o['rss_mb_every_1000_scrapes']}  growth {growth:+.2f} MB  "
          f"target < 40 MB {o['verdicts']['rss_40mb']}, flat {o['verdicts']['rss_flat_1mb']}")
    print(f"routing ingest: {rate:,.0f} rows/s (1,000,000 rows in {took:.2f} s)  target 200,000  "
          f"{o['verdicts']['ingest_200k']}")
    return save("exporter", {"results": out, "p99_note": "p99 by nearest rank over all samples"})
