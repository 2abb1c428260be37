"""prometheus/: the config, recording and alert rules, and their promtool unit tests."""

import glob
import os
import re
import subprocess

import yaml

from conftest import ROOT, load_script

PROM = os.path.join(ROOT, "prometheus")
RULES = sorted(glob.glob(os.path.join(PROM, "rules", "*.yml")))
ORCHEX_RULES = sorted(glob.glob(os.path.join(PROM, "rules", "orchex-*.yml")))  # dcgm-compat.yml keeps dcgm's names


def promtool(*args):
    return subprocess.run(["promtool", *args], capture_output=True, text=True, cwd=PROM)


def test_config_and_rules_check():
    res = promtool("check", "config", "prometheus.yml")
    assert res.returncode == 0, res.stdout + res.stderr
    res = promtool("check", "rules", *RULES)
    assert res.returncode == 0, res.stdout + res.stderr


def test_rule_unit_tests_pass():
    for test in sorted(glob.glob(os.path.join(PROM, "tests", "*.yml"))):
        res = promtool("test", "rules", test)
        assert res.returncode == 0 and "SUCCESS" in res.stdout, res.stdout + res.stderr


def test_a_wrong_expectation_fails(tmp_path):
    """The unit tests can fail: the same test with one expectation changed does."""
    src = open(os.path.join(PROM, "tests", "orchex-alerts.test.yml")).read()
    bad = tmp_path / "bad.test.yml"
    assert "value: 0.6\n" in src
    bad.write_text(src.replace("value: 0.6\n", "value: 0.7\n").replace("../rules/", os.path.join(PROM, "rules") + "/"))
    res = promtool("test", "rules", str(bad))
    assert res.returncode == 1 and "FAILED" in res.stdout + res.stderr


def generator():
    return load_script("prometheus/generate.py")


def test_committed_alerts_are_what_the_generator_writes():
    gen = generator()
    assert open(gen.OUT).read() == gen.render(), "prometheus/rules/orchex-alerts.yml is stale: run `make rules`"
    assert open(gen.DCGM_OUT).read() == gen.render_dcgm(), "prometheus/rules/dcgm-compat.yml is stale: run `make rules`"


def test_every_dcgm_unit_conversion_is_pinned(tmp_path):
    """Each dcgm-compatible series, its value doubled, its dcgm label or its pod lost, fails the promtool test."""
    gen = generator()
    test = open(os.path.join(PROM, "tests", "dcgm-compat.test.yml")).read()
    (tmp_path / "tests").mkdir()
    (tmp_path / "rules").mkdir()
    (tmp_path / "tests" / "t.yml").write_text(test)
    survivors = []
    for name, expr in gen.DCGM_SERIES:
        for broken in (f"({expr}) * 2", f'label_replace({expr}, "gpu", "", "gpu", ".*")'):
            series = tuple((n, broken if n == name else e) for n, e in gen.DCGM_SERIES)
            rules = [{"record": n, "expr": gen.dcgm_expr(e)} for n, e in series]
            (tmp_path / "rules" / "dcgm-compat.yml").write_text(gen.render_groups({"dcgm-compat": rules}))
            res = subprocess.run(["promtool", "test", "rules", "tests/t.yml"], capture_output=True, text=True,
                                 cwd=tmp_path)
            if res.returncode == 0:
                survivors.append(f"{name}: {broken}")
    # Each series that loses its pod labels fails too (every series the pod case names).
    for name in ("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE"):
        rules = [{"record": n, "expr": gen.dcgm_expr(e).replace("orchex_gpu_pod_info", 'orchex_gpu_pod_info{pod="-"}')
                  if n == name else gen.dcgm_expr(e)} for n, e in gen.DCGM_SERIES]
        (tmp_path / "rules" / "dcgm-compat.yml").write_text(gen.render_groups({"dcgm-compat": rules}))
        res = subprocess.run(["promtool", "test", "rules", "tests/t.yml"], capture_output=True, text=True, cwd=tmp_path)
        if res.returncode == 0:
            survivors.append(f"{name} without its pods")
    assert not survivors, survivors


def alert_cases():
    """alertname -> the expected alert lists of its promtool cases."""
    cases = {}
    for test in sorted(glob.glob(os.path.join(PROM, "tests", "*.test.yml"))):
        for group in yaml.safe_load(open(test))["tests"]:
            for c in group.get("alert_rule_test", []):
                cases.setdefault(c["alertname"], []).append(c.get("exp_alerts") or [])
    return cases


def runbook_sections():
    """Runbook heading anchor -> the section's text (GitHub's anchors: lower case)."""
    text = open(os.path.join(ROOT, "docs", "runbooks.md")).read()
    parts = re.split(r"^## (\w+)\n", text, flags=re.M)
    return {name.lower(): body for name, body in zip(parts[1::2], parts[2::2])}


def test_alert_conventions_cases_and_runbooks():
    cases, runbooks = alert_cases(), runbook_sections()
    alerts = set()
    for path in ORCHEX_RULES:
        for group in yaml.safe_load(open(path))["groups"]:
            for rule in group["rules"]:
                if "alert" not in rule:
                    level, metric, ops = rule["record"].split(":")
                    assert level and metric and ops
                    continue
                name = rule["alert"]
                alerts.add(name)
                assert name.startswith("Orchex"), name
                assert rule["labels"]["severity"] in ("critical", "warning", "info")
                notes = rule["annotations"]
                assert notes["summary"] and notes["description"], name
                url, anchor = notes["runbook_url"].split("#")
                assert url.endswith("/docs/runbooks.md") and anchor == name.lower(), notes["runbook_url"]
                section = runbooks.get(anchor, "")
                for part in ("**Means:**", "**Confirm:**", "**Act:**"):
                    assert part in section, f"runbook for {name} lacks {part}"
                got = cases.get(name, [])
                assert any(got) and [] in got, f"{name} needs a firing case and a silent case"
    assert set(cases) <= alerts, "a test case for an alert that does not exist"
    assert set(runbooks) == {a.lower() for a in alerts}, "a runbook without an alert, or the reverse"


def test_alertmanager_inhibits_only_alerts_that_exist():
    am = yaml.safe_load(open(os.path.join(PROM, "alertmanager.yml")))
    alerts = {r["alert"] for path in RULES for g in yaml.safe_load(open(path))["groups"] for r in g["rules"]
              if "alert" in r}
    for rule in am["inhibit_rules"]:
        for m in rule["source_matchers"] + rule["target_matchers"]:
            key, op, value = re.match(r'(\w+)(=~|!=|=)"(.*)"', m).groups()
            if key == "alertname" and op in ("=", "=~"):
                hits = {a for a in alerts if re.fullmatch(value, a)}
                assert hits, m
                if op == "=~":  # each alternative of a list names a real alert
                    for alt in re.findall(r"\(([^)]*)\)", value):
                        prefix = value[:value.index("(")]
                        assert all(prefix + x in alerts for x in alt.split("|")), m


def test_rules_use_only_series_orchex_exports():
    import glob

    docs = "".join(open(p).read() for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))
    exported = set(re.findall(r"`(orchex_\w+)`", docs))
    exported |= {n + s for n in list(exported) for s in ("_sum", "_count", "_bucket")}
    for path in RULES:
        for name in set(re.findall(r"(?<![:\w])(orchex_\w+)", open(path).read())):
            base = re.sub(r"_(sum|count|bucket)$", "", name)
            assert name in exported or base in exported, f"{os.path.basename(path)} uses unknown {name}"
