"""The kubelet's pod-resources API (v1.PodResourcesLister, exporter/kubernetes/api.proto, vendored from
kubernetes/kubelet under the Apache License 2.0 beside it; `make proto` regenerates api_pb2*.py), read
on a thread of its own every refresh interval with a deadline, so a scrape never waits for the
kubelet. One channel is kept while the kubelet answers (dcgm-exporter re-dials on every scrape:
its #599); after a failure the next refresh dials again, which follows a kubelet restart."""

import threading
import time
from dataclasses import dataclass
from typing import Any

from exporter.kubernetes.attribution import Assignment

DEADLINE_SECONDS = 5.0  # at most; never longer than the refresh interval
STALE_INTERVALS = 3  # assignments older than this many intervals are not served as current


@dataclass(frozen=True)
class View:
    """What the kubelet said last: the assignments and the device ids it can allocate, by resource
    (None before the first answer and once older than STALE_INTERVALS refreshes; `allocatable` also
    where the kubelet does not serve GetAllocatableResources, before 1.23); whether the last refresh
    was answered, and why it failed."""

    assignments: list[Assignment] | None
    allocatable: dict[str, list[str]] | None
    answered: bool
    error: str | None


class PodResources:
    def __init__(self, socket_path: str, interval: float) -> None:
        self.socket_path, self.interval = socket_path, interval
        self.lock = threading.Lock()
        self.assignments: list[Assignment] = []
        self.allocatable: dict[str, list[str]] | None = None
        self.fetched: float | None = None  # monotonic time of the last answer
        self.error: str | None = None  # why the last refresh failed
        self._channel: Any = None
        self._stub: Any = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kubelet", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def current(self) -> View:
        with self.lock:
            fresh = self.fetched is not None and time.monotonic() - self.fetched <= STALE_INTERVALS * self.interval
            answered = self.fetched is not None and self.error is None
            return View(self.assignments if fresh else None, self.allocatable if fresh else None, answered,
                        self.error)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._stop.wait(self.interval)

    def refresh(self) -> None:
        try:
            got, allocatable = self._list(), self._allocatable()
        except Exception as e:  # noqa: BLE001 - grpc's errors, a closed socket, a garbled answer
            self._close_channel()
            with self.lock:
                self.error = _reason(e)  # the scrape says it, once per reason (collectors/scrape.py)
            return
        with self.lock:
            self.error, self.assignments, self.allocatable, self.fetched = None, got, allocatable, time.monotonic()

    def _list(self) -> list[Assignment]:
        from exporter.kubernetes import api_pb2, api_pb2_grpc

        if self._stub is None:
            import grpc

            self._channel = grpc.insecure_channel(f"unix://{self.socket_path}")
            self._stub = api_pb2_grpc.PodResourcesListerStub(self._channel)
        request = api_pb2.ListPodResourcesRequest()  # type: ignore[attr-defined]  # made at import by protobuf
        answer = self._stub.List(request, timeout=min(DEADLINE_SECONDS, self.interval))
        return [Assignment(p.namespace, p.name, c.name, d.resource_name, device_id)
                for p in answer.pod_resources for c in p.containers for d in c.devices for device_id in d.device_ids]

    def _allocatable(self) -> dict[str, list[str]] | None:
        """The device ids the kubelet can allocate, by resource; None where it does not say."""
        import grpc

        from exporter.kubernetes import api_pb2

        request = api_pb2.AllocatableResourcesRequest()  # type: ignore[attr-defined]  # made at import by protobuf
        try:
            answer = self._stub.GetAllocatableResources(request, timeout=min(DEADLINE_SECONDS, self.interval))
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.UNIMPLEMENTED:
                return None  # before 1.23, or the KubeletPodResourcesGetAllocatable feature gate off
            raise
        out: dict[str, list[str]] = {}
        for d in answer.devices:
            out.setdefault(d.resource_name, []).extend(d.device_ids)
        return out

    def _close_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
        self._channel = self._stub = None

    def close(self) -> None:
        """Stop at once: closing the channel cancels a List in flight, so a hanging kubelet does not
        hold up orchex's shutdown."""
        self._stop.set()
        channel = self._channel
        if channel is not None:
            channel.close()
        if self._thread.is_alive():
            self._thread.join(timeout=1.0)


def _reason(e: Exception) -> str:
    """A grpc error as its status code and details, on one line."""
    code = getattr(e, "code", None)
    if callable(code):
        details = e.details() if callable(getattr(e, "details", None)) else ""  # type: ignore[attr-defined]
        return f"{code().name}: {str(details).splitlines()[0] if details else ''}".rstrip(": ")
    return f"{type(e).__name__}: {e}"
