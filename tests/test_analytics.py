import gzip
import json
import os
import subprocess
import sys

import pytest

from conftest import LEGACY, ROOT, run_cli
from exporter.selectionlog.rows import HEADER_LINE

SAMPLE = os.path.join(LEGACY, "selection_metrics_sample.csv")
EPOCH = {"SOURCE_DATE_EPOCH": "1769155200"}


def report(*args, env=None):
    res = run_cli("analytics", *args, "--report", "--format", "json", env=env)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_legacy_sample_figures():
    r = report(SAMPLE)
    assert r["schema"] == "orchex.analytics/2" and r["total_requests"] == 2
    e = r["effectiveness"]
    assert (e["secondary_selections"], e["mean_secondary_confidence"], e["mean_duration_ms"]) == (1, 0.70, 11.0)
    assert e["unique_models"] == 1 and e["multi_category_models"] == 1 and e["secondary_share"] == 0.5
    assert [(g["gpu"], g["selections"], g["share"]) for g in e["gpus"]] == [("0", 1, 0.5), ("1", 1, 0.5)]
    assert [c["category"] for c in r["categories"]] == ["code", "math"]
    code = r["categories"][0]
    assert (code["requests"], code["models_used"], code["mean_score"], code["mean_confidence"],
            code["mean_duration_ms"], code["duration_ms_p99"]) == (1, 1, 85.5, 0.95, 12.0, 12.0)
    assert r["models"] == [{"model": "google-gemma-3-270m-it", "requests": 2, "categories_served": 2,
                            "categories": ["code", "math"], "mean_score": 75.35, "primary": 1, "secondary": 1}]
    # 50 % secondary use at mean confidence 0.70: one finding, not "good" beside "low confidence".
    assert [x["id"] for x in r["recommendations"]] == ["low_secondary_confidence"]
    assert "50.0% of selections use a model's secondary category" in r["recommendations"][0]["text"]
    assert r["time_range"] == {"first": "2026-01-23 08:00:00", "last": "2026-01-23 08:00:01"}


def test_markdown_sections_in_the_legacy_order_and_nothing_else_on_stdout():
    res = run_cli("analytics", SAMPLE, "--report", env=EPOCH)
    assert res.returncode == 0 and res.stderr == ""
    heads = [line for line in res.stdout.splitlines() if line.startswith("#")]
    assert heads == ["# Multi-Category Routing Analytics Report", "## Overall Effectiveness", "### GPU Distribution",
                     "## Performance by Category", "## Model Usage", "## Multi-Category Model Utilization",
                     "## Recommendations"]
    assert "- **Generated:** 2026-01-23T08:00:00Z" in res.stdout
    assert "Total requests:** 2" in res.stdout


def test_summary_without_report():
    res = run_cli("analytics", SAMPLE)
    assert res.returncode == 0
    assert res.stdout.splitlines()[:4] == [
        "Total requests: 2", "Unique models: 1  (serving several categories: 1)",
        "Secondary category usage: 1 (50.0%), mean confidence 0.70", "Mean selection duration: 11.000 ms"]
    assert "  1. google-gemma-3-270m-it: 2" in res.stdout


def test_format_with_space_or_equals_and_help_is_not_a_file(tmp_path):
    a = run_cli("analytics", SAMPLE, "--report", "--format", "json", env=EPOCH)
    b = run_cli("analytics", SAMPLE, "--report", "--format=json", env=EPOCH)
    assert a.stdout == b.stdout and json.loads(a.stdout)["total_requests"] == 2
    h = run_cli("analytics", "--help")
    assert h.returncode == 0 and h.stdout.startswith("usage: orchex analytics")


def test_source_date_epoch_gives_byte_identical_reports(tmp_path):
    outs = []
    for fmt in ("markdown", "json", "text"):
        one = run_cli("analytics", SAMPLE, "--report", "--format", fmt, env=EPOCH).stdout
        two = run_cli("analytics", SAMPLE, "--report", "--format", fmt, env=EPOCH).stdout
        assert one == two
        outs.append(one)
    assert json.loads(outs[1])["generated"] == "2026-01-23T08:00:00Z"
    real = json.loads(run_cli("analytics", SAMPLE, "--report", "--format", "json").stdout)["generated"]
    assert len(real) == 20 and real.endswith("Z") and real[10] == "T"


def test_output_file_and_rows_sorted_by_requests_then_name(tmp_path):
    log = tmp_path / "log.csv"
    rows = [("b", "m2")] * 3 + [("a", "m1")] * 3 + [("c", "m1")] * 5
    log.write_text(HEADER_LINE + "\n" + "".join(
        f"2026-01-23 08:00:{i:02d},{c},{m},true,0.9,50,0,1\n" for i, (c, m) in enumerate(rows)))
    out = tmp_path / "r.json"
    res = run_cli("analytics", str(log), "--report", "--format", "json", "--output", str(out))
    assert res.returncode == 0 and res.stdout == ""
    r = json.loads(out.read_text())
    assert [c["category"] for c in r["categories"]] == ["c", "a", "b"]
    assert [m["model"] for m in r["models"]] == ["m1", "m2"]


def test_robust_input_counts_valid_rows_and_reports_rejected(tmp_path):
    log = tmp_path / "messy.csv"
    log.write_bytes(
        (HEADER_LINE + ",fallback,reason,policy\r\n"
         "2026-01-23 08:00:00,code,gemma,true,0.95,85.5,0,1.5,false,,default\r\n"
         "\r\n"
         '2026-01-23 08:00:01,code,"gemma",true,0.95,85.5,0,12,true,"no candidate, fallback",default\r\n'
         + HEADER_LINE + "\r\n"
         "2026-01-23 08:00:02,math,phi,false,0.70,60,1,3\r\n"
         "2026-01-23 08:00:03,math,phi,maybe,0.70,60,1,3\r\n").encode()
        + b"2026-01-23 08:00:04,math,ph\xffi,false,0.70,60,1,3\n"
        + b"2026-01-23 08:00:05,math,ph")
    r = report(str(log))
    assert r["total_requests"] == 3
    assert r["rejected"]["by_reason"] == {"encoding": 1, "primary": 1, "truncated": 1}
    assert r["rejected"]["examples"] == [
        {"file": str(log), "line": 7, "reason": "primary"}, {"file": str(log), "line": 8, "reason": "encoding"},
        {"file": str(log), "line": 9, "reason": "truncated"}]
    assert r["effectiveness"]["fallbacks"] == 1 and r["categories"][0]["fallbacks"] == 1
    res = run_cli("analytics", str(log), "--strict")
    assert res.returncode == 1 and "3 row(s) rejected (--strict)" in res.stderr
    assert "Rejected rows: 3" in res.stdout


def test_header_less_file_and_several_files_globs_gzip_and_stdin(tmp_path):
    plain = tmp_path / "a.csv"
    plain.write_text("2026-01-23 08:00:00,code,gemma,true,0.95,70,0,2\n")
    gz = tmp_path / "b.csv.gz"
    gz.write_bytes(gzip.compress((HEADER_LINE + "\n2026-01-23 09:00:00,math,phi,false,0.7,60,1,4\n").encode()))
    r = report(str(tmp_path / "*.csv*"))
    assert r["total_requests"] == 2 and r["files"] == [str(plain), str(gz)]
    res = run_cli("analytics", "-", str(plain), "--report", "--format", "json", input=open(SAMPLE).read())
    assert json.loads(res.stdout)["total_requests"] == 3


def test_since_and_until():
    r = report(SAMPLE, "--since", "2026-01-23 08:00:01")
    assert r["total_requests"] == 1 and r["categories"][0]["category"] == "math"
    r = report(SAMPLE, "--until", "2026-01-23T08:00:01")
    assert r["total_requests"] == 1 and r["categories"][0]["category"] == "code"
    res = run_cli("analytics", SAMPLE, "--since", "last tuesday")
    assert res.returncode == 2 and "--since: expected YYYY-MM-DD" in res.stderr


def test_empty_or_missing_files_are_one_line_errors(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    header_only = tmp_path / "header.csv"
    header_only.write_text(HEADER_LINE + "\n")
    for args, msg in (([str(empty)], "empty.csv: empty file"),
                      ([str(tmp_path / "nope.csv")], "nope.csv: cannot read: No such file or directory"),
                      ([str(header_only)], "header.csv: no selection rows"),
                      ([str(tmp_path / "*.log")], "*.log: no file matches")):
        res = run_cli("analytics", *args)
        assert res.returncode == 2 and msg in res.stderr and res.stderr.count("\n") == 1, res.stderr


def test_json_schema_is_stable():
    """The shape of the JSON report (every key path and value type) is the committed one:
    changing it needs a new schema version."""
    def shape(v, at=""):
        if isinstance(v, dict):
            out = {}
            for k, x in v.items():
                out.update(shape(x, f"{at}.{k}"))
            return out
        if isinstance(v, list):
            return shape(v[0], f"{at}[]") if v else {f"{at}[]": "empty"}
        return {at: "number" if isinstance(v, (int, float)) and not isinstance(v, bool) else type(v).__name__}

    log = os.path.join(ROOT, "tests", "fixtures", "analytics_extended.csv")
    got = shape(report(log))
    golden = json.load(open(os.path.join(ROOT, "tests", "fixtures", "analytics_schema_v2.json")))
    assert got == golden


def test_exporter_and_analytics_agree_on_one_log(tmp_path, default_registry, cli):
    from prometheus_client.parser import text_string_to_metric_families

    from exporter.collectors.routing import RoutingCollector
    from exporter.exposition import render

    log = tmp_path / "sel.csv"
    res = cli("demo", "--log", str(log), "--count", "500", "--rate", "100000", "--gpu-backend", "simulated")
    assert res.returncode == 0
    with open(log, "a") as f:
        f.write("2026-01-23 08:00:00,code,x,true,0.9,1,0,oops\n")
    r = report(str(log))
    v = {}
    for fam in text_string_to_metric_families(render(RoutingCollector([str(log)], default_registry).collect(0))):
        for s in fam.samples:
            v.setdefault(s.name, []).append((s.labels, s.value))
    total = sum(x for _, x in v["orchex_router_selections_total"])
    assert total == r["total_requests"]
    secondary = sum(x for lab, x in v["orchex_router_selections_total"] if lab["primary"] == "false")
    assert secondary == r["effectiveness"]["secondary_selections"]
    conf = sum(x for _, x in v["orchex_router_selection_confidence_sum"]) / total
    mean_conf = sum(c["mean_confidence"] * c["requests"] for c in r["categories"]) / total
    assert conf == pytest.approx(mean_conf)
    dur_ms = 1000 * sum(x for _, x in v["orchex_router_selection_duration_seconds_sum"]) / total
    assert dur_ms == pytest.approx(r["effectiveness"]["mean_duration_ms"])
    fallbacks = sum(x for _, x in v["orchex_router_fallbacks_total"])
    assert fallbacks == r["effectiveness"]["fallbacks"]
    per_gpu = {}
    for lab, x in v["orchex_router_selections_total"]:
        per_gpu[lab["gpu"] or "none"] = per_gpu.get(lab["gpu"] or "none", 0) + x
    assert per_gpu == {g["gpu"]: g["selections"] for g in r["effectiveness"]["gpus"]}
    assert [x for lab, x in v["orchex_router_selection_log_parse_errors_total"] if lab["reason"] == "duration"] == \
        [r["rejected"]["by_reason"]["duration"]]


def big_log(path, mb):
    block = "".join(f"2026-01-23 08:{i // 60 % 60:02d}:{i % 60:02d},code,m{i % 5},true,0.9,{i % 97}.5,{i % 4},"
                    f"{i % 13}\n" for i in range(20000))
    with open(path, "w") as f:
        f.write(HEADER_LINE + "\n")
        for _ in range(int(mb * 1e6 // len(block)) + 1):
            f.write(block)


def peak_rss_kb(path):
    # VmHWM, not ru_maxrss: the latter survives exec and would report this test process's size.
    code = ("import sys, io, contextlib; from exporter.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()): main(['analytics', sys.argv[1], '--report', "
            "'--format', 'json'])\n"
            "print(next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:')))")
    res = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, cwd=ROOT, check=True)
    return int(res.stdout)


def test_memory_stays_flat_as_input_grows(tmp_path):
    small, large = tmp_path / "small.csv", tmp_path / "large.csv"
    big_log(small, 1)
    big_log(large, 14)  # still read in one process: only the block size should matter
    a, b = peak_rss_kb(str(small)), peak_rss_kb(str(large))
    assert b - a < 4000, (a, b)


def test_progress_bar_on_a_terminal_for_large_input(tmp_path):
    from test_gpu_monitor import run_in_pty

    path = tmp_path / "large.csv"
    big_log(path, 52)
    out = run_in_pty(["analytics", str(path)], dict(os.environ))
    assert "100% of 5" in out and "] " in out and "Total requests:" in out
    quiet = run_cli("analytics", str(path))
    assert "%" not in quiet.stderr


def test_absurd_values_are_rejected_by_reason_in_analytics_too(tmp_path, cli):
    log = tmp_path / "sel.csv"
    log.write_text(HEADER_LINE + "\n2026-01-23 09:00:00,math,phi,false,0.70,1e308,1,4.0\n"
                   "2026-01-23 09:00:01,math,phi,false,0.70,1e308,1,4.0\n"
                   "2026-01-23 09:00:02,math,phi,false,0.70,60.00,1,1e99\n"
                   "2026-01-23 09:00:03,math,phi,false,0.70,60.00,1,4.0\n")
    res = cli("analytics", "--report", "--format", "json", str(log))
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["total_requests"] == 1 and report["rejected"]["by_reason"] == {"score": 2, "duration": 1}
    assert report["categories"][0]["mean_score"] == 60.0


@pytest.mark.parametrize("kind", ["few distinct durations", "nearly all distinct"])
def test_report_percentiles_are_within_the_stated_error_of_exact_ones(tmp_path, kind):
    """Exact while the distinct durations fit; sketched past that, within the relative error the
    report states. Both against percentiles computed here from every duration."""
    import random

    from exporter.common.quantile import nearest_rank_sorted

    rng = random.Random(5)
    log = tmp_path / "sel.csv"
    durations = {}
    with open(log, "w") as f:
        f.write(HEADER_LINE + "\n")
        for i in range(40_000):
            cat = rng.choice(("code", "math", "reasoning"))
            ms = rng.choice((0.004, 0.011, 1.0, 12.0)) if kind.startswith("few") else rng.uniform(0, 2000)
            ms = float(f"{ms:.3f}")
            durations.setdefault(cat, []).append(ms)
            f.write(f"2026-01-23 09:{i // 60 % 60:02d}:{i % 60:02d},{cat},phi,true,0.9,50.00,0,{ms:.3f}\n")
    r = report(str(log))
    method, error = r["duration_percentiles"]["method"], r["duration_percentiles"]["relative_error"]
    assert (method, error) == (("exact", 0.0) if kind.startswith("few") else ("sketch", 0.01))
    every = sorted(d for ds in durations.values() for d in ds)
    rows = [(r["effectiveness"], every)] + [(c, sorted(durations[c["category"]])) for c in r["categories"]]
    for got, values in rows:
        for q in (50, 95, 99):
            exact = nearest_rank_sorted(values, q / 100)
            assert abs(got[f"duration_ms_p{q}"] - exact) <= error * exact + 1e-9, (q, got, exact)
