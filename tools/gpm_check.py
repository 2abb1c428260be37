"""GPM on a real GPU, for tools/device_check.sh: support, two windows of the twelve metrics at idle
(and under load when one is running), the extra time GPM adds to a reading, and what a non-root user
gets (run it again under `runuser -u nobody`). Prints one JSON object."""

import json
import os
import sys
import time


def main() -> int:
    from exporter.gpu.nvml import NvmlBackend

    out: dict = {"uid": os.getuid()}
    with NvmlBackend(watch_xids=False) as nvml:
        first = nvml.read()
        out["gpm_supported"] = {s.index: s.gpm_supported for s in first}
        windows = []
        for _ in range(2):
            time.sleep(1.5)
            started = time.perf_counter()
            snaps = nvml.read()
            windows.append({"read_s": time.perf_counter() - started,
                            "gpm": {s.index: s.gpm or {i.gpu_instance: i.gpm for i in s.mig_instances} for s in snaps}})
        out["windows"] = windows
        out["errors"] = {f"{f} {c}": n for (f, c), n in nvml.error_counts.items()}
    print(json.dumps(out, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
