import csv
import multiprocessing
import os

from exporter.routing.selector import Selection
from exporter.selectionlog.rows import COLUMNS, EXTRA
from exporter.selectionlog.writer import SelectionLog, format_row

SEL = Selection("code", "google-gemma-3-270m-it", "", 2 * 10**9, 0, 70.0, 0.95, True, None, "legacy")


def test_header_only_on_an_empty_file_and_rows_append(tmp_path):
    path = str(tmp_path / "logs" / "sel.csv")
    with SelectionLog(path) as log:
        log.write(SEL, 1769155200, 0.0000123)
    with SelectionLog(path) as log:  # a restart appends; it does not rewrite the header
        log.write(SEL, 1769155201, 0.002)
    lines = open(path).read().splitlines()
    assert lines[0] == ",".join(COLUMNS)
    assert len(lines) == 3
    ts, cat, model, primary, conf, score, gpu, dur = lines[1].split(",")
    assert len(ts) == 19 and ts[4] == "-" and ts[10] == " " and ts[13] == ":"
    assert (cat, model, primary, conf, score, gpu, dur) == (
        "code", "google-gemma-3-270m-it", "true", "0.95", "70.00", "0", "0.012")


def test_extra_columns_follow_the_eight(tmp_path):
    path = str(tmp_path / "sel.csv")
    fb = Selection("math", "m,1", "", 1, None, 35.0, 0.5, False, None, "default", True, 'why "x"')
    with SelectionLog(path, extra=True) as log:
        log.write(fb, 0, 0.001)
    rows = list(csv.reader(open(path)))
    assert rows[0] == list(COLUMNS + EXTRA)
    assert rows[1][1:] == ["math", "m,1", "false", "0.50", "35.00", "", "1.000", "true", 'why "x"', "default"]


def _writer(path, n, worker):
    with SelectionLog(path) as log:
        sel = Selection(f"cat{worker}", f"model-{worker}", "", 1, worker, 50.0, 0.9, True, None, "default")
        for i in range(n):
            log.write(sel, 1769155200 + i, i / 1e6)


def test_concurrent_writers_keep_every_row_whole(tmp_path):
    path = str(tmp_path / "sel.csv")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(path, 2000, w)) for w in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    with open(path) as f:
        rows = list(csv.reader(f))
    assert rows[0] == list(COLUMNS)
    body = rows[1:]
    assert len(body) == 16000
    assert all(len(r) == 8 and r[1] == f"cat{r[6]}" and r[2] == f"model-{r[6]}" for r in body)
    per_worker = {w: sum(1 for r in body if r[6] == str(w)) for w in range(8)}
    assert per_worker == {w: 2000 for w in range(8)}
    assert os.path.getsize(path) == sum(len(",".join(r)) + 1 for r in rows)


def test_format_row_quotes_commas_and_quotes():
    sel = Selection("code", 'we"ird,name', "", 1, 2, 1.0, 0.7, False, None, "default")
    row = format_row(sel, 0, 0)
    assert next(csv.reader([row]))[2] == 'we"ird,name'
