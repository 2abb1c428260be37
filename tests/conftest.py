import functools
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LEGACY = os.path.join(HERE, "fixtures", "legacy")
sys.path.insert(0, HERE)


@functools.cache
def load_script(relpath):
    """A repository script (grafana/generate.py, prometheus/generate.py) as a module, loaded once."""
    import importlib.util

    name = relpath.replace("/", "_").removesuffix(".py")
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, relpath))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


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


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """An `orchex serve` subprocess on a free loopback port, stopped by PID."""

    def __init__(self, args, env=None, scheme="http", wait=True, **popen):
        """`popen`: more arguments for subprocess.Popen (user, preexec_fn)."""
        import time

        self.port = free_port()
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "exporter", "serve", f"--web.listen-address=127.0.0.1:{self.port}", *args],
            cwd=ROOT, env=dict(os.environ, **(env or {})), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            **popen)
        if wait:
            deadline = time.time() + 20
            while time.time() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"orchex serve exited {self.proc.returncode}: {self.proc.stderr.read()}")
                if "first collection done" in self._peek_log():
                    return
                time.sleep(0.05)
            raise AssertionError("orchex serve did not become ready")

    def _peek_log(self):
        import urllib.request

        try:
            ctx = __import__("ssl")._create_unverified_context()
            with urllib.request.urlopen(self.url + "/-/ready", timeout=1, context=ctx) as r:
                return "first collection done" if r.status == 200 else ""
        except Exception as e:  # noqa: BLE001 - not up yet, 503, or auth required
            return "first collection done" if getattr(e, "code", None) == 401 else ""

    def get(self, path="/metrics", headers=None, **kw):
        import urllib.error
        import urllib.request

        req = urllib.request.Request(self.url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10, **kw) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def stop(self, sig=None):
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(sig or signal.SIGTERM)
        try:
            out, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        return self.proc.returncode, err


@pytest.fixture
def serve():
    started = []

    def start(*args, env=None, **kw):
        s = Served(list(args), env, **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()
