"""Print the metric reference of docs/metrics.md, generated from the collectors themselves: every family the
exporter can serve, read from one scrape over the fake NVML (all fields and an XID event), the
simulated fleet's shape and a sample selection log. `make docs` writes it into docs/metrics.md; a
test fails when the page is stale."""

import ctypes
import os
import re
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]
BEGIN, END = "<!-- metrics:begin -->", "<!-- metrics:end -->"


def families():
    import fake_nvml

    ctypes.CDLL(os.path.join(fake_nvml.build(), "libnvidia-ml.so.1"), mode=ctypes.RTLD_GLOBAL)
    from exporter.collectors.gpu import GpuCollector
    from exporter.collectors.gpu_processes import GpuProcessesCollector
    from exporter.collectors.process import ProcessCollector
    from exporter.collectors.routing import RoutingCollector
    from exporter.collectors.scrape import Scraper
    from exporter.gpu.nvml import NvmlBackend
    from exporter.gpu.reading import SharedReading
    from exporter.routing import registry

    with tempfile.TemporaryDirectory() as tmp:
        scenario = os.path.join(tmp, "scenario.txt")
        # GPU 0 reports every field (so every label appears); GPU 1 fails one call, so the error
        # counter appears too; GPU 2 is split into MIG instances. GPU 0 runs more processes than
        # the budget, so pid="other" appears.
        procs = [{"pid": os.getpid(), "sm": 20}, *({"pid": 5000 + i} for i in range(16))]
        # GPUs 0 and 2 have GPM.
        fake_nvml.write(scenario, [fake_nvml.with_gpm(fake_nvml.running(fake_nvml.gpu(0, fan=40), procs)),
                                   fake_nvml.gpu(1, **{"fail.nvmlDeviceGetSerial": 4}),
                                   fake_nvml.with_gpm(fake_nvml.seven_1g_10gb(2), slots=range(7))], events=[(0, 48)])
        os.environ["FAKE_NVML_SCENARIO"] = scenario
        reading = SharedReading(lambda: NvmlBackend(watch_xids=True))
        gpu = GpuCollector(reading)
        import time

        deadline = time.time() + 5
        while time.time() < deadline and not any(f.name == "orchex_gpu_xid_errors" for f in gpu.collect(0)):
            time.sleep(0.6)
        time.sleep(1.05)  # a GPM window: the next reading has the GPM families
        log = os.path.join(ROOT, "tests", "fixtures", "legacy", "selection_metrics_sample.csv")
        # A fake kubelet that gives GPU 0 to one container, for the kubernetes collector, and a fake
        # API server that names the container this process runs in (by a procfs of the host's).
        import pathlib

        import fake_apiserver

        from exporter import serveconfig
        from exporter.collectors.kubernetes import KubernetesCollector
        from exporter.procfs import HOST_PID_NAMESPACE
        from fake_kubelet import Kubelet, pod
        from test_serve import make_cert

        sock = os.path.join(tmp, "kubelet.sock")
        kubelet = Kubelet(sock, [pod("llm", "vllm-0", {"server": [("nvidia.com/gpu", [fake_nvml.gpu(0)["uuid"]])]})],
                          allocatable=[("nvidia.com/gpu", [fake_nvml.gpu(i)["uuid"] for i in range(2)])])
        kubelet.start()
        folder = pathlib.Path(tmp)
        key, cert = make_cert(folder, "apiserver")
        (folder / "token").write_text("t")
        (folder / "ca.crt").write_bytes(cert.read_bytes())
        container = "0" * 64
        api = fake_apiserver.ApiServer(cert, key, "t",
                                       pods=[fake_apiserver.pod("llm", "vllm-0", {"server": container})])
        api.start()
        proc = folder / "proc"
        (proc / "self" / "ns").mkdir(parents=True)
        os.symlink(HOST_PID_NAMESPACE, proc / "self" / "ns" / "pid")
        (proc / str(os.getpid())).mkdir()
        (proc / str(os.getpid()) / "cgroup").write_text(f"0::/kubepods/pod{'1' * 32}/{container}\n")
        env = {"NODE_NAME": "gpu-node-1", "KUBERNETES_SERVICE_HOST": "127.0.0.1",
               "KUBERNETES_SERVICE_PORT": str(api.port)}
        settings = serveconfig.load({"collector.kubernetes": True, "kubernetes.pod-resources-socket": sock,
                                     "kubernetes.pod-memory": True, "kubernetes.service-account-dir": tmp,
                                     "path.procfs": str(proc)}, None, env)
        kubernetes = KubernetesCollector(reading, settings)
        pods = kubernetes.pods
        while time.time() < deadline + 5 and (kubernetes.source.current().assignments is None or not pods.answered):
            time.sleep(0.05)
        scraper = Scraper([gpu, GpuProcessesCollector(reading, 16), RoutingCollector([log], registry.load()),
                           ProcessCollector(), kubernetes])
        out = scraper.scrape()
        scraper.close()
        reading.close()
        kubelet.stop()
        api.stop()
        return out


def table():
    rows = ["| metric | type | labels | help |", "| --- | --- | --- | --- |"]
    seen = set()
    for f in families():
        exposed = f.name + {"counter": "_total", "info": "_info"}.get(f.type, "")
        if exposed in seen:
            continue
        seen.add(exposed)
        names = []
        for _, lab, _ in f.samples:
            for k in re.findall(r'(\w+)="', lab):
                if k not in names and k != "le":
                    names.append(k)
        rows.append(f"| `{exposed}` | {f.type} | {', '.join(names) or '-'} | {f.help} |")
    return "\n".join(rows) + "\n"


def readme_with_table(text):
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{table()}{END}{tail}"


if __name__ == "__main__":
    path = os.path.join(ROOT, "docs", "metrics.md")
    with open(path) as f:
        text = f.read()
    if "--write" in sys.argv:
        with open(path, "w") as f:
            f.write(readme_with_table(text))
    else:
        sys.stdout.write(table())
