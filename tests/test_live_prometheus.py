"""End to end: a real Prometheus scrapes `orchex serve` on the fake NVML library and on the simulated
fleet; the series are checked through the Prometheus HTTP API."""

import glob
import os
import subprocess
import sys

import pytest
from fake_apiserver import ApiServer
from fake_apiserver import pod as apiserver_pod

import fake_nvml
from conftest import LEGACY, ROOT, Served, fake_env
from exporter.procfs import HOST_PID_NAMESPACE
from fake_kubelet import Kubelet, sharing
from live import Prometheus, Pushgateway
from test_serve import make_cert

# Four XID events: two of 48 on GPU 1 (critical: FAULT), 94 and 13 on GPU 0 (warning, application).
XIDS = [(1, 48), (0, 94), (0, 13), (1, 48)]
UNSEEN_PID = 1 << 22  # pid_max is at most 2^22: no process has this PID


@pytest.fixture(scope="module")
def stack(tmp_path_factory, fake_nvml_dir):
    folder = tmp_path_factory.mktemp("live")
    scenario = str(folder / "scenario.txt")
    # GPU 1 reads power N/A, and its performance state answers NO_PERMISSION: an NVML error; GPU 2 is
    # split into seven MIG instances. GPU 0 runs this test process, and one whose PID nobody can see.
    # GPUs 0 and 2 have GPM (GPU 2 per MIG instance).
    busy = fake_nvml.running(fake_nvml.with_gpm(fake_nvml.gpu(0)), [{"pid": os.getpid(), "used": 3 << 30, "sm": 25},
                                                {"pid": UNSEEN_PID, "used": 1 << 30}])
    fake_nvml.write(scenario, [busy, fake_nvml.gpu(1, power_mw=None, temperature=88,
                                                   **{"fail.nvmlDeviceGetPerformanceState": 4}),
                               fake_nvml.with_gpm(fake_nvml.seven_1g_10gb(2), slots=range(7))], events=XIDS)
    log = folder / "sel.csv"
    log.write_text(open(f"{LEGACY}/selection_metrics_sample.csv").read() + "not a row\n")
    # A kubelet that gives GPU 0 to two pods by time-slicing and MIG instance 7 of GPU 2 to a third.
    sock = str(folder / "kubelet.sock")
    kubelet = Kubelet(sock, sharing(fake_nvml.gpu(0)["uuid"], fake_nvml.seven_1g_10gb(2)["mig.0.uuid"])).start()
    # The API server names the container this test process runs in as vllm-a's: per-pod memory. The
    # host's processes are this test's, seen through a procfs that adds the process's pod cgroup.
    key, cert = make_cert(folder, "apiserver")
    (folder / "token").write_text("t")
    (folder / "ca.crt").write_bytes(cert.read_bytes())
    api = ApiServer(cert, key, "t", pods=[apiserver_pod("llm", "vllm-a", {"server": "a" * 64})]).start()
    proc = folder / "proc"
    (proc / "self" / "ns").mkdir(parents=True)
    os.symlink(HOST_PID_NAMESPACE, proc / "self" / "ns" / "pid")
    (proc / str(os.getpid())).mkdir()
    (proc / str(os.getpid()) / "comm").write_text(open("/proc/self/comm").read())
    (proc / str(os.getpid()) / "cgroup").write_text(f"0::/kubepods/besteffort/pod{'1' * 32}/{'a' * 64}\n")
    nvml = Served(["--gpu-backend=nvml", f"--selection-log={log}", "--collector.kubernetes",
                   f"--kubernetes.pod-resources-socket={sock}", "--kubernetes.refresh-interval=1",
                   "--kubernetes.pod-memory", f"--kubernetes.service-account-dir={folder}", f"--path.procfs={proc}"],
                  dict(fake_env(fake_nvml_dir, scenario), NODE_NAME="gpu-node-1", KUBERNETES_SERVICE_HOST="127.0.0.1",
                       KUBERNETES_SERVICE_PORT=str(api.port)))
    sim = Served(["--gpu-backend=simulated", f"--selection-log={log}"])
    gateway = Pushgateway(str(folder))
    bench = subprocess.run([sys.executable, "-m", "exporter", "bench", "30", "--push", gateway.url, "--job", "bench_ci",
                            "--label", "instance=ci-runner"], capture_output=True, text=True, cwd=ROOT)
    assert bench.returncode == 0, bench.stderr
    rules = sorted(glob.glob(os.path.join(ROOT, "prometheus", "rules", "*.yml")))
    prom = Prometheus(str(folder), {"orchex_nvml": [f"127.0.0.1:{nvml.port}"],
                                    "orchex_sim": [f"127.0.0.1:{sim.port}"],
                                    "pushgateway": [f"127.0.0.1:{gateway.port}"]}, rule_files=rules)
    yield prom, nvml, sim, log
    prom.stop()
    nvml.stop()
    kubelet.stop()
    api.stop()
    sim.stop()
    gateway.stop()


def by(result, label):
    return {r["metric"].get(label): float(r["value"][1]) for r in result}


def test_gpu_series_arrive_with_values_and_labels(stack):
    prom, *_ = stack
    up = prom.wait_for('up{job=~"orchex_.*"}', lambda r: len(r) == 2 and all(x["value"][1] == "1" for x in r))
    assert len(up) == 2
    power = prom.wait_for('orchex_gpu_power_watts{job="orchex_nvml"}')
    assert by(power, "gpu") == {"0": 150.0, "2": 150.0}  # GPU 1 reads power N/A: no series at all
    temp = by(prom.wait_for('orchex_gpu_temperature_celsius{job="orchex_nvml"}', lambda r: len(r) == 3), "gpu")
    assert temp == {"0": 40.0, "1": 88.0, "2": 40.0}
    mig = prom.wait_for('orchex_gpu_mig_info{job="orchex_nvml"}', lambda r: len(r) == 7)
    assert {(r["metric"]["gpu"], r["metric"]["profile"]) for r in mig} == {("2", "1g.10gb")}
    assert by(prom.wait_for('orchex_gpu_utilization_ratio{job="orchex_nvml"}', lambda r: len(r) == 2), "gpu") \
        == {"0": 0.45, "1": 0.45}  # none for the MIG GPU
    hot = prom.wait_for('orchex_gpu_health_state{job="orchex_nvml",state=~"HOT|FAULT"} == 1')
    assert by(hot, "state") == {"FAULT": 1.0}  # XID 48 outranks the temperature
    xid = prom.wait_for('orchex_gpu_xid_errors_total{job="orchex_nvml"}', lambda r: len(r) == 3)
    assert {(r["metric"]["gpu"], r["metric"]["xid"]): float(r["value"][1]) for r in xid} == {
        ("1", "48"): 2.0, ("0", "94"): 1.0, ("0", "13"): 1.0}
    state = prom.wait_for('orchex_gpu_health_state{job="orchex_nvml",gpu="0"} == 1')
    assert by(state, "state") == {"HEALTHY": 1.0}  # 94 and 13 warn, they do not make a FAULT
    info = prom.wait_for('orchex_gpu_info{job="orchex_nvml"}')
    assert {r["metric"]["model_name"] for r in info} == {"NVIDIA H100 80GB HBM3"}
    joined = prom.wait_for('orchex_gpu_power_watts * on(gpu, uuid) group_left(model_name) orchex_gpu_info')
    assert joined[0]["metric"]["model_name"]
    procs = prom.wait_for('orchex_gpu_process_memory_used_bytes{job="orchex_nvml",gpu="0"}', lambda r: len(r) == 2)
    assert {(r["metric"]["pid"], r["metric"].get("command", "")): float(r["value"][1]) for r in procs} == {
        (str(os.getpid()), open("/proc/self/comm").read().strip()): 3 << 30, (str(UNSEEN_PID), ""): 1 << 30}
    assert by(prom.wait_for('orchex_gpu_processes_unresolved{job="orchex_nvml",gpu="0"}'), "gpu") == {"0": 1}
    sim = prom.wait_for('orchex_gpu_up{job="orchex_sim"}', lambda r: len(r) == 5)
    assert all(r["value"][1] == "1" for r in sim)
    assert prom.wait_for('orchex_nvml_up{job="orchex_sim"} == 0')  # simulated is never NVML
    assert prom.wait_for('orchex_backend_info{job="orchex_sim",backend="simulated"} == 1')
    assert prom.wait_for('orchex_backend_info{job="orchex_nvml",backend="nvml"} == 1')


def test_routing_series_and_the_legacy_effectiveness_figures(stack):
    prom, nvml, sim, log = stack
    sel = prom.wait_for('sum by (category, model, gpu, primary) (orchex_router_selections_total{job="orchex_sim"})',
                        lambda r: len(r) == 2)
    assert {(r["metric"]["category"], r["metric"]["gpu"], r["metric"]["primary"]): float(r["value"][1])
            for r in sel} == {("code", "0", "true"): 1.0, ("math", "1", "false"): 1.0}
    mean_conf = prom.wait_for('sum(orchex_router_selection_confidence_sum{job="orchex_sim"}) / '
                              'sum(orchex_router_selection_confidence_count{job="orchex_sim"})')
    assert float(mean_conf[0]["value"][1]) == pytest.approx(0.825)
    secondary = prom.wait_for(  # the README's query for the legacy "mean secondary confidence"
        'sum(orchex_router_selection_confidence_sum{job="orchex_sim"} and on(category, model) '
        'orchex_router_selections_total{job="orchex_sim",primary="false"}) / '
        'sum(orchex_router_selection_confidence_count{job="orchex_sim"} and on(category, model) '
        'orchex_router_selections_total{job="orchex_sim",primary="false"})')
    assert float(secondary[0]["value"][1]) == pytest.approx(0.70)
    mean_ms = prom.wait_for('1000 * sum(orchex_router_selection_duration_seconds_sum{job="orchex_sim"}) / '
                            'sum(orchex_router_selection_duration_seconds_count{job="orchex_sim"})')
    assert float(mean_ms[0]["value"][1]) == pytest.approx(11.0)
    with open(log, "a") as f:
        f.write("2026-01-23 08:00:02,code,google-gemma-3-270m-it,true,0.95,70.00,0,3\nnot a row\n")
    prom.wait_for('sum(orchex_router_selections_total{job="orchex_sim"})', lambda r: r and r[0]["value"][1] == "3")
    # the fixture's bad row and this one
    bad = prom.wait_for('orchex_router_selection_log_parse_errors_total{job="orchex_sim",reason="columns"} == 2')
    assert len(bad) == 1


def test_self_metrics(stack):
    prom, *_ = stack
    ok = prom.wait_for('orchex_scrape_collector_success{job="orchex_nvml"}', lambda r: len(r) == 5)
    assert by(ok, "collector") == {"gpu": 1.0, "gpu-processes": 1.0, "routing": 1.0, "process": 1.0,
                                   "kubernetes": 1.0}
    assert prom.wait_for('orchex_build_info{job="orchex_nvml"}')[0]["metric"]["version"]


def test_recording_rules_evaluate_on_real_series(stack):
    prom, *_ = stack
    util = prom.wait_for('instance:orchex_gpu_utilization_ratio:avg{job="orchex_nvml"}')
    assert float(util[0]["value"][1]) == pytest.approx(0.45)
    healthy = prom.wait_for('instance:orchex_gpu_healthy:count{job="orchex_sim"}')
    assert 1 <= float(healthy[0]["value"][1]) <= 5
    assert prom.wait_for('category_model:orchex_router_selections:rate5m{job="orchex_sim"}', lambda r: len(r) == 2)
    # GPM: GPU 0 at 42 % tensor activity, its seven MIG instances at 42 % x (k + 1) / 8 on GPU 2.
    tensor = prom.wait_for('job:orchex_gpu_tensor_active_ratio:avg{job="orchex_nvml"}')
    assert float(tensor[0]["value"][1]) == pytest.approx(0.42 * (1 + sum(k + 1 for k in range(7)) / 8) / 8)
    # The opt-in dcgm-exporter series, from the same scrape.
    # GPU 0 once for each pod time-slicing it, as dcgm-exporter labels it; GPU 1 (MIG) and 2 for no pod.
    temp = prom.wait_for('DCGM_FI_DEV_GPU_TEMP{job="orchex_nvml"}', lambda r: len(r) == 4)
    assert {(r["metric"]["gpu"], r["metric"]["Hostname"], r["metric"]["modelName"], r["metric"].get("pod")):
            float(r["value"][1]) for r in temp} == {("0", "127.0.0.1", "NVIDIA H100 80GB HBM3", "vllm-a"): 40.0,
                                                    ("0", "127.0.0.1", "NVIDIA H100 80GB HBM3", "vllm-b"): 40.0,
                                                    ("1", "127.0.0.1", "NVIDIA H100 80GB HBM3", None): 88.0,
                                                    ("2", "127.0.0.1", "NVIDIA H100 80GB HBM3", None): 40.0}
    # By pod: the two pods time-slicing GPU 0 each see its utilisation and memory; the MIG pod its instance's.
    util = prom.wait_for("namespace_pod:orchex_gpu_utilization_ratio:avg", lambda r: len(r) == 2)
    assert by(util, "pod") == {"vllm-a": 0.45, "vllm-b": 0.45}
    # Memory: vllm-a's own process holds 3 GiB; vllm-b's processes are not seen, so it is charged
    # the GPU's 8 GiB, as the tgi pod is its MIG instance's.
    memory = prom.wait_for("namespace_pod:orchex_gpu_memory_used_bytes:sum", lambda r: len(r) == 3)
    assert by(memory, "pod") == {"vllm-a": 3 << 30, "vllm-b": 8589934592, "tgi": 512 << 20}
    pod_memory = prom.wait_for("orchex_gpu_pod_memory_used_bytes")
    assert [(r["metric"]["pod"], r["metric"]["container"], r["metric"]["gpu"]) for r in pod_memory] == [
        ("vllm-a", "server", "0")]
    # The unseen PID on GPU 0, and the fake's two default processes on each of GPUs 1 and 2.
    assert by(prom.wait_for("orchex_kubernetes_unattributed_processes"), "job") == {"orchex_nvml": 5}
    tensor = prom.wait_for("namespace_pod:orchex_gpu_tensor_active_ratio:avg", lambda r: len(r) == 3)
    assert by(tensor, "pod") == pytest.approx({"vllm-a": 0.42, "vllm-b": 0.42, "tgi": 0.42 / 8})
    assert by(prom.wait_for("namespace:orchex_gpu_devices_held:count", lambda r: len(r) == 2), "namespace") == {
        "llm": 1, "team-b": 1}
    power = prom.wait_for('instance:orchex_gpu_power_watts:sum{job="orchex_nvml"}')
    assert float(power[0]["value"][1]) == 300.0  # GPUs 0 and 2; GPU 1 reports no power: a sum of what exists


def test_dashboard_queries_return_data(stack):
    """Every panel of both dashboards returns data: the stack injects what the event panels show
    (XIDs, an NVML error, a rejected row, a benchmark push)."""
    from test_grafana import dashboards, panels, substitute

    prom, *_ = stack
    prom.wait_for('rate(orchex_router_selections_total{job="orchex_sim"}[1m])')
    prom.wait_for('orchex_bench_passed{job="bench_ci"}')
    prom.wait_for('rate(orchex_nvml_errors_total{job="orchex_nvml"}[1m])')
    empty = []
    for name, d in dashboards().items():
        job = "orchex_nvml" if "gpu" in name else "orchex_sim"
        for p in panels(d):
            for t in p["targets"]:
                if not prom.query(substitute(t["expr"], job=job, bench_job="bench_ci")):
                    empty.append((name, p["title"], t["expr"]))
    assert empty == []


def panel_value(title, job, **labels):
    from test_grafana import dashboards, panels, substitute

    d = next(d for d in dashboards().values() if title in {p["title"] for p in panels(d)})
    expr = next(p for p in panels(d) if p["title"] == title)["targets"][0]["expr"]
    return substitute(expr, job=job)


def test_event_panels_count_every_event(stack):
    """Four XIDs delivered, four shown: the first event of each new GPU and code counts."""
    prom, *_ = stack
    xids = prom.wait_for(panel_value("XID events in range", "orchex_nvml"))
    assert by(xids, "backend") == {"nvml": 4.0}
    total = prom.wait_for(panel_value("Total requests", "orchex_sim"), lambda r: r and float(r[0]["value"][1]) >= 2)
    assert float(total[0]["value"][1]) in (2.0, 3.0)  # the legacy sample, and a row another test may append
    models = prom.wait_for(panel_value("Models serving several categories", "orchex_sim"))
    assert float(models[0]["value"][1]) == 1.0  # gemma serves code (primary) and math (secondary)
    rejected = prom.wait_for(panel_value("Rejected log rows", "orchex_sim"), lambda r: r and r[0]["value"][1] != "0")
    assert float(rejected[0]["value"][1]) >= 1.0
    simulated = prom.wait_for(panel_value("Hosts on simulated data", ".*"))
    assert float(simulated[0]["value"][1]) == 1.0
