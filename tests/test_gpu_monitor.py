import json
import os
import pty
import signal
import subprocess
import sys
import time

import pytest

from conftest import LEGACY, ROOT, fake_env
from exporter.gpu.health import health
from exporter.gpu.monitor import LOG_HEADER, log_row
from exporter.gpu.snapshot import GpuSnapshot
from fake_nvml import gpu

MIB = 2**20


def test_log_rows_match_the_legacy_sample_except_its_85c_bug():
    """Rebuild each legacy log row from the nvidia-smi reading it came from."""
    smi = [line.split(", ") for line in open(os.path.join(LEGACY, "nvidia_smi_query_sample.csv"))]
    logged = open(os.path.join(LEGACY, "gpu_monitor_log_sample.csv")).read().splitlines()
    assert logged[0] == LOG_HEADER
    for (idx, name, total, used, free, temp, util, power, limit), expected in zip(smi, logged[1:]):
        s = GpuSnapshot(index=int(idx), name=name, memory_total=int(total) * MIB, memory_used=int(used) * MIB,
                        memory_free=int(free) * MIB, temperature=float(temp), utilization=float(util) / 100,
                        power=float(power), power_limit=float(limit))
        s.health = health(s, now=0)
        row = log_row(1795809890, s).rstrip("\n")
        if float(temp) == 85:  # the legacy tool said HIGH_POWER for exactly 85 C
            assert expected.endswith(",HIGH_POWER") and row == expected[: -len("HIGH_POWER")] + "HOT"
        else:
            assert row == expected


def test_na_values_are_empty_and_commas_are_quoted():
    s = GpuSnapshot(index=3, name="Tesla T4, rev B", memory_total=15360 * MIB, memory_used=0, memory_free=15360 * MIB,
                    temperature=40.0, utilization=0.1, power=None, power_limit=None, health="HEALTHY")
    assert log_row(5, s) == '5,3,"Tesla T4, rev B",10.0,0,15360,15360,0.0,40.0,,,HEALTHY\n'


def monitor(args, scenario_path, fake_dir, **kw):
    env = dict(os.environ, **fake_env(fake_dir, scenario_path))
    return subprocess.Popen([sys.executable, "-m", "exporter", "gpu-monitor", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_once_json_through_nvml(scenario, fake_nvml_dir, tmp_path):
    path = scenario([gpu(0), gpu(1, name="Odd, Name", power_mw=None)])
    log = tmp_path / "deep" / "dir" / "gpu.log"
    p = monitor(["--once", "--format", "json", "--backend", "nvml", "1", str(log)], path, fake_nvml_dir)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    cycle = json.loads(out)
    assert cycle["backend"] == "nvml" and len(cycle["gpus"]) == 2
    g0, g1 = cycle["gpus"]
    assert g0["health"] == "HEALTHY" and g0["power"] == 150.0 and g0["ecc_errors"]["volatile_corrected"] == 2
    assert "power" not in g1 and "fan_speed" not in g0
    lines = log.read_text().splitlines()
    assert lines[0] == LOG_HEADER and len(lines) == 3
    assert ',"Odd, Name",' in lines[2] and lines[2].endswith(",,700.0,HEALTHY")


def test_restart_appends_and_a_torn_last_row_stays_separate(scenario, fake_nvml_dir, tmp_path):
    path = scenario([gpu(0)])
    log = tmp_path / "gpu.log"
    for _ in range(2):
        p = monitor(["--once", "--backend", "nvml", "1", str(log)], path, fake_nvml_dir)
        assert p.wait(timeout=30) == 0
    with open(log, "a") as f:
        f.write("1795809890,0,NVIDIA H1")  # a crash mid-row
    p = monitor(["--once", "--backend", "nvml", "1", str(log)], path, fake_nvml_dir)
    assert p.wait(timeout=30) == 0
    lines = log.read_text().splitlines()
    assert lines.count(LOG_HEADER) == 1 and lines[0] == LOG_HEADER
    assert len(lines) == 5 and lines[3] == "1795809890,0,NVIDIA H1" and lines[4].split(",")[1] == "0"


def test_sigterm_prints_a_summary_and_exits_0_and_the_period_is_the_interval(scenario, fake_nvml_dir, tmp_path):
    path = scenario([gpu(0, temperature=90), gpu(1)])
    p = monitor(["0.3", str(tmp_path / "g.log"), "--format", "json", "--backend", "nvml"], path, fake_nvml_dir)
    stamps = []
    while len(stamps) < 6:
        stamps.append(json.loads(p.stdout.readline())["timestamp"])
    p.send_signal(signal.SIGTERM)
    rest, err = p.communicate(timeout=10)
    assert p.returncode == 0
    periods = [b - a for a, b in zip(stamps, stamps[1:])]
    assert all(abs(d - 0.3) < 0.1 for d in periods), periods
    assert sum(periods) / len(periods) == pytest.approx(0.3, abs=0.02)
    assert "Summary" in err and "GPU 0: NVIDIA H100 80GB HBM3" in err
    assert "temperature_c  min     90.0  mean     90.0  max     90.0" in err
    assert "time in state  HOT" in err and "time in state  HEALTHY" in err


def test_ctrl_c_summary_in_text_mode(tmp_path):
    p = subprocess.Popen([sys.executable, "-m", "exporter", "gpu-monitor", "0.2", str(tmp_path / "g.log"),
                          "--backend", "simulated"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    time.sleep(1.0)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=10)
    assert p.returncode == 0, err
    assert "\033[" not in out  # not a terminal: no colour
    assert out.count("| Status: ") >= 8 and "Summary" in out and "time in state" in out


def run_in_pty(args, env):
    leader, follower = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "exporter", *args], cwd=ROOT, stdin=follower, stdout=follower,
                         stderr=follower, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    p.wait(timeout=30)
    os.close(leader)
    return b"".join(chunks).decode()


def test_colour_on_a_terminal_unless_no_color(scenario, fake_nvml_dir, tmp_path):
    path = scenario([gpu(0), gpu(1, temperature=95), gpu(2, lost=1)])
    env = dict(os.environ, **fake_env(fake_nvml_dir, path))
    env.pop("NO_COLOR", None)
    out = run_in_pty(["gpu-monitor", "--once", "--backend", "nvml", "1", str(tmp_path / "g.log")], env)
    assert "\033[32mHEALTHY\033[0m" in out and "\033[33mHOT\033[0m" in out and "\033[31mDOWN\033[0m" in out
    env["NO_COLOR"] = "1"
    out = run_in_pty(["gpu-monitor", "--once", "--backend", "nvml", "1", str(tmp_path / "g.log")], env)
    assert "\033[" not in out and "Status: HOT" in out


def test_bad_arguments(cli, tmp_path):
    for args, msg in ((["0"], "must be a positive number of seconds: '0'"),
                      (["soon"], "not a number of seconds: 'soon'"),
                      (["1", "/proc/no/such/dir/g.log", "--backend", "simulated"], "cannot append")):
        res = cli("gpu-monitor", *args)
        assert res.returncode == 2 and msg in res.stderr and res.stderr.count("\n") == 1, res.stderr


def test_a_full_disk_leaves_whole_rows_a_summary_and_exit_1(tmp_path):
    """The file-size limit stands in for a full disk: the write that crosses it is cut short, as a
    write to a full disk is, and the next one fails."""
    import resource

    log = tmp_path / "g.log"
    limit = len(LOG_HEADER) + 1 + 300  # the header and a few rows, then a row cut part-way

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    res = subprocess.run([sys.executable, "-m", "exporter", "gpu-monitor", "0.05", str(log), "--backend", "simulated"],
                         cwd=ROOT, capture_output=True, text=True, timeout=30, preexec_fn=small_disk)
    assert res.returncode == 1, res.stderr
    assert res.stderr.strip().splitlines() == [f"orchex: {log}: cannot write: File too large"]
    assert "Summary" in res.stdout and "GPU 0:" in res.stdout
    data = log.read_bytes()
    assert data.endswith(b"\n") and len(data) < limit
    rows = data.decode().splitlines()
    assert rows[0] == LOG_HEADER and len(rows) > 2
    assert all(len(r.split(",")) == len(LOG_HEADER.split(",")) for r in rows[1:]), rows


def test_a_full_disk_at_start_names_the_log(tmp_path):
    res = subprocess.run([sys.executable, "-m", "exporter", "gpu-monitor", "1", "/dev/full", "--once", "--backend",
                          "simulated"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == ["orchex: /dev/full: cannot write: No space left on device"]
