"""The kubernetes collector (issue 26) against a fake kubelet (the real pod-resources proto over grpcio
on a unix socket) and the fake NVML: every device id form, time-slicing, a kubelet that hangs, fails,
talks garbage, goes away and comes back, and 250 pods within the series budget."""

import os
import socket
import threading
import time

import pytest

import fake_nvml
from conftest import fake_env
from exporter.gpu.snapshot import GpuSnapshot, MigInstance
from exporter.kubernetes.attribution import Device, devices, resolve
from fake_kubelet import Kubelet, pod
from fake_nvml import gpu, seven_1g_10gb
from test_serve import series

pytestmark = pytest.mark.timeout(120)
U0, U1, U2, U3 = (gpu(i)["uuid"] for i in range(4))
MIG_1_SLOT_0 = seven_1g_10gb(1)["mig.0.uuid"]  # GPU instance 7 of GPU 1


def pod_info(v):
    """{(namespace, pod, container, gpu, gpu_instance)} of orchex_gpu_pod_info."""
    return {(lab["namespace"], lab["pod"], lab["container"], lab["gpu"], lab["gpu_instance"])
            for lab in (dict(k[1]) for k in v if k[0] == "orchex_gpu_pod_info")}


def value(v, name):
    return next((n for k, n in v.items() if k[0] == name), None)


def by_resource(v, name):
    return {dict(k[1])["resource"]: n for k, n in v.items() if k[0] == name}


def wait_for(s, check, deadline=10.0):
    end = time.time() + deadline
    while True:
        v = series(s.get()[2])
        if check(v) or time.time() > end:
            return v
        time.sleep(0.2)


@pytest.fixture
def node(fake_nvml_dir, tmp_path):
    """GPU 0 and 2 whole, GPUs 1 and 3 in seven MIG instances each; a socket path for the kubelet."""
    path = str(tmp_path / "scenario.txt")
    fake_nvml.write(path, [gpu(0), seven_1g_10gb(1), gpu(2), seven_1g_10gb(3)])
    return str(tmp_path / "kubelet.sock"), fake_env(fake_nvml_dir, path)


def exporter(serve, sock, env, *flags):
    return serve("--gpu-backend=nvml", "--collector.kubernetes", f"--kubernetes.pod-resources-socket={sock}",
                 "--kubernetes.refresh-interval=1", *flags, env=env)


EVERY_FORM = [
    pod("llm", "vllm-a", {"server": [("nvidia.com/gpu", [f"{U0}::0"])]}),  # time-slicing replicas of GPU 0
    pod("llm", "vllm-b", {"server": [("nvidia.com/gpu", [f"{U0}::1"])]}),
    pod("team-b", "tgi", {"main": [("nvidia.com/mig-1g.10gb", [MIG_1_SLOT_0])]}),
    pod("team-b", "old", {"main": [("nvidia.com/mig-1g.10gb", [f"MIG-{U1}/8/0"])]}),  # drivers before R470
    pod("gke", "g1", {"c": [("nvidia.com/gpu", ["nvidia2"])]}),
    pod("gke", "g2", {"c": [("nvidia.com/gpu", ["nvidia3/gi9"])], "sidecar": []}),
    pod("other", "fpga", {"c": [("example.com/fpga", ["fpga0"])]}),  # not a GPU resource
    pod("x", "ghost", {"c": [("nvidia.com/gpu", ["GPU-ffffffff-0000-0000-0000-000000000000"])]}),
]


def test_every_device_id_form_and_time_slicing(serve, node):
    sock, env = node
    kubelet = Kubelet(sock, EVERY_FORM).start()
    try:
        s = exporter(serve, sock, env)
        v = wait_for(s, lambda v: value(v, "orchex_kubernetes_up") == 1 and pod_info(v))
        assert pod_info(v) == {("llm", "vllm-a", "server", "0", ""), ("llm", "vllm-b", "server", "0", ""),
                               ("team-b", "tgi", "main", "1", "7"), ("team-b", "old", "main", "1", "8"),
                               ("gke", "g1", "c", "2", ""), ("gke", "g2", "c", "3", "9")}
        assert value(v, "orchex_kubernetes_unmatched_devices") == 1  # the ghost's GPU is not on this node
        assert value(v, "orchex_kubernetes_series_dropped") == 0
        # As the kubelet counts them (the ghost's too); a kubelet that does not say what it can
        # allocate (UNIMPLEMENTED, before 1.23) costs only that family.
        assert by_resource(v, "orchex_kubernetes_allocated_devices") == {"nvidia.com/gpu": 5,
                                                                         "nvidia.com/mig-1g.10gb": 2}
        assert not by_resource(v, "orchex_kubernetes_allocatable_devices")
        assert v[("orchex_scrape_collector_success", (("collector", "kubernetes"),))] == 1
        _, err = s.stop()
        assert "Traceback" not in err
        assert kubelet.calls <= 6  # one List a refresh, not one a scrape
    finally:
        kubelet.stop()


def test_what_the_kubelet_can_still_allocate(serve, node):
    """Four time-slicing replicas of GPU 0 (two taken), GPU 2 by GKE's name, seven MIG instances (one
    taken): each GPU resource's allocatable and allocated device ids; other resources are not GPUs."""
    sock, env = node
    instances = [seven_1g_10gb(1)[f"mig.{k}.uuid"] for k in range(7)]
    kubelet = Kubelet(sock, EVERY_FORM[:3], allocatable=[
        ("nvidia.com/gpu", [f"{U0}::{n}" for n in range(4)] + ["nvidia2"]),
        ("nvidia.com/mig-1g.10gb", instances), ("example.com/fpga", ["fpga0", "fpga1"])]).start()
    try:
        s = exporter(serve, sock, env)
        v = wait_for(s, lambda v: by_resource(v, "orchex_kubernetes_allocatable_devices"))
        assert by_resource(v, "orchex_kubernetes_allocatable_devices") == {"nvidia.com/gpu": 5,
                                                                           "nvidia.com/mig-1g.10gb": 7}
        assert by_resource(v, "orchex_kubernetes_allocated_devices") == {"nvidia.com/gpu": 2,
                                                                         "nvidia.com/mig-1g.10gb": 1}
        s.stop()
    finally:
        kubelet.stop()


def test_a_hanging_kubelet_never_slows_a_scrape(serve, node):
    sock, env = node
    kubelet = Kubelet(sock, EVERY_FORM, delay=5.0).start()
    try:
        s = exporter(serve, sock, env)
        took = []
        for _ in range(20):
            started = time.perf_counter()
            v = series(s.get()[2])
            took.append(time.perf_counter() - started)
            time.sleep(0.1)
        assert max(took) < 1.0, took  # the kubelet takes 5 s to answer; a scrape does not wait for it
        v = wait_for(s, lambda v: value(v, "orchex_kubernetes_up") == 0 and
                     ("orchex_scrape_collector_success", (("collector", "kubernetes"),)) in v)
        assert value(v, "orchex_kubernetes_up") == 0 and not pod_info(v)
        assert v[("orchex_scrape_collector_success", (("collector", "kubernetes"),))] == 0
        started = time.monotonic()
        code, err = s.stop()
        assert code == 0 and time.monotonic() - started < 3  # a List in flight does not hold up shutdown
        assert "DEADLINE_EXCEEDED" in err and "Traceback" not in err
    finally:
        kubelet.stop()


def test_a_kubelet_restart_is_followed(serve, node):
    sock, env = node
    kubelet = Kubelet(sock, EVERY_FORM[:1]).start()
    s = exporter(serve, sock, env)
    v = wait_for(s, lambda v: pod_info(v))
    assert pod_info(v) == {("llm", "vllm-a", "server", "0", "")}
    kubelet.stop()  # the socket goes with it
    v = wait_for(s, lambda v: value(v, "orchex_kubernetes_up") == 0, deadline=5)
    assert value(v, "orchex_kubernetes_up") == 0
    v = wait_for(s, lambda v: not pod_info(v), deadline=6)
    assert not pod_info(v)  # older than three refreshes: not served as current
    kubelet = Kubelet(sock, EVERY_FORM[1:2]).start()  # back, with other pods
    try:
        started = time.time()
        v = wait_for(s, lambda v: value(v, "orchex_kubernetes_up") == 1 and pod_info(v), deadline=5)
        assert pod_info(v) == {("llm", "vllm-b", "server", "0", "")} and time.time() - started < 2.5
        _, err = s.stop()
        assert err.count("collector kubernetes failed") == 1 and "collector kubernetes recovered" in err
    finally:
        kubelet.stop()


def test_a_kubelet_that_answers_unimplemented_or_garbage(serve, node, tmp_path):
    sock, env = node
    kubelet = Kubelet(sock, unimplemented=True).start()
    try:
        s = exporter(serve, sock, env)
        v = wait_for(s, lambda v: value(v, "orchex_scrape_collector_success") is not None and
                     v.get(("orchex_scrape_collector_success", (("collector", "kubernetes"),))) == 0)
        assert value(v, "orchex_kubernetes_up") == 0
        _, err = s.stop()
        assert "UNIMPLEMENTED" in err and "Traceback" not in err
    finally:
        kubelet.stop()
    garbage = str(tmp_path / "garbage.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(garbage)
    listener.listen()
    stop = threading.Event()

    def talk_garbage():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conn.sendall(os.urandom(512))
            conn.close()

    t = threading.Thread(target=talk_garbage, daemon=True)
    t.start()
    try:
        s = exporter(serve, garbage, env)
        v = wait_for(s, lambda v: v.get(("orchex_scrape_collector_success", (("collector", "kubernetes"),))) == 0)
        assert value(v, "orchex_kubernetes_up") == 0 and ("orchex_gpu_up", (("gpu", "0"), ("uuid", U0))) in v
        _, err = s.stop()
        assert "Traceback" not in err
    finally:
        stop.set()
        t.join()
        listener.close()


def test_250_pods_within_the_series_budget(serve, node):
    sock, env = node
    instances = [seven_1g_10gb(g)[f"mig.{k}.uuid"] for g in (1, 3) for k in range(7)]
    pods = [pod(f"ns{i % 10}", f"pod-{i}", {"c": [("nvidia.com/gpu", [f"{U0}::{i}"])] if i % 2 else
                                            [("nvidia.com/mig-1g.10gb", [instances[i % 14]])]}) for i in range(250)]
    kubelet = Kubelet(sock, pods).start()
    try:
        s = exporter(serve, sock, env)
        v = wait_for(s, lambda v: len(pod_info(v)) == 250)
        assert len(pod_info(v)) == 250
        s.stop()
        s = exporter(serve, sock, env, "--kubernetes.max-series=100")
        v = wait_for(s, lambda v: pod_info(v))
        assert len(pod_info(v)) == 100 and value(v, "orchex_kubernetes_series_dropped") == 150
    finally:
        kubelet.stop()


def test_the_collector_is_off_by_default(serve, node):
    _, env = node
    v = series(serve("--gpu-backend=nvml", env=env).get()[2])
    assert value(v, "orchex_kubernetes_up") is None and not pod_info(v)


@pytest.mark.parametrize("device_id, device", [
    (f"{U0}", Device(0, U0)), (f"{U0}::3", Device(0, U0)), ("nvidia2", Device(2, U2)),
    ("nvidia3/gi9", Device(3, U3, 9)), ("MIG-abc", Device(1, U1, 7)), ("MIG-abc::2", Device(1, U1, 7)),
    (f"MIG-{U1}/8/0", Device(1, U1, 8)), ("nvidia1/gi7", Device(1, U1, 7)), ("nvidia9", None), ("MIG-none", None),
    ("nvidia3/gi10", None), (f"MIG-{U1}/9/0", None), ("", None),
])
def test_device_ids_resolve(device_id, device):
    snaps = [GpuSnapshot(index=0, uuid=U0, minor_number=0),
             GpuSnapshot(index=1, uuid=U1, minor_number=1,
                         mig_instances=[MigInstance("MIG-abc", 7), MigInstance("MIG-def", 8)]),
             GpuSnapshot(index=2, uuid=U2, minor_number=2),
             GpuSnapshot(index=3, uuid=U3, minor_number=3, mig_instances=[MigInstance("MIG-ghi", 9)])]
    assert resolve(device_id, devices(snaps)) == device
