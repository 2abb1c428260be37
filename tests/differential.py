"""The C fold and the Python path held to the same result on generated hostile logs: every count,
every float sum to the last bit, every rejection with its file and line, and the report built from
them. tests/test_differential.py runs it; `make fuzz` runs it for a set time against the fold built
with AddressSanitizer and UndefinedBehaviorSanitizer (tools/fuzz.py)."""

import copy
import os
import tempfile

from hypothesis import strategies as st

from exporter.analytics import render, stats
from exporter.selectionlog import reader
from exporter.selectionlog import tally as tally_module
from exporter.selectionlog.rows import HEADER_LINE

STATE = ("rows", "extended", "selections", "pairs", "confidence_sum", "score_sum", "duration_sum", "fallbacks",
         "durations", "sketch", "first", "last", "rejected", "examples", "overflow", "outside")

DIGITS = "0123456789"
NUMBER = st.one_of(
    st.floats(0, 1).map(repr), st.integers(0, 10**7).map(str), st.floats(-2e6, 2e6).map(lambda x: f"{x:.3f}"),
    st.sampled_from(["1.", ".5", "1e-3", "+0.5", "-0", "1e400", "nan", "inf", "0x10", "1_0", " 1", "1 ", "",
                     "\u0660.5", "\uff11", "5e", "--1", "1e-400", "0.12345678901234567", "1" * 30]))
TIMESTAMP = st.one_of(
    st.builds(lambda d, h, m: f"2026-01-{d:02d} {h:02d}:{m:02d}:00", st.integers(1, 31), st.integers(0, 23),
              st.integers(0, 59)),
    st.sampled_from(["2026-13-01 00:00:00", "2026-01-01", "\u0662\u0660\u0662\u0666-01-01 00:00:00", "",
                     "2026-01-01T00:00:00", "timestamp"]))
TEXT = st.one_of(st.sampled_from(["code", "math", "m1", "é", "模型", "", "a b", "x\"y", "other"]),
                 st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n,\r\""),
                         max_size=6))
GPU = st.one_of(st.sampled_from(["", "0", "3", "123456", "1234567", "-1", "\u0663", "a"]), st.integers(0, 99).map(str))
ROW = st.builds(lambda *f: ",".join(f), TIMESTAMP, TEXT, TEXT, st.sampled_from(["true", "false", "True", ""]),
                NUMBER, NUMBER, GPU, NUMBER)
EXTENDED = st.builds(lambda row, fb: f"{row},{fb},reason,policy", ROW, st.sampled_from(["true", "false", ""]))
LINE = st.one_of(ROW, ROW, ROW, EXTENDED, st.just(HEADER_LINE), st.just(HEADER_LINE + ",fallback,reason,policy"),
                 st.just(""), st.just("   "), st.text(max_size=20).filter(lambda t: "\n" not in t),
                 ROW.map(lambda r: r + "\r"), ROW.map(lambda r: '"' + r.replace(",", '","') + '"'),
                 ROW.map(lambda r: r + "," + "x" * 70_000))
# Plainly valid rows in every number form, which the C fold counts itself; a few hostile lines
# among them send their block to the Python path.
VALID_NUMBER = st.one_of(st.floats(0, 1).map(repr), st.floats(0, 1).map(lambda x: f"{x:.3f}"),
                         st.sampled_from(["1.", ".5", "0.", "1e-3", "1E-2", "+0.5", "0007.25", "0", "-0.0",
                                          "0.12345678901234567", "123456789012345678e-18", "1e-30"]))
VALID_ROW = st.builds(lambda ts, cat, model, primary, conf, score, gpu, dur: ",".join(
    (ts, cat, model, primary, conf, score, gpu, dur)),
    st.builds(lambda d, h, m: f"2026-01-{d:02d} {h:02d}:{m:02d}:00", st.integers(1, 31), st.integers(0, 23),
              st.integers(0, 59)), st.sampled_from(["code", "math", "é", "模型"]),
    st.sampled_from(["m1", "m2", "deepseek"]), st.sampled_from(["true", "false"]), VALID_NUMBER,
    st.one_of(VALID_NUMBER, st.floats(-1e6, 1e6).map(repr)), st.sampled_from(["", "0", "7", "123456"]),
    st.one_of(VALID_NUMBER, st.floats(0, 1e7).map(repr), st.floats(0, 2000).map(lambda x: f"{x:.3f}")))
PLAIN = st.builds(lambda head, extended, lines: ([HEADER_LINE] if head else []) + [
    r + ",true,r,p" if extended else r for r in lines], st.booleans(), st.booleans(),
    st.lists(VALID_ROW, min_size=1, max_size=200))
HOSTILE = st.lists(LINE, max_size=60)
LOG = st.builds(lambda lines, end, junk: ("\n".join(lines) + ("\n" if end else "")).encode("utf-8", "surrogatepass")
                + junk, st.one_of(PLAIN, PLAIN, HOSTILE, st.builds(lambda a, b: a + b, PLAIN, HOSTILE)), st.booleans(),
                st.sampled_from([b"", b"", b"\xff\xfe bad bytes\n", b"\xc3\n"]))


def read_with(path: str, kernel) -> tally_module.Tally:
    """A report's tally of the file at `path`, read with `kernel` as the C fold (None: Python alone)."""
    saved = tally_module._kernel
    tally_module._kernel = kernel
    try:
        t = tally_module.Tally()
        reader.read(path, t)
        return t
    finally:
        tally_module._kernel = saved


def state(t):
    out = {name: copy.deepcopy(getattr(t, name)) for name in STATE}
    for name in ("confidence_sum", "score_sum", "duration_sum"):  # to the last bit, -0.0 and NaN included
        out[name] = {k: v.hex() for k, v in out[name].items()}
    return out


def disagreement(data: bytes, kernel) -> str | None:
    """None when both paths give the same tally and the same report; else what differs."""
    fd, path = tempfile.mkstemp(suffix=".csv")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        c, p = read_with(path, kernel), read_with(path, None)
    finally:
        os.unlink(path)
    sc, sp = state(c), state(p)
    for name in STATE:
        if sc[name] != sp[name]:
            return f"{name}: C {sc[name]!r} != Python {sp[name]!r}"
    if c.rows:
        rc, rp = (render.as_json(stats.compute(t, ["log.csv"], "2026-01-01T00:00:00Z")) for t in (c, p))
        if rc != rp:
            return "the reports differ"
    return None
