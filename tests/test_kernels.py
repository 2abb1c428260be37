"""The C kernels against the Python they stand in for. The fold (exporter/selectionlog/_fold.c):
the same counts and the same float sums to the last bit, on plain chunks of every number form, for
a report's tally and for the exporter's, which renames, budgets and buckets what the fold counted; and
None, with nothing counted, for every chunk it should leave to Python."""

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.selectionlog import tally as tally_module
from exporter.selectionlog.tally import Source, Tally

KERNEL = tally_module._kernel
STATE = ("rows", "extended", "selections", "pairs", "confidence_sum", "score_sum", "duration_sum", "fallbacks",
         "durations", "sketch", "first", "last", "rejected", "overflow")


def test_the_kernel_is_built():
    """make install compiles it (gcc is a system dependency); without it the reports are 3-4x slower."""
    assert KERNEL is not None, "exporter/selectionlog/_fold.c was not built: is a C compiler installed?"


def state(t):
    return {name: copy.deepcopy(getattr(t, name)) for name in STATE}


def python_fold(text, sketch=False, fallback=8):
    t = Tally()
    if sketch:
        t._to_sketch()
    src = Source("f")
    src.fallback = fallback
    kernel, tally_module._kernel = tally_module._kernel, None
    try:
        t.add_text(text, src)
        assert not t.rejected, t.examples
    finally:
        tally_module._kernel = kernel
    return t


def c_fold(text, sketch=False, fallback=8):
    t = Tally()
    if sketch:
        t._to_sketch()
    got = KERNEL.fold(text, fallback, sketch, t)
    assert got is not None, text[:200]
    t._apply(*got)
    return t


NUMBER = st.one_of(
    st.floats(0, 1).map(repr), st.floats(0, 1).map(lambda x: f"{x:.3f}"), st.integers(0, 10**6).map(str),
    st.sampled_from(["1.", ".5", "0.", "1e-3", "1E-2", "+0.5", "0007.25", "5e2", "0.12345678901234567",
                     "123456789012345678e-18", "1e-30", "0.1e1", "7.0E+0"]))
SCORE = st.one_of(NUMBER, st.floats(-1e6, 1e6).map(repr), st.sampled_from(["-85.5", "-1e6", "1000000"]))
DURATION = st.one_of(st.floats(0, 1e7).map(repr), st.floats(0, 2000).map(lambda x: f"{x:.3f}"),
                     st.sampled_from(["0", "0.0", "12", "1e7", "0.000001", "3e-9"]))


def plain_row(ts, cat, model, prim, conf, score, gpu, dur, fb):
    row = f"2026-01-{ts % 28 + 1:02d} {ts % 24:02d}:{ts % 60:02d}:{ts % 59:02d},{cat},{model},{prim},{conf},{score},"
    row += f"{gpu},{dur}"
    return row + (f",{fb},r,p" if fb is not None else ",,r,p") + "\n"


ROWS = st.lists(st.builds(plain_row, st.integers(0, 10**6), st.sampled_from(["code", "math", "vision", "é"]),
                          st.sampled_from(["m1", "m2", "模型"]), st.sampled_from(["true", "false"]),
                          NUMBER.filter(lambda v: 0 <= float(v) <= 1), SCORE, st.sampled_from(["", "0", "7", "123456"]),
                          DURATION.filter(lambda v: 0 <= float(v) <= 1e7 and float(v) == float(v)),
                          st.sampled_from([None, "true", "false"])), min_size=1, max_size=80)


@settings(max_examples=300, deadline=None)
@given(ROWS, st.booleans())
def test_plain_chunks_fold_to_the_same_bits(rows, sketch):
    """From text, and from the UTF-8 bytes the reader hands over undecoded."""
    text = "".join(rows)
    expected = state(python_fold(text, sketch))
    assert state(c_fold(text, sketch)) == expected
    assert state(c_fold(memoryview(text.encode()), sketch)) == expected


def test_float_sums_agree_to_the_last_bit_over_many_rows():
    rows = [plain_row(i, f"c{i % 3}", f"m{i % 5}", "true" if i % 2 else "false", f"0.{(i * 7919) % 1000:03d}",
                      f"{(i * 104729) % 100000 / 1000:.3f}", str(i % 8), f"{(i * 15485863) % 2000000 / 1000:.3f}",
                      "true" if i % 11 == 0 else "false") for i in range(20000)]
    text = "".join(rows)
    c, p = c_fold(text), python_fold(text)
    assert state(c) == state(p)
    assert c.sketch and not c.durations and c.fallbacks  # past EXACT_LIMIT distinct durations: sketched


GOOD = "2026-01-23 08:00:00,code,m1,true,0.9,85.5,0,12\n"


@pytest.mark.parametrize("bad", [
    "\n", "2026-01-23 08:00:00,code,m1,true,0.9,85.5,0\n",  # a blank line, seven columns
    "2026-13-23 08:00:00,code,m1,true,0.9,85.5,0,12\n", "2026-01-23 24:00:00,code,m1,true,0.9,85.5,0,12\n",
    "2026-01-23 08:00:00,,m1,true,0.9,85.5,0,12\n", "2026-01-23 08:00:00,code,,true,0.9,85.5,0,12\n",
    "2026-01-23 08:00:00,code,m1,yes,0.9,85.5,0,12\n", "2026-01-23 08:00:00,code,m1,true,1.5,85.5,0,12\n",
    "2026-01-23 08:00:00,code,m1,true, 0.9,85.5,0,12\n", "2026-01-23 08:00:00,code,m1,true,0.9,1e7,0,12\n",
    "2026-01-23 08:00:00,code,m1,true,0.9,85.5,x,12\n", "2026-01-23 08:00:00,code,m1,true,0.9,85.5,1234567,12\n",
    "2026-01-23 08:00:00,code,m1,true,0.9,85.5,0,-1\n", "2026-01-23 08:00:00,code,m1,true,0.9,85.5,0,-0\n",
    "2026-01-23 08:00:00,code,m1,true,0.9,85.5,0,inf\n", "2026-01-23 08:00:00,code,m1,true,0.9,85.5,0,nan\n",
    "2026-01-23 08:00:00,code,m1,true,0.9,85.5,0,1_0\n", "2026-01-23 08:00:00,code,m1,true,0.9,85.5,0,0x10\n",
    "2026-01-23 08:00:00,code,m1,true,0.9,85.5,0,1e\n", "2026-01-23 08:00:00,code,m1,true,0.9,85.5,0,.\n",
    "2026-01-23 08:00:00,code,m1,true,0.9,85.5,0,12,extra\n",  # a ragged chunk
    "2026-01-23 08:00:00,code,m1,true,0.9,85.5,٣,12\n",  # a digit Python's regex takes and C leaves to it
    GOOD.rstrip("\n"),  # no final newline
])
def test_it_declines_what_python_must_judge_and_counts_nothing(bad):
    for chunk in (GOOD * 3 + bad, (GOOD * 3 + bad).encode()):
        t = Tally()
        before = state(t)
        assert KERNEL.fold(chunk, 8, False, t) is None
        assert state(t) == before


@pytest.mark.parametrize("bad", [
    GOOD.replace("code", '"code"'), GOOD.replace("code", 'co"de'),  # csv quoting is Python's to read
    GOOD.replace("\n", "\r\n"), GOOD.replace(",m1,", ",m\r1,"),  # so are carriage returns
])
def test_it_declines_quotes_and_carriage_returns_in_text_and_bytes(bad):
    for chunk in (GOOD * 2 + bad, (GOOD * 2 + bad).encode()):
        assert KERNEL.fold(chunk, 8, False, Tally()) is None


@pytest.mark.parametrize("bad", [
    b"\xff", b"\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",  # lone, cut, overlong, surrogate, > U+10FFFF
])
@pytest.mark.parametrize("where", ["category", "policy"])
def test_it_declines_bytes_that_are_not_utf8_wherever_they_are(bad, where):
    """The reader then decodes the chunk, which rejects just that line as `encoding`. The policy column
    is never decoded by the kernel, so only the whole-chunk check can catch it there."""
    row = b"2026-01-23 08:00:00,code,m1,true,0.9,85.5,0,12,false,r,p\n"
    row = row.replace(b"code", b"co" + bad) if where == "category" else row.replace(b",p\n", b",p" + bad + b"\n")
    good = GOOD.replace("\n", ",false,r,p\n").encode()
    chunk = good * 2 + row + good
    t = Tally()
    before = state(t)
    assert KERNEL.fold(chunk, 8, False, t) is None and state(t) == before


def test_it_reads_bytes_of_multibyte_utf8_as_their_text():
    rows = GOOD.replace("code", "é模型").replace("\n", ",false,r,ü\n")
    from_bytes, from_text = Tally(), Tally()
    from_bytes._apply(*KERNEL.fold(rows.encode() * 3, 8, False, from_bytes))
    from_text._apply(*KERNEL.fold(rows * 3, 8, False, from_text))
    assert state(from_bytes) == state(from_text) and from_bytes.rows == 3 and "é模型" in from_bytes.duration_sum


def test_the_reader_hands_plain_rows_to_the_kernel_as_read_and_decodes_only_the_header(tmp_path):
    """A header, then plain rows: the header is decoded on its own, and the rows reach the kernel as the
    bytes of the block (no decoded copy of the block, no copy cut from behind the header)."""
    from exporter.selectionlog.reader import read

    log = tmp_path / "s.csv"
    log.write_text("timestamp,task_category,selected_model,primary_category,confidence_score,final_score,"
                   "gpu_id,selection_duration_ms\n" + GOOD * 5)
    seen = []

    class Spy:
        def fold(self, chunk, *args):
            seen.append(type(chunk).__name__)
            return KERNEL.fold(chunk, *args)

    kernel, tally_module._kernel = tally_module._kernel, Spy()
    try:
        t = Tally()
        src = read(str(log), t)
    finally:
        tally_module._kernel = kernel
    assert seen == ["memoryview"] and t.rows == 5 and src.line == 7 and not t.rejected


def test_a_report_tally_is_folded_into_and_the_exporters_adds_a_chunk_folded_on_its_own():
    assert Tally()._plain()
    assert not Tally(buckets=(0.1, 1.0))._plain() and not Tally(since="2026-01-01 00:00:00")._plain()
    assert not Tally(label=lambda kind, value: value)._plain()
    into = []

    class Spy:
        def fold(self, chunk, fallback, sketch, tally):
            into.append(tally)
            return KERNEL.fold(chunk, fallback, sketch, tally)

    kernel, tally_module._kernel = tally_module._kernel, Spy()
    tallies = (Tally(), exporter_tally(), Tally(since="2026-01-01 00:00:00"))
    try:
        for t in tallies:
            t.add_text(GOOD, Source("f"))
            assert t.rows == 1
    finally:
        tally_module._kernel = kernel
    # A time window is the Python path's alone.
    assert len(into) == 2 and into[0] is tallies[0] and into[1] is not tallies[1] and into[1].rows == 1


def exporter_tally(max_values=2, max_series=40):
    """A tally as the routing collector makes it: small caps, so that values and series overflow."""
    from exporter.collectors.routing import BUCKETS, LabelCap, SeriesBudget

    cap = LabelCap({"category": {"code"}, "model": {"m1"}}, max_values)
    return Tally(buckets=BUCKETS, label=cap, admit=SeriesBudget(max_series))


def exporter_state(t):
    return state(t), {k: sorted(v) for k, v in t.label.extra.items()}, t.admit.used


def fed(chunks, kernel):
    t = exporter_tally()
    saved, tally_module._kernel = tally_module._kernel, kernel
    try:
        for text in chunks:
            t.add_text(text, Source("f"))
    finally:
        tally_module._kernel = saved
    return t


WIDE_ROWS = st.lists(st.builds(plain_row, st.integers(0, 10**6), st.sampled_from(["code", "math", "vision", "é", "c5"]),
                               st.sampled_from(["m1", "m2", "模型", "m4"]), st.sampled_from(["true", "false"]),
                               NUMBER.filter(lambda v: 0 <= float(v) <= 1), SCORE,
                               st.sampled_from(["", "0", "7", "123456"]),
                               DURATION.filter(lambda v: 0 <= float(v) <= 1e7),
                               st.sampled_from([None, "true", "false"])),
                     min_size=1, max_size=60)


@settings(max_examples=300, deadline=None)
@given(st.lists(WIDE_ROWS, min_size=1, max_size=4))
def test_the_exporters_chunks_count_as_the_python_path_counts_them(chunks):
    """Label caps, the series budget and histogram buckets applied to chunks the C fold counted on
    their own give the Python path's counts, sums to the last bit, overflow counts, admitted values
    and budget, chunk after chunk."""
    texts = ["".join(rows) for rows in chunks]
    assert exporter_state(fed(texts, KERNEL)) == exporter_state(fed(texts, None))


ROW_OK = "2026-01-23 08:00:00,code,m1,true,0.5,70.00,3,0.004\n"
OTHER_DIGITS = [  # Arabic-Indic (U+0660...) and full-width (U+FF10...) digits, and what float() reads besides
    ROW_OK.replace("2026-01-23", "\u0662\u0660\u0662\u0666-01-23"), ROW_OK.replace("0.5", "\u0660.5"),
    ROW_OK.replace(",3,", ",\u0663,"), ROW_OK.replace("70.00", "\uff17\uff10.00"),
    ROW_OK.replace("0.004", "0.00\uff14"),
    ROW_OK.replace("0.5", " 0.5"), ROW_OK.replace("70.00", "7_0.00"), ROW_OK.replace("0.004", "4e-3 "),
]


@pytest.mark.parametrize("row", OTHER_DIGITS, ids=range(len(OTHER_DIGITS)))
@pytest.mark.parametrize("kernel", ["c", "python"])
def test_digits_of_other_scripts_are_rejected_by_both_paths(tmp_path, row, kernel):
    """The grammar is ASCII in both paths: a row with another script's digits is a rejected row,
    never a count (and never GPU "٣" beside GPU "3")."""
    from exporter.selectionlog import reader

    log = tmp_path / "sel.csv"
    log.write_text(ROW_OK + row + ROW_OK, encoding="utf-8")
    saved = tally_module._kernel
    tally_module._kernel = KERNEL if kernel == "c" else None
    try:
        t = Tally()
        reader.read(str(log), t)
    finally:
        tally_module._kernel = saved
    assert t.rows == 2 and sum(t.rejected.values()) == 1, (t.rows, dict(t.rejected))
    assert set(t.selections) == {("code", "m1", True, "3")}
