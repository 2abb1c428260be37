"""NVML backend through pynvml (nvidia-ml-py).

Every field is read on its own: NOT_SUPPORTED leaves that field absent; GPU_IS_LOST or UNKNOWN marks
the GPU down (its other fields are not read); any other error, from NVML or from pynvml itself
(FUNCTION_NOT_FOUND, NVMLLibraryMismatchError on a driver older than pynvml), leaves the field absent
and is counted by function and code, and logged the first time it is seen. One GPU's failure never
hides the others.

Entry points that NVML versions (`_v2`, `_v3`) fall back to the older version when the driver lacks
the newer one: drivers from before a version keep reporting every GPU.
"""

import ctypes
import logging
import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pynvml as N

from exporter.gpu.gpm import GPM_METRICS, MIN_WINDOW_SECONDS
from exporter.gpu.snapshot import GpuProcess, GpuSnapshot, MigInstance

CLOCKS = {"graphics": N.NVML_CLOCK_GRAPHICS, "sm": N.NVML_CLOCK_SM, "memory": N.NVML_CLOCK_MEM,
          "video": N.NVML_CLOCK_VIDEO}
CLOCK_EVENT_REASONS = {
    "gpu_idle": 0x1, "applications_clocks_setting": 0x2, "sw_power_cap": 0x4, "hw_slowdown": 0x8,
    "sync_boost": 0x10, "sw_thermal": 0x20, "hw_thermal": 0x40, "hw_power_brake": 0x80,
    "display_clock_setting": 0x100,
}
_LOST = {N.NVML_ERROR_GPU_IS_LOST, N.NVML_ERROR_UNKNOWN}
MAX_DEVICES = 256  # a count above this is a broken driver (a negative number read as unsigned)
MAX_MIG_SLOTS = 64  # an A100/H100 has 7; more is a broken answer, not a reason to loop
# An empty MIG slot answers one of these: the slot is skipped, not counted as an error.
EMPTY_MIG_SLOT = (N.NVML_ERROR_NOT_SUPPORTED, N.NVML_ERROR_NOT_FOUND, N.NVML_ERROR_INVALID_ARGUMENT)
XID_RESTART_SECONDS = 60.0
NO_INSTANCE = 0xFFFFFFFF  # a process's gpuInstanceId outside MIG
# A GPU runs a few dozen processes; a list past this is a broken answer. The count stays whole.
MAX_PROCESSES = 4096

log = logging.getLogger("orchex")


class NvmlUnavailable(Exception):
    """nvmlInit failed: no library, no driver, or no permission. `library_missing` when there is no
    libnvidia-ml at all (no NVIDIA driver installed), as opposed to one that does not answer."""

    def __init__(self, message: str, library_missing: bool = False) -> None:
        super().__init__(message)
        self.library_missing = library_missing


class NvmlFailure(Exception):
    """The driver answered nonsense or stopped answering: this reading has no GPUs."""


class _Lost(Exception):
    def __init__(self, function: str, code: str) -> None:
        super().__init__(function)
        self.function, self.code = function, code


_ERROR_NAMES = {getattr(N, n): n[len("NVML_ERROR_"):] for n in dir(N) if n.startswith("NVML_ERROR_")}


def error_name(code: int) -> str:
    return _ERROR_NAMES.get(code, str(code))


def _exception_code(e: Exception) -> str:
    if isinstance(e, N.NVMLError):
        return error_name(e.value)
    if isinstance(e, N.NVMLLibraryMismatchError):
        return "LIBRARY_MISMATCH"
    return type(e).__name__.upper()


def _legacy_count() -> int:
    """nvmlDeviceGetCount (version 1), which drivers without _v2 export; pynvml has no wrapper."""
    n = ctypes.c_uint()
    ret = N.nvmlLib.nvmlDeviceGetCount(ctypes.byref(n))
    if ret != N.NVML_SUCCESS:
        raise N.NVMLError(ret)
    return n.value


def _legacy_handle(index: int) -> Any:
    """nvmlDeviceGetHandleByIndex (version 1), likewise."""
    handle = N.c_nvmlDevice_t()
    try:
        fn = N.nvmlLib.nvmlDeviceGetHandleByIndex
    except AttributeError:
        raise N.NVMLError(N.NVML_ERROR_FUNCTION_NOT_FOUND) from None
    ret = fn(ctypes.c_uint(index), ctypes.byref(handle))
    if ret != N.NVML_SUCCESS:
        raise N.NVMLError(ret)
    return handle


class _ProcessInfoV1(ctypes.Structure):
    """nvmlProcessInfo_t as drivers before R470 lay it out: no MIG instance ids."""

    _fields_ = [("pid", ctypes.c_uint), ("usedGpuMemory", ctypes.c_ulonglong)]


def _legacy_processes(h: Any) -> list[Any]:
    """nvmlDeviceGetComputeRunningProcesses (version 1), the only one drivers before R470 export;
    pynvml's function of that name calls _v3. Shaped as pynvml's answers are."""
    try:
        fn = N.nvmlLib.nvmlDeviceGetComputeRunningProcesses
    except AttributeError:
        raise N.NVMLError(N.NVML_ERROR_FUNCTION_NOT_FOUND) from None
    count = ctypes.c_uint(0)
    ret = fn(h, ctypes.byref(count), None)
    if ret == N.NVML_SUCCESS:
        return []
    if ret != N.NVML_ERROR_INSUFFICIENT_SIZE:
        raise N.NVMLError(ret)
    count.value = count.value * 2 + 5  # room for processes started since, as pynvml leaves
    procs = (_ProcessInfoV1 * count.value)()
    ret = fn(h, ctypes.byref(count), procs)
    if ret != N.NVML_SUCCESS:
        raise N.NVMLError(ret)
    return [SimpleNamespace(pid=p.pid, gpuInstanceId=None, usedGpuMemory=None
                            if p.usedGpuMemory == N.NVML_VALUE_NOT_AVAILABLE_ulonglong.value else p.usedGpuMemory)
            for p in procs[:count.value]]


def _process_samples(h: Any, since: int) -> list[Any]:
    """nvmlDeviceGetProcessUtilization, with "no samples since `since`" as an empty list: NVML says
    NOT_FOUND then, and pynvml raises its first call's SUCCESS as an error when the count is 0."""
    try:
        return list(N.nvmlDeviceGetProcessUtilization(h, since))
    except N.NVMLError as e:
        if e.value in (N.NVML_ERROR_NOT_FOUND, N.NVML_SUCCESS):
            return []
        raise


class _Window:
    """Two GPM samples, allocated once for a GPU or MIG instance and reused: `samples[0]` holds the
    start of the current window (taken at `taken`, monotonic), `samples[1]` receives its end."""

    def __init__(self, samples: list[Any]) -> None:
        self.samples = samples
        self.taken: float | None = None
        self.values: dict[str, float] = {}


def _text(v: Any) -> Any:
    return v.decode(errors="replace") if isinstance(v, bytes) else v


class NvmlBackend:
    name = "nvml"

    def __init__(self, watch_xids: bool = True, clock: Callable[[], float] = time.time) -> None:
        try:
            N.nvmlInit()
        except N.NVMLError as e:
            if e.value == N.NVML_ERROR_LIBRARY_NOT_FOUND:
                raise NvmlUnavailable("NVML library libnvidia-ml.so.1 not found (no NVIDIA driver "
                                      "installed?)", library_missing=True) from None
            if e.value == N.NVML_ERROR_DRIVER_NOT_LOADED:
                raise NvmlUnavailable("NVIDIA driver not loaded (nvmlInit: DRIVER_NOT_LOADED)") from None
            raise NvmlUnavailable(f"nvmlInit failed: {error_name(e.value)}") from None
        self.clock = clock
        # (function, code name) -> count, for orchex_nvml_errors_total
        self.error_counts: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._xids: dict[tuple[int, int], list[float]] = {}  # (gpu index, xid) -> [count, last unix time]
        # uuid -> fields that do not change while the GPU is in the machine
        self._static: dict[str, dict[str, Any]] = {}
        self._samples_seen: dict[str, int] = {}  # uuid -> timestamp of the newest process sample read
        self._gpm_support: dict[str, bool] = {}  # uuid -> whether the GPU has GPM (asked once)
        self._windows: dict[tuple[str, str], _Window] = {}  # (GPU uuid, MIG uuid or "") -> its samples
        self._used_windows: set[tuple[str, str]] = set()  # those the current reading reached
        self._gpm_query: Any = None  # the nvmlGpmMetricsGet argument, reused
        self.watch_xids = watch_xids
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._next_watch = 0.0
        self._keep_watching()

    @property
    def xid_watcher_up(self) -> bool:
        """Whether XID events are being received now (the event thread is alive)."""
        return self._watcher is not None and self._watcher.is_alive()

    def _keep_watching(self) -> None:
        """Start the XID event thread, or start it again when it died (at most once a minute)."""
        if not self.watch_xids or self.xid_watcher_up or time.monotonic() < self._next_watch:
            return
        self._next_watch = time.monotonic() + XID_RESTART_SECONDS
        self._watcher = threading.Thread(target=self._watch_xids, name="nvml-xid", daemon=True)
        self._watcher.start()

    def close(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=2)
            self._watcher = None
        self._free_windows(keep=set())
        try:
            N.nvmlShutdown()
        except N.NVMLError:
            pass

    def __enter__(self) -> "NvmlBackend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _count_error(self, function: str, code: str) -> None:
        key = (function, code)
        with self._lock:
            first = key not in self.error_counts
            self.error_counts[key] = self.error_counts.get(key, 0) + 1
        if first:
            log.warning(f"NVML {function} failed with {code}; the field is left out and counted in "
                        "orchex_nvml_errors_total (said once per function and code)")

    def _call(self, snap: GpuSnapshot, function: str, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(*args), or None when the field is absent; raises _Lost when the GPU is gone."""
        return self._versioned(snap, function, fn, args=args)

    def _versioned(self, snap: GpuSnapshot, function: str, *fns: Callable[..., Any],
                   args: tuple[Any, ...] = (), absent: tuple[int, ...] = (N.NVML_ERROR_NOT_SUPPORTED,)) -> Any:
        """The first of fns (newest version first) that the driver has, called with args; None when
        the field is absent (an `absent` code, or an error counted here); _Lost when the GPU is gone."""
        for i, fn in enumerate(fns):
            try:
                return fn(*args)
            except (N.NVMLError_FunctionNotFound, N.NVMLLibraryMismatchError) as e:
                if i < len(fns) - 1:
                    continue  # an older driver: try the older version
                code = _exception_code(e)
            except N.NVMLError as e:
                if e.value in absent:
                    return None
                code = error_name(e.value)
                if e.value in _LOST:
                    self._count_error(function, code)
                    raise _Lost(function, code) from None
            except Exception as e:  # noqa: BLE001 - pynvml's own errors (a bad struct, a decode)
                code = _exception_code(e)
            self._count_error(function, code)
            snap.errors[function] = code
            return None
        return None  # not reached: the last function returns or fails above

    def _count(self) -> int:
        try:
            try:
                count = N.nvmlDeviceGetCount()
            except N.NVMLError_FunctionNotFound:
                count = _legacy_count()
        except N.NVMLError as e:
            self._count_error("nvmlDeviceGetCount", error_name(e.value))
            raise NvmlFailure(f"nvmlDeviceGetCount: {error_name(e.value)}") from None
        if not 0 <= count <= MAX_DEVICES:
            self._count_error("nvmlDeviceGetCount", "ABSURD_COUNT")
            raise NvmlFailure(f"nvmlDeviceGetCount says {count} GPUs (at most {MAX_DEVICES} expected): "
                              "the driver's answer is not a device count")
        return count

    def read(self) -> list[GpuSnapshot]:
        count = self._count()
        self._keep_watching()
        driver = cuda = None
        system = GpuSnapshot(index=-1)
        driver = _text(self._call(system, "nvmlSystemGetDriverVersion", N.nvmlSystemGetDriverVersion))
        cuda_int = self._versioned(system, "nvmlSystemGetCudaDriverVersion", N.nvmlSystemGetCudaDriverVersion_v2,
                                   N.nvmlSystemGetCudaDriverVersion)
        if cuda_int is not None:
            cuda = f"{cuda_int // 1000}.{cuda_int % 1000 // 10}"
        out = []
        self._used_windows = set()
        for i in range(count):
            snap = GpuSnapshot(index=i, driver_version=driver, cuda_driver_version=cuda)
            try:
                h = self._versioned(snap, "nvmlDeviceGetHandleByIndex", N.nvmlDeviceGetHandleByIndex,
                                    _legacy_handle, args=(i,))
                if h is None:
                    raise _Lost("nvmlDeviceGetHandleByIndex", "NOT_SUPPORTED")
                self._read_device(snap, h)
            except _Lost as lost:
                snap.up = False
                snap.errors[lost.function] = lost.code
            with self._lock:
                for (gpu, xid), (n, last) in self._xids.items():
                    if gpu == i:
                        snap.xid_counts[xid], snap.xid_last_seen[xid] = n, last
            out.append(snap)
        # The samples of a GPU that was lost or removed, or of a MIG instance destroyed, are freed.
        self._free_windows(keep=self._used_windows)
        return out

    def _read_static(self, s: GpuSnapshot, h: Any) -> dict[str, Any]:
        """Identity and maximum clocks, read once per GPU (by UUID): on an H200, nvmlDeviceGetMaxClockInfo
        alone costs 1.4 ms a call, four calls a reading (tools/nvml_call_times.py)."""
        c = self._call
        static: dict[str, Any] = {"name": _text(c(s, "nvmlDeviceGetName", N.nvmlDeviceGetName, h)) or ""}
        pci = c(s, "nvmlDeviceGetPciInfo", N.nvmlDeviceGetPciInfo, h)
        static["pci_bus_id"] = _text(pci.busId) if pci is not None else None
        static["vbios_version"] = _text(c(s, "nvmlDeviceGetVbiosVersion", N.nvmlDeviceGetVbiosVersion, h))
        static["serial"] = _text(c(s, "nvmlDeviceGetSerial", N.nvmlDeviceGetSerial, h))
        static["minor_number"] = c(s, "nvmlDeviceGetMinorNumber", N.nvmlDeviceGetMinorNumber, h)
        static["max_clocks"] = {}
        for name, kind in CLOCKS.items():
            mhz = c(s, "nvmlDeviceGetMaxClockInfo", N.nvmlDeviceGetMaxClockInfo, h, kind)
            if mhz is not None:
                static["max_clocks"][name] = mhz * 1e6
        if s.uuid and not s.errors:  # keep only a complete reading
            self._static[s.uuid] = static
        return static

    def _read_device(self, s: GpuSnapshot, h: Any) -> None:
        c = self._call
        s.uuid = _text(c(s, "nvmlDeviceGetUUID", N.nvmlDeviceGetUUID, h)) or ""
        static = self._static.get(s.uuid) or self._read_static(s, h)
        s.name, s.pci_bus_id, s.vbios_version, s.serial, s.minor_number = (
            static["name"], static["pci_bus_id"], static["vbios_version"], static["serial"], static["minor_number"])
        s.max_clocks = dict(static["max_clocks"])
        mig = c(s, "nvmlDeviceGetMigMode", N.nvmlDeviceGetMigMode, h)
        s.mig_mode = bool(mig[0]) if mig is not None else None

        if s.mig_mode:  # the driver does not support device utilisation under MIG: never read it as 0
            s.mig_instances = self._read_mig(s, h)
        else:
            util = c(s, "nvmlDeviceGetUtilizationRates", N.nvmlDeviceGetUtilizationRates, h)
            if util is not None:
                s.utilization, s.memory_utilization = util.gpu / 100.0, util.memory / 100.0
        enc = c(s, "nvmlDeviceGetEncoderUtilization", N.nvmlDeviceGetEncoderUtilization, h)
        s.encoder_utilization = enc[0] / 100.0 if enc is not None else None
        dec = c(s, "nvmlDeviceGetDecoderUtilization", N.nvmlDeviceGetDecoderUtilization, h)
        s.decoder_utilization = dec[0] / 100.0 if dec is not None else None

        mem = c(s, "nvmlDeviceGetMemoryInfo_v2", N.nvmlDeviceGetMemoryInfo, h, N.nvmlMemory_v2)
        if mem is not None:
            s.memory_reserved = mem.reserved
        else:
            mem = c(s, "nvmlDeviceGetMemoryInfo", N.nvmlDeviceGetMemoryInfo, h)
        if mem is not None:
            s.memory_total, s.memory_free, s.memory_used = mem.total, mem.free, mem.used

        s.temperature = c(s, "nvmlDeviceGetTemperature", N.nvmlDeviceGetTemperature, h,
                          N.NVML_TEMPERATURE_GPU)
        fv = c(s, "nvmlDeviceGetFieldValues", N.nvmlDeviceGetFieldValues, h, [N.NVML_FI_DEV_MEMORY_TEMP])
        if fv is not None and fv[0].nvmlReturn == N.NVML_SUCCESS:
            s.memory_temperature = float(fv[0].value.uiVal)

        mw = c(s, "nvmlDeviceGetPowerUsage", N.nvmlDeviceGetPowerUsage, h)
        s.power = mw / 1000.0 if mw is not None else None
        mw = c(s, "nvmlDeviceGetPowerManagementLimit", N.nvmlDeviceGetPowerManagementLimit, h)
        s.power_limit = mw / 1000.0 if mw is not None else None
        mw = c(s, "nvmlDeviceGetEnforcedPowerLimit", N.nvmlDeviceGetEnforcedPowerLimit, h)
        s.enforced_power_limit = mw / 1000.0 if mw is not None else None
        mj = c(s, "nvmlDeviceGetTotalEnergyConsumption", N.nvmlDeviceGetTotalEnergyConsumption, h)
        s.energy = mj / 1000.0 if mj is not None else None

        for name, kind in CLOCKS.items():
            mhz = c(s, "nvmlDeviceGetClockInfo", N.nvmlDeviceGetClockInfo, h, kind)
            if mhz is not None:
                s.clocks[name] = mhz * 1e6
        fan = c(s, "nvmlDeviceGetFanSpeed", N.nvmlDeviceGetFanSpeed, h)
        s.fan_speed = fan / 100.0 if fan is not None else None
        s.performance_state = c(s, "nvmlDeviceGetPerformanceState", N.nvmlDeviceGetPerformanceState, h)
        reasons = c(s, "nvmlDeviceGetCurrentClocksEventReasons",
                    N.nvmlDeviceGetCurrentClocksEventReasons, h)
        if reasons is not None:
            s.clock_events = {name: bool(reasons & bit) for name, bit in CLOCK_EVENT_REASONS.items()}

        for counter, ctype in (("volatile", N.NVML_VOLATILE_ECC), ("aggregate", N.NVML_AGGREGATE_ECC)):
            for error, etype in (("corrected", N.NVML_MEMORY_ERROR_TYPE_CORRECTED),
                                 ("uncorrected", N.NVML_MEMORY_ERROR_TYPE_UNCORRECTED)):
                n = c(s, "nvmlDeviceGetTotalEccErrors", N.nvmlDeviceGetTotalEccErrors, h, etype, ctype)
                if n is not None:
                    s.ecc_errors[(counter, error)] = n
        for cause, code in (("multiple_single_bit_ecc", N.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS),
                            ("double_bit_ecc", N.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR)):
            pages = c(s, "nvmlDeviceGetRetiredPages", N.nvmlDeviceGetRetiredPages, h, code)
            if pages is not None:
                s.retired_pages[cause] = len(pages)
        pending = c(s, "nvmlDeviceGetRetiredPagesPendingStatus", N.nvmlDeviceGetRetiredPagesPendingStatus, h)
        s.retired_pages_pending = bool(pending) if pending is not None else None
        rows = c(s, "nvmlDeviceGetRemappedRows", N.nvmlDeviceGetRemappedRows, h)
        if rows is not None:
            s.remapped_rows = {"corrected": rows[0], "uncorrected": rows[1]}
            s.row_remap_pending, s.row_remap_failure = bool(rows[2]), bool(rows[3])

        s.pcie_link_generation = c(s, "nvmlDeviceGetCurrPcieLinkGeneration",
                                   N.nvmlDeviceGetCurrPcieLinkGeneration, h)
        s.pcie_link_width = c(s, "nvmlDeviceGetCurrPcieLinkWidth", N.nvmlDeviceGetCurrPcieLinkWidth, h)
        s.pcie_replays = c(s, "nvmlDeviceGetPcieReplayCounter", N.nvmlDeviceGetPcieReplayCounter, h)
        self._read_processes(s, h)
        self._read_gpm(s, h)

    def _read_processes(self, s: GpuSnapshot, h: Any) -> None:
        procs = self._versioned(s, "nvmlDeviceGetComputeRunningProcesses", N.nvmlDeviceGetComputeRunningProcesses_v3,
                                N.nvmlDeviceGetComputeRunningProcesses_v2, _legacy_processes, args=(h,))
        if procs is not None:
            s.processes = [GpuProcess(p.pid, p.usedGpuMemory,
                                      None if p.gpuInstanceId in (None, NO_INSTANCE) else p.gpuInstanceId)
                           for p in procs[:MAX_PROCESSES]]
            s.compute_processes = len(procs)
            if not s.mig_mode:  # process utilisation is not available under MIG: left out, not 0
                self._read_process_utilization(s, h)

    def _read_process_utilization(self, s: GpuSnapshot, h: Any) -> None:
        """Each process's SM utilisation, the mean of the driver's samples since the last reading. A
        process without samples in that time was idle: 0, as "no samples" (NOT_FOUND) means for all."""
        since = self._samples_seen.get(s.uuid, 0)
        samples = self._call(s, "nvmlDeviceGetProcessUtilization", _process_samples, h, since)
        if samples is None or s.processes is None:
            return
        by_pid: dict[int, list[float]] = {}
        for sample in samples:
            by_pid.setdefault(sample.pid, []).append(min(sample.smUtil, 100) / 100.0)
            since = max(since, sample.timeStamp)
        self._samples_seen[s.uuid] = since
        for p in s.processes:
            got = by_pid.get(p.pid)
            p.sm_utilization = sum(got) / len(got) if got else 0.0

    def _read_gpm(self, s: GpuSnapshot, h: Any) -> None:
        """GPM metrics over the window since the previous reading: per GPU, or under MIG per instance
        (by its GPU instance id, and known by its UUID). A GPU without GPM has none, and no error."""
        if s.uuid not in self._gpm_support:
            support = self._call(s, "nvmlGpmQueryDeviceSupport", N.nvmlGpmQueryDeviceSupport, h)
            if support is None and "nvmlGpmQueryDeviceSupport" in s.errors:
                return  # unknown: asked again next time
            self._gpm_support[s.uuid] = bool(support is not None and support.isSupportedDevice)
        s.gpm_supported = self._gpm_support[s.uuid]
        if not s.gpm_supported:
            return
        if not s.mig_mode:
            s.gpm = self._gpm_window(s, (s.uuid, ""), "nvmlGpmSampleGet", N.nvmlGpmSampleGet, h)
            return
        for inst in s.mig_instances:
            if inst.gpu_instance is not None:
                inst.gpm = self._gpm_window(s, (s.uuid, inst.uuid), "nvmlGpmMigSampleGet", N.nvmlGpmMigSampleGet,
                                            h, inst.gpu_instance)

    def _gpm_window(self, s: GpuSnapshot, key: tuple[str, str], function: str, take: Callable[..., Any],
                    *args: Any) -> dict[str, float]:
        """The metrics of the window that ends now; the first call only starts one, and a window
        shorter than MIN_WINDOW_SECONDS serves the previous values."""
        self._used_windows.add(key)
        w = self._windows.get(key)
        if w is None:
            samples = [self._call(s, "nvmlGpmSampleAlloc", N.nvmlGpmSampleAlloc) for _ in range(2)]
            if None in samples:
                self._free(samples)
                return {}
            w = self._windows[key] = _Window(samples)
        now = time.monotonic()
        if w.taken is not None and now - w.taken < MIN_WINDOW_SECONDS:
            return w.values
        end = w.samples[1] if w.taken is not None else w.samples[0]
        if self._call(s, function, take, *args, end) is None:
            w.taken, w.values = None, {}  # the window is broken: start a new one
            return {}
        if w.taken is None:
            w.taken = now
            return {}
        w.values = self._gpm_metrics(s, w.samples[0], w.samples[1])
        w.samples.reverse()
        w.taken = now
        return w.values

    def _gpm_metrics(self, s: GpuSnapshot, start: Any, end: Any) -> dict[str, float]:
        """Each metric on its own: one the driver does not support is left out; one that fails is
        left out and counted."""
        query = self._gpm_query
        if query is None:  # 19 KB, and the same metrics every time: made once (readings do not overlap)
            query = self._gpm_query = N.c_nvmlGpmMetricsGet_t()
            query.version, query.numMetrics = N.NVML_GPM_METRICS_GET_VERSION, len(GPM_METRICS)
            for i, m in enumerate(GPM_METRICS):
                query.metrics[i].metricId = m.metric_id
        query.sample1, query.sample2 = start, end
        if self._call(s, "nvmlGpmMetricsGet", N.nvmlGpmMetricsGet, query) is None:
            return {}
        values = {}
        metrics = query.metrics
        for i, m in enumerate(GPM_METRICS):
            got = metrics[i]
            if got.nvmlReturn == N.NVML_SUCCESS:
                values[m.key] = got.value * m.scale
            elif got.nvmlReturn != N.NVML_ERROR_NOT_SUPPORTED:
                code = error_name(got.nvmlReturn)
                self._count_error("nvmlGpmMetricsGet", code)
                s.errors["nvmlGpmMetricsGet"] = code
        return values

    def _free(self, samples: list[Any]) -> None:
        for sample in samples:
            if sample is not None:
                try:
                    N.nvmlGpmSampleFree(sample)
                except N.NVMLError as e:
                    self._count_error("nvmlGpmSampleFree", error_name(e.value))

    def _free_windows(self, keep: set[tuple[str, str]]) -> None:
        for key in [k for k in self._windows if k not in keep]:
            self._free(self._windows.pop(key).samples)

    def _read_mig(self, s: GpuSnapshot, h: Any) -> list[MigInstance]:
        """The GPU's MIG instances, read afresh each time: instances are destroyed and created while
        orchex runs, and the driver reuses their ids. Slots are sparse: an empty one is skipped."""
        c = self._call
        slots = c(s, "nvmlDeviceGetMaxMigDeviceCount", N.nvmlDeviceGetMaxMigDeviceCount, h) or 0
        out = []
        for i in range(min(slots, MAX_MIG_SLOTS)):
            m = self._versioned(s, "nvmlDeviceGetMigDeviceHandleByIndex", N.nvmlDeviceGetMigDeviceHandleByIndex,
                                args=(h, i), absent=EMPTY_MIG_SLOT)
            if m is None:
                continue
            uuid = _text(c(s, "nvmlDeviceGetUUID", N.nvmlDeviceGetUUID, m))
            if not uuid:
                continue  # an instance without its identity cannot be told from its successor
            name = _text(c(s, "nvmlDeviceGetName", N.nvmlDeviceGetName, m)) or ""
            inst = MigInstance(uuid=uuid, profile=name.partition("MIG ")[2],
                               gpu_instance=c(s, "nvmlDeviceGetGpuInstanceId", N.nvmlDeviceGetGpuInstanceId, m),
                               compute_instance=c(s, "nvmlDeviceGetComputeInstanceId",
                                                  N.nvmlDeviceGetComputeInstanceId, m))
            mem = c(s, "nvmlDeviceGetMemoryInfo", N.nvmlDeviceGetMemoryInfo, m)
            if mem is not None:
                inst.memory_used, inst.memory_total = mem.used, mem.total
            out.append(inst)
        return out

    def _watch_xids(self) -> None:
        """Wait on an NVML event set for XID events; per GPU and XID keep a count and the last time.
        Any failure ends the thread with its error counted; read() starts it again later."""
        try:
            self._wait_for_xids()
        except N.NVMLError as e:
            self._count_error("nvmlEventSetWait", error_name(e.value))
        except Exception as e:  # noqa: BLE001 - a thread must not die silently
            self._count_error("nvmlEventSetWait", _exception_code(e))

    def _wait_for_xids(self) -> None:
        events = N.nvmlEventSetCreate()
        try:
            handles = {}
            for i in range(self._count()):
                try:
                    h = N.nvmlDeviceGetHandleByIndex(i)
                except N.NVMLError_FunctionNotFound:
                    h = _legacy_handle(i)
                try:
                    N.nvmlDeviceRegisterEvents(h, N.nvmlEventTypeXidCriticalError, events)
                except N.NVMLError as e:  # a lost GPU or one without events: watch the others
                    if e.value != N.NVML_ERROR_NOT_SUPPORTED:
                        self._count_error("nvmlDeviceRegisterEvents", error_name(e.value))
                    continue
                handles[ctypes.cast(h, ctypes.c_void_p).value] = i
            while handles and not self._stop.is_set():
                try:
                    data = N.nvmlEventSetWait(events, 200)
                except N.NVMLError as e:
                    if e.value == N.NVML_ERROR_FUNCTION_NOT_FOUND:
                        raise  # a driver without event waits: the thread ends, counted
                    if e.value != N.NVML_ERROR_TIMEOUT:
                        self._count_error("nvmlEventSetWait", error_name(e.value))
                        self._stop.wait(1.0)
                    continue
                gpu = handles.get(ctypes.cast(data.device, ctypes.c_void_p).value)
                if gpu is None:
                    continue
                key = (gpu, int(data.eventData))
                with self._lock:
                    n, _ = self._xids.get(key, (0, 0.0))
                    self._xids[key] = [n + 1, self.clock()]
        finally:
            N.nvmlEventSetFree(events)
