"""Generate the provisioned Grafana dashboards (grafana/dashboards/*.json) from one source, so every
panel gets the same datasource reference, variables, units and descriptions. Run `make dashboards`;
a test fails when the committed JSON differs from what this writes."""

import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'job=~"$job",instance=~"$instance"'
GPU = SEL + ',gpu=~"$gpu"'
ROUTE = SEL + ',category=~"$category"'


def variable(name, query, label=None, multi=True):
    return {"name": name, "label": label or name, "type": "query", "datasource": DS, "query": {"query": query,
            "refId": name}, "definition": query, "refresh": 2, "includeAll": multi, "multi": multi,
            "allValue": ".*" if multi else None, "current": {}, "sort": 1, "hide": 0}


def panel(title, description, unit, *targets, kind="timeseries", w=12, h=8, legend=True, extra=None):
    p = {"type": kind, "title": title, "description": description, "datasource": DS,
         "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
         "targets": [{"refId": chr(65 + i), "datasource": DS, "expr": expr, "legendFormat": fmt}
                     for i, (expr, fmt) in enumerate(targets)],
         "gridPos": {"w": w, "h": h}}
    if kind == "timeseries":
        p["options"] = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": legend},
                        "tooltip": {"mode": "multi", "sort": "desc"}}
    elif kind == "stat":
        p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "colorMode": "value", "graphMode": "none", "textMode": "auto"}
    p.update(extra or {})
    return p


def layout(panels):
    x = y = row_h = 0
    for i, p in enumerate(panels, 1):
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if x + w > 24:
            x, y, row_h = 0, y + row_h, 0
        p["gridPos"].update(x=x, y=y)
        p["id"] = i
        x, row_h = x + w, max(row_h, h)
    return panels


def dashboard(uid, title, description, variables, panels, tags):
    return {
        "uid": uid, "title": title, "description": description, "tags": ["orchex"] + tags, "editable": False,
        "schemaVersion": 41, "version": 1, "refresh": "30s", "time": {"from": "now-6h", "to": "now"},
        "timepicker": {}, "timezone": "browser", "graphTooltip": 1, "links": [], "annotations": {"list": []},
        "templating": {"list": [{"name": "datasource", "label": "Data source", "type": "datasource",
                                 "query": "prometheus", "current": {}, "hide": 0, "refresh": 1}] + variables},
        "panels": layout(panels),
    }


def gpu_dashboard():
    v = [variable("job", "label_values(orchex_build_info, job)"),
         variable("instance", 'label_values(orchex_build_info{job=~"$job"}, instance)'),
         variable("gpu", f'label_values(orchex_gpu_info{{{SEL}}}, gpu)', "GPU")]
    panels = [
        panel("GPUs up", "GPUs answering NVML, of those the exporter knows.", "none",
              (f"sum(orchex_gpu_up{{{GPU}}})", "up"), kind="stat", w=4, h=4),
        panel("GPUs not healthy", "GPUs in any state but HEALTHY (HOT, OVERLOADED, HIGH_POWER, FAULT, DOWN).", "none",
              (f'sum(orchex_gpu_health_state{{{GPU},state!="HEALTHY"}})', "not healthy"), kind="stat", w=4, h=4),
        panel("NVML up", "1 when the exporter's GPU backend answered the last scrape.", "none",
              (f"min(orchex_nvml_up{{{SEL}}})", "nvml"), kind="stat", w=4, h=4),
        panel("Fleet power", "Power drawn by the selected GPUs.", "watt",
              (f"sum(orchex_gpu_power_watts{{{GPU}}})", "power"), kind="stat", w=4, h=4),
        panel("Energy used in range", "Energy counted by the GPUs over the dashboard's time range.", "joule",
              (f"sum(increase(orchex_gpu_energy_joules_total{{{GPU}}}[$__range]))", "energy"), kind="stat", w=4, h=4),
        panel("XID events in range", "XID events reported by NVML over the time range.", "none",
              (f"sum(increase(orchex_gpu_xid_errors_total{{{GPU}}}[$__range]))", "xid"), kind="stat", w=4, h=4),
        panel("Health state", "The health model's state per GPU (1 = current state).", "none",
              (f"orchex_gpu_health_state{{{GPU}}} == 1", "{{instance}} GPU {{gpu}} {{state}}")),
        panel("Utilization", "Share of time a kernel ran on each GPU.", "percentunit",
              (f"orchex_gpu_utilization_ratio{{{GPU}}}", "{{instance}} GPU {{gpu}}")),
        panel("Memory used", "Device memory used as a share of the installed memory.", "percentunit",
              (f"orchex_gpu_memory_used_bytes{{{GPU}}} / orchex_gpu_memory_total_bytes{{{GPU}}}",
               "{{instance}} GPU {{gpu}}")),
        panel("Temperature", "GPU die and memory temperature; the health model calls 85 C HOT.", "celsius",
              (f"orchex_gpu_temperature_celsius{{{GPU}}}", "{{instance}} GPU {{gpu}}"),
              (f"orchex_gpu_memory_temperature_celsius{{{GPU}}}", "{{instance}} GPU {{gpu}} memory")),
        panel("Power against limit", "Power draw and the enforced power limit.", "watt",
              (f"orchex_gpu_power_watts{{{GPU}}}", "{{instance}} GPU {{gpu}}"),
              (f"orchex_gpu_enforced_power_limit_watts{{{GPU}}}", "{{instance}} GPU {{gpu}} limit")),
        panel("Power from the energy counter", "rate() of the joules counter: average watts between scrapes.",
              "watt", (f"rate(orchex_gpu_energy_joules_total{{{GPU}}}[$__rate_interval])", "{{instance}} GPU {{gpu}}")),
        panel("SM clock", "Current SM clock.", "hertz",
              (f'orchex_gpu_clock_hertz{{{GPU},clock="sm"}}', "{{instance}} GPU {{gpu}}")),
        panel("Clock-event reasons", "Throttle reasons holding the clocks down, by name.", "none",
              (f"orchex_gpu_clock_event_active{{{GPU}}} == 1", "{{instance}} GPU {{gpu}} {{reason}}")),
        panel("ECC errors", "Volatile ECC errors per second by error kind.", "short",
              (f"rate(orchex_gpu_ecc_errors_total{{{GPU}}}[$__rate_interval])", "{{instance}} GPU {{gpu}} {{error}}")),
        panel("XID events", "XID events per GPU and code.", "short",
              (f"increase(orchex_gpu_xid_errors_total{{{GPU}}}[$__rate_interval])",
               "{{instance}} GPU {{gpu}} XID {{xid}}")),
        panel("Exporter collection time", "Time each collector took per scrape.", "s",
              (f"orchex_scrape_duration_seconds{{{SEL}}}", "{{instance}} {{collector}}")),
        panel("NVML errors", "NVML calls failing with an error other than NOT_SUPPORTED, per second.", "short",
              (f"rate(orchex_nvml_errors_total{{{SEL}}}[$__rate_interval])", "{{instance}} {{function}} {{code}}")),
    ]
    return dashboard("orchex-gpu", "orchex / GPU fleet", "GPU health from orchex serve (NVML).", v, panels, ["gpu"])


def routing_dashboard():
    v = [variable("job", "label_values(orchex_build_info, job)"),
         variable("instance", 'label_values(orchex_build_info{job=~"$job"}, instance)'),
         variable("category", f"label_values(orchex_router_selections_total{{{SEL}}}, category)")]
    rate = f"rate(orchex_router_selections_total{{{ROUTE}}}[$__rate_interval])"
    panels = [
        panel("Selections per second", "Model selections read from the selection logs.", "reqps",
              (f"sum({rate})", "selections"), kind="stat", w=6, h=4),
        panel("Secondary-category share", "Share of selections that used a model's secondary category (the legacy "
              "report calls above 30 % good multi-category utilisation).", "percentunit",
              (f'sum(rate(orchex_router_selections_total{{{ROUTE},primary="false"}}[$__rate_interval])) / sum({rate})',
               "secondary"), kind="stat", w=6, h=4),
        panel("Fallback share", "Share of selections where no candidate met the constraints.", "percentunit",
              (f"sum(rate(orchex_router_fallbacks_total{{{ROUTE}}}[$__rate_interval])) / sum({rate})", "fallbacks"),
              kind="stat", w=6, h=4),
        panel("Rejected log rows", "Selection-log rows rejected over the time range.", "none",
              (f"sum(increase(orchex_router_selection_log_parse_errors_total{{{SEL}}}[$__range]))", "rejected"),
              kind="stat", w=6, h=4),
        panel("Selections by category", "Selections per second per task category.", "reqps",
              (f"sum by (category) ({rate})", "{{category}}")),
        panel("Selections by model", "Selections per second per model chosen.", "reqps",
              (f"sum by (model) ({rate})", "{{model}}")),
        panel("Selections by GPU", "Where the selector placed models (the report's GPU distribution).", "reqps",
              (f"sum by (gpu) ({rate})", "GPU {{gpu}}")),
        panel("Mean confidence by category", "Mean confidence of the selections (0.95 sole, 0.9 primary, 0.7 "
              "secondary category).", "percentunit",
              (f"sum by (category) (rate(orchex_router_selection_confidence_sum{{{ROUTE}}}[$__rate_interval])) / "
               f"sum by (category) (rate(orchex_router_selection_confidence_count{{{ROUTE}}}[$__rate_interval]))",
               "{{category}}")),
        panel("Mean final score by model", "Mean final score of the selections per model.", "none",
              (f"sum by (model) (rate(orchex_router_selection_score_sum{{{ROUTE}}}[$__rate_interval])) / "
               f"sum by (model) (rate(orchex_router_selection_score_count{{{ROUTE}}}[$__rate_interval]))",
               "{{model}}")),
        panel("Selection duration", "Selector time per selection: p50, p95 and p99 over all categories.", "s",
              *[(f"histogram_quantile({q}, sum by (le) (rate(orchex_router_selection_duration_seconds_bucket"
                 f"{{{ROUTE}}}[$__rate_interval])))", f"p{int(q * 100)}") for q in (0.5, 0.95, 0.99)]),
        panel("Fallbacks by category", "Fallback selections per second, by category and model finally chosen.",
              "reqps", (f"sum by (category, model) (rate(orchex_router_fallbacks_total{{{ROUTE}}}[$__rate_interval]))",
                        "{{category}} -> {{model}}")),
        panel("Rejected rows by reason", "Selection-log rows rejected per second, by reason.", "short",
              (f"sum by (reason) (rate(orchex_router_selection_log_parse_errors_total{{{SEL}}}[$__rate_interval]))",
               "{{reason}}")),
        panel("Benchmark median selection time", "orchex bench results pushed to the Pushgateway, per category.",
              "s", ('orchex_bench_selection_median_seconds{job="orchex_bench"}', "{{instance}} {{category}}")),
        panel("Benchmark last success age", "Time since the last passing orchex bench push.", "s",
              ('time() - orchex_bench_last_success_timestamp_seconds{job="orchex_bench"}', "{{instance}} {{registry}}"),
              kind="stat", w=12, h=8),
    ]
    return dashboard("orchex-routing", "orchex / model routing", "Model-routing selections from the selection logs, "
                     "replacing the legacy markdown analytics reports.", v, panels, ["routing"])


DASHBOARDS = {"orchex-gpu.json": gpu_dashboard, "orchex-routing.json": routing_dashboard}


def render(build):
    return json.dumps(build(), indent=2) + "\n"


if __name__ == "__main__":
    for name, build in DASHBOARDS.items():
        with open(os.path.join(HERE, "dashboards", name), "w") as f:
            f.write(render(build))
