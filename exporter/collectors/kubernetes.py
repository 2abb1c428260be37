"""The `kubernetes` collector (off by default): which pod, namespace and container holds each GPU and
MIG instance, from the kubelet's pod-resources API read in the background (exporter/kubernetes/)
and the shared GPU reading; with --kubernetes.pod-memory, each container's GPU memory from its
processes' cgroups, named by the API server. Needs grpcio: `pip install 'orchex[kubernetes]'`."""

import threading
from typing import TYPE_CHECKING

from exporter import procfs
from exporter.collectors import CollectorFailed, Settings
from exporter.exposition import Family
from exporter.gpu.reading import SharedReading, Unavailable
from exporter.gpu.snapshot import GpuSnapshot
from exporter.kubernetes.apiserver import NodePods
from exporter.kubernetes.attribution import Owner, allocation_families, container_id, pod_families, pod_memory_families
from exporter.kubernetes.podresources import PodResources

if TYPE_CHECKING:
    from exporter.routing.registry import Registry


class KubernetesCollector:
    name = "kubernetes"

    def __init__(self, reading: SharedReading, settings: Settings) -> None:
        self.reading = reading
        self.lock = threading.Lock()
        self.source = PodResources(settings["kubernetes.pod-resources-socket"], settings["kubernetes.refresh-interval"])
        self.source.start()
        self.pods: NodePods | None = None
        self._configure(settings)

    def _configure(self, settings: Settings) -> None:
        self.resources = tuple(settings["kubernetes.resource-names"])
        self.max_series = settings["kubernetes.max-series"]
        self.proc = settings["path.procfs"]
        self.host_pids = procfs.host_pid_namespace(self.proc)
        self.memory: tuple[list[GpuSnapshot] | None, list[Family], int] = (None, [], 0)
        server, interval = settings.api_server, settings["kubernetes.refresh-interval"]
        if self.pods is not None and (server, interval) != (self.pods.server, self.pods.interval):
            self.pods.close()
            self.pods = None
        if server is not None and self.pods is None:
            self.pods = NodePods(server, interval)
            self.pods.start()

    def reconfigure(self, settings: Settings, registry: "Registry") -> None:
        with self.lock:
            self._configure(settings)
        where = (settings["kubernetes.pod-resources-socket"], settings["kubernetes.refresh-interval"])
        if where != (self.source.socket_path, self.source.interval):
            self.source.close()
            self.source = PodResources(*where)
            self.source.start()

    def collect(self, now: float) -> list[Family]:
        view = self.source.current()
        up = Family("orchex_kubernetes_up", "gauge",
                    "1 when the kubelet's pod-resources API answered the last refresh; pod series older than "
                    "three refreshes are not served.")
        up.add(1 if view.answered else 0)
        families = [up]
        dropped = 0
        if view.assignments is not None:
            families += allocation_families(view.assignments, view.allocatable, self.resources)
        pods = self.pods
        if view.assignments is not None or pods is not None:
            try:
                snaps, _ = self.reading.read(now)
            except Unavailable as e:
                raise CollectorFailed(str(e), families) from None
            if view.assignments is not None:
                found, over = pod_families(view.assignments, snaps, self.resources, self.max_series)
                families += found
                dropped += over
            if pods is not None:
                with self.lock:
                    families += self._memory(snaps, pods)
                    dropped += self.memory[2]
        left_out = Family("orchex_kubernetes_series_dropped", "gauge",
                          "Pod series left out this scrape because --kubernetes.max-series was reached (each family "
                          "has that budget).")
        left_out.add(dropped)
        families.append(left_out)
        problems = [f"kubelet pod-resources at {self.source.socket_path}: {view.error}; its pod series are dropped "
                    "three refreshes after its last answer"] if view.error else []
        if pods is not None and pods.error:
            problems.append(f"listing this node's pods from {pods.server.url}: {pods.error}")
        if problems:
            raise CollectorFailed("; ".join(problems), families)
        return families

    def _memory(self, snaps: list[GpuSnapshot], pods: NodePods) -> list[Family]:
        """orchex_gpu_pod_memory_used_bytes, worked out once per GPU reading (the lock is held)."""
        if self.memory[0] is not snaps:
            def owner(pid: int) -> Owner | None:
                text = procfs.cgroup(pid, self.proc) if self.host_pids else None
                cid = None if text is None else container_id(text)
                return None if cid is None else pods.owner(cid)

            families, over = pod_memory_families(snaps, owner, self.max_series)
            api_up = Family("orchex_kubernetes_api_up", "gauge",
                            "1 when the API server answered the last list of this node's pods (for "
                            "orchex_gpu_pod_memory_used_bytes).")
            api_up.add(1 if pods.answered else 0)
            self.memory = (snaps, families + [api_up], over)
        return self.memory[1]

    def close(self) -> None:
        self.source.close()
        if self.pods is not None:
            self.pods.close()
