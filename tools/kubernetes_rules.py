"""Write deploy/kubernetes/base/prometheusrule.yaml from prometheus/rules/orchex-*.yml: the same groups, as a
Prometheus Operator PrometheusRule, so the rules have one source. `make kubernetes` writes it;
without --write it prints it (the test compares the two)."""

import os
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RULES = os.path.join(ROOT, "prometheus", "rules")
OUT = os.path.join(ROOT, "deploy", "kubernetes", "base", "prometheusrule.yaml")


def groups():
    out = []
    for name in sorted(os.listdir(RULES)):
        if name.startswith("orchex-") and name.endswith(".yml"):  # dcgm-compat.yml is opt-in
            with open(os.path.join(RULES, name)) as f:
                out += yaml.safe_load(f)["groups"]
    return out


def rendered():
    rule = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": {"name": "orchex", "labels": {"app.kubernetes.io/name": "orchex"}},
            "spec": {"groups": groups()}}
    return ("# Generated from prometheus/rules/ by tools/kubernetes_rules.py (make kubernetes): do not edit.\n"
            + yaml.safe_dump(rule, sort_keys=False, width=1000))


if __name__ == "__main__":
    if "--write" in sys.argv:
        with open(OUT, "w") as f:
            f.write(rendered())
    else:
        sys.stdout.write(rendered())
