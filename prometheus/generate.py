"""Generate prometheus/rules/orchex-alerts.yml from exporter/policy.py, the thresholds and XID lists
the health model and the dashboards share. Run `make rules`; a test fails when the committed file
differs from what this writes, and the mutation test (tests/test_alert_mutants.py) rebuilds the rules
with each alert broken to prove the promtool tests catch it.

Conventions (monitoring-mixins): an Orchex prefix, `severity` critical (pages), warning or info, and the
annotations summary, description and runbook_url, pointing at a section of docs/runbooks.md. An
`info` alert (a GPU that holds a model and serves nothing) reaches the default receiver and pages no one."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import yaml

from exporter.policy import POLICY, Policy

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "rules", "orchex-alerts.yml")
RUNBOOKS = "https://github.com/orchex/orchex/blob/main/docs/runbooks.md"
# A critical GPU alert keeps firing this long after its series vanish: a host that stops takes its
# series with it, and OrchexExporterDown (for: EXPORTER_DOWN_FOR) must take over before it resolves.
EXPORTER_DOWN_FOR = "2m"
KEEP_FIRING_FOR = "3m"


@dataclass(frozen=True)
class Alert:
    name: str
    expr: Callable[[str], str]  # the expression for a threshold, written as PromQL
    threshold: float | None  # None: the alert has no threshold to move
    severity: str
    summary: str
    description: str
    for_: str | None = None
    keep_firing_for: str | None = None


def number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def events(series: str, window: str, t: str) -> str:
    """Series that counted more than `t` events in `window`. increase() cannot see a series' first
    sample, so a series born inside the window counts with its whole value."""
    return f"increase({series}[{window}]) > {t}\nor\n({series} > {t} unless {series} offset {window})"


# OrchexGpuFault has no `for:`: it must fire in the same evaluation as the XID, ECC and remap alerts
# it inhibits, or they page before it exists. FAULT comes from sticky counts, so it does not flap.
def gpu_alerts(p: Policy) -> list[Alert]:
    crit, warn = "|".join(map(str, p.critical_xids)), "|".join(map(str, p.warning_xids))
    on_gpu = "GPU {{ $labels.gpu }} on {{ $labels.instance }}"
    keep = KEEP_FIRING_FOR
    return [
        Alert("OrchexGpuDown", lambda t: f"orchex_gpu_up == {t}", 0, "critical",
              f"{on_gpu} is lost.",
              "NVML answers GPU_IS_LOST or an unknown error for GPU {{ $labels.gpu }} ({{ $labels.uuid }}); it may "
              "have fallen off the bus.", "1m", keep),
        Alert("OrchexGpuFault", lambda t: f'orchex_gpu_health_state{{state="FAULT"}} == {t}', 1, "critical",
              f"{on_gpu} is faulty.",
              "Uncorrected ECC errors, a failed row remap or a critical XID (" + ", ".join(map(str, p.critical_xids))
              + f") within {p.xid_window_seconds // 60} minutes.", None, keep),
        Alert("OrchexGpuCriticalXid",
              lambda t: f'time() - orchex_gpu_xid_last_timestamp_seconds{{xid=~"{crit}"}} < {t}',
              p.xid_window_seconds, "critical", "XID {{ $labels.xid }} on " + on_gpu + ".",
              f"A critical XID was reported in the last {p.xid_window_seconds // 60} minutes; the GPU is FAULT "
              "until the window passes.", None, keep),
        Alert("OrchexGpuXid",
              lambda t: f'time() - orchex_gpu_xid_last_timestamp_seconds{{xid=~"{warn}"}} < {t}',
              p.xid_window_seconds, "warning", "XID {{ $labels.xid }} on " + on_gpu + ".",
              f"A warning-class XID was reported in the last {p.xid_window_seconds // 60} minutes (94: a contained "
              "ECC error; the application on the GPU was stopped, the GPU stays in service)."),
        Alert("OrchexGpuUncorrectedEccErrors", lambda t: f'orchex_gpu_ecc_errors_total{{error="uncorrected"}} > {t}',
              0, "critical", "Uncorrected ECC errors on " + on_gpu + ".",
              "{{ $value }} uncorrected ECC errors since the driver was loaded; the count stays until a GPU reset "
              "or driver reload.", None, keep),
        Alert("OrchexGpuRowRemapFailure", lambda t: f"orchex_gpu_row_remap_failure == {t}", 1, "critical",
              "Row remapping failed on " + on_gpu + ".", "A row remap failed, NVIDIA's RMA criterion.", None, keep),
        Alert("OrchexGpuRowRemapPending", lambda t: f"orchex_gpu_row_remap_pending == {t}", 1, "warning",
              "A row remap waits for a reset of " + on_gpu + ".",
              "Memory rows were remapped; the remap takes effect at the next GPU reset."),
        Alert("OrchexGpuRetiredPagesPending", lambda t: f"orchex_gpu_retired_pages_pending == {t}", 1, "warning",
              "Retired pages wait for a reboot on " + on_gpu + ".",
              "Memory pages were retired; the retirement takes effect when the driver reloads."),
        Alert("OrchexGpuHot", lambda t: f'orchex_gpu_health_state{{state="HOT"}} == {t}', 1, "warning",
              f"{on_gpu} is HOT.",
              f"The GPU has been at or above the exporter's --health.temperature-celsius (default "
              f"{number(p.temperature_celsius)} C) for 10 minutes.", "10m"),
        Alert("OrchexGpuOverloaded", lambda t: f'orchex_gpu_health_state{{state="OVERLOADED"}} == {t}', 1, "warning",
              f"{on_gpu} is OVERLOADED.",
              f"Utilisation has been at or above --health.utilization-ratio (default "
              f"{number(p.utilization_ratio * 100)} %) for 30 minutes; new models placed on it will queue.", "30m"),
        Alert("OrchexGpuHighPower", lambda t: f'orchex_gpu_health_state{{state="HIGH_POWER"}} == {t}', 1, "warning",
              f"{on_gpu} draws HIGH_POWER.",
              f"Power has been at or above --health.power-ratio (default {number(p.power_ratio)}) times the power "
              "limit for 30 minutes.", "30m"),
        Alert("OrchexGpuThermalSlowdown",
              lambda t: f'orchex_gpu_clock_event_active{{reason=~"hw_thermal|sw_thermal"}} == {t}', 1, "warning",
              f"{on_gpu} is held down by {{{{ $labels.reason }}}}.",
              "The clocks have been reduced for temperature for 5 minutes.", "5m"),
        Alert("OrchexGpuPowerBrake", lambda t: f'orchex_gpu_clock_event_active{{reason="hw_power_brake"}} == {t}', 1,
              "warning", f"{on_gpu} is held down by the power brake.",
              "The hardware power brake (an external signal, often the power supply) has slowed the clocks for 5 "
              "minutes.", "5m"),
        Alert("OrchexGpuMemoryPressure",
              lambda t: f"orchex_gpu_memory_used_bytes / (orchex_gpu_memory_total_bytes > 0) > {t}",
              p.memory_pressure_ratio, "warning",
              f"{on_gpu} has used over {number(p.memory_pressure_ratio * 100)} % of its memory for 15 minutes.",
              "New models cannot be placed on it; the selector will pick other GPUs or fall back.", "15m"),
        Alert("OrchexGpuMigMemoryPressure",
              lambda t: f"orchex_gpu_mig_memory_used_bytes / (orchex_gpu_mig_memory_total_bytes > 0) > {t}",
              p.memory_pressure_ratio, "warning",
              "MIG instance {{ $labels.gpu_instance }} of GPU {{ $labels.gpu }} on {{ $labels.instance }} has used "
              f"over {number(p.memory_pressure_ratio * 100)} % of its memory for 15 minutes.",
              "The model server in that instance is close to running out of memory; the GPU's other instances "
              "cannot lend it theirs. Give it a larger profile or a smaller model.", "15m"),
        Alert("OrchexGpuLoadedButIdle", lambda t: loaded_but_idle(p, t), p.idle_activity_ratio, "info",
              "{{ with $labels.gpu_instance }}MIG instance {{ . }} of {{ end }}" + on_gpu + " holds "
              "{{ $value | humanizePercentage }} of its memory but does almost no work.",
              f"For an hour its memory has been over {number(p.loaded_memory_ratio * 100)} % used while its tensor "
              f"and SM activity (NVML GPM) stayed under {number(p.idle_activity_ratio * 100)} %: a model is loaded "
              "and not served. Unload it, or route traffic to it.", "1h"),
    ]


def loaded_but_idle(p: Policy, t: str) -> str:
    """A whole GPU, or a MIG instance, whose memory is held while GPM says it does no work. The whole
    GPU's activity series are those without a gpu_instance label."""
    loaded = number(p.loaded_memory_ratio)
    whole, inst = "on (job, instance, gpu, uuid)", "on (job, instance, gpu, uuid, gpu_instance)"
    return (f"(\n  orchex_gpu_memory_used_bytes / (orchex_gpu_memory_total_bytes > 0) > {loaded}\n"
            f"  and {whole} orchex_gpu_tensor_active_ratio{{gpu_instance=\"\"}} < {t}\n"
            f"  and {whole} orchex_gpu_sm_active_ratio{{gpu_instance=\"\"}} < {t}\n)\nor\n(\n"
            f"  orchex_gpu_mig_memory_used_bytes / (orchex_gpu_mig_memory_total_bytes > 0) > {loaded}\n"
            f"  and {inst} orchex_gpu_tensor_active_ratio < {t}\n"
            f"  and {inst} orchex_gpu_sm_active_ratio < {t}\n)")


def router_alerts(p: Policy) -> list[Alert]:
    return [
        Alert("OrchexRouterFallbacksHigh",
              lambda t: f"category:orchex_router_fallbacks_per_selections:ratio_rate5m > {t}", p.fallback_share,
              "warning", "{{ $value | humanizePercentage }} of the {{ $labels.category }} selections on "
              "{{ $labels.instance }} fall back.",
              f"Over {number(p.fallback_share * 100)} % of the category's selections found no candidate that met "
              "the constraints for 30 minutes; check the registry and the GPUs.", "30m"),
        Alert("OrchexRouterSelectionLogRejects",
              lambda t: events("orchex_router_selection_log_parse_errors_total", "15m", t), 0, "warning",
              "The selection log on {{ $labels.instance }} has rows rejected for {{ $labels.reason }}.",
              "Rows were rejected in the last 15 minutes; the router may write a broken log."),
        Alert("OrchexRouterSelectionLogUnreadable",
              lambda t: events("orchex_router_selection_log_errors_total", "15m", t), 0, "warning",
              "A selection log on {{ $labels.instance }} cannot be followed: {{ $labels.reason }}.",
              "A file the --selection-log patterns match could not be opened or read in the last 15 minutes; "
              "its rows are not counted. The exporter's log names the file."),
        Alert("OrchexRouterLabelOverflow", lambda t: events("orchex_router_label_overflow_total", "1h", t), 0,
              "warning", "Routing label {{ $labels.label }} overflows on {{ $labels.instance }}.",
              "Rows were counted as 'other' in the last hour: the log names more {{ $labels.label }} values than "
              "--routing.max-label-values, or the series budget (--routing.max-series) is spent."),
        Alert("OrchexRouterSelectionLogMissing", lambda t: f"orchex_router_selection_log_files == {t}", 0, "warning",
              "No selection log matches {{ $labels.pattern }} on {{ $labels.instance }}.",
              "The routing metrics are not fed: the path or glob given to --selection-log matches no regular "
              "file.", "10m"),
    ]


def exporter_alerts(p: Policy) -> list[Alert]:
    return [
        # Any target that exported orchex_build_info in the last day and does not answer now: a down
        # target (up 0) and one that left service discovery (no up at all), whatever the job is called.
        Alert("OrchexExporterDown",
              lambda t: f"max by (job, instance) (last_over_time(orchex_build_info[1d]))\n"
                        f"unless on (job, instance)\nup == {t}", 1, "critical",
              "orchex exporter {{ $labels.instance }} does not answer.",
              "Prometheus cannot scrape it, or it left service discovery; no GPU or routing metrics from this "
              "host.", EXPORTER_DOWN_FOR),
        Alert("OrchexExporterAbsent", lambda t: "absent(orchex_build_info)", None, "critical",
              "No orchex exporter reports to this Prometheus.",
              "Not one target exports orchex_build_info: the scrape configuration or discovery lost them all.",
              "10m"),
        Alert("OrchexNvmlDown", lambda t: f"orchex_nvml_up == {t}", 0, "warning",
              "NVML does not answer on {{ $labels.instance }}.",
              "The exporter cannot initialise NVML (no driver, or the driver is not loaded), or it serves the "
              "simulated fleet; no real GPU series are exported.", "5m"),
        Alert("OrchexXidWatcherDown", lambda t: f"orchex_nvml_xid_watcher_up == {t}", 0, "warning",
              "XID events are not watched on {{ $labels.instance }}.",
              "The exporter's XID event thread is not running: XIDs go unseen and cannot make a GPU FAULT.", "10m"),
        Alert("OrchexCollectorFailing", lambda t: f"orchex_scrape_collector_success == {t}", 0, "warning",
              "Collector {{ $labels.collector }} fails on {{ $labels.instance }}.",
              "The collector has failed on every scrape for 10 minutes; the exporter's log says why.", "10m"),
        Alert("OrchexBenchFailing", lambda t: f"orchex_bench_passed == {t}", 0, "warning",
              "The routing benchmark failed on {{ $labels.instance }}.",
              "orchex bench reported failed checks for registry {{ $labels.registry }} "
              "(orchex_bench_failed_checks says how many)."),
        # A registry that never passed has no last-success series: it is stale once its oldest run
        # seen in the last three days is older than the limit.
        Alert("OrchexBenchStale",
              lambda t: f"time() - orchex_bench_last_success_timestamp_seconds > {t}\nor\n"
                        f"(time() - min_over_time(orchex_bench_last_run_timestamp_seconds[3d]) > {t}\n"
                        " unless on (job, instance, registry) orchex_bench_last_success_timestamp_seconds)",
              p.bench_stale_seconds, "warning",
              "No passing routing benchmark from {{ $labels.instance }} for "
              f"{p.bench_stale_seconds // 86400} days.",
              "The last passing orchex bench push for registry {{ $labels.registry }} is older than "
              f"{p.bench_stale_seconds // 3600} hours, or it never passed."),
    ]


GROUPS: dict[str, Callable[[Policy], list[Alert]]] = {
    "orchex-gpu.alerts": gpu_alerts, "orchex-router.alerts": router_alerts, "orchex-exporter.alerts": exporter_alerts}


def anchor(name: str) -> str:
    return RUNBOOKS + "#" + name.lower()


def rule(a: Alert, threshold: float | None = None, drop_for: bool = False) -> dict[str, object]:
    t = a.threshold if threshold is None else threshold
    r: dict[str, object] = {"alert": a.name, "expr": a.expr(number(t) if t is not None else "")}
    if a.for_ and not drop_for:
        r["for"] = a.for_
    if a.keep_firing_for:
        r["keep_firing_for"] = a.keep_firing_for
    r["labels"] = {"severity": a.severity}
    r["annotations"] = {"summary": a.summary, "description": a.description, "runbook_url": anchor(a.name)}
    return r


def alerts(p: Policy = POLICY) -> dict[str, list[Alert]]:
    return {name: build(p) for name, build in GROUPS.items()}


def render_groups(groups: dict[str, list[dict[str, object]]]) -> str:
    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_representer(str, lambda d, s: d.represent_scalar("tag:yaml.org,2002:str", s,
                                                                style="|" if "\n" in s else None))
    body = yaml.dump({"groups": [{"name": n, "rules": rules} for n, rules in groups.items()]}, Dumper=Dumper,
                     sort_keys=False, width=120, allow_unicode=True)
    return ("# Generated by prometheus/generate.py from exporter/policy.py (make rules): do not edit.\n" + body)


def render(p: Policy = POLICY) -> str:
    return render_groups({name: [rule(a) for a in group] for name, group in alerts(p).items()})


# dcgm-exporter's series that NVIDIA's Grafana dashboard 12239 and the common pod dashboards read:
# (name, the orchex expression in dcgm's unit). dcgm labels a series gpu, UUID, modelName, Hostname,
# GPU_I_ID for a MIG instance, and pod, namespace and container for the pod holding the device: one
# series per container, each with the device's value, where pods share it (as dcgm-exporter does).
DCGM_OUT = os.path.join(HERE, "rules", "dcgm-compat.yml")
DCGM_SERIES = (
    ("DCGM_FI_DEV_GPU_UTIL", "orchex_gpu_utilization_ratio * 100"),  # percent
    ("DCGM_FI_DEV_FB_USED", "orchex_gpu_memory_used_bytes / 1048576"),  # MiB
    ("DCGM_FI_DEV_FB_FREE", "orchex_gpu_memory_free_bytes / 1048576"),
    ("DCGM_FI_DEV_GPU_TEMP", "orchex_gpu_temperature_celsius"),
    ("DCGM_FI_DEV_POWER_USAGE", "orchex_gpu_power_watts"),
    ("DCGM_FI_DEV_SM_CLOCK", 'orchex_gpu_clock_hertz{clock="sm"} / 1e6'),  # MHz
    ("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "orchex_gpu_tensor_active_ratio"),  # ratios, as dcgm's PROF fields
    ("DCGM_FI_PROF_DRAM_ACTIVE", "orchex_gpu_dram_active_ratio"),
)


def dcgm_expr(expr: str) -> str:
    """`expr` (labelled job, instance, gpu, uuid[, gpu_instance]) with dcgm's labels in place of ours."""
    device = ('(' + expr + ')\n    * on (job, instance, gpu, uuid) group_left (modelName)\n'
              '    label_replace(orchex_gpu_info, "modelName", "$1", "model_name", "(.*)")')
    on = "on (job, instance, gpu, uuid, gpu_instance)"
    named = f"({device})\n  * {on} group_right (modelName) orchex_gpu_pod_info\nor {on}\n  {device}"
    for new, old, pattern in (("UUID", "uuid", "(.*)"), ("Hostname", "instance", "(.+?)(?::[0-9]+)?"),
                              ("GPU_I_ID", "gpu_instance", "(.+)")):
        named = f'label_replace(\n  {named},\n  "{new}", "$1", "{old}", "{pattern}")'
    return f"max without (uuid, gpu_instance, clock) (\n{named}\n)"


def render_dcgm() -> str:
    rules = [{"record": name, "expr": dcgm_expr(expr)} for name, expr in DCGM_SERIES]
    return ("# Opt-in: dcgm-exporter's series rebuilt from orchex's, for dashboards written for dcgm-exporter\n"
            "# (add this file to rule_files). Generated by prometheus/generate.py (make rules): do not edit.\n"
            + render_groups({"dcgm-compat": rules}).split("\n", 1)[1])


if __name__ == "__main__":
    with open(OUT, "w") as f:
        f.write(render())
    with open(DCGM_OUT, "w") as f:
        f.write(render_dcgm())
