#!/usr/bin/env bash
# Run on a host with an NVIDIA GPU (the device machine): the NVML tests, orchex gpu-monitor and
# orchex serve against the real driver, and the per-GPU read time. What it prints under $OUT is kept
# as golden fixtures in tests/fixtures/real_gpu/.
set -u
OUT=${OUT:-/tmp/orchex-device}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
PY=${PY:-python3}
{
  echo "== host"; nvidia-smi --query-gpu=index,name,driver_version,memory.total,power.limit --format=csv
  $PY -c "import sys, pynvml, prometheus_client, yaml; print(sys.version.split()[0], 'pynvml', getattr(pynvml, '__version__', '?'))"
  echo "== nvml tests (fake library, on a GPU host)"
  timeout 240 $PY -m pytest -q -p no:cacheprovider tests/test_nvml.py tests/test_gpu_collector.py tests/test_gpu_monitor.py \
    tests/test_health.py -k "not library_not_found" 2>&1 | tail -5
  echo "== orchex gpu-monitor --once --format json (real NVML)"
  timeout 60 $PY -m exporter gpu-monitor --once --format json --backend nvml 1 "$OUT/gpu_monitor.log" > "$OUT/gpu_monitor_once.json"
  echo "rc=$?"; head -c 600 "$OUT/gpu_monitor_once.json"; echo
  timeout 60 $PY -m exporter gpu-monitor --once --backend nvml 1 "$OUT/gpu_monitor.log"
  echo "== orchex serve --gpu-backend nvml"
  $PY -m exporter serve --web.listen-address=127.0.0.1:19847 --gpu-backend=nvml > "$OUT/serve.log" 2>&1 &
  pid=$!
  for _ in $(seq 50); do $PY -c "import urllib.request as u; u.urlopen('http://127.0.0.1:19847/-/ready', timeout=1)" 2>/dev/null && break; sleep 0.2; done
  $PY -c "import urllib.request as u; open('$OUT/metrics.txt','wb').write(u.urlopen('http://127.0.0.1:19847/metrics').read())"
  kill -TERM $pid; wait $pid; echo "serve exit $?"
  grep -E '^orchex_(nvml_up|gpu_up|gpu_power_watts|gpu_temperature_celsius|gpu_health_state.*} 1)' "$OUT/metrics.txt"
  grep -c '^orchex_gpu_' "$OUT/metrics.txt"
  echo "== GPM (NVML profiling metrics): root, then a user without privileges"
  timeout 60 $PY tools/gpm_check.py > "$OUT/gpm_root.json"; echo "rc=$?"; cat "$OUT/gpm_root.json"
  chmod -R o+rX "$PWD" 2>/dev/null
  timeout 60 runuser -u nobody -- env PYTHONPATH="$PWD" $PY tools/gpm_check.py > "$OUT/gpm_nobody.json"; echo "rc=$?"
  cat "$OUT/gpm_nobody.json"
  echo "== per-GPU read time on real hardware"
  timeout 120 $PY -m perf.gpu_read --real
  cp perf/results/gpu_read_real.json "$OUT/" 2>/dev/null
} 2>&1 | tee "$OUT/device_check.txt"
