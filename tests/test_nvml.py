"""The NVML backend end to end through pynvml and the fake libnvidia-ml.so.1; nothing of ours is patched."""

import time

import pytest

from exporter.gpu.nvml import NvmlBackend, NvmlUnavailable
from fake_nvml import gpu

GIB = 2**30


@pytest.fixture
def backend_for(scenario):
    opened = []

    def make(gpus, events=(), **top):
        scenario(gpus, events, **top)
        b = NvmlBackend()
        opened.append(b)
        return b

    yield make
    for b in opened:
        b.close()


def test_every_field_in_base_units(backend_for):
    (s,) = backend_for([gpu(0)]).read()
    assert s.up and s.index == 0
    assert (s.name, s.uuid, s.pci_bus_id, s.vbios_version, s.serial) == (
        "NVIDIA H100 80GB HBM3", "GPU-00000000-0000-0000-0000-000000000000", "00000000:18:00.0",
        "96.00.99.00.01", "1653220000000")
    assert (s.driver_version, s.cuda_driver_version, s.mig_mode) == ("550.54.15", "12.4", False)
    assert (s.utilization, s.memory_utilization, s.encoder_utilization, s.decoder_utilization) == (
        0.45, 0.20, 0.0, 0.03)
    assert (s.memory_total, s.memory_used, s.memory_reserved) == (85520809984, 8 * GIB, 566231040)
    assert s.memory_free == 85520809984 - 8 * GIB - 566231040
    assert (s.temperature, s.memory_temperature) == (40, 44.0)
    assert (s.power, s.power_limit, s.enforced_power_limit, s.energy) == (150.0, 700.0, 700.0, 123456.789)
    assert s.clocks == {"graphics": 1755e6, "sm": 1755e6, "memory": 2619e6, "video": 1545e6}
    assert s.max_clocks["sm"] == 1980e6
    assert s.fan_speed is None  # absent from the scenario: NOT_SUPPORTED, so absent here, never 0
    assert s.performance_state == 0
    assert s.clock_events["sw_power_cap"] is True and s.clock_events["hw_thermal"] is False
    assert s.ecc_errors == {("volatile", "corrected"): 2, ("volatile", "uncorrected"): 0,
                            ("aggregate", "corrected"): 10, ("aggregate", "uncorrected"): 0}
    assert s.retired_pages == {"multiple_single_bit_ecc": 0, "double_bit_ecc": 0}
    assert s.retired_pages_pending is False
    assert s.remapped_rows == {"corrected": 1, "uncorrected": 0}
    assert (s.row_remap_pending, s.row_remap_failure) == (False, False)
    assert (s.pcie_link_generation, s.pcie_link_width, s.pcie_replays) == (5, 16, 0)
    assert s.compute_processes == 2
    assert s.errors == {}


def test_retired_pages_are_counted(backend_for):
    (s,) = backend_for([gpu(0, retired_pages_dbe=3, retired_pages_pending=1)]).read()
    assert s.retired_pages["double_bit_ecc"] == 3 and s.retired_pages_pending is True


def test_not_supported_drops_only_that_field(backend_for):
    b = backend_for([gpu(0, power_mw=None, **{"fail.nvmlDeviceGetTemperature": 3})])
    (s,) = b.read()
    assert s.up and s.power is None and s.temperature is None and s.power_limit == 700.0
    assert s.errors == {} and b.error_counts == {}  # NOT_SUPPORTED is not an error


def test_memory_info_v1_when_v2_is_missing(backend_for):
    (s,) = backend_for([gpu(0, memory_reserved=None)]).read()
    assert s.memory_reserved is None and s.memory_free == s.memory_total - s.memory_used


@pytest.mark.parametrize("code,name", [(15, "GPU_IS_LOST"), (999, "UNKNOWN")])
def test_lost_or_unknown_marks_only_that_gpu_down(backend_for, code, name):
    b = backend_for([gpu(0), gpu(1, **{"fail.nvmlDeviceGetPowerUsage": code}), gpu(2)])
    snaps = b.read()
    assert [s.up for s in snaps] == [True, False, True]
    assert snaps[1].errors == {"nvmlDeviceGetPowerUsage": name}
    assert snaps[0].power == 150.0 and snaps[2].power == 150.0
    assert b.error_counts == {("nvmlDeviceGetPowerUsage", name): 1}


def test_lost_at_the_handle(backend_for):
    b = backend_for([gpu(0, lost=1), gpu(1)])
    snaps = b.read()
    assert [s.up for s in snaps] == [False, True]
    assert snaps[0].errors == {"nvmlDeviceGetHandleByIndex": "GPU_IS_LOST"}


def test_other_errors_drop_the_field_and_are_counted(backend_for):
    b = backend_for([gpu(0, **{"fail.nvmlDeviceGetFanSpeed": 4, "fail.nvmlDeviceGetUUID": 4, "fan": 30})])
    (s,) = b.read()
    b.read()
    assert s.up and s.fan_speed is None and s.uuid == ""
    assert s.errors == {"nvmlDeviceGetFanSpeed": "NO_PERMISSION", "nvmlDeviceGetUUID": "NO_PERMISSION"}
    assert b.error_counts[("nvmlDeviceGetFanSpeed", "NO_PERMISSION")] == 2


def test_a_gpu_can_change_between_reads(backend_for, scenario):
    b = backend_for([gpu(0)])
    assert b.read()[0].temperature == 40
    scenario([gpu(0, temperature=91), gpu(1)])
    snaps = b.read()
    assert len(snaps) == 2 and snaps[0].temperature == 91


def test_driver_not_loaded_is_a_clear_error(scenario):
    scenario([gpu(0)], init_error=9)
    with pytest.raises(NvmlUnavailable, match="driver not loaded"):
        NvmlBackend()


def test_xid_events_counted_per_gpu_and_code(backend_for, scenario):
    b = backend_for([gpu(0), gpu(1)], events=[(1, 79)])
    deadline = time.time() + 5
    while time.time() < deadline and not b.read()[1].xid_counts:
        time.sleep(0.05)
    before = time.time()
    scenario([gpu(0), gpu(1)], events=[(1, 79), (1, 79), (0, 13)])
    while time.time() < deadline + 5 and b.read()[0].xid_counts.get(13) != 1:
        time.sleep(0.05)
    snaps = b.read()
    assert snaps[1].xid_counts == {79: 2} and snaps[0].xid_counts == {13: 1}
    assert snaps[1].xid_last_seen[79] >= before - 1


def test_gpu_without_event_support_still_reads(backend_for):
    b = backend_for([gpu(0, no_events=1), gpu(1)], events=[(0, 48), (1, 94)])
    deadline = time.time() + 5
    while time.time() < deadline and not b.read()[1].xid_counts:
        time.sleep(0.05)
    snaps = b.read()
    assert snaps[0].xid_counts == {} and snaps[1].xid_counts == {94: 1}


def test_library_not_found_is_one_line(cli, tmp_path):
    # Run where no NVIDIA driver is installed (CI): the folder on LD_LIBRARY_PATH holds no library.
    res = cli("gpu-monitor", "--once", "--backend", "nvml", "1", str(tmp_path / "g.log"),
              env={"LD_LIBRARY_PATH": str(tmp_path)})
    assert res.returncode == 2
    assert res.stderr == "orchex: GPU backend nvml: NVML library libnvidia-ml.so.1 not found (no NVIDIA " \
                         "driver installed?)\n"


def test_identity_is_read_once_per_gpu_and_again_for_a_new_one(backend_for, scenario):
    b = backend_for([gpu(0, max_clock_sm=1980)])
    assert b.read()[0].max_clocks["sm"] == 1980e6
    scenario([gpu(0, max_clock_sm=1000, name="changed")])  # same UUID: static fields are kept
    s = b.read()[0]
    assert s.max_clocks["sm"] == 1980e6 and s.name == "NVIDIA H100 80GB HBM3"
    scenario([gpu(0, uuid="GPU-replacement", max_clock_sm=1410, name="NVIDIA A100-SXM4-80GB")])
    s = b.read()[0]
    assert (s.uuid, s.name, s.max_clocks["sm"]) == ("GPU-replacement", "NVIDIA A100-SXM4-80GB", 1410e6)
