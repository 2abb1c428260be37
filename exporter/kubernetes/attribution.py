"""Which pod's container holds which GPU or MIG instance: the kubelet's device ids, in every form the
NVIDIA device plugin and GKE write, matched to the GPUs NVML reads. Pure: the kubelet's answer and
the snapshots are passed in.

Device ids: `GPU-<uuid>` (a whole GPU), `MIG-<uuid>` (an instance, R470 and later),
`MIG-GPU-<uuid>/<gi>/<ci>` (an instance, older drivers), any of them with a time-slicing replica
suffix `::<n>`, and GKE's `nvidia<minor>` and `nvidia<minor>/gi<gpu instance>`."""

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from exporter.exposition import Family, labels
from exporter.gpu.snapshot import GpuSnapshot

DEFAULT_RESOURCES = ("nvidia.com/gpu", "nvidia.com/mig-*")
_OLD_MIG = re.compile(r"MIG-(GPU-[^/]+)/([0-9]+)/([0-9]+)")


@dataclass(frozen=True)
class Assignment:
    """One device id the kubelet assigned to one container."""

    namespace: str
    pod: str
    container: str
    resource: str
    device_id: str


@dataclass(frozen=True)
class Device:
    """Where a device id points: a GPU (by index and UUID) and, for a MIG instance, its GPU instance."""

    gpu: int
    uuid: str
    gpu_instance: int | None = None


def wanted(resource: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(resource, p) for p in patterns)


def devices(snaps: Sequence[GpuSnapshot]) -> dict[str, Device]:
    """Every id a device of these GPUs can be named by, without a time-slicing suffix."""
    out = {}
    for s in snaps:
        out[s.uuid] = Device(s.index, s.uuid)
        if s.minor_number is not None:
            out[f"nvidia{s.minor_number}"] = Device(s.index, s.uuid)
        for inst in s.mig_instances:
            if inst.gpu_instance is None:
                continue
            found = Device(s.index, s.uuid, inst.gpu_instance)
            out[inst.uuid] = out[f"MIG-{s.uuid}/{inst.gpu_instance}"] = found
            if s.minor_number is not None:
                out[f"nvidia{s.minor_number}/gi{inst.gpu_instance}"] = found
    return out


def resolve(device_id: str, known: Mapping[str, Device]) -> Device | None:
    """The GPU or MIG instance a device id names, or None when no GPU read here matches it."""
    base = device_id.split("::", 1)[0]  # a time-slicing replica shares its GPU
    old = _OLD_MIG.fullmatch(base)
    return known.get(f"MIG-{old[1]}/{old[2]}" if old else base)


def pod_families(assignments: Iterable[Assignment], snaps: Sequence[GpuSnapshot], resources: Sequence[str],
                 max_series: int) -> list[Family]:
    """orchex_gpu_pod_info, one series per container and device (containers sharing a GPU each get
    theirs), at most `max_series` of them; what did not fit, and ids that match no GPU, are counted."""
    info = Family("orchex_gpu_pod", "info",
                  "1 for each container the kubelet assigned a GPU or MIG instance (gpu_instance empty for a whole "
                  "GPU); containers sharing a GPU by time-slicing each have theirs.")
    unmatched = Family("orchex_kubernetes_unmatched_devices", "gauge",
                       "GPU device ids the kubelet assigned that match no GPU or MIG instance read on this node.")
    dropped = Family("orchex_kubernetes_series_dropped", "gauge",
                     "orchex_gpu_pod_info series left out this scrape because --kubernetes.max-series was reached.")
    known = devices(snaps)
    seen: set[tuple[object, ...]] = set()
    missing = over = 0
    for a in assignments:
        if not wanted(a.resource, resources):
            continue
        device = resolve(a.device_id, known)
        if device is None:
            missing += 1
            continue
        key = (device, a.namespace, a.pod, a.container)
        if key in seen:
            continue
        if len(seen) >= max_series:
            over += 1
            continue
        seen.add(key)
        info.add(1, labels(gpu=device.gpu, uuid=device.uuid,
                           gpu_instance="" if device.gpu_instance is None else device.gpu_instance,
                           pod=a.pod, namespace=a.namespace, container=a.container), "_info")
    unmatched.add(missing)
    dropped.add(over)
    return [info, unmatched, dropped]
