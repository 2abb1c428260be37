"""The selection-log reader: robustness, and the fast path agreeing with the row-by-row path."""

import gzip
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.selectionlog.reader import read
from exporter.selectionlog.rows import HEADER_LINE
from exporter.selectionlog.tally import Source, Tally

GOOD = "2026-01-23 08:00:0{s},code,gemma,true,0.95,85.5,0,12\n"


def tally_of(text, **kw):
    t = Tally(**kw)
    t.add_text(text, Source("f.csv"), final=True)
    return t


def counts(t):
    return (t.rows, dict(t.selections), dict(t.pairs), {k: round(v, 6) for k, v in t.score_sum.items()},
            {k: round(v, 6) for k, v in t.confidence_sum.items()}, dict(t.durations),
            {k: round(v, 6) for k, v in t.duration_sum.items()}, dict(t.fallbacks), dict(t.rejected), t.first,
            t.last)


def test_legacy_sample(tmp_path):
    from conftest import LEGACY

    t = Tally()
    read(f"{LEGACY}/selection_metrics_sample.csv", t)
    assert t.rows == 2 and not t.rejected
    assert t.selections == {("code", "google-gemma-3-270m-it", True, "0"): 1,
                            ("math", "google-gemma-3-270m-it", False, "1"): 1}
    assert t.confidence_sum[("math", "google-gemma-3-270m-it", False)] == 0.7
    assert sum(t.duration_sum.values()) / t.rows == 11.0


def test_crlf_blank_lines_quotes_repeated_header_and_extra_columns():
    text = (HEADER_LINE + ",fallback,reason,policy\r\n"
            "2026-01-23 08:00:00,code,gemma,true,0.95,85.5,0,12,false,,default\r\n"
            "\r\n"
            '2026-01-23 08:00:01,code,"gemma",true,0.95,85.5,0,1.5,true,"a, quoted reason",default\r\n'
            + HEADER_LINE + "\r\n"
            "2026-01-23 08:00:02,math,phi,false,0.70,60,,3\r\n")
    t = tally_of(text)
    assert t.rows == 3 and not t.rejected
    assert t.fallbacks == {("code", "gemma"): 1}
    assert t.selections[("math", "phi", False, "")] == 1
    assert t.durations[("code", 1.5)] == 1


@pytest.mark.parametrize("row,reason", [
    ("2026-01-23 08:00:00,code,gemma,true,0.95,85.5,0", "columns"),
    ("2026-13-23 08:00:00,code,gemma,true,0.95,85.5,0,12", "timestamp"),
    ("yesterday,code,gemma,true,0.95,85.5,0,12", "timestamp"),
    ("2026-01-23 08:00:00,,gemma,true,0.95,85.5,0,12", "category"),
    ("2026-01-23 08:00:00,code,,true,0.95,85.5,0,12", "model"),
    ("2026-01-23 08:00:00,code,gemma,yes,0.95,85.5,0,12", "primary"),
    ("2026-01-23 08:00:00,code,gemma,true,1.5,85.5,0,12", "confidence"),
    ("2026-01-23 08:00:00,code,gemma,true,0.95,nan,0,12", "score"),
    ("2026-01-23 08:00:00,code,gemma,true,0.95,85.5,gpu0,12", "gpu"),
    ("2026-01-23 08:00:00,code,gemma,true,0.95,85.5,0,-1", "duration"),
    ('2026-01-23 08:00:00,code,"gemma,true,0.95,85.5,0,12', "quoting"),
])
def test_each_rejection_reason_with_file_and_line(row, reason):
    t = tally_of(GOOD.format(s=1) + row + "\n" + GOOD.format(s=2))
    assert t.rows == 2 and t.rejected == {reason: 1}
    assert t.examples == [("f.csv", 2, reason)]


def test_truncated_last_line():
    t = tally_of(GOOD.format(s=1) + "2026-01-23 08:00:02,code,gem")
    assert t.rows == 1 and t.rejected == {"truncated": 1}
    t = tally_of(GOOD.format(s=1) + GOOD.format(s=2).rstrip("\n"))  # whole but without its newline
    assert t.rows == 2 and not t.rejected


def test_non_utf8_lines_are_rejected_alone(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_bytes(GOOD.format(s=1).encode() + b"2026-01-23 08:00:02,code,g\xffmma,true,0.9,1,0,1\n"
                  + GOOD.format(s=3).encode())
    t = Tally()
    read(str(p), t)
    assert t.rows == 2 and t.rejected == {"encoding": 1} and t.examples == [(str(p), 2, "encoding")]


def test_gzip_input(tmp_path):
    p = tmp_path / "log.csv.gz"
    p.write_bytes(gzip.compress((HEADER_LINE + "\n" + GOOD.format(s=1) * 3).encode()))
    t = Tally()
    read(str(p), t)
    assert t.rows == 3


def test_since_until_window():
    text = "".join(GOOD.format(s=s) for s in range(6))
    t = tally_of(text, since="2026-01-23 08:00:02", until="2026-01-23 08:00:04")
    assert t.rows == 2 and (t.first, t.last) == ("2026-01-23 08:00:02", "2026-01-23 08:00:03")


def test_buckets_instead_of_exact_durations():
    t = tally_of(GOOD.format(s=1) + GOOD.format(s=2).replace(",12\n", ",0.05\n"), buckets=(0.0001, 0.001, 0.1))
    assert t.durations == {("code", 0): 1, ("code", 2): 1}  # 0.05 ms in le=0.0001 s; 12 ms in le=0.1 s


# --- the fast path and the row-by-row path agree ------------------------------------------------------

ROW = st.builds(
    lambda s, cat, model, prim, conf, score, gpu, dur, fb: (
        f"2026-01-{(s % 28) + 1:02d} 0{s % 10}:00:{s % 60:02d},{cat},{model},{prim},{conf},{score},{gpu},{dur}"
        + (f",{fb},reason,default" if fb is not None else "")),
    st.integers(0, 10**6), st.sampled_from(["code", "math", ""]), st.sampled_from(["a", "b", "c,d", ""]),
    st.sampled_from(["true", "false", "maybe"]), st.sampled_from(["0.95", "0.7", "0.9", "2", "x"]),
    st.sampled_from(["70.00", "85.5", "1e3", "inf"]), st.sampled_from(["0", "1", "", "x"]),
    st.sampled_from(["12", "1.5", "0.004", "-3", "z"]), st.sampled_from([None, "true", "false"]))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(ROW, ROW, ROW, st.just(""), st.just(HEADER_LINE)), max_size=60), st.randoms())
def test_any_chunking_gives_the_row_by_row_counts(lines, rnd):
    text = "".join(line + "\n" for line in lines)
    reference = Tally()
    reference._slow(text, Source("f"))
    chunked = Tally()
    src = Source("f")
    cuts = sorted(rnd.sample(range(len(lines) + 1), min(3, len(lines) + 1)))
    all_lines = text.splitlines(keepends=True)
    start = 0
    for cut in cuts + [len(all_lines)]:
        chunked.add_text("".join(all_lines[start:cut]), src)
        start = cut
    assert counts(chunked) == counts(reference)
    assert chunked.examples == reference.examples[: len(chunked.examples)]


def test_plain_rows_are_counted_by_the_c_fold_and_others_by_the_python_path():
    from exporter.selectionlog import tally as tally_module

    rows = "".join(f"2026-01-23 08:{i // 60:02d}:{i % 60:02d},code,m{i % 3},true,0.9,{i}.5,{i % 2},{i % 7}\n"
                   for i in range(500))
    t, src = Tally(), Source("f")
    assert t.add_plain(rows, src) and t.rows == 500 and src.line == 501
    assert tally_module._kernel is not None
    quoted = Tally()
    assert not quoted.add_plain(rows.replace("code", '"code"'), Source("f")) and quoted.rows == 0
    quoted.add_text(rows.replace("code", '"code"'), Source("f"))
    assert quoted.rows == 500 and quoted.selections == t.selections


def test_random_large_mix_matches(tmp_path):
    rng = random.Random(5)
    lines = []
    for i in range(20000):
        bad = rng.random() < 0.01
        lines.append(f"2026-01-23 08:00:{i % 60:02d},c{i % 9},m{i % 40},{'true' if i % 3 else 'false'},0.9,"
                     f"{rng.uniform(0, 100):.2f},{i % 8},{'x' if bad else rng.randint(0, 30)}")
    p = tmp_path / "big.csv"
    p.write_text(HEADER_LINE + "\n" + "\n".join(lines) + "\n")
    fast = Tally()
    read(str(p), fast)
    slow = Tally()
    slow._slow(p.read_text(), Source(str(p)))
    assert counts(fast) == counts(slow) and fast.rejected["duration"] > 100
