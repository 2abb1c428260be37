"""Per-pod GPU memory (issue 26): each process's cgroup names its container, the API server's list of
this node's pods names the container, and pods sharing a GPU by time-slicing each get their own memory.
The exporter runs on the fake NVML, a fake kubelet, a fake API server (HTTPS, bearer token) and a
procfs folder holding the host's processes as the kernel writes them."""

import json
import os
import subprocess
import sys
import time

import pytest
from fake_apiserver import ApiServer, pod
from test_pod_attribution import value, wait_for

import fake_nvml
from conftest import ROOT, fake_env
from exporter.exposition import render
from exporter.gpu.snapshot import GpuProcess, GpuSnapshot
from exporter.kubernetes import apiserver
from exporter.kubernetes.apiserver import ApiServer as Where
from exporter.kubernetes.apiserver import NodePods, in_cluster, index
from exporter.kubernetes.attribution import Owner, container_id, pod_memory_families
from exporter.procfs import HOST_PID_NAMESPACE
from fake_kubelet import Kubelet, sharing
from fake_nvml import GIB, gpu, running, seven_1g_10gb
from test_serve import make_cert, series

pytestmark = pytest.mark.timeout(120)
U0 = gpu(0)["uuid"]
MIG_1 = seven_1g_10gb(1)["mig.0.uuid"]  # GPU instance 7 of GPU 1
A, B, T, LATE, GONE = ("a" * 63 + "1", "b" * 63 + "2", "c" * 63 + "3", "d" * 63 + "4", "e" * 64)  # container ids
# /proc/<pid>/cgroup as the kernel writes it, under each cgroup driver and runtime.
CGROUPS = {
    4242: f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f2c9a4e_1b2c_4d3e_8f9a_123456789abc"
          f".slice/cri-containerd-{A}.scope\n",  # cgroup v2, systemd driver, containerd
    4343: "12:pids:/kubepods/besteffort/pod5d1e7c3a-2b4f-4e6d-9a8b-0c1d2e3f4a5b/" + B + "\n"
          "11:memory:/kubepods/besteffort/pod5d1e7c3a-2b4f-4e6d-9a8b-0c1d2e3f4a5b/" + B + "\n"
          "0::/\n",  # cgroup v1, cgroupfs driver
    5151: f"0::/kubepods.slice/kubepods-pod7e8f9a0b_1c2d_3e4f_5a6b_7c8d9e0f1a2b.slice/crio-{T}.scope\n",  # CRI-O
    6161: f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod9f8e7d6c_5b4a_3928_1706_f5e4d3c2b1a0"
          f".slice/cri-containerd-{LATE}.scope\n",
    7171: "0::/system.slice/ollama.service\n",  # a host process, in no pod
    8181: f"0::/kubepods.slice/kubepods-pod1a2b3c4d_5e6f_7a8b_9c0d_1e2f3a4b5c6d.slice/cri-containerd-{GONE}.scope\n",
}
PODS = [pod("llm", "vllm-a", {"server": A}), pod("llm", "vllm-b", {"server": B, "sidecar": None}),
        pod("team-b", "tgi", {"main": T})]


def memory(v):
    """{(namespace, pod, container, gpu, gpu_instance): bytes} of orchex_gpu_pod_memory_used_bytes."""
    return {(lab["namespace"], lab["pod"], lab["container"], lab["gpu"], lab["gpu_instance"]): n
            for lab, n in ((dict(k[1]), n) for k, n in v.items() if k[0] == "orchex_gpu_pod_memory_used_bytes")}


def procfs(folder, host=True, cgroups=CGROUPS):
    (folder / "self" / "ns").mkdir(parents=True)
    os.symlink(HOST_PID_NAMESPACE if host else "pid:[4026532175]", folder / "self" / "ns" / "pid")
    for pid, text in cgroups.items():
        (folder / str(pid)).mkdir()
        (folder / str(pid) / "cgroup").write_text(text)
    return folder


@pytest.fixture
def node(fake_nvml_dir, tmp_path):
    """Two pods time-slicing GPU 0 (10 and 6 GiB), one in a MIG instance of GPU 1 (3 GiB), a host
    process on GPU 0 (1 GiB), a pod started later and a process left by a deleted pod on GPU 2; a
    kubelet; an API server; a procfs."""
    path = str(tmp_path / "scenario.txt")
    fake_nvml.write(path, [running(gpu(0), [{"pid": 4242, "used": 10 * GIB}, {"pid": 4343, "used": 6 * GIB},
                                            {"pid": 7171, "used": GIB}]),
                           running(seven_1g_10gb(1), [{"pid": 5151, "used": 3 * GIB, "gi": 7, "ci": 0}]),
                           running(gpu(2), [{"pid": 6161, "used": 2 * GIB}, {"pid": 8181, "used": GIB}])])
    key, cert = make_cert(tmp_path, "apiserver")
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("token-1\n")
    (account / "ca.crt").write_bytes(cert.read_bytes())
    api = ApiServer(cert, key, "token-1", pods=PODS).start()
    kubelet = Kubelet(str(tmp_path / "kubelet.sock"), sharing(U0, MIG_1)).start()
    env = dict(fake_env(fake_nvml_dir, path), NODE_NAME="gpu-node-1", KUBERNETES_SERVICE_HOST="127.0.0.1",
               KUBERNETES_SERVICE_PORT=str(api.port))
    flags = ["--gpu-backend=nvml", "--collector.kubernetes", f"--kubernetes.pod-resources-socket={kubelet.socket_path}",
             "--kubernetes.refresh-interval=1", "--kubernetes.pod-memory",
             f"--kubernetes.service-account-dir={account}", f"--path.procfs={procfs(tmp_path / 'proc')}"]
    yield api, env, flags
    kubelet.stop()
    api.stop()


def test_two_pods_time_slicing_one_gpu_each_have_their_own_memory(serve, node):
    api, env, flags = node
    s = serve(*flags, env=env)
    v = wait_for(s, lambda v: len(memory(v)) == 3 and value(v, "orchex_kubernetes_up") == 1)
    assert memory(v) == {("llm", "vllm-a", "server", "0", ""): 10 * GIB, ("llm", "vllm-b", "server", "0", ""): 6 * GIB,
                         ("team-b", "tgi", "main", "1", "7"): 3 * GIB}
    info = {(lab["pod"], lab["gpu"], lab["gpu_instance"]) for lab in
            (dict(k[1]) for k in v if k[0] == "orchex_gpu_pod_info")}
    assert info == {("vllm-a", "0", ""), ("vllm-b", "0", ""), ("tgi", "1", "7")}  # the same pods, from the kubelet
    # The host process, the pod the API server has not listed and the deleted pod's process cannot
    # be named, and say so.
    assert value(v, "orchex_kubernetes_unattributed_processes") == 3 and value(v, "orchex_kubernetes_api_up") == 1
    call = api.calls[0]
    assert call["path"] == "/api/v1/pods" and call["authorization"] == "Bearer token-1"
    assert call["query"] == {"fieldSelector": ["spec.nodeName=gpu-node-1"], "resourceVersion": ["0"]}
    # A pod started later is listed and named without a restart; then a steady node lists no more.
    api.pods.append(pod("batch", "late", {"worker": LATE}))
    v = wait_for(s, lambda v: ("batch", "late", "worker", "2", "") in memory(v))
    assert memory(v)[("batch", "late", "worker", "2", "")] == 2 * GIB
    assert value(v, "orchex_kubernetes_unattributed_processes") == 2
    _, err = s.stop()
    assert "Traceback" not in err


def test_a_steady_node_costs_the_api_server_few_lists(serve, node):
    """Every scrape meets the deleted pod's process, which no list names: the waits between lists
    double rather than costing the API server a list every refresh interval."""
    api, env, flags = node
    api.pods.append(pod("batch", "late", {"worker": LATE}))
    s = serve(*flags, env=env)
    wait_for(s, lambda v: len(memory(v)) == 4)
    started = time.monotonic()
    while time.monotonic() - started < 9:  # scrapes that all meet the deleted pod's process
        s.get()
        time.sleep(0.2)
    assert len(api.calls) <= 6, api.calls  # at start, then after 1, 2, 4 and 8 s; not one a refresh interval
    s.stop()


def test_an_api_server_that_refuses_or_talks_garbage(serve, node):
    api, env, flags = node
    api.status = 403
    s = serve(*flags, env=env)
    v = wait_for(s, lambda v: v.get(("orchex_scrape_collector_success", (("collector", "kubernetes"),))) == 0)
    assert value(v, "orchex_kubernetes_api_up") == 0 and not memory(v)
    assert value(v, "orchex_kubernetes_unattributed_processes") == 6  # nothing named, nothing made up
    assert ("orchex_gpu_up", (("gpu", "0"), ("uuid", U0))) in v  # the GPU collector goes on
    api.status, api.garbage = 200, True
    time.sleep(2.5)
    v = series(s.get()[2])
    assert value(v, "orchex_kubernetes_api_up") == 0 and not memory(v)
    api.garbage = False
    v = wait_for(s, lambda v: len(memory(v)) == 3)
    assert value(v, "orchex_kubernetes_api_up") == 1
    _, err = s.stop()
    assert "HTTP Error 403" in err and "JSONDecodeError" in err and "Traceback" not in err
    assert err.count("HTTP Error 403") == 1  # logged once, not once a scrape


def test_without_the_hosts_pids_no_process_is_named(serve, node, tmp_path):
    api, env, flags = node
    other = procfs(tmp_path / "container-proc", host=False)
    s = serve(*flags[:-1], f"--path.procfs={other}", env=env)
    v = wait_for(s, lambda v: value(v, "orchex_kubernetes_api_up") == 1)
    time.sleep(0.6)
    v = series(s.get()[2])
    assert not memory(v) and value(v, "orchex_kubernetes_unattributed_processes") == 6
    s.stop()


@pytest.mark.parametrize("missing", ["NODE_NAME", "KUBERNETES_SERVICE_HOST"])
def test_pod_memory_without_the_environment_is_one_clear_line(node, missing):
    api, env, flags = node
    done = subprocess.run([sys.executable, "-m", "exporter", "serve", *flags], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, **env, missing: ""}, timeout=30)
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and missing in done.stderr
    assert "Traceback" not in done.stderr


CID = "0123456789abcdef" * 4


@pytest.mark.parametrize("text, found", [
    (f"0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0f2c9a4e_1b2c_4d3e_8f9a_123456789abc.slice/"
     f"cri-containerd-{CID}.scope", CID),
    (f"0::/kubepods.slice/kubepods-pod0f2c9a4e_1b2c_4d3e_8f9a_123456789abc.slice/docker-{CID}.scope", CID),
    (f"5:cpu:/kubepods/burstable/pod0f2c9a4e-1b2c-4d3e-8f9a-123456789abc/{CID}\n0::/", CID),
    (f"0::/kubepods/pod6b4f2fa0a9d3d7f5f8f0d3b1c2a3e4f5/{CID}", CID),  # a static pod's hash UID
    (f"0::/system.slice/containerd.service/kubepods-burstable-pod0f2c9a4e_1b2c_4d3e_8f9a_123456789abc.slice:"
     f"cri-containerd:{CID}", CID),
    ("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f2c9a4e_1b2c_4d3e_8f9a_123456789abc.slice",
     None),  # the pod's own cgroup: no container
    (f"0::/system.slice/docker-{CID}.scope", None),  # a container, but not a pod's
    ("0::/user.slice/user-1000.slice/session-3.scope", None),
    (f"0::/kubepods/pod0f2c9a4e-1b2c-4d3e-8f9a-123456789abc/{CID[:-1]}", None),
    (f"0::/kubepods/pod0f2c9a4e-1b2c-4d3e-8f9a-123456789abc/{CID}x", None),
    ("", None),
])
def test_container_ids_from_cgroups(text, found):
    assert container_id(text) == found


def test_the_pod_list_names_containers_by_id():
    listed = {"kind": "PodList", "items": [pod("llm", "a", {"server": A, "pending": None}),
                                           dict(pod("x", "b", {}), status={}),
                                           {"metadata": {"namespace": "y", "name": "c"}, "status": {
                                               "initContainerStatuses": [{"name": "init", "containerID": f"cri-o://{B}"}],
                                               "ephemeralContainerStatuses": [{"name": "debug",
                                                                               "containerID": f"docker://{T}"}]}}]}
    assert index(json.loads(json.dumps(listed))) == {A: Owner("llm", "a", "server"), B: Owner("y", "c", "init"),
                                                     T: Owner("y", "c", "debug")}
    for bad in ({"kind": "Status"}, [], {"items": [{"metadata": {"name": "no-namespace"}}]}):
        with pytest.raises(ValueError):
            index(bad)


def test_pod_memory_sums_by_container_within_its_budget():
    snaps = [GpuSnapshot(index=0, uuid=U0, processes=[GpuProcess(1, 5), GpuProcess(2, 7), GpuProcess(3, None),
                                                      GpuProcess(4, 11), GpuProcess(5, 13)]),
             GpuSnapshot(index=1, uuid="GPU-1", up=False, processes=[GpuProcess(1, 17)])]
    owners = {1: Owner("n", "p", "c"), 2: Owner("n", "p", "c"), 3: Owner("n", "q", "c"), 4: Owner("n", "q", "c")}
    families, over = pod_memory_families(snaps, owners.get, 10)
    body = render(families)
    assert 'orchex_gpu_pod_memory_used_bytes{gpu="0",uuid="' + U0 + '",gpu_instance="",pod="p",namespace="n",' \
           'container="c"} 12' in body  # two processes of one container, summed
    assert 'pod="q",namespace="n",container="c"} 11' in body and "orchex_kubernetes_unattributed_processes 1" in body
    assert over == 0
    families, over = pod_memory_families(snaps, owners.get, 1)
    assert over == 1 and render(families).count("orchex_gpu_pod_memory_used_bytes{") == 1


def test_a_renewed_token_is_read_for_the_next_list(tmp_path):
    """A projected service-account token is renewed on disk every hour: each list reads it anew."""
    key, cert = make_cert(tmp_path, "apiserver")
    (tmp_path / "token").write_text("token-1")
    api = ApiServer(cert, key, "token-1", pods=PODS).start()
    try:
        pods = NodePods(Where(f"https://127.0.0.1:{api.port}", "gpu-node-1", str(tmp_path / "token"), str(cert)), 1.0)
        pods.refresh()
        assert pods.answered and pods.owner(A) == Owner("llm", "vllm-a", "server")
        api.token = "token-2"
        pods.refresh()
        assert not pods.answered and "401" in (pods.error or "")
        (tmp_path / "token").write_text("token-2")
        pods.refresh()
        assert pods.answered and pods.error is None
        assert [c["authorization"] for c in api.calls] == ["Bearer token-1", "Bearer token-1", "Bearer token-2"]
    finally:
        api.stop()


def test_a_pod_list_too_large_is_refused_not_held(tmp_path):
    key, cert = make_cert(tmp_path, "apiserver")
    (tmp_path / "token").write_text("t")
    huge = dict(pod("llm", "vllm-a", {"server": A}))
    huge["metadata"] = dict(huge["metadata"], annotations={"note": "x" * apiserver.MAX_BYTES})
    api = ApiServer(cert, key, "t", pods=[huge]).start()
    try:
        pods = NodePods(Where(f"https://127.0.0.1:{api.port}", "gpu-node-1", str(tmp_path / "token"), str(cert)), 1.0)
        pods.refresh()
        assert not pods.answered and "over" in (pods.error or "") and pods.owner(A) is None
    finally:
        api.stop()


def test_in_cluster_reads_the_pods_environment():
    env = {"NODE_NAME": "n1", "KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    assert in_cluster(env, "/sa") == Where("https://[fd00::1]:443", "n1", "/sa/token", "/sa/ca.crt")
