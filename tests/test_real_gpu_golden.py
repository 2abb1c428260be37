"""Golden fixtures captured on a real NVIDIA H200 (driver 580.159.04) by tools/device_check.sh:
the fake NVML, given that GPU's readings, must make orchex print and export exactly what the real
driver made it print and export. A change in how a field is read or converted breaks this."""

import json
import os

from conftest import ROOT, Served, fake_env, run_cli
from fake_nvml import gpu, write

GOLDEN = os.path.join(ROOT, "tests", "fixtures", "real_gpu")


def h200_scenario(path):
    """The H200's readings at capture time, as fake-NVML keys. Fields the real driver answered
    NOT_SUPPORTED (fan speed, retired pages) are absent, so the fake answers NOT_SUPPORTED too."""
    g = gpu(0, name="NVIDIA H200", uuid="GPU-705c0a5a-5a90-8182-d33b-fe273fdeae75", pci_bus_id="00000000:00:06.0",
            vbios="96.00.A5.00.1A", serial="1654124046689", mig_mode=0, util_gpu=0, util_memory=0, util_encoder=0,
            util_decoder=0, memory_total=150754820096, memory_used=0, memory_reserved=644939776, temperature=33,
            memory_temperature=36, power_mw=78064, power_limit_mw=700000, enforced_power_limit_mw=700000,
            energy_mj=9821640, clock_graphics=345, clock_sm=345, clock_memory=3201, clock_video=765,
            max_clock_graphics=1980, max_clock_sm=1980, max_clock_memory=3201, max_clock_video=1545, pstate=0,
            clock_events=0x1, ecc_volatile_corrected=0, ecc_volatile_uncorrected=0, ecc_aggregate_corrected=0,
            ecc_aggregate_uncorrected=0, retired_pages_sbe=None, retired_pages_dbe=None,
            retired_pages_pending=None, remapped_corrected=0, remapped_uncorrected=0, remap_pending=0,
            remap_failure=0, pcie_gen=5, pcie_width=16, pcie_replays=1, processes=0,
            minor=None)  # captured before orchex read the minor number
    write(path, [g], driver_version="580.159.04", cuda_driver_version=13000)
    return path


def test_gpu_monitor_json_matches_the_real_h200(fake_nvml_dir, tmp_path):
    scenario = h200_scenario(str(tmp_path / "h200.txt"))
    res = run_cli("gpu-monitor", "--once", "--format", "json", "--backend", "nvml", "1", str(tmp_path / "g.log"),
                  env=fake_env(fake_nvml_dir, scenario))
    assert res.returncode == 0, res.stderr
    golden = json.load(open(os.path.join(GOLDEN, "gpu_monitor_once.json")))
    got = json.loads(res.stdout)
    # Captured before orchex read GPM; the H200 has it, the copy of its readings in the fake does not.
    assert [{k: v for k, v in g.items() if k != "gpm_supported"} for g in got["gpus"]] == golden["gpus"]
    assert "fan_speed" not in got["gpus"][0] and "retired_pages" not in got["gpus"][0]


# The exporter's own status series (which backend answered, the XID thread) are not GPU readings. The
# golden was captured before the gpu-processes collector; the H200 ran no process, so of that
# collector's series only its count of unnamed processes (0) would be there; and before GPM was read.
def series(text, skip=("process_", "orchex_scrape_", "orchex_build_info", "orchex_router_", "orchex_backend_info",
                       "orchex_nvml_xid_watcher_up", "orchex_gpu_processes_unresolved", "orchex_gpu_gpm_supported")):
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and not line.startswith(skip):
            key, _, value = line.rpartition(" ")
            out[key] = value
    return out


def test_exported_series_match_the_real_h200(fake_nvml_dir, tmp_path):
    scenario = h200_scenario(str(tmp_path / "h200.txt"))
    s = Served(["--gpu-backend=nvml"], fake_env(fake_nvml_dir, scenario))
    try:
        got = series(s.get()[2].decode())
    finally:
        s.stop()
    golden = series(open(os.path.join(GOLDEN, "metrics.txt")).read())
    assert set(got) == set(golden)
    # The scrape was captured a moment after the JSON reading the scenario copies: power and the
    # energy counter had moved on; every other value must be the real one.
    moving = ("orchex_gpu_power_watts{", "orchex_gpu_energy_joules_total{")
    assert {k: v for k, v in got.items() if not k.startswith(moving)} == \
        {k: v for k, v in golden.items() if not k.startswith(moving)}
    assert float(golden[next(k for k in golden if k.startswith(moving[1]))]) > 9821.64
