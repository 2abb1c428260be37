
"""The gpu collector over the fake NVML, and the scraper's isolation of failing collectors."""

import threading

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families

from exporter.collectors import CollectorFailed
from exporter.collectors.gpu import GpuCollector
from exporter.collectors.scrape import Scraper
from exporter.exposition import Family, labels, render
from exporter.gpu.nvml import NvmlBackend
from exporter.gpu.reading import SharedReading
from fake_nvml import gpu


def values(families):
    out = {}
    for fam in text_string_to_metric_families(render(families)):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def names(families):
    return {s[0] for s in values(families)}


def g(i, **extra):
    """Sorted label items of GPU i's series, as values() keys them."""
    return tuple(sorted({"gpu": str(i), "uuid": f"GPU-00000000-0000-0000-0000-{i:012d}", **extra}.items()))


def test_gpu_families_in_base_units(scenario):
    scenario([gpu(0), gpu(1, power_mw=None, fan=55)], events=[(1, 79)])
    reading = SharedReading(NvmlBackend)
    c = GpuCollector(reading)
    try:
        import time

        deadline = time.time() + 5
        while time.time() < deadline and ("orchex_gpu_xid_errors_total", g(1, xid="79")) not in values(
                c.collect(time.time())):
            time.sleep(0.6)
        v = values(c.collect(time.time()))
    finally:
        reading.close()
    assert v[("orchex_nvml_up", ())] == 1
    assert v[("orchex_gpu_power_watts", g(0))] == 150.0
    assert ("orchex_gpu_power_watts", g(1)) not in v  # unsupported: no series, not 0
    assert v[("orchex_gpu_fan_speed_ratio", g(1))] == 0.55 and ("orchex_gpu_fan_speed_ratio", g(0)) not in v
    assert v[("orchex_gpu_energy_joules_total", g(0))] == 123456.789
    assert v[("orchex_gpu_memory_total_bytes", g(0))] == 85520809984
    assert v[("orchex_gpu_utilization_ratio", g(0))] == 0.45
    assert v[("orchex_gpu_clock_hertz", g(0, clock="sm"))] == 1755e6
    assert v[("orchex_gpu_clock_event_active", g(0, reason="sw_power_cap"))] == 1
    assert v[("orchex_gpu_ecc_errors_total", g(0, error="corrected"))] == 2
    assert v[("orchex_gpu_ecc_lifetime_errors_total", g(0, error="corrected"))] == 10
    assert v[("orchex_gpu_health_state", g(0, state="HEALTHY"))] == 1
    assert v[("orchex_gpu_health_state", g(1, state="FAULT"))] == 1  # XID 79 just now
    assert v[("orchex_gpu_xid_errors_total", g(1, xid="79"))] == 1
    info = [k for k in v if k[0] == "orchex_gpu_info"]
    assert dict(info[0][1])["model_name"] == "NVIDIA H100 80GB HBM3" and dict(info[0][1])["driver_version"]
    # per-GPU series carry only gpu and uuid (plus their own dimension)
    for name, labs in v:
        if name.startswith("orchex_gpu_") and name != "orchex_gpu_info":
            assert {k for k, _ in labs} - {"gpu", "uuid"} <= {"clock", "reason", "error", "state", "xid", "cause"}


def test_lost_gpu_is_down_and_keeps_only_identity(scenario):
    scenario([gpu(0), gpu(1, **{"fail.nvmlDeviceGetTemperature": 15})])
    reading = SharedReading(NvmlBackend)
    v = values(GpuCollector(reading).collect(0))
    reading.close()
    assert v[("orchex_gpu_up", g(1))] == 0 and v[("orchex_gpu_up", g(0))] == 1
    assert v[("orchex_gpu_health_state", g(1, state="DOWN"))] == 1
    assert ("orchex_gpu_power_watts", g(1)) not in v and ("orchex_gpu_power_watts", g(0)) in v
    assert v[("orchex_nvml_errors_total", (("code", "GPU_IS_LOST"), ("function", "nvmlDeviceGetTemperature")))] == 1


def test_nvml_unavailable_gives_nvml_up_0_and_no_gpu_series(scenario):
    scenario([gpu(0)], init_error=9)
    c = GpuCollector(SharedReading(NvmlBackend))
    with pytest.raises(CollectorFailed) as failed:  # the scrape reports the collector failed ...
        c.collect(0)
    assert "DRIVER_NOT_LOADED" in str(failed.value)
    assert values(failed.value.families) == {("orchex_nvml_up", ()): 0}  # ... and serves nvml_up 0


def test_concurrent_scrapes_share_one_reading():
    reads = []

    class Counting:
        name = "counting"
        error_counts = {}

        def read(self):
            reads.append(1)
            import time

            time.sleep(0.05)
            return []

        def close(self):
            pass

    c = GpuCollector(SharedReading(Counting))
    threads = [threading.Thread(target=c.collect, args=(0,)) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(reads) == 1


def test_a_failing_collector_never_fails_the_scrape():
    class Broken:
        name = "broken"

        def collect(self, now):
            raise RuntimeError("boom")

        def close(self):
            pass

    class Fine:
        name = "fine"

        def collect(self, now):
            f = Family("orchex_test_value", "gauge", "A value.")
            f.add(42)
            return [f]

        def close(self):
            pass

    v = values(Scraper([Broken(), Fine()], clock=lambda: 1000.0).scrape())
    assert v[("orchex_test_value", ())] == 42
    assert v[("orchex_scrape_collector_success", (("collector", "broken"),))] == 0
    assert v[("orchex_scrape_errors", (("collector", "broken"),))] == 1
    assert v[("orchex_scrape_collector_success", (("collector", "fine"),))] == 1
    assert v[("orchex_scrape_last_success_timestamp_seconds", (("collector", "fine"),))] == 1000.0
    assert ("orchex_scrape_last_success_timestamp_seconds", (("collector", "broken"),)) not in v
    assert any(k[0] == "orchex_build_info" for k in v)


def test_exposition_escaping_and_openmetrics():
    f = Family("orchex_test", "counter", 'Help with "quotes" and \\ and\nnewline.')
    f.add(3, labels(model='we"ird\\name\nx'), "_total")
    i = Family("orchex_thing", "info", "Info.")
    i.add(1, labels(version="1"), "_info")
    h = Family("orchex_lat_seconds", "histogram", "Latency.")
    h.add(1, labels(le="0.1"), "_bucket")
    h.add(2, labels(le="+Inf"), "_bucket")
    h.add(0.25, "", "_sum")
    h.add(2, "", "_count")
    text = render([f, i, h])
    (fam, info, hist) = text_string_to_metric_families(text)
    assert fam.samples[0].labels["model"] == 'we"ird\\name\nx' and fam.samples[0].value == 3
    assert fam.type == "counter" and info.name == "orchex_thing_info"
    om = render([f, i, h], openmetrics=True)
    assert om.endswith("# EOF\n")
    fams = {x.name: x for x in parse_om(om)}
    assert fams["orchex_test"].type == "counter" and fams["orchex_thing"].type == "info"
    assert fams["orchex_lat_seconds"].samples[-1].value == 2
