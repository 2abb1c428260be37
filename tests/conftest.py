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
