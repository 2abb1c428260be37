"""grafana/: provisioned dashboards generated from grafana/generate.py, checked statically and with
promtool (each panel query as a recording rule). test_live_prometheus runs them on real data."""

import importlib.util
import json
import os
import re
import subprocess

import yaml

from conftest import ROOT

GRAFANA = os.path.join(ROOT, "grafana")


def generator():
    spec = importlib.util.spec_from_file_location("generate", os.path.join(GRAFANA, "generate.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def dashboards():
    return {name: json.load(open(os.path.join(GRAFANA, "dashboards", name))) for name in generator().DASHBOARDS}


def substitute(expr, job=".*", instance=".*"):
    """A panel query as Prometheus sees it once Grafana has filled the variables in."""
    return (expr.replace("$__rate_interval", "1m").replace("$__range", "1h").replace("$job", job)
            .replace("$instance", instance).replace("$gpu", ".*").replace("$category", ".*"))


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
        for p in d["panels"]:
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
            assert p["description"] and p["fieldConfig"]["defaults"]["unit"], p["title"]
            for t in p["targets"]:
                expr = t["expr"]
                assert t["datasource"] == p["datasource"]
                if 'job="orchex_bench"' not in expr:  # benchmark series come from the Pushgateway job
                    assert "$job" in expr and "$instance" in expr, (p["title"], expr)
                for fn in re.findall(r"\b(rate|increase)\(([^\[]*)\[([^\]]+)\]", expr):
                    assert fn[2] in ("$__rate_interval", "$__range"), (p["title"], expr)
        assert all(0 <= p["gridPos"]["x"] and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in d["panels"])


def test_every_panel_query_parses_with_promtool(tmp_path):
    rules = []
    for d in dashboards().values():
        for p in d["panels"]:
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
