"""The promtool alert tests must be able to fail: every alert is rebuilt broken from its source
(prometheus/generate.py) and `promtool test rules` must fail on each mutant. The mutants: the alert
always fires; its `for:` is removed; its threshold moves down and up by half (by 1 from 0); the
critical and warning XID lists are swapped."""

import glob
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor

import yaml

from conftest import ROOT, load_script
from exporter.policy import Policy

PROM = os.path.join(ROOT, "prometheus")
TESTS = sorted(glob.glob(os.path.join(PROM, "tests", "*.test.yml")))


GEN = load_script("prometheus/generate.py")


def moved(t):
    step = abs(t) / 2 if t else 1
    return t - step, t + step


def mutants(alert):
    """(what was broken, the broken rule) pairs for one alert."""
    yield "always fires", {**GEN.rule(alert), "expr": "vector(1)"}
    if alert.for_:
        yield "no for:", GEN.rule(alert, drop_for=True)
    if alert.threshold is not None:
        for t in moved(alert.threshold):
            yield f"threshold {GEN.number(alert.threshold)} -> {GEN.number(t)}", GEN.rule(alert, threshold=t)


def swapped_xid_mutants():
    class Swapped(Policy):
        __slots__ = ()
        critical_xids = Policy.warning_xids
        warning_xids = Policy.critical_xids

    for group in GEN.alerts(Swapped()).values():
        for a in group:
            if "xid_last_timestamp" in a.expr("0"):
                yield a.name, "XID lists swapped", GEN.rule(a)


def all_mutants():
    out = [(a.name, what, r) for group in GEN.alerts().values() for a in group for what, r in mutants(a)]
    return out + list(swapped_xid_mutants())


def cases_for(name, folder):
    """The test files cut down to the cases about one alert, with absolute rule paths."""
    paths = []
    for src in TESTS:
        doc = yaml.safe_load(open(src))
        groups = []
        for g in doc["tests"]:
            cases = [c for c in g.get("alert_rule_test", []) if c["alertname"] == name]
            if cases:
                groups.append({**{k: v for k, v in g.items() if k != "promql_expr_test"}, "alert_rule_test": cases})
        if groups:
            path = os.path.join(folder, f"{name}.{os.path.basename(src)}")
            rules = [os.path.join(folder, "recording.yml"), os.path.join(folder, "alert.yml")]
            doc.update(tests=groups, rule_files=rules)
            with open(path, "w") as f:
                yaml.safe_dump(doc, f, sort_keys=False)
            paths.append(path)
    return paths


def run(rule, name, folder):
    """promtool's verdict on the tests of `name` against one alert rule: (returncode, output)."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "recording.yml"), "w") as f:
        f.write(open(os.path.join(PROM, "rules", "orchex-recording.yml")).read())
    with open(os.path.join(folder, "alert.yml"), "w") as f:
        f.write(GEN.render_groups({"mutant": [rule]}))
    paths = cases_for(name, folder)
    assert paths, f"{name} has no promtool test"
    res = subprocess.run(["promtool", "test", "rules", *paths], capture_output=True, text=True)
    return res.returncode, res.stdout + res.stderr


def test_every_mutant_of_every_alert_fails_the_promtool_tests(tmp_path):
    originals = {a.name: GEN.rule(a) for group in GEN.alerts().values() for a in group}
    cases = all_mutants()
    with ThreadPoolExecutor(4) as pool:
        # The cut-down tests pass on the real rule, so a failure below is the mutant's doing.
        base = dict(zip(originals, pool.map(lambda kv: run(kv[1], kv[0], str(tmp_path / f"orig-{kv[0]}")),
                                            originals.items())))
        verdicts = list(pool.map(lambda i: run(cases[i][2], cases[i][0], str(tmp_path / f"m{i}")), range(len(cases))))
    assert {n: out for n, (rc, out) in base.items() if rc != 0} == {}
    survivors = [(name, what) for (name, what, _), (rc, _) in zip(cases, verdicts) if rc == 0]
    kinds = {what.split(" ")[0] for _, what, _ in cases}
    print(f"\n{len(cases)} mutants of {len(originals)} alerts ({', '.join(sorted(kinds))}): "
          f"{len(cases) - len(survivors)} killed")
    assert survivors == []
    assert len(cases) >= 3 * len(originals)  # every alert has its mutants, not just a few


def test_a_mutant_the_tests_cannot_see_survives(tmp_path):
    """The check above is not blind: a threshold moved by a hair, which no case looks at, passes
    promtool, and so would be reported as a survivor."""
    alert = next(a for g in GEN.alerts().values() for a in g if a.name == "OrchexGpuMemoryPressure")
    rc, out = run(GEN.rule(alert, threshold=alert.threshold + 0.001), alert.name, str(tmp_path))
    assert rc == 0, out
