"""Which pod's container holds which GPU or MIG instance: the kubelet's device ids, in every form the
NVIDIA device plugin and GKE write, matched to the GPUs NVML reads. Pure: the kubelet's answer and
the snapshots are passed in.

Device ids: `GPU-<uuid>` (a whole GPU), `MIG-<uuid>` (an instance, R470 and later),
`MIG-GPU-<uuid>/<gi>/<ci>` (an instance, older drivers), any of them with a time-slicing replica
suffix `::<n>`, and GKE's `nvidia<minor>` and `nvidia<minor>/gi<gpu instance>`."""

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from exporter.exposition import Family, labels
from exporter.gpu.snapshot import GpuSnapshot

DEFAULT_RESOURCES = ("nvidia.com/gpu", "nvidia.com/mig-*")
_OLD_MIG = re.compile(r"MIG-(GPU-[^/]+)/([0-9]+)/([0-9]+)")
# A pod's cgroup, under either cgroup driver: cgroupfs `/kubepods/burstable/pod<uid>/<container id>`,
# systemd `.../kubepods-burstable-pod<uid, _ for ->.slice/cri-containerd-<container id>.scope` (or
# `crio-`, `docker-`; containerd also writes `...slice:cri-containerd:<id>`). A static pod's UID is a
# 32-digit hash; a container id is 64 hex digits.
_POD_CGROUP = re.compile(r"pod(?:[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}|[0-9a-f]{32})"
                         r"(?:\.slice)?[/:](?:[a-z-]*?[-:])?([0-9a-f]{64})(?:\.scope)?$", re.ASCII | re.MULTILINE)


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


@dataclass(frozen=True)
class Owner:
    """The container a process runs in."""

    namespace: str
    pod: str
    container: str


def container_id(cgroup_text: str) -> str | None:
    """The id of the pod's container a process runs in, from its /proc/<pid>/cgroup; None outside a pod."""
    found = _POD_CGROUP.search(cgroup_text)
    return None if found is None else found[1]


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
                 max_series: int) -> tuple[list[Family], int]:
    """orchex_gpu_pod_info, one series per container and device (containers sharing a GPU each get
    theirs), at most `max_series` of them, and ids that match no GPU counted; with the number of
    series left out."""
    info = Family("orchex_gpu_pod", "info",
                  "1 for each container the kubelet assigned a GPU or MIG instance (gpu_instance empty for a whole "
                  "GPU); containers sharing a GPU by time-slicing each have theirs.")
    unmatched = Family("orchex_kubernetes_unmatched_devices", "gauge",
                       "GPU device ids the kubelet assigned that match no GPU or MIG instance read on this node.")
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
    return [info, unmatched], over


def pod_memory_families(snaps: Sequence[GpuSnapshot], owner: Callable[[int], Owner | None],
                        max_series: int) -> tuple[list[Family], int]:
    """orchex_gpu_pod_memory_used_bytes: the memory of each GPU's processes summed by the container
    they run in, so pods that share a GPU by time-slicing each have their own; `owner(pid)` names a
    process's container, None where it cannot. With the number of series left out for `max_series`."""
    memory = Family("orchex_gpu_pod_memory_used_bytes", "gauge",
                    "GPU memory held by a container's processes (gpu_instance: their MIG GPU instance, empty for a "
                    "whole GPU): the real split between pods that share a GPU.")
    unattributed = Family("orchex_kubernetes_unattributed_processes", "gauge",
                          "GPU processes whose container could not be named: not in a pod, a PID this exporter cannot "
                          "see (it needs the host's PID namespace), or a pod the API server has not listed yet.")
    sums: dict[tuple[int, str, int | None, Owner], int] = {}
    missing = over = 0
    for s in snaps:
        if not s.up or s.processes is None:
            continue
        for p in s.processes:
            if p.memory_used is None:
                continue
            found = owner(p.pid)
            if found is None:
                missing += 1
                continue
            key = (s.index, s.uuid, p.gpu_instance, found)
            if key not in sums and len(sums) >= max_series:
                over += 1
                continue
            sums[key] = sums.get(key, 0) + p.memory_used
    for (gpu, uuid, instance, o), used in sums.items():
        memory.add(used, labels(gpu=gpu, uuid=uuid, gpu_instance="" if instance is None else instance,
                                pod=o.pod, namespace=o.namespace, container=o.container))
    unattributed.add(missing)
    return [memory, unattributed], over


def allocation_families(assignments: Iterable[Assignment], allocatable: Mapping[str, Sequence[str]] | None,
                        resources: Sequence[str]) -> list[Family]:
    """How many device ids of each GPU resource the kubelet can allocate and has allocated, as the
    kubelet counts them (a time-slicing replica is one): their difference is what a pod can still get."""
    held = Family("orchex_kubernetes_allocated_devices", "gauge",
                  "GPU device ids of each resource the kubelet has assigned to containers (time-slicing replicas "
                  "each count).")
    can = Family("orchex_kubernetes_allocatable_devices", "gauge",
                 "GPU device ids of each resource the kubelet can allocate (healthy ones, as the device plugin "
                 "reports them); absent where the kubelet does not serve GetAllocatableResources.")
    ids: dict[str, set[str]] = {}
    for a in assignments:
        if wanted(a.resource, resources):
            ids.setdefault(a.resource, set()).add(a.device_id)
    names = sorted(set(ids) | {r for r in allocatable or () if wanted(r, resources)})
    for r in names:
        held.add(len(ids.get(r, ())), labels(resource=r))
        if allocatable is not None:
            can.add(len(set(allocatable.get(r, ()))), labels(resource=r))
    return [f for f in (held, can) if f.samples]
