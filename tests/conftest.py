import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LEGACY = os.path.join(HERE, "fixtures", "legacy")
sys.path.insert(0, HERE)


def run_cli(*args, env=None, input=None, timeout=60):
    """`python -m exporter ARGS` in a subprocess: exit status, stdout, stderr as the user sees them."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "exporter", *args], capture_output=True, text=True,
                          env=full_env, input=input, timeout=timeout, cwd=ROOT)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="session")
def default_registry():
    from exporter.routing import registry

    return registry.load()


@pytest.fixture(scope="session")
def fake_nvml_dir():
    """Build the fake libnvidia-ml.so.1 and load it into this process before pynvml looks for the
    real one: glibc then resolves pynvml's CDLL("libnvidia-ml.so.1") to it by its SONAME."""
    import ctypes

    import fake_nvml

    folder = fake_nvml.build()
    ctypes.CDLL(fake_nvml.LIB, mode=ctypes.RTLD_GLOBAL)
    return folder


@pytest.fixture
def scenario(fake_nvml_dir, tmp_path, monkeypatch):
    """Write a scenario for the fake NVML: scenario(gpus, events=(), **top) -> its path."""
    import fake_nvml

    path = str(tmp_path / "scenario.txt")
    monkeypatch.setenv("FAKE_NVML_SCENARIO", path)

    def write(gpus, events=(), **top):
        fake_nvml.write(path, gpus, events, **top)
        return path

    return write


def fake_env(fake_nvml_dir, scenario_path):
    """Environment for a subprocess that must load the fake library."""
    return {"LD_LIBRARY_PATH": fake_nvml_dir, "FAKE_NVML_SCENARIO": scenario_path}
