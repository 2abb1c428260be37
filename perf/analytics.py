"""Wall time (whole process, interpreter start included) and peak memory of
`orchex analytics FILE --report --format json` on two kinds of generated log, each of 10,000 and
1,000,000 rows, beside equivalent DuckDB and pandas queries run in the same benchmark on the same files:
our own selector's logs (a handful of distinct durations and confidences, orchex's extra columns), and
another router's (perf/gen_log.generate_distinct: durations 0-2000 ms and confidences with three
decimals, nearly every duration distinct, the eight legacy columns). Also the routing collector's
ingest rate on both, and where a 10,000-row report's time goes (start-up step by step, then the work).
Targets: 10,000 rows under 50 ms; 1,000,000 rows at most 1.0x DuckDB's time
(distinct) and 0.6x (ours), under 40 MB per process; ingest at least 200,000 rows/s."""

import json
import os
import statistics
import subprocess
import sys
import time

from perf.common import ROOT, ingest_seconds, save, verdict
from perf.gen_log import generate, generate_distinct

# Each runner prints its own peak RSS (KiB) and its children's (orchex reads a large file in two
# processes) on the last line of standard error. Its own is VmHWM: getrusage's ru_maxrss survives
# exec on Linux, so it would report the benchmark's own size, inherited through fork.
PEAK = ("import resource, sys\n"
        "def _peak():\n"
        "    me = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:'))\n"
        "    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "    print(me, kids, file=sys.stderr)\n")
ORCHEX = PEAK + ("from exporter.cli import main\n"
                 "rc = main(['analytics', sys.argv[1], '--report', '--format', 'json'])\n_peak()\nsys.exit(rc)\n")
DUCKDB = PEAK + """import duckdb, json
con = duckdb.connect()
con.execute("create table s as select * from read_csv(?, header=true, auto_detect=true)", [sys.argv[1]])
if "fallback" not in [c[0] for c in con.execute("describe s").fetchall()]:
    con.execute("alter table s add column fallback boolean default false")
q = {
 "categories": '''select task_category, count(*), count(distinct selected_model), avg(final_score),
   avg(confidence_score), avg(selection_duration_ms), quantile_disc(selection_duration_ms, [0.5, 0.95, 0.99]),
   sum(case when fallback then 1 else 0 end) from s group by 1 order by 2 desc, 1''',
 "models": '''select selected_model, count(*), count(distinct task_category), avg(final_score),
   sum(case when primary_category then 1 else 0 end), sum(case when primary_category then 0 else 1 end)
   from s group by 1 order by 2 desc, 1''',
 "gpus": "select gpu_id, count(*), count(*) / (select count(*) from s) from s group by 1 order by 2 desc",
 "effectiveness": '''select count(*), count(distinct selected_model), sum(case when primary_category then 0 else 1 end),
   avg(case when primary_category then null else confidence_score end), avg(selection_duration_ms),
   min(timestamp), max(timestamp), sum(case when fallback then 1 else 0 end) from s''',
}
print(json.dumps({k: con.execute(v).fetchall() for k, v in q.items()}, default=str))
_peak()
"""
PANDAS = PEAK + """import pandas as pd, json
df = pd.read_csv(sys.argv[1])
if "fallback" not in df:
    df["fallback"] = False
cats = df.groupby("task_category").agg(requests=("selected_model", "size"), models=("selected_model", "nunique"),
    score=("final_score", "mean"), conf=("confidence_score", "mean"), dur=("selection_duration_ms", "mean"),
    p50=("selection_duration_ms", lambda x: x.quantile(.5)), p95=("selection_duration_ms", lambda x: x.quantile(.95)),
    p99=("selection_duration_ms", lambda x: x.quantile(.99)), fallbacks=("fallback", "sum"))
models = df.groupby("selected_model").agg(requests=("task_category", "size"), cats=("task_category", "nunique"),
    score=("final_score", "mean"), primary=("primary_category", "sum"))
gpus = df["gpu_id"].value_counts()
sec = df[~df["primary_category"]]
eff = [len(df), df["selected_model"].nunique(), len(sec), sec["confidence_score"].mean(),
       df["selection_duration_ms"].mean(), df["timestamp"].min(), df["timestamp"].max()]
print(json.dumps({"c": cats.reset_index().values.tolist(), "m": models.reset_index().values.tolist(),
                  "g": gpus.to_dict(), "e": eff}, default=str))
_peak()
"""


def run(code, path, runs):
    walls, peaks = [], []
    for _ in range(runs):
        t = time.perf_counter()
        res = subprocess.run([sys.executable, "-c", code, path], cwd=ROOT, capture_output=True, text=True)
        walls.append(time.perf_counter() - t)
        if res.returncode != 0:
            raise RuntimeError(res.stderr[-2000:])
        me, kids = map(int, res.stderr.strip().splitlines()[-1].split())
        peaks.append((me, kids))
    me, kids = max(p[0] for p in peaks), max(p[1] for p in peaks)
    return {"median_s": statistics.median(walls), "min_s": min(walls), "runs": runs,
            "peak_rss_mb": me / 1024, "peak_rss_children_mb": kids / 1024, "peak_rss_sum_mb": (me + kids) / 1024}


def peers():
    out = {}
    for name in ("duckdb", "pandas"):
        try:
            __import__(name)
            out[name] = {"duckdb": DUCKDB, "pandas": PANDAS}[name]
        except ImportError:
            print(f"  ({name} not installed: `pip install -e '.[perf]'` adds it)")
    return out


KINDS = {"ours": generate, "distinct": generate_distinct}

# Where a 10,000-row report's time goes: whole processes, each doing one more step than the one
# before, run in turn (rounds interleaved, so a slow moment of the machine hits every step alike).
STEPS = (
    ("the interpreter alone (`python -c pass`)", "pass"),
    ("importing exporter.cli", "import exporter.cli"),
    ("importing the report's modules and both C kernels",
     "import exporter.cli, exporter.commands.analytics, exporter.analytics.render, exporter.analytics.stats, "
     "exporter.selectionlog.reader"),
)


def startup(paths, rounds=40):
    """Medians of the steps of STEPS, then of the report on each 10,000-row log."""
    steps = [(label, [sys.executable, "-c", code]) for label, code in STEPS]
    reports = [(f"the report on 10,000 rows, {kind}", [sys.executable, "-c", ORCHEX, path]) for kind, path in paths]
    steps += reports
    walls = {label: [] for label, _ in steps}
    for _ in range(rounds):
        for label, argv in steps:
            t = time.perf_counter()
            subprocess.run(argv, cwd=ROOT, capture_output=True, check=True)
            walls[label].append(time.perf_counter() - t)
    out, before = [], None
    for label, argv in steps:
        median = statistics.median(walls[label])
        added = None if before is None else median - before
        out.append({"step": label, "median_s": median, "added_s": added})
        print(f"  {label:<52} {median * 1e3:6.1f} ms" + (f"  (+{added * 1e3:.1f})" if added is not None else ""))
        if (label, argv) not in reports:  # each report is added to the last import step
            before = median
    return out


def ingest(path):
    """Rows per second through the routing collector (follower, checks, label caps, histogram)."""
    from exporter.routing import registry

    took, rows = ingest_seconds(path, registry.load())
    return {"rows": rows, "seconds": took, "rows_per_second": rows / took}


def main(tmp):
    results = {}
    for kind, make in KINDS.items():
        for rows, runs in ((10_000, 15), (1_000_000, 3)):
            path = str(tmp / f"{kind}_{rows}.csv")
            make(path, rows)
            size = os.path.getsize(path)
            r = {"kind": kind, "rows": rows, "bytes": size, "orchex": run(ORCHEX, path, runs)}
            for name, code in peers().items():
                r[name] = run(code, path, runs)
            if rows == 1_000_000:
                r["ingest"] = ingest(path)
            results[f"{kind}_{rows}"] = r
            o = r["orchex"]
            line = (f"{kind:>8} {rows:>9,} rows ({size / 1e6:5.1f} MB): orchex {o['median_s']:.3f} s, peak "
                    f"{o['peak_rss_mb']:.1f}" + (f" + {o['peak_rss_children_mb']:.1f}" if o["peak_rss_children_mb"]
                                                 else "") + " MB")
            for name in ("duckdb", "pandas"):
                if name in r:
                    r[f"ratio_to_{name}"] = o["median_s"] / r[name]["median_s"]
                    line += (f" | {name} {r[name]['median_s']:.3f} s, {r[name]['peak_rss_mb']:.0f} MB "
                             f"(orchex {r[f'ratio_to_{name}']:.2f}x)")
            print(line)
            if "ingest" in r:
                print(f"{kind:>8} routing collector ingest: {r['ingest']['rows_per_second']:,.0f} rows/s")
    print("where a 10,000-row report's time goes (medians of interleaved whole processes):")
    results["startup"] = startup([(kind, str(tmp / f"{kind}_10000.csv")) for kind in KINDS])
    verdicts = {}
    for kind, limit in (("distinct", 1.0), ("ours", 0.6)):
        large, small = results[f"{kind}_1000000"], results[f"{kind}_10000"]
        verdicts[f"{kind}_10k_under_50ms"] = verdict(small["orchex"]["median_s"], 0.050)
        verdicts[f"{kind}_1M_under_40MB_per_process"] = verdict(
            max(large["orchex"]["peak_rss_mb"], large["orchex"]["peak_rss_children_mb"]), 40.0)
        if "duckdb" in large:
            verdicts[f"{kind}_1M_at_most_{limit}x_duckdb"] = verdict(large["ratio_to_duckdb"], limit)
        verdicts[f"{kind}_ingest_200k"] = verdict(large["ingest"]["rows_per_second"], 200_000, False)
    print(f"targets: {json.dumps(verdicts)}")
    return save("analytics", {"results": results, "verdicts": verdicts})
