"""A fleet on one machine: N `orchex serve` processes, Prometheus in agent mode scraping them and
remote-writing to a VictoriaMetrics single node, and a Pushgateway holding each host's benchmark, all
on 127.0.0.1 and stopped together. Each exporter reads its own simulated GPUs through the real NVML
path: pynvml on the fake libnvidia-ml.so.1 (tests/fake_nvml), with a seeded scenario of eight GPUs
that includes what a real fleet shows now and then (an XID, a clock-event reason held, an NVML call
refused). Each has its own selection log, fed a few selections a second.

    python tools/fleet.py --hosts 20                 # until Ctrl+C (make fleet)
    python tools/fleet.py --hosts 20 --check 75      # run 75 s, then check coverage (make fleet-check)

The check asks VictoriaMetrics (MetricsQL, which accepts these PromQL queries) every recording
rule's expression and every dashboard query, the latter once per host with `$instance` set to it, and
prints how many hosts each returns data for. It exits 0 only when every query returns data for every
host."""

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]
HEADER = ("timestamp,task_category,selected_model,primary_category,confidence_score,final_score,gpu_id,"
          "selection_duration_ms,fallback,reason,policy\n")
SCRAPE_SECONDS = 5
GPUS = 8
# XIDs a healthy fleet sees now and then: 94 (contained ECC), 13 and 43 (the application), 63 (a page
# retired); none of them makes a GPU FAULT.
BACKGROUND_XIDS = (94, 13, 43, 63)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"fleet: {url} did not become ready")


class Fleet:
    def __init__(self, hosts, folder):
        self.hosts, self.folder, self.procs, self.ports = hosts, folder, [], []
        self.stop = threading.Event()
        self.logs = [os.path.join(folder, f"host{i}.csv") for i in range(hosts)]

    def start(self):
        import fake_nvml
        from fake_kubelet import Kubelet

        library = fake_nvml.build()
        sock = os.path.join(self.folder, "kubelet.sock")
        self.kubelet = Kubelet(sock, kubelet_pods()).start()
        for i, log in enumerate(self.logs):
            scenario = os.path.join(self.folder, f"gpus{i}.txt")
            gpus, events = host_scenario(random.Random(i + 1))
            fake_nvml.write(scenario, gpus, events=events)
            with open(log, "w") as f:
                f.write(HEADER)
            port = free_port()
            self.ports.append(port)
            self.spawn([sys.executable, "-m", "exporter", "serve", f"--web.listen-address=127.0.0.1:{port}",
                        "--gpu-backend=nvml", f"--selection-log={log}", "--log.level=warn", "--collector.kubernetes",
                        f"--kubernetes.pod-resources-socket={sock}"],
                       {"LD_LIBRARY_PATH": library, "FAKE_NVML_SCENARIO": scenario})
        self.gateway_port = free_port()
        self.spawn(["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{self.gateway_port}",
                    "--persistence.file=", "--log.level=error"])
        self.vm_port, prom_port = free_port(), free_port()
        self.spawn(["victoria-metrics", f"-httpListenAddr=127.0.0.1:{self.vm_port}",
                    f"-storageDataPath={self.folder}/vm", "-retentionPeriod=1d", "-search.latencyOffset=1s",
                    "-loggerLevel=ERROR"])
        agent = {"global": {"scrape_interval": f"{SCRAPE_SECONDS}s"},
                 "scrape_configs": [{"job_name": "orchex", "static_configs": [
                     {"targets": [f"127.0.0.1:{p}" for p in self.ports]}]},
                     {"job_name": "pushgateway", "honor_labels": True, "static_configs": [
                         {"targets": [f"127.0.0.1:{self.gateway_port}"]}]}],
                 "remote_write": [{"url": f"http://127.0.0.1:{self.vm_port}/api/v1/write"}]}
        cfg = os.path.join(self.folder, "agent.yml")
        with open(cfg, "w") as f:
            yaml.safe_dump(agent, f)
        self.spawn(["prometheus", "--enable-feature=agent", f"--config.file={cfg}",
                    f"--storage.agent.path={self.folder}/agent", f"--web.listen-address=127.0.0.1:{prom_port}",
                    "--log.level=error"])
        for p in self.ports:
            wait_ready(f"http://127.0.0.1:{p}/-/ready")
        wait_ready(f"http://127.0.0.1:{self.vm_port}/health")
        wait_ready(f"http://127.0.0.1:{self.gateway_port}/-/ready")
        self.push_benchmarks()
        threading.Thread(target=self.traffic, daemon=True).start()
        print(f"fleet: {self.hosts} exporters on 127.0.0.1:{self.ports[0]}..{self.ports[-1]}, Prometheus agent on "
              f":{prom_port}, VictoriaMetrics on :{self.vm_port} ({self.folder})", flush=True)

    def spawn(self, argv, env=None):
        self.procs.append(subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                           env=dict(os.environ, **(env or {}))))

    def push_benchmarks(self):
        """Each host's `make bench-push`, as a timer on every host would run it."""
        for port in self.ports:
            res = subprocess.run([sys.executable, "-m", "exporter", "bench", "10", "--push",
                                  f"http://127.0.0.1:{self.gateway_port}", "--label", f"instance=127.0.0.1:{port}"],
                                 cwd=ROOT, capture_output=True, text=True)
            if res.returncode != 0:
                raise SystemExit(f"fleet: orchex bench --push failed: {res.stderr.strip()}")

    def traffic(self):
        """A few selections a second into every host's log, as each host's router would write them."""
        from exporter.routing import registry

        reg = registry.load()
        rng = random.Random(1)
        cats, models = list(reg.categories), list(reg.models)
        while not self.stop.wait(1.0):
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            for log in self.logs:
                rows = "".join(
                    f"{stamp},{rng.choice(cats)},{rng.choice(models)},{'true' if rng.random() < 0.6 else 'false'},"
                    f"{rng.choice(('0.95', '0.90', '0.70'))},{rng.uniform(20, 90):.2f},{rng.randrange(4)},"
                    f"{rng.uniform(0.002, 0.02):.3f},{'true' if rng.random() < 0.05 else 'false'},,default\n"
                    for _ in range(3))
                with open(log, "a") as f:
                    f.write(rows)

    def close(self):
        self.stop.set()
        self.kubelet.stop()
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()

    def query(self, expr):
        """The query's result; QueryRefused when VictoriaMetrics does not accept it."""
        url = f"http://127.0.0.1:{self.vm_port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                return json.load(r)["data"]["result"]
        except urllib.error.HTTPError as e:
            raise QueryRefused(e.read().decode(errors="replace")[:300]) from None


def host_scenario(rng):
    """Eight GPUs of one host with seeded readings, plus what a real fleet shows now and then: one
    background XID, one GPU held at its power cap, one NVML call refused (NO_PERMISSION)."""
    import fake_nvml

    gpus = []
    for i in range(GPUS):
        util = rng.uniform(0.05, 0.95)
        gpus.append(fake_nvml.gpu(
            i, util_gpu=round(util * 100), util_memory=round(util * 60), temperature=round(35 + util * 45),
            memory_temperature=round(40 + util * 40), memory_used=int(rng.uniform(0.1, 0.85) * 85520809984),
            power_mw=int((70 + util * 560) * 1000), energy_mj=rng.randrange(10**8, 10**10),
            clock_events=0x4 if i == 0 else (0x1 if util < 0.1 else 0), ecc_volatile_corrected=rng.randrange(3),
            processes=rng.randrange(1, 4)))
    gpus[rng.randrange(GPUS)]["fail.nvmlDeviceGetPerformanceState"] = 4
    # Hopper GPUs report GPM; the last GPU is split into seven MIG instances.
    gpus = [fake_nvml.with_gpm(g) for g in gpus[:-1]] + [
        fake_nvml.with_gpm(fake_nvml.seven_1g_10gb(GPUS - 1, **{k: v for k, v in gpus[-1].items()
                                                               if k.startswith("fail.")}), slots=range(7))]
    return gpus, [(rng.randrange(GPUS), rng.choice(BACKGROUND_XIDS))]


def kubelet_pods():
    """What every host's kubelet answers (the hosts' GPUs share their UUIDs): GPU 0 time-sliced between
    two pods, and a MIG instance of the last GPU to a third."""
    import fake_nvml
    from fake_kubelet import sharing

    return sharing(fake_nvml.gpu(0)["uuid"], fake_nvml.seven_1g_10gb(GPUS - 1)["mig.0.uuid"])


class QueryRefused(Exception):
    """VictoriaMetrics answered an error: a place where MetricsQL and PromQL differ."""


def queries():
    """(where, expression) of every recording rule and every dashboard target."""
    out, recorded = [], {}
    for group in yaml.safe_load(open(os.path.join(ROOT, "prometheus", "rules", "orchex-recording.yml")))["groups"]:
        out += [(f"rule {r['record']}", r["expr"]) for r in group["rules"]]
        recorded.update({r["record"]: r["expr"] for r in group["rules"]})
    for name in sorted(os.listdir(os.path.join(ROOT, "grafana", "dashboards"))):
        board = json.load(open(os.path.join(ROOT, "grafana", "dashboards", name)))
        for panel in board["panels"]:
            out += [(f"{name[:-5]}: {panel['title']}", expanded(t["expr"], recorded)) for t in panel.get("targets", [])]
    return out


def expanded(expr, recorded):
    """A dashboard query with each recording rule's name replaced by its expression: the fleet's agent
    does not evaluate rules, a Prometheus server would. The dashboards select recorded series by job
    and instance only, which `up` carries for every target."""
    for name, rule in recorded.items():
        def inline(m, rule=rule):
            return f"(({rule}) and on (job, instance) up{m[1]})" if m[1] else f"({rule})"

        expr = re.sub(rf"(?<![\w:]){re.escape(name)}(?![\w:])(\{{[^}}]*\}})?", inline, expr)
    return expr


def concrete(expr, instance):
    values = {"$__rate_interval": "1m", "$__range": "5m", "$__interval": "15s", "$bench_job": ".*", "$job": ".*",
              # A regular expression inside a PromQL string: its backslashes are escaped once more.
              "$instance": re.escape(instance).replace("\\", "\\\\") if instance else ".*",
              "$gpu": ".*", "$category": ".*"}
    for var, value in values.items():
        expr = expr.replace(var, value)
    return expr


def check(fleet):
    hosts = [f"127.0.0.1:{p}" for p in fleet.ports]
    failures, started = 0, time.perf_counter()
    for where, expr in queries():
        try:
            if "$instance" in expr:
                covered = sum(1 for h in hosts if fleet.query(concrete(expr, h)))
            else:
                result = fleet.query(concrete(expr, None))
                if result and not any("instance" in r["metric"] for r in result):
                    covered = len(hosts)  # aggregated across hosts by design (by job, by namespace and pod)
                else:
                    covered = len({r["metric"].get("instance") for r in result} & set(hosts))
        except QueryRefused as e:
            failures += 1
            print(f"  REFUSED  {where}: {e}\n           {concrete(expr, hosts[0])}")
            continue
        ok = covered == len(hosts)
        failures += not ok
        print(f"  {'ok' if ok else 'MISS':5s}  {covered}/{len(hosts)} hosts  {where}")
    took = time.perf_counter() - started
    print(f"fleet-check: {failures} of {len(queries())} queries without data for every host; "
          f"queries took {took:.1f} s")
    return failures


def figures(fleet, seconds):
    """Per-host series, samples ingested per second and the exporters' CPU per scrape, from VictoriaMetrics."""
    per_host = [float(r["value"][1]) for r in fleet.query('count by (instance) ({job="orchex"})')]
    cpu = [float(r["value"][1]) for r in fleet.query('increase(process_cpu_seconds_total{job="orchex"}[1m])')]
    scrapes = 60 / SCRAPE_SECONDS
    out = {"hosts": fleet.hosts, "series_per_host_max": max(per_host), "series_per_host_min": min(per_host),
           "samples_per_second": sum(per_host) / SCRAPE_SECONDS,
           "exporter_cpu_seconds_per_scrape_median": sorted(cpu)[len(cpu) // 2] / scrapes if cpu else None,
           "ran_seconds": seconds}
    print(f"fleet: {out['series_per_host_min']:.0f}-{out['series_per_host_max']:.0f} series per host, "
          f"{out['samples_per_second']:,.0f} samples/s ingested by VictoriaMetrics from {fleet.hosts} hosts, "
          f"exporter CPU {out['exporter_cpu_seconds_per_scrape_median'] * 1e3:.2f} ms per scrape (median host)")
    os.makedirs(os.path.join(ROOT, "perf", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "perf", "results", "fleet.json"), "w") as f:
        json.dump(out, f, indent=2)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", type=int, default=20)
    ap.add_argument("--check", type=float, metavar="SECONDS", help="run this long, check coverage, stop")
    args = ap.parse_args()
    for tool in ("prometheus", "victoria-metrics"):
        if shutil.which(tool) is None:
            raise SystemExit(f"fleet: {tool} is not installed (make system-deps installs it)")
    folder = tempfile.mkdtemp(prefix="orchex-fleet-")
    fleet = Fleet(args.hosts, folder)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        fleet.start()
        if args.check is None:
            signal.pause()
            return 0
        time.sleep(args.check)
        failures = check(fleet)
        figures(fleet, args.check)
        return 1 if failures else 0
    except KeyboardInterrupt:
        return 0
    finally:
        fleet.close()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
