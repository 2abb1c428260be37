"""Generate the provisioned Grafana dashboards (grafana/dashboards/*.json) from one source, so every
panel gets the same datasource reference, variables, units and descriptions, and every threshold
comes from exporter/policy.py, the file the health model and the alert rules read. Run
`make dashboards`; a test fails when the committed JSON differs from what this writes.

The routing dashboard replaces the legacy markdown report section by section (docs/deploy.md
maps them). GPU series carry the `backend` of the exporter that produced them, so simulated data says so."""

from __future__ import annotations

import json
import os
from typing import Any

from exporter.policy import POLICY

HERE = os.path.dirname(os.path.abspath(__file__))
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'job=~"$job",instance=~"$instance"'
GPU = SEL + ',gpu=~"$gpu"'
ROUTE = SEL + ',category=~"$category"'
BENCH = 'job=~"$bench_job"'
BACKEND = f"orchex_backend_info{{{SEL}}}"

Json = dict[str, Any]


def tagged(expr: str) -> str:
    """A GPU expression with the backend (nvml or simulated) of the exporter that served it."""
    return f"({expr} * on (job, instance) group_left (backend) {BACKEND})"


def in_range(series: str) -> str:
    """Events each series counted over the dashboard's range, including a series born inside it:
    increase() cannot see a series' first sample, so such a series counts with its whole value."""
    return (f"((increase({series}[$__range]) and {series} offset $__range) "
            f"or ({series} unless {series} offset $__range))")


def steps(*pairs: tuple[float | None, str]) -> Json:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in pairs]}


def variable(name: str, query: str, label: str | None = None) -> Json:
    return {"name": name, "label": label or name, "type": "query", "datasource": DS,
            "query": {"query": query, "refId": name}, "refresh": 2, "includeAll": True,
            "multi": True, "allValue": ".*", "sort": 1, "hide": 0}


def panel(title: str, description: str, unit: str, *targets: tuple[str, str], kind: str = "timeseries",
          w: int = 12, h: int = 8, thresholds: Json | None = None, line: bool = False,
          mappings: list[Json] | None = None, instant: bool = False, options: Json | None = None,
          overrides: list[Json] | None = None, transformations: list[Json] | None = None) -> Json:
    defaults: Json = {"unit": unit}
    if thresholds:
        defaults["thresholds"] = thresholds
        defaults["color"] = {"mode": "thresholds"}
        if line:  # a time series draws the threshold as a dashed line
            defaults["custom"] = {"thresholdsStyle": {"mode": "dashed"}}
            defaults["color"] = {"mode": "palette-classic"}
    if mappings:
        defaults["mappings"] = mappings
    p: Json = {"type": kind, "title": title, "description": description, "datasource": DS,
               "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
               "targets": [{"refId": chr(65 + i), "datasource": DS, "expr": expr, "legendFormat": fmt,
                            **({"instant": True, "range": False} if instant else {}),
                            **({"format": "table"} if kind == "table" else {})}
                           for i, (expr, fmt) in enumerate(targets)],
               "gridPos": {"w": w, "h": h}}
    if kind == "timeseries":
        p["options"] = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                        "tooltip": {"mode": "multi", "sort": "desc"}}
    elif kind == "stat":
        p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "colorMode": "value", "graphMode": "none", "textMode": "value_and_name"}
    elif kind == "bargauge":
        p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "orientation": "horizontal", "displayMode": "basic"}
    elif kind == "piechart":
        p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "pieType": "pie", "displayLabels": ["name", "percent"],
                        "legend": {"displayMode": "table", "placement": "right", "values": ["value", "percent"]}}
    if options:
        p["options"] = {**p.get("options", {}), **options}
    if transformations:
        p["transformations"] = transformations
    return p


def stat(title: str, description: str, unit: str, *targets: tuple[str, str], w: int = 4, **kw: Any) -> Json:
    return panel(title, description, unit, *targets, kind="stat", w=w, h=4, instant=True, **kw)


def table(title: str, description: str, columns: list[tuple[str, str, str]], w: int = 24) -> Json:
    """One row per label set, one column per (header, unit, expression), joined on the labels."""
    overrides = [{"matcher": {"id": "byName", "options": f"Value #{chr(65 + i)}"},
                  "properties": [{"id": "displayName", "value": header}, {"id": "unit", "value": unit}]}
                 for i, (header, unit, _) in enumerate(columns)]
    hide = {"Time": True}
    return panel(title, description, "none", *[(expr, "") for _, _, expr in columns], kind="table", w=w, h=8,
                 instant=True, overrides=overrides,
                 transformations=[{"id": "merge", "options": {}},
                                  {"id": "organize", "options": {"excludeByName": hide}}])


def row(title: str) -> Json:
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "gridPos": {"w": 24, "h": 1}}


def layout(panels: list[Json]) -> list[Json]:
    x = y = row_h = 0
    for i, p in enumerate(panels, 1):
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if x + w > 24 or p["type"] == "row":
            x, y, row_h = 0, y + row_h, 0
        p["gridPos"].update(x=x, y=y)
        p["id"] = i
        x, row_h = x + w, max(row_h, h)
        if p["type"] == "row":
            x, y, row_h = 0, y + h, 0
    return panels


def dashboard(uid: str, title: str, description: str, variables: list[Json], panels: list[Json],
              tags: list[str]) -> Json:
    return {
        "uid": uid, "title": title, "description": description, "tags": ["orchex"] + tags, "editable": False,
        "schemaVersion": 41, "version": 1, "refresh": "30s", "time": {"from": "now-6h", "to": "now"},
        "timepicker": {}, "timezone": "browser", "graphTooltip": 1, "links": [], "annotations": {"list": []},
        "templating": {"list": [{"name": "datasource", "label": "Data source", "type": "datasource",
                                 "query": "prometheus", "hide": 0, "refresh": 1}] + variables},
        "panels": layout(panels),
    }


def host_variables() -> list[Json]:
    return [variable("job", "label_values(orchex_build_info, job)"),
            variable("instance", 'label_values(orchex_build_info{job=~"$job"}, instance)')]


def gpu_dashboard() -> Json:
    p = POLICY
    gpu_legend = "{{instance}} GPU {{gpu}} ({{backend}})"
    gpm_legend = "{{instance}} GPU {{gpu}} {{gpu_instance}} ({{backend}})"
    pod_legend = "{{instance}} {{namespace}}/{{pod}} ({{backend}})"
    hot = steps((None, "green"), (p.temperature_celsius, "red"))
    unhealthy = f'orchex_gpu_health_state{{{GPU},state!="HEALTHY"}}'
    v = host_variables() + [variable("gpu", f"label_values(orchex_gpu_info{{{SEL}}}, gpu)", "GPU")]
    panels = [
        row("Fleet"),
        stat("GPUs up", "GPUs answering NVML, by the backend that serves them.", "none",
             (f"sum by (backend) {tagged(f'orchex_gpu_up{{{GPU}}}')}", "{{backend}}")),
        stat("GPUs not healthy", "GPUs in any state but HEALTHY (HOT, OVERLOADED, HIGH_POWER, FAULT, DOWN).", "none",
             (f"sum by (backend) {tagged(unhealthy)}", "{{backend}}"),
             thresholds=steps((None, "green"), (1, "red"))),
        stat("Hosts on simulated data", "Hosts whose GPU series come from the simulated fleet, not from NVML: "
             "their numbers are made up.", "none",
             (f'count(orchex_backend_info{{{SEL},backend="simulated"}}) or vector(0)', "simulated"),
             thresholds=steps((None, "green"), (1, "orange"))),
        stat("Hottest GPU", f"Highest GPU temperature; red from {p.temperature_celsius:g} C, where the health model "
             "calls a GPU HOT.", "celsius",
             (f"max by (backend) {tagged(f'orchex_gpu_temperature_celsius{{{GPU}}}')}", "{{backend}}"),
             thresholds=hot),
        stat("Fleet power", "Power drawn by the selected GPUs.", "watt",
             (f"sum by (backend) {tagged(f'orchex_gpu_power_watts{{{GPU}}}')}", "{{backend}}")),
        stat("XID events in range", "XID events over the dashboard's time range, including the first event of "
             "a GPU and code (which increase() alone misses).", "none",
             (f"sum by (backend) {tagged(in_range(f'orchex_gpu_xid_errors_total{{{GPU}}}'))} or on () vector(0)",
              "{{backend}}"), thresholds=steps((None, "green"), (1, "red"))),
        row("Health and load"),
        panel("Health state", "The health model's state per GPU (1 = current state).", "none",
              (tagged(f"(orchex_gpu_health_state{{{GPU}}} == 1)"), "{{instance}} GPU {{gpu}} {{state}} ({{backend}})")),
        panel("Utilization", f"Share of time a kernel ran; dashed at {p.utilization_ratio:.0%}, where the health "
              "model calls a GPU OVERLOADED.", "percentunit",
              (tagged(f"orchex_gpu_utilization_ratio{{{GPU}}}"), gpu_legend),
              thresholds=steps((None, "green"), (p.utilization_ratio, "red")), line=True),
        panel("Memory used", f"Device memory used as a share of the installed memory; dashed at "
              f"{p.memory_pressure_ratio:.0%}, the memory-pressure alert.", "percentunit",
              (tagged(f"(orchex_gpu_memory_used_bytes{{{GPU}}} / (orchex_gpu_memory_total_bytes{{{GPU}}} > 0))"),
               gpu_legend), thresholds=steps((None, "green"), (p.memory_pressure_ratio, "red")), line=True),
        panel("Temperature", f"GPU die and memory temperature; dashed at {p.temperature_celsius:g} C (HOT).",
              "celsius", (tagged(f"orchex_gpu_temperature_celsius{{{GPU}}}"), gpu_legend),
              (tagged(f"orchex_gpu_memory_temperature_celsius{{{GPU}}}"), "{{instance}} GPU {{gpu}} memory "
               "({{backend}})"), thresholds=hot, line=True),
        panel("Power against limit", f"Power draw as a share of the power limit; dashed at {p.power_ratio:g} "
              "(HIGH_POWER).", "percentunit",
              (tagged(f"(orchex_gpu_power_watts{{{GPU}}} / (orchex_gpu_power_limit_watts{{{GPU}}} > 0))"), gpu_legend),
              thresholds=steps((None, "green"), (p.power_ratio, "red")), line=True),
        panel("Power from the energy counter", "rate() of the joules counter: average watts between scrapes.",
              "watt", (tagged(f"rate(orchex_gpu_energy_joules_total{{{GPU}}}[$__rate_interval])"), gpu_legend)),
        panel("SM clock", "Current SM clock.", "hertz",
              (tagged(f'orchex_gpu_clock_hertz{{{GPU},clock="sm"}}'), gpu_legend)),
        panel("Clock-event reasons", "Throttle reasons holding the clocks down, by name.", "none",
              (tagged(f"(orchex_gpu_clock_event_active{{{GPU}}} == 1)"),
               "{{instance}} GPU {{gpu}} {{reason}} ({{backend}})")),
        row("MIG instances"),
        panel("MIG memory used", f"Memory used in each MIG instance as a share of the instance's own memory; dashed "
              f"at {p.memory_pressure_ratio:.0%}, the OrchexGpuMigMemoryPressure alert. An instance cannot borrow "
              "from the GPU's other instances.", "percentunit",
              (tagged(f"(orchex_gpu_mig_memory_used_bytes{{{GPU}}} / (orchex_gpu_mig_memory_total_bytes{{{GPU}}}"
                      " > 0))"), "{{instance}} GPU {{gpu}} instance {{gpu_instance}} ({{backend}})"),
              thresholds=steps((None, "green"), (p.memory_pressure_ratio, "red")), line=True),
        panel("MIG instance inventory", "Each MIG instance: its GPU, GPU and compute instance ids, profile and UUID, "
              "with its memory.", "bytes",
              (tagged(f"orchex_gpu_mig_memory_total_bytes{{{GPU}}} * on (job, instance, gpu, uuid, gpu_instance, "
                      f"compute_instance) group_left (profile, mig_uuid) orchex_gpu_mig_info{{{GPU}}}"), ""),
              kind="table", instant=True),
        row("Profiling"),
        panel("Tensor activity", "Share of cycles any tensor pipe was active (NVML GPM, Hopper and later), per GPU "
              "and per MIG instance: the work an LLM does. Utilization counts any kernel and reads 100 % for a "
              f"memory-bound decode; dashed at {p.idle_activity_ratio:.0%}, under which a GPU holding a model is idle "
              "(OrchexGpuLoadedButIdle).", "percentunit",
              (tagged(f"orchex_gpu_tensor_active_ratio{{{GPU}}}"), gpm_legend),
              thresholds=steps((None, "red"), (p.idle_activity_ratio, "green")), line=True),
        panel("SM activity and occupancy", "Share of time warps were resident on the SMs, and how full the SMs "
              "were (NVML GPM).", "percentunit",
              (tagged(f"orchex_gpu_sm_active_ratio{{{GPU}}}"), gpm_legend + " active"),
              (tagged(f"orchex_gpu_sm_occupancy_ratio{{{GPU}}}"), gpm_legend + " occupancy")),
        panel("DRAM activity", "Share of cycles device memory was moving data (NVML GPM): near 1, decode is "
              "memory-bound.", "percentunit", (tagged(f"orchex_gpu_dram_active_ratio{{{GPU}}}"), gpm_legend)),
        panel("PCIe and NVLink", "Bytes per second over PCIe and NVLink (NVML GPM).", "Bps",
              *[(tagged(f"orchex_gpu_{bus}_{way}_bytes_per_second{{{GPU}}}"), f"{gpm_legend} {bus} {way}")
                for bus in ("pcie", "nvlink") for way in ("transmit", "receive")]),
        row("Processes"),
        panel("Top processes by GPU memory", "The ten processes holding the most GPU memory (MIG: in their GPU "
              "instance). Past --gpu-processes.max-per-gpu per GPU, the rest are summed as pid \"other\". An empty "
              "command means orchex cannot see host PIDs (hostPID: docs/deploy.md).", "bytes",
              (f"topk(10, {tagged(f'orchex_gpu_process_memory_used_bytes{{{GPU}}}')})",
               "{{instance}} GPU {{gpu}} {{command}} {{pid}} ({{backend}})")),
        panel("Process SM utilization", "Share of the GPU's SM time each process used since the previous "
              "reading, the ten busiest. The driver has no per-process utilisation under MIG.", "percentunit",
              (f"topk(10, {tagged(f'orchex_gpu_process_sm_utilization_ratio{{{GPU}}}')})",
               "{{instance}} GPU {{gpu}} {{command}} {{pid}} ({{backend}})")),
        panel("Processes per GPU", "Compute processes on each GPU, and how many of them orchex could not name.",
              "none", (tagged(f"orchex_gpu_compute_processes{{{GPU}}}"), "{{instance}} GPU {{gpu}} ({{backend}})"),
              (tagged(f"orchex_gpu_processes_unresolved{{{GPU}}}"), "{{instance}} GPU {{gpu}} unnamed ({{backend}})")),
        row("By namespace and pod"),
        panel("GPU utilization by pod", "Utilization of the whole GPUs each pod holds (the kubernetes collector's "
              "orchex_gpu_pod_info; the namespace_pod recording rules). Pods sharing a GPU by time-slicing each see "
              "the GPU's own; MIG instances have no utilization.", "percentunit",
              (tagged(f"namespace_pod:orchex_gpu_utilization_ratio:avg{{{SEL}}}"), pod_legend)),
        panel("Tensor activity by pod", "Tensor activity (NVML GPM) of the GPUs and MIG instances each pod holds.",
              "percentunit", (tagged(f"namespace_pod:orchex_gpu_tensor_active_ratio:avg{{{SEL}}}"), pod_legend)),
        panel("GPU memory by pod", "GPU memory each pod's processes hold where orchex sees them (--kubernetes.pod-"
              "memory: the real split between pods time-slicing a GPU); else the memory used on the GPUs and MIG "
              "instances the pod holds, which a shared GPU counts for each pod.", "bytes",
              (tagged(f"namespace_pod:orchex_gpu_memory_used_bytes:sum{{{SEL}}}"), pod_legend)),
        panel("GPUs held by namespace", "GPUs and MIG instances assigned to each namespace's containers.", "none",
              (tagged(f"namespace:orchex_gpu_devices_held:count{{{SEL}}}"), "{{instance}} {{namespace}} ({{backend}})"),
              kind="bargauge"),
        row("Errors and repairs"),
        panel("XID events since the exporter started", "XID events per GPU and code, as counted; a step up is an "
              "event. Independent of the zoom level.", "none",
              (tagged(f"orchex_gpu_xid_errors_total{{{GPU}}}"), "{{instance}} GPU {{gpu}} XID {{xid}} ({{backend}})")),
        panel("Last XID per GPU and code", "When each XID was last seen.", "dateTimeAsIso",
              (tagged(f"(orchex_gpu_xid_last_timestamp_seconds{{{GPU}}} * 1000)"), ""), kind="table",
              instant=True),
        panel("ECC errors", "Volatile ECC errors per second by error kind.", "cps",
              (tagged(f"rate(orchex_gpu_ecc_errors_total{{{GPU}}}[$__rate_interval])"),
               "{{instance}} GPU {{gpu}} {{error}} ({{backend}})")),
        panel("Uncorrected ECC errors", "Volatile uncorrected ECC errors since the driver was loaded; above 0 "
              "the GPU is FAULT until a reset.", "none",
              (tagged(f'orchex_gpu_ecc_errors_total{{{GPU},error="uncorrected"}}'), gpu_legend),
              thresholds=steps((None, "green"), (1, "red")), line=True),
        panel("Pending repairs", "1 while a row remap waits for a reset, retired pages wait for a reboot, or a "
              "row remap failed.", "none",
              *[(tagged(f"orchex_gpu_{metric}{{{GPU}}}"), f"{{{{instance}}}} GPU {{{{gpu}}}} {what} ({{{{backend}}}})")
                for metric, what in (("row_remap_pending", "remap pending"), ("retired_pages_pending", "pages pending"),
                                     ("row_remap_failure", "remap failed"))]),
        panel("NVML errors", "NVML calls failing with an error other than NOT_SUPPORTED, per second.", "cps",
              (f"rate(orchex_nvml_errors_total{{{SEL}}}[$__rate_interval])", "{{instance}} {{function}} {{code}}")),
        panel("Exporter collection time", "Time each collector took per scrape.", "s",
              (f"orchex_scrape_collector_duration_seconds{{{SEL}}}", "{{instance}} {{collector}}")),
    ]
    return dashboard("orchex-gpu", "orchex / GPU fleet", "GPU health from orchex serve (NVML, or the simulated "
                     "fleet, which every panel names).", v, panels, ["gpu"])


def selections(extra: str = "") -> str:
    return f"orchex_router_selections_total{{{ROUTE}{extra}}}"


def per_model_categories() -> str:
    return f"count by (model) (sum by (model, category) ({in_range(selections())}) > 0)"


def routing_panels() -> list[Json]:
    p = POLICY
    sel = in_range(selections())
    rate = f"rate({selections()}[$__rate_interval])"

    def mean(family: str, by: str, where: str = "") -> str:
        def part(suffix: str) -> str:
            return f"sum{by} ({in_range(f'orchex_router_selection_{family}_{suffix}{{{ROUTE}}}')}{where})"
        return f"{part('sum')} / ({part('count')} > 0)"

    primary, second = in_range(selections(',primary="true"')), in_range(selections(',primary="false"'))
    secondary = " and on (category, model) " + selections(',primary="false"')
    multi = f"{per_model_categories()} > 1"
    return [
        row("Report: overall effectiveness"),
        stat("Total requests", "Selections over the time range (the report's total requests).", "none",
             (f"sum({sel}) or vector(0)", "requests")),
        stat("Unique models", "Models selected at least once over the range.", "none",
             (f"count(sum by (model) ({sel}) > 0) or vector(0)", "models")),
        stat("Models serving several categories", "Models selected for more than one category over the range.",
             "none", (f"count({multi}) or vector(0)", "models")),
        stat("Secondary-category selections", "Selections where the category was not the model's primary one.",
             "none", (f"sum({second}) or vector(0)", "secondary")),
        stat("Mean selection duration", "Mean selector time per selection over the range.", "s",
             (mean("duration_seconds", ""), "mean")),
        stat("Selections per second", "Model selections read from the selection logs, now.", "reqps",
             (f"sum({rate}) or vector(0)", "selections")),
        row("Report: recommendations"),
        stat("Secondary-category share", f"Share of selections that used a model's secondary category; the legacy "
             f"report calls above {p.secondary_share_good:.0%} good multi-category utilisation.", "percentunit",
             (f"sum({second}) / (sum({sel}) > 0)", "secondary share"),
             w=6, thresholds=steps((None, "orange"), (p.secondary_share_good, "green"))),
        stat("Mean secondary confidence", f"Mean confidence of secondary-category selections; the legacy report "
             f"calls below {p.secondary_confidence_low:g} low confidence.", "none",
             (mean("confidence", "", secondary), "confidence"), w=6,
             thresholds=steps((None, "red"), (p.secondary_confidence_low, "green")),
             options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}),
        stat("Fallback share", f"Share of selections where no candidate met the constraints; the alert fires above "
             f"{p.fallback_share:.0%} for a category.", "percentunit",
             (f"clamp_max(sum({in_range(f'orchex_router_fallbacks_total{{{ROUTE}}}')}) / (sum({sel}) > 0), 1)",
              "fallbacks"), w=6, thresholds=steps((None, "green"), (p.fallback_share, "red"))),
        stat("Rejected log rows", "Selection-log rows rejected over the range.", "none",
             (f"sum({in_range(f'orchex_router_selection_log_parse_errors_total{{{SEL}}}')}) or vector(0)", "rejected"),
             w=6, thresholds=steps((None, "green"), (1, "red"))),
        panel("Top 5 models by requests", "The report's console summary: the five models selected most over the "
              "range.", "none", (f"topk(5, sum by (model) ({sel}))", "{{model}}"), kind="bargauge", w=12, h=8,
              instant=True),
        panel("GPU distribution", "Selections per GPU over the range, with their share (the report's GPU "
              "distribution).", "none", (f"sum by (gpu) ({sel})", "GPU {{gpu}}"), kind="piechart", w=12, h=8,
              instant=True),
        row("Report: performance by category"),
        table("Performance by category", "Per category over the range: requests, distinct models, mean final "
              "score, mean confidence, mean selection duration (the report's table).", [
                  ("Requests", "none", f"sum by (category) ({sel})"),
                  ("Models", "none", f"count by (category) (sum by (category, model) ({sel}) > 0)"),
                  ("Mean final score", "none", mean("score", " by (category)")),
                  ("Mean confidence", "none", mean("confidence", " by (category)")),
                  ("Mean duration", "s", mean("duration_seconds", " by (category)")),
              ]),
        row("Report: multi-category model utilisation"),
        table("Models serving several categories", "Per model selected for more than one category over the "
              "range: requests, categories, mean final score, primary and secondary selections.", [
                  ("Requests", "none", f"sum by (model) ({sel}) and on (model) ({multi})"),
                  ("Categories", "none", multi),
                  ("Mean final score", "none", f"({mean('score', ' by (model)')}) and on (model) ({multi})"),
                  ("Primary", "none", f"(sum by (model) ({primary}) or sum by (model) ({sel}) * 0) "
                   f"and on (model) ({multi})"),
                  ("Secondary", "none", f"(sum by (model) ({second}) or sum by (model) ({sel}) * 0) "
                   f"and on (model) ({multi})"),
              ]),
        row("Traffic"),
        panel("Selections by category", "Selections per second per task category.", "reqps",
              (f"sum by (category) ({rate})", "{{category}}")),
        panel("Selections by model", "Selections per second per model chosen.", "reqps",
              (f"sum by (model) ({rate})", "{{model}}")),
        panel("Selections by GPU", "Where the selector placed models, per second.", "reqps",
              (f"sum by (gpu) ({rate})", "GPU {{gpu}}")),
        panel("Mean confidence by category", "Mean confidence of the selections (0.95 sole, 0.9 primary, 0.7 "
              f"secondary category); dashed at {p.secondary_confidence_low:g}.", "none",
              (f"sum by (category) (rate(orchex_router_selection_confidence_sum{{{ROUTE}}}[$__rate_interval])) / "
               f"sum by (category) (rate(orchex_router_selection_confidence_count{{{ROUTE}}}[$__rate_interval]))",
               "{{category}}"), thresholds=steps((None, "red"), (p.secondary_confidence_low, "green")), line=True),
        panel("Mean final score by model", "Mean final score of the selections per model.", "none",
              (f"sum by (model) (rate(orchex_router_selection_score_sum{{{ROUTE}}}[$__rate_interval])) / "
               f"sum by (model) (rate(orchex_router_selection_score_count{{{ROUTE}}}[$__rate_interval]))",
               "{{model}}")),
        panel("Selection duration", "Selector time per selection: p50, p95 and p99 over all categories.", "s",
              *[(f"histogram_quantile({q}, sum by (le) (rate(orchex_router_selection_duration_seconds_bucket"
                 f"{{{ROUTE}}}[$__rate_interval])))", f"p{int(q * 100)}") for q in (0.5, 0.95, 0.99)]),
        panel("Fallback share by category", "Share of each category's selections that fell back (0-1).",
              "percentunit",
              (f"clamp_max(sum by (category) (rate(orchex_router_fallbacks_total{{{ROUTE}}}[$__rate_interval])) / "
               f"(sum by (category) ({rate}) > 0), 1)", "{{category}}"),
              thresholds=steps((None, "green"), (p.fallback_share, "red")), line=True),
        panel("Rejected rows by reason", "Selection-log rows rejected per second, by reason.", "cps",
              (f"sum by (reason) (rate(orchex_router_selection_log_parse_errors_total{{{SEL}}}[$__rate_interval]))",
               "{{reason}}")),
        panel("Unreadable selection logs by reason", "Failed attempts to open or read a file a --selection-log "
              "pattern matches, per second, by reason (permission, open_files, not_regular, io): what the "
              "OrchexRouterSelectionLogUnreadable alert watches.", "cps",
              (f"sum by (instance, reason) (rate(orchex_router_selection_log_errors_total{{{SEL}}}"
               "[$__rate_interval]))", "{{instance}} {{reason}}")),
    ]


def bench_panels() -> list[Json]:
    p = POLICY
    passed = [{"type": "value", "options": {"0": {"text": "FAILED", "color": "red"},
                                            "1": {"text": "PASSED", "color": "green"}}}]
    return [
        row("Benchmark (orchex bench, from the Pushgateway)"),
        stat("Last run passed", "Whether every check of the last orchex bench run passed, per host and registry.",
             "none", (f"orchex_bench_passed{{{BENCH}}}", "{{instance}} {{registry}}"), w=6, mappings=passed,
             thresholds=steps((None, "red"), (1, "green"))),
        stat("Failed checks", "Checks that failed in the last run.", "none",
             (f"orchex_bench_failed_checks{{{BENCH}}}", "{{instance}} {{registry}}"), w=6,
             thresholds=steps((None, "green"), (1, "red"))),
        stat("Uncovered categories", "Categories that list no model present in the registry.", "none",
             (f"orchex_bench_uncovered_categories{{{BENCH}}}", "{{instance}} {{registry}}"), w=6,
             thresholds=steps((None, "green"), (1, "red"))),
        stat("Last success age", f"Time since the last passing run; red after {p.bench_stale_seconds // 86400} "
             "days, when the stale alert fires.", "s",
             (f"time() - orchex_bench_last_success_timestamp_seconds{{{BENCH}}}", "{{instance}} {{registry}}"), w=6,
             thresholds=steps((None, "green"), (p.bench_stale_seconds, "red"))),
        panel("Coverage by category", "Share of a category's listed models present in the registry.",
              "percentunit", (f"orchex_bench_coverage_ratio{{{BENCH}}}", "{{instance}} {{category}}"),
              kind="bargauge", w=8, instant=True, thresholds=steps((None, "red"), (1, "green"))),
        panel("Consistency by category", "Share of identical answers to one input; 1 is required.",
              "percentunit", (f"orchex_bench_consistency_ratio{{{BENCH}}}", "{{instance}} {{category}}"),
              kind="bargauge", w=8, instant=True, thresholds=steps((None, "red"), (1, "green"))),
        panel("Scaling", "Median selection time on synthetic registries of growing size.", "s",
              (f"orchex_bench_scaling_median_seconds{{{BENCH}}}", "{{instance}} {{models}} models"),
              kind="bargauge", w=8, instant=True),
        panel("Median selection time by category", "orchex bench's median and p99 selection time per category.",
              "s", (f"orchex_bench_selection_median_seconds{{{BENCH}}}", "{{instance}} {{category}} median"),
              (f"orchex_bench_selection_p99_seconds{{{BENCH}}}", "{{instance}} {{category}} p99"), w=24),
    ]


def routing_dashboard() -> Json:
    v = host_variables() + [
        variable("category", f"label_values(orchex_router_selections_total{{{SEL}}}, category)"),
        variable("bench_job", "label_values(orchex_bench_passed, job)", "benchmark job")]
    return dashboard("orchex-routing", "orchex / model routing", "Model-routing selections from the selection logs "
                     "and the routing benchmark, replacing the legacy markdown analytics report.", v,
                     routing_panels() + bench_panels(), ["routing"])


DASHBOARDS = {"orchex-gpu.json": gpu_dashboard, "orchex-routing.json": routing_dashboard}


def render(build: Any) -> str:
    return json.dumps(build(), indent=2) + "\n"


if __name__ == "__main__":
    for name, build in DASHBOARDS.items():
        with open(os.path.join(HERE, "dashboards", name), "w") as f:
            f.write(render(build))
