"""Wall time (whole process, interpreter start included) and peak memory of
`orchex analytics FILE --report --format json` on two kinds of generated log, each of 10,000 and
1,000,000 rows, beside equivalent DuckDB, polars and pandas queries run in the same benchmark on the
same files: our own selector's logs (a handful of distinct durations and confidences, orchex's extra
columns), and another router's (perf/gen_log.generate_distinct: durations 0-2000 ms and confidences
with three decimals, nearly every duration distinct, the eight legacy columns). Also the routing
collector's ingest rate on both, and a block of blank lines read with and without the C kernel.
Targets: 1,000,000 rows ahead of DuckDB and polars, under 40 MB per process; ingest at least 200,000
rows/s; blank lines no slower with the kernel than without."""

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
POLARS = PEAK + """import polars as pl, json
df = pl.read_csv(sys.argv[1], infer_schema_length=10000)
if "fallback" not in df.columns:
    df = df.with_columns(pl.lit(False).alias("fallback"))
dur = pl.col("selection_duration_ms")
cats = df.group_by("task_category").agg(pl.len(), pl.col("selected_model").n_unique(), pl.col("final_score").mean(),
    pl.col("confidence_score").mean(), dur.mean(), *(dur.quantile(q, "nearest").alias(f"p{q}") for q in (.5, .95, .99)),
    pl.col("fallback").cast(pl.Int64).sum())
models = df.group_by("selected_model").agg(pl.len(), pl.col("task_category").n_unique(), pl.col("final_score").mean(),
    pl.col("primary_category").cast(pl.Int64).sum())
gpus = df.group_by("gpu_id").agg(pl.len())
sec = df.filter(~pl.col("primary_category"))
eff = [df.height, df["selected_model"].n_unique(), sec.height, sec["confidence_score"].mean(),
       df["selection_duration_ms"].mean(), df["timestamp"].min(), df["timestamp"].max()]
print(json.dumps({"c": cats.rows(), "m": models.rows(), "g": gpus.rows(), "e": eff}, default=str))
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
    for name in ("duckdb", "polars", "pandas"):
        try:
            __import__(name)
            out[name] = {"duckdb": DUCKDB, "polars": POLARS, "pandas": PANDAS}[name]
        except ImportError:
            print(f"  ({name} not installed: `pip install -e '.[perf]'` adds it)")
    return out


KINDS = {"ours": generate, "distinct": generate_distinct}

def ingest(path):
    """Rows per second through the routing collector (follower, checks, label caps, histogram)."""
    from exporter.routing import registry

    took, rows = ingest_seconds(path, registry.load())
    return {"rows": rows, "seconds": took, "rows_per_second": rows / took}


def blank_lines(tmp, megabytes=100):
    """Seconds to read a log that is one row, 100 MB of blank lines and one row, with the C kernel and
    without it, in this process (best of 3 each)."""
    from exporter.selectionlog import reader
    from exporter.selectionlog import tally as tally_module

    path = tmp / "blank.csv"
    row = "2026-01-23 08:00:00,code,m1,true,0.5,70.00,3,0.004\n"
    with open(path, "w") as f:
        f.write(row + "\n" * (megabytes << 20) + row)
    kernel, out = tally_module._kernel, {}
    try:
        for name, k in (("c", kernel), ("python", None)):
            tally_module._kernel = k
            walls = []
            for _ in range(3):
                t = time.perf_counter()
                reader.read(str(path), tally_module.Tally())
                walls.append(time.perf_counter() - t)
            out[f"{name}_s"] = min(walls)
    finally:
        tally_module._kernel = kernel
    path.unlink()
    return out


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
            for name in ("duckdb", "polars", "pandas"):
                if name in r:
                    r[f"ratio_to_{name}"] = o["median_s"] / r[name]["median_s"]
                    line += (f" | {name} {r[name]['median_s']:.3f} s, {r[name]['peak_rss_mb']:.0f} MB "
                             f"(orchex {r[f'ratio_to_{name}']:.2f}x)")
            print(line)
            if "ingest" in r:
                print(f"{kind:>8} routing collector ingest: {r['ingest']['rows_per_second']:,.0f} rows/s")
    results["blank_lines_100mb"] = b = blank_lines(tmp)
    print(f"100 MB of blank lines: C kernel {b['c_s']:.2f} s, Python alone {b['python_s']:.2f} s")
    verdicts = {"blank_lines_no_slower_with_kernel": verdict(b["c_s"], b["python_s"] * 1.1)}
    for kind in ("distinct", "ours"):
        large = results[f"{kind}_1000000"]
        verdicts[f"{kind}_1M_under_40MB_per_process"] = verdict(
            max(large["orchex"]["peak_rss_mb"], large["orchex"]["peak_rss_children_mb"]), 40.0)
        for peer in ("duckdb", "polars"):
            if peer in large:
                verdicts[f"{kind}_1M_ahead_of_{peer}"] = verdict(large[f"ratio_to_{peer}"], 1.0)
        verdicts[f"{kind}_ingest_200k"] = verdict(large["ingest"]["rows_per_second"], 200_000, False)
    print(f"targets: {json.dumps(verdicts)}")
    return save("analytics", {"results": results, "verdicts": verdicts})
