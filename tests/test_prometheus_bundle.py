"""prometheus/: the config, recording and alert rules, and their promtool unit tests."""

import glob
import os
import re
import subprocess

import yaml

from conftest import ROOT

PROM = os.path.join(ROOT, "prometheus")
RULES = sorted(glob.glob(os.path.join(PROM, "rules", "*.yml")))


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
    bad.write_text(src.replace("value: 0.75", "value: 0.5").replace("../rules/", os.path.join(PROM, "rules") + "/"))
    res = promtool("test", "rules", str(bad))
    assert res.returncode == 1 and "FAILED" in res.stdout + res.stderr


def test_alert_conventions_and_every_alert_is_tested():
    tested = set(re.findall(r"alertname: (\w+)", open(os.path.join(PROM, "tests", "orchex-alerts.test.yml")).read()))
    for path in RULES:
        for group in yaml.safe_load(open(path))["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    assert rule["alert"].startswith("Orchex"), rule["alert"]
                    assert rule["labels"]["severity"] in ("critical", "warning", "info")
                    assert rule["annotations"]["summary"] and rule["annotations"]["description"]
                    assert rule["alert"] in tested, f"{rule['alert']} has no promtool test"
                else:
                    level, metric, ops = rule["record"].split(":")
                    assert level and metric and ops


def test_rules_use_only_series_orchex_exports():
    readme = open(os.path.join(ROOT, "README.md")).read()
    exported = set(re.findall(r"`(orchex_\w+)`", readme))
    exported |= {n + s for n in list(exported) for s in ("_sum", "_count", "_bucket")}
    for path in RULES:
        for name in set(re.findall(r"(?<![:\w])(orchex_\w+)", open(path).read())):
            base = re.sub(r"_(sum|count|bucket)$", "", name)
            assert name in exported or base in exported, f"{os.path.basename(path)} uses unknown {name}"
