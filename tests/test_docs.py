import os
import subprocess
import sys

from conftest import ROOT


def test_the_metric_reference_is_generated_from_the_code():
    """Like kubernetes-mixin's check that generated files are committed: `make docs` regenerates."""
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "metrics_reference.py")], capture_output=True,
                         text=True, check=True).stdout
    page = open(os.path.join(ROOT, "docs", "metrics.md")).read()
    assert out in page, "docs/metrics.md is stale: run `make docs`"
    for line in out.splitlines()[2:]:
        assert line.startswith("| `orchex_") or line.startswith("| `process_")


def test_example_config_and_deploy_files_load():
    import yaml

    from exporter import serveconfig

    settings = serveconfig.load({}, os.path.join(ROOT, "deploy", "orchex.yml"))
    assert settings["selection-log"] == ["/var/log/router/selection_metrics*.csv"]
    kinds = [d["kind"] for d in yaml.safe_load_all(open(os.path.join(ROOT, "deploy", "kubernetes", "base",
                                                                      "exporter.yaml")))]
    assert kinds == ["DaemonSet", "Service", "ServiceMonitor"]
    compose = yaml.safe_load(open(os.path.join(ROOT, "deploy", "compose.yaml")))
    assert {"orchex", "demo", "prometheus", "pushgateway", "grafana"} <= set(compose["services"])
    unit = open(os.path.join(ROOT, "deploy", "systemd", "orchex.service")).read()
    assert "ExecStart=/usr/local/bin/orchex serve --config=/etc/orchex/orchex.yml" in unit
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit


def test_systemd_unit_is_hardened_and_a_bad_config_does_not_loop():
    import re
    import shutil

    unit = os.path.join(ROOT, "deploy", "systemd", "orchex.service")
    text = open(unit).read()
    assert "RestartPreventExitStatus=2" in text and "ExecReload=/bin/kill -HUP $MAINPID" in text
    if shutil.which("systemd-analyze") is None:
        import pytest

        pytest.skip("systemd-analyze is not installed on this machine")  # the Debian image CI uses has it
    out = subprocess.run(["systemd-analyze", "security", "--offline=true", unit], capture_output=True,
                         text=True).stdout
    score = float(re.search(r"Overall exposure level for orchex.service: ([\d.]+)", out).group(1))
    assert score <= 2.0, out[-2000:]


def blocks(page, language):
    """The fenced `language` blocks of a page of the README or docs/, in order."""
    import re

    text = open(os.path.join(ROOT, page)).read()
    return re.findall(rf"^```{language}\n(.*?)^```$", text, re.S | re.M)


def test_every_yaml_and_promql_example_of_the_docs_is_valid(tmp_path):
    """Beside the `$ orchex` lines (test_readme_examples.py) and the kustomization (test_kubernetes.py):
    the Prometheus config of the README passes promtool, the config file of docs/configuration.md and
    the registry of docs/formats.md load, and the PromQL of docs/metrics.md parses."""
    import shutil

    from exporter import serveconfig
    from exporter.routing import registry

    (prom,) = blocks("README.md", "yaml")
    config = tmp_path / "prometheus.yml"
    config.write_text(prom.replace("/path/to/orchex", ROOT))
    if shutil.which("promtool") is None:
        raise AssertionError("promtool is not installed: `make system-deps` installs it")
    done = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    (settings,) = blocks("docs/configuration.md", "yaml")
    (tmp_path / "orchex.yml").write_text(settings)
    assert serveconfig.load({}, str(tmp_path / "orchex.yml"))["collector.process"] is False
    (models,) = blocks("docs/formats.md", "yaml")
    (tmp_path / "registry.yaml").write_text(models)
    assert registry.load(str(tmp_path / "registry.yaml")).models
    for n, expr in enumerate(blocks("docs/metrics.md", "promql")):
        rules = tmp_path / f"q{n}.yml"
        rules.write_text("groups:\n  - name: example\n    rules:\n      - record: example:query:docs\n"
                         "        expr: |-\n" + "".join(f"          {line}\n" for line in expr.splitlines()))
        done = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
