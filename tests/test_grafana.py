"""grafana/: provisioned dashboards generated from grafana/generate.py, checked statically, with
promtool (each panel query as a recording rule) and with TypeScript against Grafana's own dashboard
types (@grafana/schema). test_live_prometheus runs every query on real data."""

import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

from conftest import ROOT, load_script
from exporter.policy import Policy

GRAFANA = os.path.join(ROOT, "grafana")
TYPECHECK = os.path.join(GRAFANA, "typecheck")
SCHEMA_TYPES = os.path.join(TYPECHECK, "node_modules", "@grafana", "schema", "dist", "types", "raw", "dashboard",
                            "x", "types.gen.d.ts")


def generator():
    return load_script("grafana/generate.py")


def dashboards():
    return {name: json.load(open(os.path.join(GRAFANA, "dashboards", name))) for name in generator().DASHBOARDS}


def panels(d):
    return [p for p in d["panels"] if p["type"] != "row"]


def substitute(expr, job=".*", instance=".*", bench_job=".*"):
    """A panel query as Prometheus sees it once Grafana has filled the variables in."""
    return (expr.replace("$__rate_interval", "1m").replace("$__range", "1h").replace("$bench_job", bench_job)
            .replace("$job", job).replace("$instance", instance).replace("$gpu", ".*").replace("$category", ".*"))


def test_committed_dashboards_are_what_the_generator_writes():
    gen = generator()
    for name, build in gen.DASHBOARDS.items():
        assert open(os.path.join(GRAFANA, "dashboards", name)).read() == gen.render(build), \
            f"{name} is stale: run `make dashboards`"


def test_dashboard_conventions():
    uids = set()
    for d in dashboards().values():
        assert d["uid"] not in uids and d["uid"].startswith("orchex-")
        uids.add(d["uid"])
        variables = {v["name"]: v for v in d["templating"]["list"]}
        assert [v for v in d["templating"]["list"] if v["type"] == "datasource"] == [variables["datasource"]]
        assert {"job", "instance"} <= set(variables)
        for p in panels(d):
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
            unit = p["fieldConfig"]["defaults"]["unit"]
            assert p["description"] and unit, p["title"]
            for t in p["targets"]:
                expr = t["expr"]
                assert t["datasource"] == p["datasource"]
                if "orchex_bench_" in expr:  # pushed by orchex bench: its own job variable
                    assert '{job=~"$bench_job"}' in expr, (p["title"], expr)
                else:
                    assert "$job" in expr and "$instance" in expr, (p["title"], expr)
                for fn in re.findall(r"\b(rate|increase)\(([^\[]*)\[([^\]]+)\]", expr):
                    assert fn[2] in ("$__rate_interval", "$__range"), (p["title"], expr)
                if re.search(r"\brate\(", expr) and "histogram_quantile" not in expr and "/" not in expr:
                    assert unit.endswith("ps") or unit == "watt", f"{p['title']}: a rate shown as {unit}"
        assert all(0 <= p["gridPos"]["x"] and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in d["panels"])


def test_gpu_series_name_their_backend():
    """Simulated data says so: every per-GPU query carries the exporter's backend label."""
    d = dashboards()["orchex-gpu.json"]
    for p in panels(d):
        for t in p["targets"]:
            if "orchex_gpu_" in t["expr"]:
                assert "group_left (backend) orchex_backend_info" in t["expr"], p["title"]
                assert "backend" in t["legendFormat"] or p["type"] == "table", p["title"]


def thresholds(d, title):
    p = next(p for p in panels(d) if p["title"] == title)
    return [s["value"] for s in p["fieldConfig"]["defaults"]["thresholds"]["steps"]][1:]


def test_thresholds_come_from_the_policy(monkeypatch):
    """The legacy report's 30 % and 0.75, the health model's 85 C: from exporter/policy.py, so a
    changed policy changes the dashboards (and a hard-coded number would not follow)."""
    gen = generator()
    gpu, routing = gen.gpu_dashboard(), gen.routing_dashboard()
    assert thresholds(gpu, "Temperature") == thresholds(gpu, "Hottest GPU") == [85]
    assert thresholds(gpu, "Utilization") == [0.95] and thresholds(gpu, "Memory used") == [0.9]
    assert thresholds(routing, "Secondary-category share") == [0.30]
    assert thresholds(routing, "Mean secondary confidence") == [0.75]
    class Changed(Policy):
        __slots__ = ()
        temperature_celsius = 90.0
        secondary_share_good = 0.4

    monkeypatch.setattr(gen, "POLICY", Changed())
    assert thresholds(gen.gpu_dashboard(), "Temperature") == [90]
    assert thresholds(gen.routing_dashboard(), "Secondary-category share") == [0.4]


def test_every_legacy_report_section_has_its_panels():
    """FORMATS.md's report: header totals, overall effectiveness, GPU distribution, performance by
    category, multi-category utilisation, recommendations; and the console's top 5 models."""
    titles = {p["title"] for p in panels(dashboards()["orchex-routing.json"])}
    rows = {p["title"] for p in dashboards()["orchex-routing.json"]["panels"] if p["type"] == "row"}
    assert {"Total requests", "Unique models", "Models serving several categories", "Secondary-category selections",
            "Mean selection duration", "GPU distribution", "Performance by category",
            "Secondary-category share", "Mean secondary confidence", "Top 5 models by requests"} <= titles
    assert {"Report: overall effectiveness", "Report: recommendations", "Report: performance by category",
            "Report: multi-category model utilisation"} <= rows
    table = next(p for p in panels(dashboards()["orchex-routing.json"]) if p["title"] == "Performance by category")
    headers = [o["properties"][0]["value"] for o in table["fieldConfig"]["overrides"]]
    assert headers == ["Requests", "Models", "Mean final score", "Mean confidence", "Mean duration"]
    bench = {"Last run passed", "Failed checks", "Coverage by category", "Consistency by category", "Scaling"}
    assert bench <= titles


def test_every_panel_query_parses_with_promtool(tmp_path):
    rules = []
    for d in dashboards().values():
        for p in panels(d):
            for t in p["targets"]:
                rules.append({"record": f"panel_{len(rules)}", "expr": substitute(t["expr"])})
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    res = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    bad = {"groups": [{"name": "bad", "rules": [{"record": "x", "expr": "sum(rate(x[1m])"}]}]}
    path.write_text(yaml.safe_dump(bad))
    assert subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True).returncode == 1


def test_provisioning_files():
    ds = yaml.safe_load(open(os.path.join(GRAFANA, "provisioning", "datasources", "prometheus.yml")))
    assert ds["apiVersion"] == 1 and ds["datasources"][0]["uid"] == "prometheus"
    assert ds["datasources"][0]["jsonData"]["timeInterval"]
    prov = yaml.safe_load(open(os.path.join(GRAFANA, "provisioning", "dashboards", "orchex.yml")))
    assert prov["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


# Fields whose type in @grafana/schema is a string enum: TypeScript accepts only the enum's members
# there, so the wrapper writes `Enum.Member` for a value the enum has, and the bare string (which
# then fails) for one it has not.
ENUM_FIELDS = {("thresholds", "mode"): "ThresholdsMode", ("mappings", "type"): "MappingType",
               ("color", "mode"): "FieldColorModeId"}


def enum_members():
    text = open(SCHEMA_TYPES).read()
    out = {}
    for name, body in re.findall(r"export declare enum (\w+) \{([^}]*)\}", text):
        out[name] = {value: member for member, value in re.findall(r'(\w+) = "([^"]*)"', body)}
    return out


def to_typescript(value, members, parents=()):
    if isinstance(value, dict):
        items = []
        for k, v in value.items():
            enum = ENUM_FIELDS.get((parents[-1] if parents else None, k))
            if enum and isinstance(v, str) and v in members.get(enum, {}):
                items.append(f"{json.dumps(k)}: {enum}.{members[enum][v]}")
            else:
                items.append(f"{json.dumps(k)}: {to_typescript(v, members, parents + (k,))}")
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list):  # an element's fields belong to the list's key (mappings -> type)
        return "[" + ", ".join(to_typescript(v, members, parents) for v in value) + "]"
    return json.dumps(value)


def typecheck(dashboards_by_name, folder):
    """tsc's verdict on dashboards assigned to @grafana/schema's Dashboard type: (rc, output)."""
    members = enum_members()
    build = os.path.join(folder, "build")
    os.makedirs(build, exist_ok=True)
    for f in ("tsconfig.json", "package.json"):
        shutil.copy(os.path.join(TYPECHECK, f), folder)
    if not os.path.exists(os.path.join(folder, "node_modules")):
        os.symlink(os.path.join(TYPECHECK, "node_modules"), os.path.join(folder, "node_modules"))
    for name, d in dashboards_by_name.items():
        with open(os.path.join(build, name.replace(".json", ".mts")), "w") as f:
            f.write(f"import {{ {', '.join(sorted(set(ENUM_FIELDS.values())))}, type Dashboard }} from "
                    f"'@grafana/schema';\nexport const dashboard: Dashboard = {to_typescript(d, members)};\n")
    tsc = os.path.join(TYPECHECK, "node_modules", ".bin", "tsc")
    res = subprocess.run([tsc, "-p", folder], capture_output=True, text=True, timeout=120)
    return res.returncode, res.stdout + res.stderr


@pytest.fixture(scope="module")
def schema_installed():
    assert os.path.exists(SCHEMA_TYPES), "run `make dashboard-types` (make test does) to install @grafana/schema"


def test_dashboards_type_check_against_grafana_schema(tmp_path, schema_installed):
    rc, out = typecheck(dashboards(), str(tmp_path))
    assert rc == 0, out


@pytest.mark.parametrize("breakage", ["title is a number", "grid height is text", "unknown threshold mode",
                                      "variable with empty current"])
def test_the_type_check_catches_a_broken_dashboard(tmp_path, schema_installed, breakage):
    d = dashboards()["orchex-gpu.json"]
    p = panels(d)[0]
    if breakage == "title is a number":
        d["title"] = 42
    elif breakage == "grid height is text":
        p["gridPos"]["h"] = "8"
    elif breakage == "unknown threshold mode":
        next(x for x in panels(d) if "thresholds" in x["fieldConfig"]["defaults"])[
            "fieldConfig"]["defaults"]["thresholds"]["mode"] = "absolutely"
    else:
        d["templating"]["list"][1]["current"] = {}
    rc, out = typecheck({"broken.json": d}, str(tmp_path))
    assert rc != 0 and "error TS" in out, out
