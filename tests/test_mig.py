"""MIG instances through pynvml against the fake NVML: enumerated, followed across a reconfiguration,
and each failure costing only its own series (issue 24)."""

import re
import time

import pytest

import fake_nvml
from conftest import fake_env
from fake_nvml import GIB, gpu, mig, seven_1g_10gb
from test_serve import series

pytestmark = pytest.mark.timeout(120)


def h200(index):
    return gpu(index, name="NVIDIA H200", memory_total=150754820096, mig_mode=0)


def mig_series(v, name):
    """{(gpu, gpu_instance, profile, mig_uuid): value} of one family."""
    out = {}
    for k, n in v.items():
        if k[0] == name:
            lab = dict(k[1])
            out[(lab["gpu"], lab.get("gpu_instance"), lab.get("profile"), lab.get("mig_uuid"))] = n
    return out


def test_seven_1g_10gb_instances_with_their_memory_and_no_device_utilisation(serve, fake_nvml_dir, tmp_path):
    path = str(tmp_path / "scenario.txt")
    fake_nvml.write(path, [seven_1g_10gb(0), h200(1)])
    s = serve("--gpu-backend=nvml", env=fake_env(fake_nvml_dir, path))
    v = series(s.get()[2])
    info = mig_series(v, "orchex_gpu_mig_info")
    assert len(info) == 7 and {k[0] for k in info} == {"0"} and {k[2] for k in info} == {"1g.10gb"}
    assert sorted(int(k[1]) for k in info) == list(range(7, 14))
    assert all(k[3].startswith("MIG-") for k in info)
    used = {dict(k[1])["gpu_instance"]: n for k, n in v.items() if k[0] == "orchex_gpu_mig_memory_used_bytes"}
    total = {dict(k[1])["gpu_instance"]: n for k, n in v.items() if k[0] == "orchex_gpu_mig_memory_total_bytes"}
    assert used == {"7": 512 << 20, **{str(gi): GIB for gi in range(8, 14)}} and set(total.values()) == {10 * GIB}
    # The MIG GPU has no device utilisation (the driver does not support it there), never a 0.
    util = {dict(k[1])["gpu"] for k in v if k[0] == "orchex_gpu_utilization_ratio"}
    assert util == {"1"}
    assert v[("orchex_gpu_info", tuple(sorted(next(k[1] for k in v if k[0] == "orchex_gpu_info"
                                                  and dict(k[1])["gpu"] == "0"))))] == 1
    assert not any(k[0] == "orchex_nvml_errors_total" for k in v)


def test_a_reconfiguration_is_followed_without_a_restart(serve, fake_nvml_dir, tmp_path):
    path = str(tmp_path / "scenario.txt")
    fake_nvml.write(path, [seven_1g_10gb(0), h200(1)])
    s = serve("--gpu-backend=nvml", env=fake_env(fake_nvml_dir, path))
    before = mig_series(series(s.get()[2]), "orchex_gpu_mig_info")
    # Destroyed and created again: two 3g.40gb instances in sparse slots, one reusing id 7.
    fake_nvml.write(path, [mig(gpu(0), [(0, "3g.40gb", 7, 0, 5 * GIB), (4, "3g.40gb", 2, 0, GIB)], generation=1),
                           h200(1)])
    time.sleep(1.1)  # past the reading a scrape shares
    after = mig_series(series(s.get()[2]), "orchex_gpu_mig_info")
    assert len(after) == 2 and {k[2] for k in after} == {"3g.40gb"} and {k[1] for k in after} == {"7", "2"}
    assert not {k[3] for k in before} & {k[3] for k in after}  # known by UUID: the old ones are gone
    fake_nvml.write(path, [gpu(0, mig_mode=0), h200(1)])  # MIG turned off
    time.sleep(1.1)
    v = series(s.get()[2])
    assert not mig_series(v, "orchex_gpu_mig_info")
    assert {dict(k[1])["gpu"] for k in v if k[0] == "orchex_gpu_utilization_ratio"} == {"0", "1"}


def test_the_old_instance_id_form_is_read_as_it_is(serve, fake_nvml_dir, tmp_path):
    path = str(tmp_path / "scenario.txt")
    g = seven_1g_10gb(0)
    g["mig.0.uuid"] = "MIG-GPU-00000000-0000-0000-0000-000000000000/7/0"  # drivers before R470
    fake_nvml.write(path, [g])
    s = serve("--gpu-backend=nvml", env=fake_env(fake_nvml_dir, path))
    info = mig_series(series(s.get()[2]), "orchex_gpu_mig_info")
    assert ("0", "7", "1g.10gb", "MIG-GPU-00000000-0000-0000-0000-000000000000/7/0") in info


@pytest.mark.parametrize("function, code, lost", [
    ("nvmlDeviceGetMaxMigDeviceCount", 3, "every MIG series"),
    ("nvmlDeviceGetMigDeviceHandleByIndex", 3, "every MIG series"),
    ("nvmlDeviceGetGpuInstanceId", 3, "the gpu_instance label and the memory it labels"),
    ("nvmlDeviceGetComputeInstanceId", 4, "the compute_instance label and the memory it labels"),
    ("nvmlDeviceGetMemoryInfo", 4, "the instance memory"),
    ("nvmlDeviceGetMaxMigDeviceCount", 4, "every MIG series"),
])
def test_a_failing_mig_call_costs_only_its_own_series(serve, fake_nvml_dir, tmp_path, function, code, lost):
    path = str(tmp_path / "scenario.txt")
    fake_nvml.write(path, [seven_1g_10gb(0, **{f"fail.{function}": code}), h200(1)])
    s = serve("--gpu-backend=nvml", env=fake_env(fake_nvml_dir, path))
    v = series(s.get()[2])
    info = mig_series(v, "orchex_gpu_mig_info")
    memory = [k for k in v if k[0] == "orchex_gpu_mig_memory_used_bytes"]
    if lost == "every MIG series":
        assert not info and not memory
    elif lost == "the instance memory":
        assert len(info) == 7 and not memory
    else:  # the instance stays, known by its UUID; its memory, which the ids label, goes with them
        label = lost.split()[1]
        assert len(info) == 7 and not memory
        assert all(dict(k[1])[label] == "" for k in v if k[0] == "orchex_gpu_mig_info")
    # Everything else is served: GPU 0's own memory, and GPU 1 whole.
    assert ("orchex_gpu_memory_used_bytes", (("gpu", "0"), ("uuid", gpu(0)["uuid"]))) in v
    assert {dict(k[1])["gpu"] for k in v if k[0] == "orchex_gpu_up" and v[k] == 1} == {"0", "1"}
    errors = {(dict(k[1])["function"], dict(k[1])["code"]) for k in v if k[0] == "orchex_nvml_errors_total"}
    assert errors == (set() if code == 3 else {(function, "NO_PERMISSION")})  # NOT_SUPPORTED is no error
    _, err = s.stop()
    assert "Traceback" not in err


def test_a_driver_without_the_mig_calls_costs_only_the_mig_series(serve, tmp_path):
    folder = fake_nvml.build(old_driver=True)
    path = str(tmp_path / "scenario.txt")
    fake_nvml.write(path, [seven_1g_10gb(0), h200(1)])
    s = serve("--gpu-backend=nvml", env={"LD_LIBRARY_PATH": folder, "FAKE_NVML_SCENARIO": path})
    v = series(s.get()[2])
    assert not mig_series(v, "orchex_gpu_mig_info")
    assert ("nvmlDeviceGetMaxMigDeviceCount", "FUNCTION_NOT_FOUND") in {
        (dict(k[1])["function"], dict(k[1])["code"]) for k in v if k[0] == "orchex_nvml_errors_total"}
    assert {dict(k[1])["gpu"] for k in v if k[0] == "orchex_gpu_up" and v[k] == 1} == {"0", "1"}
    _, err = s.stop()
    assert "Traceback" not in err and not re.search(r"level=error", err)


def test_gpu_monitor_shows_the_instances_under_their_gpu(fake_nvml_dir, tmp_path):
    import json

    from conftest import run_cli

    path = str(tmp_path / "scenario.txt")
    fake_nvml.write(path, [seven_1g_10gb(0), h200(1)])
    env = fake_env(fake_nvml_dir, path)
    res = run_cli("gpu-monitor", "--once", "--backend", "nvml", "1", str(tmp_path / "g.log"), env=env)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("GPU 0: "))
    assert "Util: N/A" in lines[at]  # not supported under MIG: not 0 %
    assert lines[at + 1] == "  MIG 1g.10gb (GPU instance 7, compute instance 0) | Mem: 512/10240MB (5%)"
    assert sum(1 for line in lines if line.startswith("  MIG 1g.10gb")) == 7 and lines[at + 8].startswith("GPU 1: ")
    res = run_cli("gpu-monitor", "--once", "--format", "json", "--backend", "nvml", "1", str(tmp_path / "g.log"),
                  env=env)
    gpus = json.loads(res.stdout)["gpus"]
    assert [len(g.get("mig_instances", [])) for g in gpus] == [7, 0] and "utilization" not in gpus[0]
    assert gpus[0]["mig_instances"][0] == {"uuid": "MIG-00000000-0007-4000-8000-000000000000", "gpu_instance": 7,
                                           "compute_instance": 0, "profile": "1g.10gb", "memory_used": 512 << 20,
                                           "memory_total": 10 * GIB}
