"""NVML GPM profiling metrics (issue 25) through pynvml against the fake NVML: per GPU and per MIG
instance, over the window since the previous reading; samples allocated once and freed; each failure
costing only its own series."""

import time

import pytest

import fake_nvml
from conftest import fake_env
from exporter.gpu.gpm import GPM_METRICS
from fake_nvml import GPM_VALUES, gpu, seven_1g_10gb, with_gpm
from test_serve import series

pytestmark = pytest.mark.timeout(120)
H100_UUID = gpu(0)["uuid"]


def expected(scale=1.0):
    """{family: value} the fake's GPM values give, in base units."""
    return {f"orchex_gpu_{m.key}": GPM_VALUES[m.metric_id] * m.scale * scale for m in GPM_METRICS}


def gpm_series(v):
    """{(family, gpu, gpu_instance): value} of the twelve GPM families."""
    names = {f"orchex_gpu_{m.key}" for m in GPM_METRICS}
    return {(k[0], dict(k[1])["gpu"], dict(k[1]).get("gpu_instance")): n for k, n in v.items() if k[0] in names}


def errors(v):
    return {(dict(k[1])["function"], dict(k[1])["code"]): n for k, n in v.items() if k[0] == "orchex_nvml_errors_total"}


def live_samples(ledger):
    with open(ledger) as f:
        return int(f.read())


@pytest.fixture
def fleet(fake_nvml_dir, tmp_path):
    """GPU 0 a whole H100 with GPM, GPU 1 an H100 in seven MIG instances with GPM, GPU 2 without GPM."""
    path, ledger = str(tmp_path / "scenario.txt"), str(tmp_path / "ledger")

    def write(**over):
        fake_nvml.write(path, [with_gpm(gpu(0, **over)), with_gpm(seven_1g_10gb(1), slots=range(7)), gpu(2)])

    write()
    return path, ledger, write, dict(fake_env(fake_nvml_dir, path), FAKE_NVML_LEDGER=ledger)


def test_the_second_scrape_shows_every_gpm_family_per_gpu_and_per_mig_instance(serve, fleet):
    path, ledger, _, env = fleet
    s = serve("--gpu-backend=nvml", env=env)
    time.sleep(1.1)  # the reading at start only took the first samples
    v = series(s.get()[2])
    got = gpm_series(v)
    want = {(name, "0", None): value for name, value in expected().items()}
    for slot in range(7):  # instance in slot k reports (k + 1) / 8 of the values, GPU instance 7 + k
        want.update({(name, "1", str(7 + slot)): value for name, value in expected((slot + 1) / 8).items()})
    assert got.keys() == want.keys()  # nothing for GPU 2, nor for GPU 1 as a whole
    assert all(got[k] == pytest.approx(want[k], abs=1e-6) for k in want)
    supported = {dict(k[1])["gpu"]: n for k, n in v.items() if k[0] == "orchex_gpu_gpm_supported"}
    assert supported == {"0": 1, "1": 1, "2": 0}
    assert not errors(v)
    assert live_samples(ledger) == 2 + 7 * 2  # two per GPU or instance, allocated once
    time.sleep(1.1)
    s.get()
    assert live_samples(ledger) == 16
    code, err = s.stop()
    assert code == 0 and live_samples(ledger) == 0, err  # shutdown frees every one
    assert "Traceback" not in err and "level=error" not in err


def test_a_window_under_a_second_serves_the_previous_values(fleet, monkeypatch):
    path, ledger, write, env = fleet
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    from exporter.gpu.nvml import NvmlBackend

    with NvmlBackend(watch_xids=False) as nvml:
        assert nvml.read()[0].gpm == {}  # the first reading only starts a window
        time.sleep(1.05)
        assert nvml.read()[0].gpm["tensor_active_ratio"] == pytest.approx(0.42)
        fake_nvml.write(path, [with_gpm(gpu(0), values={**GPM_VALUES, 5: 90.0})])
        assert nvml.read()[0].gpm["tensor_active_ratio"] == pytest.approx(0.42)  # too short a window: as before
        time.sleep(1.05)
        assert nvml.read()[0].gpm["tensor_active_ratio"] == pytest.approx(0.90)


def test_samples_are_freed_when_a_gpu_is_lost_or_an_instance_destroyed(fleet, monkeypatch):
    path, ledger, write, env = fleet
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    from exporter.gpu.nvml import NvmlBackend

    with NvmlBackend(watch_xids=False) as nvml:
        nvml.read()
        assert live_samples(ledger) == 16
        write(lost=1)
        nvml.read()
        assert live_samples(ledger) == 14
        fake_nvml.write(path, [gpu(0, lost=1), with_gpm(fake_nvml.mig(gpu(1), [(0, "3g.40gb", 1, 0, 0)], 1),
                                                         slots=[0]), gpu(2)])
        nvml.read()
        assert live_samples(ledger) == 2  # the seven instances gone, the new one has its own two
    assert live_samples(ledger) == 0


@pytest.mark.parametrize("fault, lost_series, counted", [
    ({"gpm.5": None}, {"orchex_gpu_tensor_active_ratio"}, {}),  # the driver does not support that metric
    ({"gpm_fail.5": 4}, {"orchex_gpu_tensor_active_ratio"}, {("nvmlGpmMetricsGet", "NO_PERMISSION")}),
    ({"fail.nvmlGpmSampleGet": 3}, {f"orchex_gpu_{m.key}" for m in GPM_METRICS}, {}),
    ({"fail.nvmlGpmSampleGet": 4}, {f"orchex_gpu_{m.key}" for m in GPM_METRICS},
     {("nvmlGpmSampleGet", "NO_PERMISSION")}),
])
def test_a_gpm_failure_costs_only_its_own_series(serve, fleet, fault, lost_series, counted):
    path, ledger, _, env = fleet
    g0 = with_gpm(gpu(0))
    for k, v in fault.items():
        if v is None:
            g0.pop(k)
        else:
            g0[k] = v
    fake_nvml.write(path, [g0, with_gpm(seven_1g_10gb(1), slots=range(7)), gpu(2)])
    s = serve("--gpu-backend=nvml", env=env)
    time.sleep(1.1)
    v = series(s.get()[2])
    on_gpu0 = {name for name, g, _ in gpm_series(v) if g == "0"}
    assert on_gpu0 == set(expected()) - lost_series
    assert {g for _, g, _ in gpm_series(v)} == {"0", "1"} - ({"0"} if not on_gpu0 else set())
    assert len([k for k in gpm_series(v) if k[1] == "1"]) == 12 * 7  # the other GPU keeps all of them
    assert set(errors(v)) == set(counted)
    assert ("orchex_gpu_power_watts", (("gpu", "0"), ("uuid", H100_UUID))) in v
    _, err = s.stop()
    assert "Traceback" not in err


def test_a_library_without_gpm_costs_only_the_gpm_series(serve, tmp_path):
    folder = fake_nvml.build(old_driver=True)
    path = str(tmp_path / "scenario.txt")
    fake_nvml.write(path, [with_gpm(gpu(0))])
    s = serve("--gpu-backend=nvml", env={"LD_LIBRARY_PATH": folder, "FAKE_NVML_SCENARIO": path})
    time.sleep(1.1)
    v = series(s.get()[2])
    assert not gpm_series(v) and not any(k[0] == "orchex_gpu_gpm_supported" for k in v)
    assert ("nvmlGpmQueryDeviceSupport", "FUNCTION_NOT_FOUND") in errors(v)
    assert v[("orchex_gpu_up", (("gpu", "0"), ("uuid", H100_UUID)))] == 1
    _, err = s.stop()
    assert "Traceback" not in err


def test_a_reload_that_switches_a_gpu_collector_off_keeps_the_shared_reading(serve, fleet, tmp_path):
    """The GPU reading belongs to orchex serve, not to a collector: switching gpu-processes off must not
    close NVML under the gpu collector (its GPM windows would start again, their series gone a scrape)."""
    import signal

    path, ledger, _, env = fleet
    cfg = tmp_path / "orchex.yml"
    cfg.write_text("gpu-backend: nvml\n")
    s = serve(f"--config={cfg}", env=env)
    time.sleep(1.1)
    assert gpm_series(series(s.get()[2]))
    cfg.write_text("gpu-backend: nvml\ncollector.gpu-processes: false\n")
    s.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 5
    v = series(s.get()[2])
    while any(k[0].startswith("orchex_gpu_process") for k in v) and time.time() < deadline:
        time.sleep(0.05)
        v = series(s.get()[2])
    # The first scrape after the reload: a reading closed by the reload would only start its windows.
    assert not any(k[0].startswith("orchex_gpu_process") for k in v)
    assert len(gpm_series(v)) == 12 * 8  # GPU 0 and seven instances keep their windows
    assert live_samples(ledger) == 16
    code, err = s.stop()
    assert code == 0 and live_samples(ledger) == 0, err
