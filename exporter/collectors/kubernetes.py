"""The `kubernetes` collector (off by default): which pod, namespace and container holds each GPU and
MIG instance, from the kubelet's pod-resources API read in the background (exporter/kubernetes/)
and the shared GPU reading. Needs grpcio: `pip install 'orchex[kubernetes]'` (in the image)."""

from typing import TYPE_CHECKING

from exporter.collectors import CollectorFailed
from exporter.exposition import Family
from exporter.gpu.reading import SharedReading, Unavailable
from exporter.kubernetes.attribution import pod_families
from exporter.kubernetes.podresources import PodResources

if TYPE_CHECKING:
    from exporter.routing.registry import Registry
    from exporter.serveconfig import Settings


class KubernetesCollector:
    name = "kubernetes"

    def __init__(self, reading: SharedReading, settings: "Settings") -> None:
        self.reading = reading
        self._configure(settings)
        self.source = PodResources(settings["kubernetes.pod-resources-socket"], settings["kubernetes.refresh-interval"])
        self.source.start()

    def _configure(self, settings: "Settings") -> None:
        self.resources = tuple(settings["kubernetes.resource-names"])
        self.max_series = settings["kubernetes.max-series"]

    def reconfigure(self, settings: "Settings", registry: "Registry") -> None:
        self._configure(settings)
        where = (settings["kubernetes.pod-resources-socket"], settings["kubernetes.refresh-interval"])
        if where != (self.source.socket_path, self.source.interval):
            self.source.close()
            self.source = PodResources(*where)
            self.source.start()

    def collect(self, now: float) -> list[Family]:
        assignments, answered, error = self.source.current()
        up = Family("orchex_kubernetes_up", "gauge",
                    "1 when the kubelet's pod-resources API answered the last refresh; pod series older than "
                    "three refreshes are not served.")
        up.add(1 if answered else 0)
        families = [up]
        if assignments is not None:
            try:
                snaps, _ = self.reading.read(now)
            except Unavailable as e:
                raise CollectorFailed(str(e), families) from None
            families += pod_families(assignments, snaps, self.resources, self.max_series)
        if error:
            raise CollectorFailed(f"kubelet pod-resources at {self.source.socket_path}: {error}; its pod series are "
                                  "dropped three refreshes after its last answer", families)
        return families

    def close(self) -> None:
        self.source.close()
