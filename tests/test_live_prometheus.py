"""End to end: a real Prometheus scrapes `orchex serve` on the fake NVML library and on the simulated
fleet; the series are checked through the Prometheus HTTP API."""

import glob
import os

import pytest

import fake_nvml
from conftest import LEGACY, ROOT, Served, fake_env
from live import Prometheus


@pytest.fixture(scope="module")
def stack(tmp_path_factory, fake_nvml_dir):
    folder = tmp_path_factory.mktemp("live")
    scenario = str(folder / "scenario.txt")
    fake_nvml.write(scenario, [fake_nvml.gpu(0), fake_nvml.gpu(1, power_mw=None, temperature=88)],
                    events=[(1, 48)])
    log = folder / "sel.csv"
    log.write_text(open(f"{LEGACY}/selection_metrics_sample.csv").read())
    nvml = Served(["--gpu-backend=nvml", f"--selection-log={log}"], fake_env(fake_nvml_dir, scenario))
    sim = Served(["--gpu-backend=simulated", f"--selection-log={log}"])
    rules = sorted(glob.glob(os.path.join(ROOT, "prometheus", "rules", "*.yml")))
    prom = Prometheus(str(folder), {"orchex_nvml": [f"127.0.0.1:{nvml.port}"],
                                    "orchex_sim": [f"127.0.0.1:{sim.port}"]}, rule_files=rules)
    yield prom, nvml, sim, log
    prom.stop()
    nvml.stop()
    sim.stop()


def by(result, label):
    return {r["metric"].get(label): float(r["value"][1]) for r in result}


def test_gpu_series_arrive_with_values_and_labels(stack):
    prom, *_ = stack
    up = prom.wait_for('up{job=~"orchex_.*"}', lambda r: len(r) == 2 and all(x["value"][1] == "1" for x in r))
    assert len(up) == 2
    power = prom.wait_for('orchex_gpu_power_watts{job="orchex_nvml"}')
    assert by(power, "gpu") == {"0": 150.0}  # GPU 1 reads power N/A: no series at all
    temp = by(prom.wait_for('orchex_gpu_temperature_celsius{job="orchex_nvml"}', lambda r: len(r) == 2), "gpu")
    assert temp == {"0": 40.0, "1": 88.0}
    hot = prom.wait_for('orchex_gpu_health_state{job="orchex_nvml",state=~"HOT|FAULT"} == 1')
    assert by(hot, "state") == {"FAULT": 1.0}  # XID 48 outranks the temperature
    xid = prom.wait_for('orchex_gpu_xid_errors_total{job="orchex_nvml"}')
    assert xid[0]["metric"]["xid"] == "48" and xid[0]["metric"]["gpu"] == "1"
    info = prom.wait_for('orchex_gpu_info{job="orchex_nvml"}')
    assert {r["metric"]["model_name"] for r in info} == {"NVIDIA H100 80GB HBM3"}
    joined = prom.wait_for('orchex_gpu_power_watts * on(gpu, uuid) group_left(model_name) orchex_gpu_info')
    assert joined[0]["metric"]["model_name"]
    sim = prom.wait_for('orchex_gpu_up{job="orchex_sim"}', lambda r: len(r) == 4)
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
    bad = prom.wait_for('orchex_router_selection_log_parse_errors_total{job="orchex_sim",reason="columns"} == 1')
    assert len(bad) == 1


def test_self_metrics(stack):
    prom, *_ = stack
    ok = prom.wait_for('orchex_scrape_collector_success{job="orchex_nvml"}', lambda r: len(r) == 3)
    assert by(ok, "collector") == {"gpu": 1.0, "routing": 1.0, "process": 1.0}
    assert prom.wait_for('orchex_build_info{job="orchex_nvml"}')[0]["metric"]["version"]


def test_recording_rules_evaluate_on_real_series(stack):
    prom, *_ = stack
    util = prom.wait_for('instance:orchex_gpu_utilization_ratio:avg{job="orchex_nvml"}')
    assert float(util[0]["value"][1]) == pytest.approx(0.45)
    healthy = prom.wait_for('instance:orchex_gpu_healthy:count{job="orchex_sim"}')
    assert 1 <= float(healthy[0]["value"][1]) <= 4
    assert prom.wait_for('category_model:orchex_router_selections:rate5m{job="orchex_sim"}', lambda r: len(r) == 2)
    power = prom.wait_for('instance:orchex_gpu_power_watts:sum{job="orchex_nvml"}')
    assert float(power[0]["value"][1]) == 150.0  # GPU 1 reports no power: a sum of what exists


# Panels fed by events that the stack's data does not contain, so they rightly show nothing.
EVENT_PANELS = {"ECC errors", "NVML errors", "Rejected rows by reason", "Benchmark median selection time",
                "Benchmark last success age", "Fallbacks by category", "Fallback share", "Clock-event reasons"}


def test_dashboard_queries_return_data(stack):
    from test_grafana import dashboards, substitute

    prom, *_ = stack
    prom.wait_for('rate(orchex_router_selections_total{job="orchex_sim"}[1m])')
    empty = []
    for name, d in dashboards().items():
        job = "orchex_nvml" if "gpu" in name else "orchex_sim"
        for p in d["panels"]:
            if p["title"] in EVENT_PANELS:
                continue
            for t in p["targets"]:
                if not prom.query(substitute(t["expr"], job=job)):
                    empty.append((name, p["title"], t["expr"]))
    assert empty == []
