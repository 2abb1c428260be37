"""The gpu-processes collector (issue 24, item 2) through pynvml against the fake NVML: each process's
memory and SM utilisation, named from /proc, bounded per GPU, following processes that end; each
failure costing only its own series."""

import os
import signal
import subprocess
import sys
import time

import pytest

import fake_nvml
from conftest import ROOT, fake_env, free_port
from exporter.collectors.gpu_processes import process_families
from exporter.exposition import render
from exporter.gpu.snapshot import GpuProcess, GpuSnapshot
from exporter.procfs import HOST_PID_NAMESPACE, host_pid_namespace
from fake_nvml import GIB, gpu, running, seven_1g_10gb
from test_serve import series

pytestmark = pytest.mark.timeout(120)
MIB = 1 << 20
# This test run sees host PIDs, as orchex serve started from it does, unless CI runs in a container.
HOST_PIDS = os.readlink("/proc/self/ns/pid") == HOST_PID_NAMESPACE


def h200(index, **over):
    return gpu(index, **{"name": "NVIDIA H200", "memory_total": 150754820096, "mig_mode": 0, **over})


def memory(v):
    """{(gpu, pid, command, gpu_instance): bytes}"""
    return {(lab["gpu"], lab["pid"], lab["command"], lab["gpu_instance"]): n for lab, n in
            ((dict(k[1]), n) for k, n in v.items() if k[0] == "orchex_gpu_process_memory_used_bytes")}


def sm(v):
    """{(gpu, pid, command): ratio}"""
    return {(lab["gpu"], lab["pid"], lab["command"]): n for lab, n in
            ((dict(k[1]), n) for k, n in v.items() if k[0] == "orchex_gpu_process_sm_utilization_ratio")}


def per_gpu(v, name):
    return {dict(k[1])["gpu"]: n for k, n in v.items() if k[0] == name}


def errors(v):
    return {(dict(k[1])["function"], dict(k[1])["code"]) for k in v if k[0] == "orchex_nvml_errors_total"}


@pytest.fixture
def sleeper():
    """A process of ours with a known name, standing for a model server."""
    p = subprocess.Popen(["sleep", "300"])
    yield p.pid
    p.kill()
    p.wait()


def absent_pid():
    with open("/proc/sys/kernel/pid_max") as f:
        return int(f.read())  # PIDs are below pid_max: this one names no process


def scrape_after(s, path, gpus):
    """Write the scenario with a newer sample time, then scrape once the shared reading has aged."""
    fake_nvml.write(path, gpus)
    time.sleep(0.6)
    return series(s.get()[2])


def test_processes_with_their_memory_utilisation_and_command(serve, fake_nvml_dir, tmp_path, sleeper):
    me, gone = os.getpid(), absent_pid()
    with open("/proc/self/comm") as f:
        my_name = f.read().strip()
    path = str(tmp_path / "scenario.txt")
    mig_gpu = running(seven_1g_10gb(0), [{"pid": sleeper, "used": 3 * GIB, "gi": 7, "ci": 0},
                                         {"pid": me, "used": GIB, "gi": 8, "ci": 0}])

    def whole_gpu(stamp):
        return running(h200(1, sample_time=stamp), [{"pid": sleeper, "used": 20 * GIB, "sm": 30},
                                                    {"pid": me, "used": "na", "sm": 5},
                                                    {"pid": gone, "used": 2 * GIB}])

    fake_nvml.write(path, [mig_gpu, whole_gpu(1)])
    s = serve("--gpu-backend=nvml", env=fake_env(fake_nvml_dir, path))
    v = scrape_after(s, path, [mig_gpu, whole_gpu(2)])  # samples newer than the ones read at start
    sleep, mine = ("sleep", my_name) if HOST_PIDS else ("", "")
    assert memory(v) == {("0", str(sleeper), sleep, "7"): 3 * GIB, ("0", str(me), mine, "8"): GIB,
                         ("1", str(sleeper), sleep, ""): 20 * GIB,
                         ("1", str(gone), "", ""): 2 * GIB}  # the driver did not say for `me` on GPU 1
    # No utilisation on the MIG GPU; a process without samples since the last reading was idle.
    assert sm(v) == {("1", str(sleeper), sleep): 0.3, ("1", str(me), mine): 0.05, ("1", str(gone), ""): 0.0}
    assert per_gpu(v, "orchex_gpu_processes_unresolved") == ({"0": 0, "1": 1} if HOST_PIDS else {"0": 2, "1": 3})
    assert per_gpu(v, "orchex_gpu_compute_processes") == {"0": 2, "1": 3}
    assert not errors(v)
    # No samples since: every process idle, not an error and not a missing series.
    v = scrape_after(s, path, [mig_gpu, whole_gpu(2)])
    assert set(sm(v).values()) == {0.0} and len(sm(v)) == 3 and not errors(v)
    _, err = s.stop()
    assert "Traceback" not in err


def test_in_a_container_without_host_pids_no_process_is_named(fake_nvml_dir, tmp_path, sleeper):
    """Another PID namespace (as a container without hostPID) has its own /proc, where a host PID
    may name an unrelated process: orchex names none and counts them all unresolved."""
    path = str(tmp_path / "scenario.txt")
    fake_nvml.write(path, [running(h200(0), [{"pid": sleeper, "used": GIB}, {"pid": 1, "used": GIB}])])
    port = free_port()
    proc = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-m", "exporter", "serve",
                             f"--web.listen-address=127.0.0.1:{port}", "--gpu-backend=nvml"], cwd=ROOT,
                            env=dict(os.environ, **fake_env(fake_nvml_dir, path)), stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        import urllib.request

        deadline, body = time.time() + 20, b""
        while time.time() < deadline and b"orchex_gpu_processes_unresolved" not in body:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    body = r.read()
            except OSError:
                time.sleep(0.1)
        v = series(body)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # unshare does not pass a signal on to its child
        _, err = proc.communicate(timeout=10)
    # PID 1 exists in the new namespace (the unshare child), and would have been named without the check.
    assert memory(v) == {("0", str(sleeper), "", ""): GIB, ("0", "1", "", ""): GIB}, err
    assert per_gpu(v, "orchex_gpu_processes_unresolved") == {"0": 2}


def test_200_processes_on_one_gpu_give_at_most_17_series(serve, fake_nvml_dir, tmp_path):
    path = str(tmp_path / "scenario.txt")
    # Memory rises with the index, so the budget must pick the last 16, not the first.
    procs = [{"pid": 5000 + i, "used": (i + 1) * MIB, "sm": 1} for i in range(200)]
    fake_nvml.write(path, [running(h200(0), procs), h200(1)])
    s = serve("--gpu-backend=nvml", env=fake_env(fake_nvml_dir, path))
    v = series(s.get()[2])
    mem = {pid: n for (g, pid, _, _), n in memory(v).items() if g == "0"}
    assert len(mem) == 17 and sum(1 for g, _, _ in sm(v) if g == "0") == 17
    assert mem == {**{str(5000 + i): (i + 1) * MIB for i in range(184, 200)}, "other": sum(range(1, 185)) * MIB}
    assert per_gpu(v, "orchex_gpu_compute_processes")["0"] == 200  # the count stays whole
    s.stop()
    s = serve("--gpu-backend=nvml", "--gpu-processes.max-per-gpu=4", env=fake_env(fake_nvml_dir, path))
    mem = memory(series(s.get()[2]))
    assert sorted(pid for g, pid, _, _ in mem if g == "0") == ["5196", "5197", "5198", "5199", "other"]


def test_a_process_that_ends_takes_its_series_with_it(serve, fake_nvml_dir, tmp_path):
    path = str(tmp_path / "scenario.txt")
    fake_nvml.write(path, [running(h200(0), [{"pid": 7001}, {"pid": 7002}])])
    s = serve("--gpu-backend=nvml", env=fake_env(fake_nvml_dir, path))
    assert {pid for _, pid, _, _ in memory(series(s.get()[2]))} == {"7001", "7002"}
    v = scrape_after(s, path, [running(h200(0), [{"pid": 7002}])])
    assert {pid for _, pid, _, _ in memory(v)} == {"7002"} and {pid for _, pid, _ in sm(v)} == {"7002"}
    v = scrape_after(s, path, [running(h200(0), [])])
    assert not memory(v) and per_gpu(v, "orchex_gpu_processes_unresolved") == {"0": 0}


def test_the_collector_can_be_switched_off(serve, fake_nvml_dir, tmp_path):
    path = str(tmp_path / "scenario.txt")
    fake_nvml.write(path, [running(h200(0), [{"pid": 7001, "sm": 40}])])
    s = serve("--gpu-backend=nvml", "--no-collector.gpu-processes", env=fake_env(fake_nvml_dir, path))
    v = series(s.get()[2])
    assert not any(k[0].startswith("orchex_gpu_process") for k in v)
    assert per_gpu(v, "orchex_gpu_compute_processes") == {"0": 1}  # the gpu collector's count stays
    assert "gpu-processes" not in {dict(k[1])["collector"] for k in v if k[0] == "orchex_scrape_collector_success"}


@pytest.mark.parametrize("function, code, lost", [
    ("nvmlDeviceGetProcessUtilization", 3, "utilisation"),
    ("nvmlDeviceGetProcessUtilization", 4, "utilisation"),
    ("nvmlDeviceGetComputeRunningProcesses_v3", 3, "processes"),
    ("nvmlDeviceGetComputeRunningProcesses_v3", 4, "processes"),
])
def test_a_failing_process_call_costs_only_its_own_series(serve, fake_nvml_dir, tmp_path, function, code, lost):
    path = str(tmp_path / "scenario.txt")
    procs = [{"pid": 7001, "sm": 40}]
    fake_nvml.write(path, [running(h200(0, **{f"fail.{function}": code}), procs), running(h200(1), procs)])
    s = serve("--gpu-backend=nvml", env=fake_env(fake_nvml_dir, path))
    v = series(s.get()[2])
    if lost == "utilisation":
        assert {g for g, _, _, _ in memory(v)} == {"0", "1"} and {g for g, _, _ in sm(v)} == {"1"}
    else:
        assert {g for g, _, _, _ in memory(v)} == {"1"} and {g for g, _, _ in sm(v)} == {"1"}
        assert set(per_gpu(v, "orchex_gpu_compute_processes")) == {"1"}
    # GPU 0 keeps everything else.
    assert per_gpu(v, "orchex_gpu_up") == {"0": 1, "1": 1} and "0" in per_gpu(v, "orchex_gpu_power_watts")
    called = function.removesuffix("_v3")
    assert errors(v) == (set() if code == 3 else {(called, "NO_PERMISSION")})  # NOT_SUPPORTED is no error
    _, err = s.stop()
    assert "Traceback" not in err


def snapshot(*processes, up=True):
    return GpuSnapshot(index=0, uuid="GPU-0", up=up, processes=list(processes))


def test_a_pid_listed_twice_is_one_series():
    """The driver lists a process once per MIG instance it uses; two series with the same labels
    would make Prometheus refuse the whole scrape."""
    fams = process_families([snapshot(GpuProcess(9, GIB, 7), GpuProcess(9, 2 * GIB, 8), GpuProcess(10, None, 7))],
                            lambda pid: "vllm", 16)
    body = render(fams)
    assert body.count("orchex_gpu_process_memory_used_bytes{") == 1
    assert 'pid="9",command="vllm"} 3221225472' in body and 'gpu_instance=""' in body  # two instances: none named


def test_memory_the_driver_does_not_report_ranks_last_and_is_left_out():
    fams = process_families([snapshot(GpuProcess(1, None), GpuProcess(2, 5), GpuProcess(3, 7))], lambda pid: None, 2)
    body = render(fams)
    assert ',pid="3"' in body and ',pid="2"' in body and ',pid="1"' not in body and ',pid="other"' not in body
    assert "orchex_gpu_processes_unresolved{gpu=\"0\",uuid=\"GPU-0\"} 3" in body


def test_a_gpu_that_is_down_or_cannot_list_has_no_process_series():
    assert process_families([snapshot(GpuProcess(1, 5), up=False), GpuSnapshot(index=1)], lambda pid: None, 16) == []


def test_host_pid_namespace_is_known_by_its_identity(tmp_path):
    (tmp_path / "self" / "ns").mkdir(parents=True)
    os.symlink("pid:[4026532175]", tmp_path / "self" / "ns" / "pid")
    assert not host_pid_namespace(str(tmp_path))
    os.remove(tmp_path / "self" / "ns" / "pid")
    os.symlink(HOST_PID_NAMESPACE, tmp_path / "self" / "ns" / "pid")
    assert host_pid_namespace(str(tmp_path))
    assert not host_pid_namespace(str(tmp_path / "none"))  # cannot tell: name nothing
    # The host's /proc mounted in a container (--path.procfs): this process is in another namespace,
    # but PID 1 there is the host's init.
    os.remove(tmp_path / "self" / "ns" / "pid")
    os.symlink("pid:[4026532175]", tmp_path / "self" / "ns" / "pid")
    (tmp_path / "1" / "ns").mkdir(parents=True)
    os.symlink(HOST_PID_NAMESPACE, tmp_path / "1" / "ns" / "pid")
    assert host_pid_namespace(str(tmp_path))
