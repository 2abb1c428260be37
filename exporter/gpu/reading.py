"""One GPU reading shared by the collectors that read GPUs (`gpu`, `gpu-processes`, `kubernetes`):
the backend is opened, retried and closed here, and scrapes that arrive while a reading is in
progress, or within SHARE_SECONDS after it, share that reading, so several Prometheus servers (or a
retry storm) cost one NVML pass."""

import logging
import threading
import time
from collections.abc import Callable

from exporter.gpu.backends import Backend, factory, judged
from exporter.gpu.health import DEFAULT_THRESHOLDS, Thresholds
from exporter.gpu.snapshot import GpuSnapshot

log = logging.getLogger("orchex")
SHARE_SECONDS = 0.5
RETRY_SECONDS = 10.0


class Unavailable(Exception):
    """No reading: the backend could not be opened, or the open one failed (it is reopened later)."""


class SharedReading:
    def __init__(self, open_backend: Callable[[], Backend], thresholds: Thresholds = DEFAULT_THRESHOLDS,
                 source: tuple[str, str | None] | None = None) -> None:
        """`open_backend()` returns an open backend or raises (NVML unavailable): retried later.
        `source` is the (backend name, fleet file) that `open_backend` was made from, if any."""
        self.open_backend, self.thresholds, self.source = open_backend, thresholds, source
        self.backend: Backend | None = None
        self.next_try = 0.0
        self.lock = threading.Lock()
        self.shared: tuple[float, list[GpuSnapshot] | None] = (0.0, None)  # (monotonic time, judged snapshots)
        self.past_errors: dict[tuple[str, str], int] = {}  # error counts of backends closed since
        self.failure: str | None = None  # why the last reading had no GPUs

    def reconfigure(self, backend: str, fleet: str | None, thresholds: Thresholds) -> None:
        """Adopt reloaded settings; a new backend or fleet is opened on the next reading."""
        with self.lock:
            self.thresholds = thresholds
            self.shared = (0.0, None)
            if (backend, fleet) != self.source:
                self._close()
                self.open_backend, self.source = factory(backend, fleet, log.info), (backend, fleet)
                self.next_try = 0.0

    def read(self, now: float) -> tuple[list[GpuSnapshot], Backend]:
        """Judged snapshots, the same list object for every caller within the sharing window, and
        the backend that answered; Unavailable when there is none."""
        with self.lock:
            taken, snaps = self.shared
            if snaps is not None and self.backend is not None and time.monotonic() - taken < SHARE_SECONDS:
                return snaps, self.backend
            if self.backend is None and time.monotonic() < self.next_try:
                raise Unavailable(self.failure or "GPU backend unavailable")
            if self.backend is None:
                try:
                    self.backend = self.open_backend()
                except Exception as e:  # noqa: BLE001 - any failure to open means "no GPU backend now"
                    self.next_try = time.monotonic() + RETRY_SECONDS
                    self.failure = f"GPU backend unavailable, retrying every {RETRY_SECONDS:.0f} s: {e}"
                    raise Unavailable(self.failure) from None
            backend = self.backend
            try:
                snaps = judged(backend.read(), now, self.thresholds)
            except Exception as e:  # noqa: BLE001 - the driver went away or answered nonsense
                self._close()
                self.next_try = time.monotonic() + RETRY_SECONDS
                self.failure = f"GPU backend {backend.name} failed, reopening in {RETRY_SECONDS:.0f} s: {e}"
                raise Unavailable(self.failure) from None
            self.failure = None
            self.shared = (time.monotonic(), snaps)
            return snaps, backend

    def error_counts(self) -> dict[tuple[str, str], int]:
        """NVML failures by (function, code) since the exporter started, across reopened backends."""
        with self.lock:
            counts = dict(self.past_errors)
            if self.backend is not None:
                for key, n in self.backend.error_counts.items():
                    counts[key] = counts.get(key, 0) + n
            return counts

    def close(self) -> None:
        with self.lock:
            self._close()

    def _close(self) -> None:
        if self.backend is not None:
            for key, n in self.backend.error_counts.items():  # counters survive a reopen
                self.past_errors[key] = self.past_errors.get(key, 0) + n
            self.backend.close()
            self.backend = None
            self.shared = (0.0, None)
