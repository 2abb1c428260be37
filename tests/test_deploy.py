"""The deploy files checked as a reviewer would: the image (hadolint-like rules; no Docker engine runs
here, so it is never built), the compose stack, Alertmanager's configuration (amtool)."""

import os
import re
import shutil
import subprocess

import pytest
import yaml

from conftest import ROOT

DEPLOY = os.path.join(ROOT, "deploy")


def dockerfile_problems(text):
    """What a reviewer (and hadolint's rules DL3006/DL3007, DL3013, DL3042, DL4006-like) would flag."""
    out = []
    lines = [line.strip() for line in re.sub(r"\\\n", " ", text).splitlines() if line.strip()
             and not line.strip().startswith("#")]
    froms = [line for line in lines if line.upper().startswith("FROM ")]
    if not froms or not all(re.search(r"@sha256:[0-9a-f]{64}\b", f) for f in froms):
        out.append("base image not pinned by digest")
    if any(":latest" in f for f in froms):
        out.append("latest tag")
    users = [line.split()[1] for line in lines if line.upper().startswith("USER ")]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        out.append("runs as root")
    if not any(line.upper().startswith("HEALTHCHECK ") for line in lines):
        out.append("no HEALTHCHECK")
    for line in lines:
        if "pip install" in line and "--no-cache-dir" not in line:
            out.append("pip install without --no-cache-dir")
        if re.search(r"pip install .*-r ", line) and "--require-hashes" not in line:
            out.append("requirements installed without --require-hashes")
        if re.search(r"pip install (?!.*(-r |--no-deps))", line):
            out.append("pip install that resolves dependencies itself")
        if line.upper().startswith("ADD ") and "://" in line:
            out.append("ADD from a URL")
        if re.match(r"COPY \. ", line):
            out.append("COPY of the whole context")
    return out


def test_the_image_follows_the_rules_and_the_rules_can_fail():
    assert dockerfile_problems(open(os.path.join(DEPLOY, "Dockerfile")).read()) == []
    bad = "FROM python:latest\nRUN pip install -r requirements.txt\nCOPY . /src\n"
    assert set(dockerfile_problems(bad)) >= {"base image not pinned by digest", "latest tag", "runs as root",
                                             "no HEALTHCHECK", "pip install without --no-cache-dir",
                                             "requirements installed without --require-hashes",
                                             "COPY of the whole context"}


def test_the_lock_pins_every_runtime_dependency_with_hashes():
    import tomllib

    deps = tomllib.load(open(os.path.join(ROOT, "pyproject.toml"), "rb"))["project"]["dependencies"]
    lock = open(os.path.join(DEPLOY, "requirements.lock")).read()
    pinned = dict(re.findall(r"^([a-z0-9_.-]+)==([\w.]+) \\$", lock, re.M))
    for dep in deps:
        name = re.match(r"[A-Za-z0-9_.-]+", dep).group(0).lower()
        assert name in pinned, f"{name} is not in deploy/requirements.lock (make lock)"
    assert lock.count("--hash=sha256:") >= len(pinned)


def test_the_build_context_carries_only_what_the_image_needs():
    ignore = open(os.path.join(ROOT, ".dockerignore")).read().split()
    assert ignore[:1] == ["*"] or "*" in ignore  # everything out, then what the Dockerfile copies back
    # From the context, not from an earlier stage (COPY --from=build).
    copied = re.findall(r"^COPY (?!--from=)(.+) \S+$", open(os.path.join(DEPLOY, "Dockerfile")).read(), re.M)
    for sources in copied:
        for src in sources.split():
            assert f"!{src}" in ignore, src


def test_compose_is_safe_to_start():
    compose = yaml.safe_load(open(os.path.join(DEPLOY, "compose.yaml")))
    services = compose["services"]
    assert {"orchex", "demo", "prometheus", "alertmanager", "pushgateway", "grafana"} <= set(services)
    for name, svc in services.items():
        assert svc.get("restart") == "unless-stopped", name
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond localhost"
        if name != "demo" and "image" in svc:
            assert "healthcheck" in svc, name
        for dep, cond in svc.get("depends_on", {}).items():
            assert dep in services and cond["condition"] in ("service_healthy", "service_started")
    assert "--web.enable-lifecycle" not in " ".join(services["prometheus"]["command"])
    assert services["grafana"]["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert any(a.startswith("--persistence.file=/data/") for a in services["pushgateway"]["command"])
    # The versions the tests run (Debian's packages): what compose runs is what was tested.
    versions = {"prometheus": "v2.42.0", "pushgateway": "v1.5.1", "alertmanager": "v0.25.0"}
    for name, version in versions.items():
        assert services[name]["image"].endswith(":" + version), services[name]["image"]


def compose_client():
    """`docker compose` where the plugin exists, else Debian's docker-compose (make system-deps)."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    assert shutil.which("docker-compose"), "docker-compose is installed by make system-deps"
    return ["docker-compose"]


def test_compose_config_passes_the_compose_client():
    argv = [*compose_client(), "-f", os.path.join(DEPLOY, "compose.yaml"), "config", "-q"]
    res = subprocess.run(argv, capture_output=True, text=True, env=dict(os.environ, GRAFANA_ADMIN_PASSWORD="x"))
    assert res.returncode == 0, res.stderr
    # Without the Grafana password it refuses to start at all, rather than run Grafana with a default.
    env = {k: v for k, v in os.environ.items() if k != "GRAFANA_ADMIN_PASSWORD"}
    res = subprocess.run(argv, capture_output=True, text=True, env=env)
    assert res.returncode != 0 and "GRAFANA_ADMIN_PASSWORD" in res.stderr


@pytest.mark.skipif(shutil.which("amtool") is None, reason="amtool is installed by make system-deps")
def test_alertmanager_config_checks():
    res = subprocess.run(["amtool", "check-config", os.path.join(ROOT, "prometheus", "alertmanager.yml")],
                         capture_output=True, text=True)
    assert res.returncode == 0 and "SUCCESS" in res.stdout, res.stdout + res.stderr


def test_the_wheel_carries_the_kernel_into_a_fresh_environment(tmp_path):
    """What the image installs: `make wheel` (the Dockerfile's build stage runs the same build), put
    into a new virtual environment, reports the C kernel active there."""
    import glob
    import sys

    built = subprocess.run(["make", "wheel"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout + built.stderr
    wheel = glob.glob(os.path.join(ROOT, "dist", "orchex-*.whl"))
    assert len(wheel) == 1
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", wheel[0]],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-2000:]
    version = subprocess.run([str(venv / "bin" / "orchex"), "--version"], capture_output=True, text=True, cwd=tmp_path)
    assert version.stdout.strip() == "orchex 0.1.0 (C kernel: active)", version.stdout + version.stderr


def test_the_image_builds_the_wheel_in_a_stage_and_checks_the_kernel():
    text = open(os.path.join(DEPLOY, "Dockerfile")).read()
    assert re.search(r"(?m)^FROM \S+ AS build$", text) and "COPY --from=build /wheels" in text
    assert "pip wheel" in text and 'grep -q "C kernel: active"' in text
