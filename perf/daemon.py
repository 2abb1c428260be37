"""`orchex serve` left alone for months, measured: memory while following 2,000,000 rows whose
durations are nearly all distinct, the series and memory a 60 x 60 x 60 cross product of label values
leaves, and scrapes beside 500 clients that trickle their headers (peer: prometheus_client's
threading server, in the same run)."""

import http.client
import socket
import subprocess
import sys
import time

from perf.common import ROOT, nearest_rank_sorted, rss_mb, save, verdict
from perf.gen_log import generate_distinct

SLOW_CLIENTS = 500


def threads(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(*args):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "exporter", "serve", f"--web.listen-address=127.0.0.1:{port}",
                             "--gpu-backend=simulated", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while True:
        try:
            scrape(port)
            return proc, port
        except OSError:
            if time.time() > deadline:
                proc.kill()
                raise
            time.sleep(0.1)


def scrape(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", "/metrics")
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def counted(text):
    """Rows the routing collector has counted, from its histogram counts."""
    return sum(float(line.rpartition(" ")[2]) for line in text.splitlines()
               if line.startswith("orchex_router_selection_duration_seconds_count"))


def wait_counted(port, rows, limit=300):
    deadline = time.time() + limit
    while counted(scrape(port)) < rows:
        if time.time() > deadline:
            raise AssertionError(f"fewer than {rows} rows counted after {limit} s")
        time.sleep(0.5)


def follow_distinct(tmp):
    """RSS after following 1M and 2M rows of nearly distinct durations and confidences."""
    log = tmp / "distinct.csv"
    generate_distinct(log, 0)
    proc, port = serve(f"--selection-log={log}")
    try:
        out = {"rss_mb_start": round(rss_mb(proc.pid), 2)}
        for million in (1, 2):
            generate_distinct(log, 1_000_000, header=False, start_row=(million - 1) * 1_000_000)
            wait_counted(port, million * 1_000_000)
            out[f"rss_mb_after_{million}m"] = round(rss_mb(proc.pid), 2)
        out["growth_1m_to_2m_mb"] = round(out["rss_mb_after_2m"] - out["rss_mb_after_1m"], 2)
        return out
    finally:
        proc.terminate()
        proc.wait()


def cross_product(tmp):
    """Routing samples and RSS after 60 categories x 60 models x 60 GPU values, each under the
    per-label cap of 100: the total series budget (default 10,000) is what bounds them."""
    log = tmp / "cross.csv"
    with open(log, "w") as f:
        f.write("timestamp,task_category,selected_model,primary_category,confidence_score,final_score,gpu_id,"
                "selection_duration_ms\n")
        for c in range(60):
            f.write("".join(f"2026-01-23 09:00:00,cat{c},model{m},true,0.9,50.00,{g},1.5\n"
                            for m in range(60) for g in range(60)))
    proc, port = serve(f"--selection-log={log}")
    try:
        wait_counted(port, 216_000)
        text = scrape(port)
        samples = sum(1 for line in text.splitlines() if line.startswith("orchex_router_"))
        overflow = next(float(line.rpartition(" ")[2]) for line in text.splitlines()
                        if line.startswith('orchex_router_label_overflow_total{label="series"}'))
        return {"rows": 216_000, "routing_samples": samples, "rows_over_budget": overflow,
                "body_bytes": len(text), "rss_mb": round(rss_mb(proc.pid), 2)}
    finally:
        proc.terminate()
        proc.wait()


def beside_slow_clients(port, pid):
    """Scrape times while SLOW_CLIENTS connections each send a header byte now and then."""
    slow = []
    for _ in range(SLOW_CLIENTS):
        try:
            c = socket.create_connection(("127.0.0.1", port), timeout=10)
            c.sendall(b"GET /metrics HTTP/1.1\r\nX-Slow: ")
            slow.append(c)
        except OSError:  # a server that cannot take that many: the measurement says so below
            break
    times, failed = [], 0
    try:
        for _ in range(20):
            for c in slow:
                try:
                    c.send(b"a")
                except OSError:
                    pass
            started = time.monotonic()
            try:
                scrape(port)
                times.append(time.monotonic() - started)
            except OSError:
                failed += 1
        most = threads(pid)
    finally:
        for c in slow:
            c.close()
    times.sort()
    return {"slow_clients_connected": len(slow), "scrapes": len(times), "failed_scrapes": failed,
            "median_s": nearest_rank_sorted(times, 0.5) if times else None,
            "max_s": times[-1] if times else None, "threads": most}


def peer_slow_clients():
    """prometheus_client's own server (a ThreadingHTTPServer) beside the same slow clients, in a
    process of its own so that its threads are counted alone."""
    port = free_port()
    code = f"import time, prometheus_client as p; p.start_http_server({port}, addr='127.0.0.1'); time.sleep(600)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 20
        while True:
            try:
                scrape(port)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        return beside_slow_clients(port, proc.pid)
    finally:
        proc.kill()
        proc.wait()


def main(tmp):
    out = {"follow_2m_distinct": follow_distinct(tmp), "cross_product_60x60x60": cross_product(tmp)}
    proc, port = serve()
    try:
        out["slow_clients"] = {"orchex": beside_slow_clients(port, proc.pid)}
    finally:
        proc.terminate()
        proc.wait()
    out["slow_clients"]["peer_prometheus_client"] = peer_slow_clients()
    f, x, s = out["follow_2m_distinct"], out["cross_product_60x60x60"], out["slow_clients"]
    o, p = s["orchex"], s["peer_prometheus_client"]
    out["verdicts"] = {
        "rss_60mb": verdict(f["rss_mb_after_2m"], 60.0), "growth_5mb": verdict(f["growth_1m_to_2m_mb"], 5.0),
        "samples_20000": verdict(x["routing_samples"], 20_000), "cross_rss_80mb": verdict(x["rss_mb"], 80.0),
        "slow_scrape_1s": verdict(o["max_s"] if o["max_s"] is not None else float("inf"), 1.0),
        "threads_64": verdict(o["threads"], 64)}
    v = out["verdicts"]
    print(f"following 2M rows of nearly distinct values: RSS {f['rss_mb_start']} MB at start, "
          f"{f['rss_mb_after_1m']} MB after 1M, {f['rss_mb_after_2m']} MB after 2M (target 60 MB {v['rss_60mb']}); "
          f"growth 1M->2M {f['growth_1m_to_2m_mb']:+.2f} MB (target 5 MB {v['growth_5mb']})")
    print(f"60x60x60 label cross product ({x['rows']:,} rows): {x['routing_samples']:,} routing samples "
          f"(target 20,000 {v['samples_20000']}), {x['rows_over_budget']:,.0f} rows over the series budget, "
          f"RSS {x['rss_mb']} MB (target 80 MB {v['cross_rss_80mb']})")

    def line(name, r):
        med = "-" if r["median_s"] is None else f"{r['median_s'] * 1e3:.1f} ms"
        top = "-" if r["max_s"] is None else f"{r['max_s'] * 1e3:.1f} ms"
        return (f"{name}: {r['slow_clients_connected']} slow clients held, scrape median {med} max {top}, "
                f"{r['failed_scrapes']} failed, {r['threads']} threads")

    print(line("beside 500 slow clients, orchex", o) + f"  (targets 1 s {v['slow_scrape_1s']}, "
                                                     f"64 threads {v['threads_64']})")
    print(line("beside 500 slow clients, peer prometheus_client", p))
    return save("daemon", out)

