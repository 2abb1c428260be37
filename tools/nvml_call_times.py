"""Time each NVML call orchex makes, on the GPUs of this host (run it where a driver is): which calls
make up a snapshot's cost on real hardware."""

import statistics
import time

import pynvml as N

N.nvmlInit()
h = N.nvmlDeviceGetHandleByIndex(0)
calls = {
    "GetUUID": lambda: N.nvmlDeviceGetUUID(h), "GetName": lambda: N.nvmlDeviceGetName(h),
    "GetPciInfo": lambda: N.nvmlDeviceGetPciInfo(h), "GetVbiosVersion": lambda: N.nvmlDeviceGetVbiosVersion(h),
    "GetSerial": lambda: N.nvmlDeviceGetSerial(h), "GetMigMode": lambda: N.nvmlDeviceGetMigMode(h),
    "GetUtilizationRates": lambda: N.nvmlDeviceGetUtilizationRates(h),
    "GetEncoderUtilization": lambda: N.nvmlDeviceGetEncoderUtilization(h),
    "GetDecoderUtilization": lambda: N.nvmlDeviceGetDecoderUtilization(h),
    "GetMemoryInfo_v2": lambda: N.nvmlDeviceGetMemoryInfo(h, N.nvmlMemory_v2),
    "GetTemperature": lambda: N.nvmlDeviceGetTemperature(h, 0),
    "GetFieldValues(memtemp)": lambda: N.nvmlDeviceGetFieldValues(h, [N.NVML_FI_DEV_MEMORY_TEMP]),
    "GetPowerUsage": lambda: N.nvmlDeviceGetPowerUsage(h),
    "GetPowerManagementLimit": lambda: N.nvmlDeviceGetPowerManagementLimit(h),
    "GetEnforcedPowerLimit": lambda: N.nvmlDeviceGetEnforcedPowerLimit(h),
    "GetTotalEnergyConsumption": lambda: N.nvmlDeviceGetTotalEnergyConsumption(h),
    "GetClockInfo": lambda: N.nvmlDeviceGetClockInfo(h, 1),
    "GetMaxClockInfo": lambda: N.nvmlDeviceGetMaxClockInfo(h, 1),
    "GetFanSpeed": lambda: N.nvmlDeviceGetFanSpeed(h),
    "GetPerformanceState": lambda: N.nvmlDeviceGetPerformanceState(h),
    "GetCurrentClocksEventReasons": lambda: N.nvmlDeviceGetCurrentClocksEventReasons(h),
    "GetTotalEccErrors(vol)": lambda: N.nvmlDeviceGetTotalEccErrors(h, 0, 0),
    "GetTotalEccErrors(agg)": lambda: N.nvmlDeviceGetTotalEccErrors(h, 1, 1),
    "GetRetiredPages": lambda: N.nvmlDeviceGetRetiredPages(h, 0),
    "GetRetiredPagesPendingStatus": lambda: N.nvmlDeviceGetRetiredPagesPendingStatus(h),
    "GetRemappedRows": lambda: N.nvmlDeviceGetRemappedRows(h),
    "GetCurrPcieLinkGeneration": lambda: N.nvmlDeviceGetCurrPcieLinkGeneration(h),
    "GetCurrPcieLinkWidth": lambda: N.nvmlDeviceGetCurrPcieLinkWidth(h),
    "GetPcieReplayCounter": lambda: N.nvmlDeviceGetPcieReplayCounter(h),
    "GetComputeRunningProcesses": lambda: N.nvmlDeviceGetComputeRunningProcesses(h),
    "SystemGetDriverVersion": N.nvmlSystemGetDriverVersion,
    "SystemGetCudaDriverVersion": N.nvmlSystemGetCudaDriverVersion_v2,
    "GetCount": N.nvmlDeviceGetCount, "GetHandleByIndex": lambda: N.nvmlDeviceGetHandleByIndex(0),
}
for name, fn in calls.items():
    ts, err = [], ""
    for _ in range(20):
        t = time.perf_counter()
        try:
            fn()
        except N.NVMLError as e:
            err = str(e)
        ts.append(time.perf_counter() - t)
    print(f"{name:30s} median {statistics.median(ts) * 1e6:9.1f} us  max {max(ts) * 1e6:9.1f} us  {err}")
