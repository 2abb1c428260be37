"""End to end delivery: a fault injected into the fake NVML reaches a real Alertmanager through a real
Prometheus running the shipped alert rules, as exactly the alerts the shipped inhibition leaves, is
routed by severity to the receivers, and resolves when the fault clears.

Only the waiting is shortened: `for:` becomes 1s and `keep_firing_for:` goes (so a cleared fault
resolves within the test), and Alertmanager's group timers are 1s. Expressions, labels, routes and
inhibit rules are the shipped ones."""

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

import fake_nvml
from conftest import ROOT, Served, fake_env, load_script
from live import Alertmanager, Prometheus

GEN = load_script("prometheus/generate.py")


class Receiver:
    """A webhook endpoint that keeps every notification Alertmanager posts, by path."""

    def __init__(self):
        self.got = []
        got = self.got

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                got.append((self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def notified(self, path, status):
        """(alertname, gpu) pairs that `path` was notified of with this status."""
        return {(a["labels"]["alertname"], a["labels"].get("gpu")) for p, n in self.got if p == path
                for a in n["alerts"] if a["status"] == status}

    def stop(self):
        self.server.shutdown()


def shortened_rules(folder):
    rules = []
    for group in GEN.alerts().values():
        for a in group:
            r = GEN.rule(a)
            r.pop("keep_firing_for", None)
            if "for" in r:
                r["for"] = "1s"
            rules.append(r)
    path = os.path.join(folder, "alerts.yml")
    with open(path, "w") as f:
        f.write(GEN.render_groups({"orchex-alerts": rules}))
    return [os.path.join(ROOT, "prometheus", "rules", "orchex-recording.yml"), path]


def alertmanager_config(receiver_url):
    cfg = yaml.safe_load(open(os.path.join(ROOT, "prometheus", "alertmanager.yml")))
    cfg["route"].update(group_wait="1s", group_interval="1s")
    cfg["receivers"] = [{"name": r["name"], "webhook_configs": [{"url": f"{receiver_url}/{r['name']}"}]}
                        for r in cfg["receivers"]]
    return cfg


def healthy_gpus():
    return [fake_nvml.gpu(0), fake_nvml.gpu(1)]


@pytest.fixture
def stack(tmp_path, fake_nvml_dir):
    scenario = str(tmp_path / "scenario.txt")
    fake_nvml.write(scenario, healthy_gpus())
    receiver = Receiver()
    am = Alertmanager(str(tmp_path), alertmanager_config(receiver.url))
    nvml = Served(["--gpu-backend=nvml"], fake_env(fake_nvml_dir, scenario))
    prom = Prometheus(str(tmp_path), {"orchex": [f"127.0.0.1:{nvml.port}"]}, rule_files=shortened_rules(str(tmp_path)),
                      alertmanager=f"127.0.0.1:{am.port}")
    yield scenario, receiver, am, prom
    prom.stop()
    nvml.stop()
    am.stop()
    receiver.stop()


def by_state(alerts):
    out = {}
    for a in alerts:
        if a["labels"]["alertname"].startswith("OrchexGpu"):
            out.setdefault(a["status"]["state"], set()).add((a["labels"]["alertname"], a["labels"].get("gpu")))
    return out


def wait(check, what, deadline=60.0):
    end = time.time() + deadline
    last = None
    while time.time() < end:
        last = check()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"{what}: last saw {last!r}")


def test_an_nvml_fault_reaches_alertmanager_inhibited_routed_and_resolved(stack):
    scenario, receiver, am, prom = stack
    prom.wait_for('orchex_gpu_health_state{state="HEALTHY"} == 1', lambda r: len(r) == 2)
    assert by_state(am.alerts()) == {}

    # GPU 0: uncorrected ECC errors and a failed row remap (FAULT); GPU 1: XID 94, a warning
    fake_nvml.write(scenario, [fake_nvml.gpu(0, ecc_volatile_uncorrected=2, remap_failure=1), fake_nvml.gpu(1)],
                    events=[(1, 94)])
    expected = {"active": {("OrchexGpuFault", "0"), ("OrchexGpuXid", "1")},
                "suppressed": {("OrchexGpuUncorrectedEccErrors", "0"), ("OrchexGpuRowRemapFailure", "0")}}
    states = wait(lambda: (s := by_state(am.alerts())) == expected and s, "inhibited alert set")
    assert states == expected
    for a in am.alerts():
        if a["status"]["state"] == "suppressed":
            assert a["status"]["inhibitedBy"], a  # held back by the FAULT alert, not silenced
    # routed by severity: the FAULT pages, the warning goes to the default receiver, the symptoms nowhere
    wait(lambda: ("OrchexGpuFault", "0") in receiver.notified("/page", "firing"), "page notification")
    wait(lambda: ("OrchexGpuXid", "1") in receiver.notified("/default", "firing"), "default notification")
    notified = receiver.notified("/page", "firing") | receiver.notified("/default", "firing")
    assert not notified & expected["suppressed"]

    # the GPU is reset: the counts clear, and the fault resolves in Alertmanager and at the receiver
    fake_nvml.write(scenario, healthy_gpus(), events=[(1, 94)])
    wait(lambda: by_state(am.alerts()) == {"active": {("OrchexGpuXid", "1")}}, "fault resolved")
    wait(lambda: ("OrchexGpuFault", "0") in receiver.notified("/page", "resolved"), "resolved notification")
