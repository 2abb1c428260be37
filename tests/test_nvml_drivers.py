"""Drivers as they are found in the field: old ones without the versioned entry points, ones that load
late, ones that answer nonsense, and machines with no NVIDIA library at all."""

import json
import time

import pytest

import fake_nvml
from conftest import run_cli
from fake_nvml import gpu
from test_serve import series

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def old_driver(tmp_path):
    """(environment, scenario path) for a subprocess on a libnvidia-ml without _v2/_v3 symbols."""
    folder = fake_nvml.build(old_driver=True)
    path = str(tmp_path / "scenario.txt")
    fake_nvml.write(path, [gpu(0), gpu(1, name="NVIDIA A100-SXM4-40GB")], events=[(1, 79)])
    return {"LD_LIBRARY_PATH": folder, "FAKE_NVML_SCENARIO": path}, path


def test_gpu_monitor_reports_every_gpu_on_an_old_driver(old_driver, tmp_path):
    env, _ = old_driver
    res = run_cli("gpu-monitor", "--once", "--format", "json", "--backend", "nvml", "1", str(tmp_path / "g.log"),
                  env=env)
    assert res.returncode == 0, res.stderr
    gpus = json.loads(res.stdout)["gpus"]
    assert [g["name"] for g in gpus] == ["NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-40GB"]
    assert gpus[0]["memory_total"] == 85520809984 and gpus[0]["temperature"] == 40
    assert gpus[0]["cuda_driver_version"] == "12.4"  # from the unversioned call
    # What the old driver cannot answer is absent and said, never a traceback.
    # Processes through the version-1 call of drivers before R470, without MIG instance ids.
    assert gpus[0]["compute_processes"] == 2 and gpus[0]["processes"] == [
        {"pid": 1000, "memory_used": 1 << 30}, {"pid": 1001, "memory_used": 1 << 30}]
    assert "Traceback" not in res.stderr
    assert "nvmlDeviceGetProcessUtilization failed with FUNCTION_NOT_FOUND" in res.stderr


def test_serve_reports_every_gpu_on_an_old_driver(serve, old_driver):
    env, _ = old_driver
    s = serve("--gpu-backend=nvml", env=env)
    v = series(s.get()[2])
    assert v[("orchex_nvml_up", ())] == 1
    assert {dict(k[1])["gpu"] for k in v if k[0] == "orchex_gpu_up"} == {"0", "1"}
    assert all(v[k] == 1 for k in v if k[0] == "orchex_gpu_up")
    errors = {(dict(k[1])["function"], dict(k[1])["code"]) for k in v if k[0] == "orchex_nvml_errors_total"}
    assert ("nvmlDeviceGetProcessUtilization", "FUNCTION_NOT_FOUND") in errors
    assert ("nvmlDeviceGetPciInfo", "FUNCTION_NOT_FOUND") in errors
    assert not any(function.startswith("nvmlDeviceGetComputeRunningProcesses") for function, _ in errors)
    memory = {dict(k[1])["pid"]: n for k, n in v.items() if k[0] == "orchex_gpu_process_memory_used_bytes"
              and dict(k[1])["gpu"] == "0"}
    assert memory == {"1000": 1 << 30, "1001": 1 << 30}  # through the version-1 call
    assert not any(k[0] == "orchex_gpu_process_sm_utilization_ratio" for k in v)
    # No event wait on that driver: the XID thread is down, and says so.
    deadline = time.time() + 5
    while v.get(("orchex_nvml_xid_watcher_up", ())) != 0 and time.time() < deadline:
        time.sleep(0.6)
        v = series(s.get()[2])
    assert v[("orchex_nvml_xid_watcher_up", ())] == 0
    assert ("nvmlEventSetWait", "FUNCTION_NOT_FOUND") in {
        (dict(k[1])["function"], dict(k[1])["code"]) for k in v if k[0] == "orchex_nvml_errors_total"}


def test_an_absurd_device_count_is_refused_with_one_log_line(serve, scenario, fake_nvml_dir):
    path = scenario([gpu(0)], reported_gpu_count=4294967295)
    s = serve("--gpu-backend=nvml", env={"LD_LIBRARY_PATH": fake_nvml_dir, "FAKE_NVML_SCENARIO": path})
    started = time.monotonic()
    code, _, body = s.get()
    assert code == 200 and time.monotonic() - started < 2
    v = series(body)
    assert v[("orchex_nvml_up", ())] == 0 and not any(k[0].startswith("orchex_gpu_") for k in v)
    assert v[("orchex_nvml_errors_total", (("code", "ABSURD_COUNT"), ("function", "nvmlDeviceGetCount")))] >= 1
    assert v[("orchex_scrape_collector_success", (("collector", "gpu"),))] == 0
    s.get()
    _, err = s.stop()
    said = [line for line in err.splitlines() if "says 4294967295 GPUs" in line]
    # Once for each collector that reads GPUs, not once a scrape.
    assert len(said) == 2 and {"collector gpu failed", "collector gpu-processes failed"} == {
        line.split('msg="')[1].split(":")[0] for line in said}, err


def test_a_driver_that_loads_late_is_picked_up_without_a_restart(serve, scenario, fake_nvml_dir):
    path = scenario([gpu(0)], init_error=9)  # DRIVER_NOT_LOADED
    s = serve("--gpu-backend=nvml", env={"LD_LIBRARY_PATH": fake_nvml_dir, "FAKE_NVML_SCENARIO": path})
    v = series(s.get()[2])
    assert v[("orchex_nvml_up", ())] == 0 and ("orchex_backend_info", (("backend", "simulated"),)) not in v
    scenario([gpu(0)])  # the driver is loaded now
    deadline = time.time() + 15
    while series(s.get()[2]).get(("orchex_nvml_up", ())) != 1 and time.time() < deadline:
        time.sleep(0.5)
    v = series(s.get()[2])
    assert v[("orchex_nvml_up", ())] == 1 and v[("orchex_gpu_up", (("gpu", "0"), ("uuid", gpu(0)["uuid"])))] == 1
    _, err = s.stop()
    # Said once by each collector that reads GPUs, not once a scrape; and their recovery.
    assert err.count("DRIVER_NOT_LOADED") == 2 and "collector gpu recovered" in err
    assert "collector gpu-processes recovered" in err


def test_serve_without_a_driver_serves_no_gpu_series_by_default(serve, tmp_path):
    s = serve(env={"LD_LIBRARY_PATH": str(tmp_path)})  # no --gpu-backend: nvml, and no library here
    v = series(s.get()[2])
    assert v[("orchex_nvml_up", ())] == 0
    assert not any(k[0].startswith("orchex_gpu_") or k[0] == "orchex_backend_info" for k in v)


def test_auto_falls_back_only_when_there_is_no_nvidia_library(serve, scenario, fake_nvml_dir, tmp_path):
    s = serve("--gpu-backend=auto", env={"LD_LIBRARY_PATH": str(tmp_path)})
    v = series(s.get()[2])
    assert v[("orchex_nvml_up", ())] == 0 and v[("orchex_backend_info", (("backend", "simulated"),))] == 1
    path = scenario([gpu(0)], init_error=9)  # a library whose driver is not loaded: NVML, retried
    s2 = serve("--gpu-backend=auto", env={"LD_LIBRARY_PATH": fake_nvml_dir, "FAKE_NVML_SCENARIO": path})
    v = series(s2.get()[2])
    assert v[("orchex_nvml_up", ())] == 0 and not any(k[0].startswith("orchex_gpu_") for k in v)
    assert ("orchex_backend_info", (("backend", "simulated"),)) not in v
