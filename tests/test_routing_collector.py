"""The routing collector following real files: growth, partial lines, truncation, rotation, restarts,
label caps. Values are read back through prometheus_client's parser of our exposition."""

import os

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.collectors.routing import RoutingCollector
from exporter.exposition import render
from exporter.selectionlog.rows import HEADER_LINE


def row(s, cat="code", model="google-gemma-3-270m-it", primary="true", conf="0.95", score="70.00", gpu="0",
        dur="0.004", extra=""):
    return f"2026-01-23 08:{s // 60:02d}:{s % 60:02d},{cat},{model},{primary},{conf},{score},{gpu},{dur}{extra}\n"


def samples(collector):
    text = render(collector.collect(0))
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def sel(values, cat="code", model="google-gemma-3-270m-it", gpu="0", primary="true"):
    key = ("orchex_router_selections_total",
           tuple(sorted({"category": cat, "model": model, "gpu": gpu, "primary": primary}.items())))
    return values.get(key, 0)


def test_counts_scores_histogram_and_precreated_pairs(tmp_path, default_registry):
    log = tmp_path / "sel.csv"
    log.write_text(HEADER_LINE + "\n" + row(1) + row(2, gpu="1", score="60.00", dur="12")
                   + row(3, cat="relational", model="translategemma-27b-it-GGUF", primary="false", conf="0.70"))
    c = RoutingCollector([str(log)], default_registry)
    v = samples(c)
    assert sel(v) == 1 and sel(v, gpu="1") == 1
    assert sel(v, "relational", "translategemma-27b-it-GGUF", primary="false") == 1
    pair = (("category", "code"), ("model", "google-gemma-3-270m-it"))
    assert v[("orchex_router_selection_score_sum", pair)] == 130.0
    assert v[("orchex_router_selection_score_count", pair)] == 2
    assert v[("orchex_router_selection_confidence_sum", pair)] == 1.9
    # pre-created at 0: a registry pair that has not been selected yet
    unseen = (("category", "code"), ("model", "microsoft-phi-2"))
    assert v[("orchex_router_selection_score_count", unseen)] == 0
    assert v[("orchex_router_fallbacks_total", unseen)] == 0
    h = "orchex_router_selection_duration_seconds"
    assert v[(h + "_bucket", (("category", "code"), ("le", "0.0001")))] == 1  # 0.004 ms
    assert v[(h + "_bucket", (("category", "code"), ("le", "0.01")))] == 1
    assert v[(h + "_bucket", (("category", "code"), ("le", "0.025")))] == 2  # 12 ms
    assert v[(h + "_bucket", (("category", "code"), ("le", "+Inf")))] == 2
    assert abs(v[(h + "_sum", (("category", "code"),))] - 0.012004) < 1e-9


def test_growth_partial_line_truncation_and_rotation(tmp_path, default_registry):
    log = tmp_path / "sel.csv"
    log.write_text(HEADER_LINE + "\n" + row(1))
    c = RoutingCollector([str(tmp_path / "sel.csv*")], default_registry)
    assert sel(samples(c)) == 1
    with open(log, "a") as f:
        f.write(row(2) + row(3)[:20])  # a partial last line waits for its end
    assert sel(samples(c)) == 2
    with open(log, "a") as f:
        f.write(row(3)[20:])
    assert sel(samples(c)) == 3
    os.rename(log, tmp_path / "sel.csv.1")  # rotation: the old file moves, a new one starts
    with open(tmp_path / "sel.csv.1", "a") as f:
        f.write(row(4))  # written by the old writer after the rename
    log.write_text(HEADER_LINE + "\n" + row(5) + row(6))
    assert sel(samples(c)) == 6
    assert sel(samples(c)) == 6  # nothing counted twice on the next scrape
    with open(log, "w") as f:  # truncated in place (copytruncate)
        f.write(row(7))
    assert sel(samples(c)) == 7


def test_rotation_to_a_name_outside_the_pattern_is_read_to_its_end(tmp_path, default_registry):
    log = tmp_path / "sel.csv"
    log.write_text(row(1))
    c = RoutingCollector([str(log)], default_registry)
    assert sel(samples(c)) == 1
    os.rename(log, tmp_path / "old.csv")
    with open(tmp_path / "old.csv", "a") as f:
        f.write(row(2))
    log.write_text(row(3))
    assert sel(samples(c)) == 3


def test_restart_gives_the_same_counters(tmp_path, default_registry):
    log = tmp_path / "sel.csv"
    log.write_text(HEADER_LINE + "\n" + "".join(row(i, gpu=str(i % 3)) for i in range(50)) + "bad row\n")
    first = samples(RoutingCollector([str(log)], default_registry))
    again = samples(RoutingCollector([str(log)], default_registry))
    assert first == again
    assert first[("orchex_router_selection_log_parse_errors_total", (("reason", "columns"),))] == 1


def test_label_values_are_capped(tmp_path, default_registry):
    log = tmp_path / "sel.csv"
    log.write_text("".join(row(i, model=f"evil-{i}") for i in range(10)) + row(11))
    c = RoutingCollector([str(log)], default_registry, max_label_values=3)
    v = samples(c)
    models = {dict(k[1])["model"] for k in v if k[0] == "orchex_router_selections_total"}
    assert models == {"evil-0", "evil-1", "evil-2", "other", "google-gemma-3-270m-it"}
    assert sel(v, model="other") == 7
    assert v[("orchex_router_label_overflow_total", (("label", "model"),))] == 7


def test_crlf_quotes_and_extra_columns(tmp_path, default_registry):
    log = tmp_path / "sel.csv"
    log.write_bytes((HEADER_LINE + ",fallback,reason,policy\r\n"
                     + row(1, extra=',true,"no candidate, fallback",default').replace("\n", "\r\n")
                     + "\r\n" + row(2, extra=",false,,default")).encode())
    v = samples(RoutingCollector([str(log)], default_registry))
    assert sel(v) == 2
    assert v[("orchex_router_fallbacks_total", (("category", "code"), ("model", "google-gemma-3-270m-it")))] == 1


def test_truncated_and_regrown_past_its_old_size_before_a_read(tmp_path, default_registry):
    log = tmp_path / "sel.csv"
    log.write_text(HEADER_LINE + "\n" + "".join(row(i) for i in range(10)))
    c = RoutingCollector([str(log)], default_registry)
    assert sel(samples(c)) == 10
    # Truncated, then written again by the router, further than before, between two scrapes.
    with open(log, "w") as f:
        f.write(HEADER_LINE + "\n" + "".join(row(i, gpu="1") for i in range(30)))
    v = samples(c)
    assert sel(v) == 10 and sel(v, gpu="1") == 30  # nothing lost, nothing counted twice
    assert sum(n for k, n in v.items() if k[0] == "orchex_router_selection_log_parse_errors_total") == 0


def test_a_row_with_an_absurd_value_is_rejected_and_counting_goes_on(tmp_path, default_registry):
    log = tmp_path / "sel.csv"
    log.write_text(HEADER_LINE + "\n" + row(1, score="1e308") + row(2, score="1e308") + row(3, score="nan")
                   + row(4, dur="inf") + row(5, dur="-1") + row(6, conf="1.5") + row(7))
    c = RoutingCollector([str(log)], default_registry)
    v = samples(c)
    assert sel(v) == 1
    rejected = {dict(k[1])["reason"]: n for k, n in v.items()
                if k[0] == "orchex_router_selection_log_parse_errors_total"}
    assert rejected["score"] == 3 and rejected["duration"] == 2 and rejected["confidence"] == 1
    with open(log, "a") as f:
        f.write(row(8) + row(9))
    v = samples(c)
    assert sel(v) == 3  # later valid rows are still counted: no row poisons the collector
    score = ("orchex_router_selection_score_sum",
             (("category", "code"), ("model", "google-gemma-3-270m-it")))
    assert v[score] == 210.0


def test_a_cross_product_of_labels_stays_within_the_series_budget(tmp_path, default_registry):
    log = tmp_path / "sel.csv"
    with open(log, "w") as f:
        f.write(HEADER_LINE + "\n")
        for c in range(20):
            for m in range(20):
                for g in range(20):
                    f.write(row(1, cat=f"c{c}", model=f"m{m}", gpu=str(g)))
    collector = RoutingCollector([str(log)], default_registry, max_label_values=100, max_series=2000)
    v = samples(collector)
    made = sum(1 for k in v if k[0].startswith("orchex_router_") and dict(k[1]).get("category", "")[1:].isdigit())
    assert made <= 2000
    assert sum(n for k, n in v.items() if k[0] == "orchex_router_selections_total") == 8000  # every row counted
    overflow = v[("orchex_router_label_overflow_total", (("label", "series"),))]
    assert overflow > 0 and sel(v, cat="other", model="other", gpu="other") == overflow


def held_open(folder):
    """How many of this process's descriptors are open on files in `folder`."""
    fds = os.listdir("/proc/self/fd")
    return sum(1 for fd in fds if os.path.realpath(f"/proc/self/fd/{fd}").startswith(str(folder)))


def total_selections(values):
    return sum(n for k, n in values.items() if k[0] == "orchex_router_selections_total")


def test_files_beyond_the_open_file_budget_are_counted_once_each(tmp_path, default_registry):
    logs = [tmp_path / f"sel-{i:03d}.csv" for i in range(40)]
    for i, log in enumerate(logs):
        log.write_text(HEADER_LINE + "\n" + row(i))
    c = RoutingCollector([str(tmp_path / "sel-*.csv")], default_registry, max_open_files=8)
    assert total_selections(samples(c)) == 40
    assert held_open(tmp_path) <= 8
    for i, log in enumerate(logs):  # every file grows, half of them by a row and a partial line
        with open(log, "a") as f:
            f.write(row(i) + (row(i)[:15] if i % 2 else ""))
    assert total_selections(samples(c)) == 80
    assert held_open(tmp_path) <= 8
    for i, log in enumerate(logs):  # the partial lines end, in files closed meanwhile, and a row follows
        with open(log, "a") as f:
            f.write((row(i)[15:] if i % 2 else "") + row(i))
    assert total_selections(samples(c)) == 140
    assert held_open(tmp_path) <= 8
    assert total_selections(samples(c)) == 140  # nothing counted twice
    os.rename(logs[0], tmp_path / "sel-000.csv.1")  # closed, and rotated away: followed no more
    logs[0].write_text(row(1))
    assert total_selections(samples(c)) == 141
    c.close()


def test_a_file_is_read_at_most_read_per_poll_bytes_a_poll(tmp_path):
    from exporter.selectionlog import reader
    from exporter.selectionlog.tally import Tally

    log = tmp_path / "big.csv"
    one = row(1)
    rows = 3 * reader.READ_PER_POLL // len(one) + 10
    log.write_text(one * rows)
    tally = Tally(buckets=(1.0,))
    follower = reader.Follower([str(log)], tally)
    counted = []
    while follower.poll():
        counted.append(sum(tally.selections.values()))
    counted.append(sum(tally.selections.values()))
    assert len(counted) == 4 and counted[-1] == rows
    assert all(b - a <= reader.READ_PER_POLL // len(one) + 1 for a, b in zip([0, *counted], counted))


def test_a_sparse_hole_is_stepped_over_not_read(tmp_path, default_registry):
    log = tmp_path / "sel.csv"
    log.write_text(HEADER_LINE + "\n" + row(1))
    c = RoutingCollector([str(log)], default_registry)
    assert sel(samples(c)) == 1
    with open(log, "r+b") as f:  # a writer that kept its offset after copytruncate
        f.truncate(0)
        f.seek(20 << 30)
        f.write(b"\n" + row(2).encode() + row(3).encode())
    v = samples(c)
    assert sel(v) == 3  # the new rows after the hole, counted well within the scrape's wait: the hole is not read
    assert v[("orchex_router_selection_log_parse_errors_total", (("reason", "length"),))] == 0
    with open(log, "r+b") as f:  # again, mid-block and right at the next row, after a partial line
        f.seek(0, os.SEEK_END)
        f.write(row(4)[:20].encode())
        f.seek((40 << 30) + 1000)
        f.write(row(5).encode())
    v = samples(c)
    assert sel(v) == 4  # row 5; row 4, cut by the hole, is one rejected line
    assert v[("orchex_router_selection_log_parse_errors_total", (("reason", "length"),))] == 1


def test_a_poll_that_raises_fails_the_collector_and_says_why(tmp_path, default_registry):
    import pytest

    from exporter.collectors import CollectorFailed

    log = tmp_path / "sel.csv"
    log.write_text(row(1))
    c = RoutingCollector([str(log)], default_registry)
    assert sel(samples(c)) == 1
    c.follower.patterns = None  # a bug in the follower: the reader must not die silently
    with pytest.raises(CollectorFailed, match="reading the selection logs: TypeError"):
        c.collect(0)
    c.follower.patterns = [str(log)]
    assert sel(samples(c)) == 1


def test_a_scrape_while_the_reader_catches_up_serves_what_is_counted_at_once(tmp_path, default_registry):
    log = tmp_path / "sel.csv"
    log.write_text(row(1))
    c = RoutingCollector([str(log)], default_registry)
    assert sel(samples(c)) == 1
    with c.progress:  # as after a poll that left a large file half read
        c.behind = True
        begun = c.begun
    with open(log, "a") as f:
        f.write(row(2))
    assert sel(samples(c)) == 1 and c.begun == begun  # no poll asked for, none waited on
    with c.progress:
        c.behind = False
    assert sel(samples(c)) == 2
    c.close()


def test_a_reload_that_lowers_the_open_file_budget_is_kept_from_the_next_open(tmp_path, default_registry):
    logs = [tmp_path / f"sel-{i}.csv" for i in range(12)]
    for i, log in enumerate(logs):
        log.write_text(row(i))
    c = RoutingCollector([str(tmp_path / "sel-*.csv")], default_registry, max_open_files=10)
    assert total_selections(samples(c)) == 12 and held_open(tmp_path) == 10
    with c.lock:
        c.follower.max_open = 3  # what reconfigure() sets from selection-log.max-open-files
    with open(logs[0], "a") as f:
        f.write(row(0))
    assert total_selections(samples(c)) == 13 and held_open(tmp_path) <= 3
    c.close()


def test_a_reload_keeps_serving_the_families_until_the_reader_rebuilds_them(tmp_path, default_registry):
    from exporter import serveconfig

    log = tmp_path / "sel.csv"
    log.write_text(row(1))
    c = RoutingCollector([str(log)], default_registry)
    assert sel(samples(c)) == 1
    with c.progress:  # the reader busy elsewhere: the scrape will not wait for it
        c.behind = True
    c.reconfigure(serveconfig.load({"selection-log": [str(log)]}, None), default_registry)
    assert sel(samples(c)) == 1  # not an empty scrape: every routing series would seem to vanish
    c.close()


@pytest.mark.parametrize("kernel", ["C", "Python"])
def test_a_row_over_the_series_budget_counts_where_its_pair_and_category_have_series(kernel):
    """Each level of the routing metrics stays whole: a row whose own selection series is over the
    budget counts as other in orchex_router_selections_total, but in its (category, model) summary
    and its category's histogram when those already have series; a pair and category with none count
    as other there too."""
    from exporter.collectors.routing import BUCKETS, SeriesBudget
    from exporter.selectionlog import tally as tally_module
    from exporter.selectionlog.tally import OTHER, Source, Tally

    first_key = 1 + SeriesBudget.PAIR + SeriesBudget.CATEGORY  # room for (code, m1, gpu 0) alone
    t = Tally(buckets=BUCKETS, admit=SeriesBudget(first_key))
    rows = [row(1, cat="code", model="m1", gpu="0"), row(1, cat="code", model="m1", gpu="1"),
            row(1, cat="math", model="m2", gpu="0")]
    saved = tally_module._kernel
    if kernel == "Python":
        tally_module._kernel = None
    elif saved is None:
        pytest.fail("the C fold is not built")
    try:
        t.add_text("".join(rows), Source("f"))
    finally:
        tally_module._kernel = saved
    assert t.selections == {("code", "m1", True, "0"): 1, (OTHER, OTHER, True, OTHER): 2}
    assert t.pairs == {("code", "m1"): 2, (OTHER, OTHER): 1}
    assert set(t.confidence_sum) == {("code", "m1", True), (OTHER, OTHER, True)}
    assert set(t.duration_sum) == {"code", OTHER} and sum(n for (c, _), n in t.durations.items() if c == "code") == 2
    assert t.overflow["series"] == 2
