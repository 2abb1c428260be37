"""The `routing` collector: orchex_router_* families from the selection logs it follows.

Counts are a pure function of the logs' content: a restart re-reads the logs and arrives at the same
values. Label values come from files and are untrusted: categories and models of the registry are
always kept, and at most `max_label_values` other values per label are admitted; the rest are
counted under `other` (and in orchex_router_label_overflow_total), so a hostile log cannot grow
memory or series without bound.

The logs are read on a thread of this collector's, never on the scrape's: a scrape wakes it and waits
at most READ_WAIT seconds for the reader to have read everything written before the scrape began,
then serves what is counted, so a huge file, a sparse one or a slow disk never makes a scrape late."""

import logging
import threading
from collections.abc import Iterable

from exporter.collectors import CollectorFailed, Settings
from exporter.exposition import Family, labels
from exporter.routing.registry import Registry
from exporter.selectionlog.reader import ERROR_REASONS, MAX_OPEN_FILES, Follower
from exporter.selectionlog.rows import REASONS
from exporter.selectionlog.tally import OTHER, SelectionKey, Tally

BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
           10.0)
LE = tuple(str(b) for b in BUCKETS) + ("+Inf",)
MAX_SERIES = 10_000  # the default of routing.max-series
READ_WAIT = 2.0  # seconds a scrape waits for the logs to be read; well inside any scrape timeout

log = logging.getLogger("orchex")


class LabelCap:
    def __init__(self, known: dict[str, set[str]], max_values: int) -> None:
        self.known, self.max_values = known, max_values  # kind -> set of values always admitted
        self.extra: dict[str, set[str]] = {}

    def __call__(self, kind: str, value: str) -> str:
        if value in self.known.get(kind, ()):
            return value
        extra = self.extra.setdefault(kind, set())
        if value in extra:
            return value
        if len(extra) < self.max_values:
            extra.add(value)
            return value
        return OTHER


class SeriesBudget:
    """At most `limit` routing series made from log content. Each new (category, model, primary,
    gpu) combination costs its selection series, plus the five series of its (category, model) pair
    and the histogram of its category when those are new; a combination over the budget is counted
    under (other, other, primary, other). The per-label cap alone bounds each label, not their
    product: 60 categories x 60 models x 60 GPUs are each under a cap of 100."""

    PAIR = 5  # confidence _sum/_count, score _sum/_count, fallbacks
    CATEGORY = len(LE) + 2  # buckets, _sum, _count

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0
        self.pairs: set[tuple[str, str]] = set()
        self.categories: set[str] = set()

    def __call__(self, key: SelectionKey) -> SelectionKey:
        c, m, primary, _ = key
        cost = 1 + (self.PAIR if (c, m) not in self.pairs else 0) + (self.CATEGORY if c not in self.categories else 0)
        if self.used + cost > self.limit:
            return (OTHER, OTHER, primary, OTHER)
        self.used += cost
        self.pairs.add((c, m))
        self.categories.add(c)
        return key


def known_labels(registry: Registry) -> dict[str, set[str]]:
    return {"category": set(registry.categories), "model": set(registry.models)}


class RoutingCollector:
    name = "routing"

    def __init__(self, patterns: Iterable[str], registry: Registry, max_label_values: int = 100,
                 max_series: int = MAX_SERIES, max_open_files: int = MAX_OPEN_FILES) -> None:
        self.cap = LabelCap(known_labels(registry), max_label_values)
        self.budget = SeriesBudget(max_series)
        self.tally = Tally(buckets=BUCKETS, label=self.cap, admit=self.budget)
        self.follower = Follower(patterns, self.tally, max_open_files)
        self.pairs = [(cid, e.model.name) for cid, entries in registry.candidates.items() for e in entries]
        self.lock = threading.Lock()  # the tally, the follower and the settings: the reader's and a reload's
        self.built: tuple[object, list[Family]] = (None, [])  # (what they were built from, families)
        self._labels: dict[tuple[tuple[str, str], ...], str] = {}
        # Polls begun and finished by the reader, and its failure: a scrape waits on these.
        self.progress = threading.Condition()
        self.begun = self.finished = 0
        self.behind = False  # the last poll left more to read: the reader is at it again
        self.failure: str | None = None
        self.wake = threading.Event()
        self.closing = False
        self.reader = threading.Thread(target=self._read_logs, name="orchex-routing-reader", daemon=True)
        self.reader.start()

    def reconfigure(self, settings: Settings, registry: Registry) -> None:
        """Adopt reloaded settings: the registry's names are admitted from now on, the label cap and
        the followed patterns change; counts already made stay."""
        with self.lock:
            self.cap.known = known_labels(registry)
            self.cap.max_values = settings["routing.max-label-values"]
            self.budget.limit = settings["routing.max-series"]
            self.follower.patterns = list(settings["selection-log"])
            self.follower.max_open = settings["selection-log.max-open-files"]
            self.pairs = [(cid, e.model.name) for cid, entries in registry.candidates.items() for e in entries]
            self.built = (None, self.built[1])  # rebuilt by the next poll; served as they are until then
        self.wake.set()

    def close(self) -> None:
        self.closing = True
        self.wake.set()
        self.reader.join(10)
        if self.reader.is_alive():  # a read that hangs (a dead NFS server): shutdown must not wait on it
            log.warning("routing: the selection-log reader did not stop within 10 s; its files close at exit")
            return
        with self.lock:
            self.follower.close()

    def collect(self, now: float) -> list[Family]:
        with self.progress:
            # While the reader is catching up with a large file, scrapes (they run one at a time)
            # serve what is counted at once: twenty of them waiting READ_WAIT each would time out.
            if not self.behind:
                wanted = self.begun + 1  # a poll that begins after this scrape did
                self.wake.set()
                self.progress.wait_for(lambda: self.finished >= wanted and not self.behind, READ_WAIT)
            failure = self.failure
        families = self.built[1]
        if failure is not None:
            raise CollectorFailed(failure, families)
        return families

    def _read_logs(self) -> None:
        """The reader: a poll whenever a scrape or a reload asks, and at once again while a file is
        behind. A poll that raises is logged and served as the collector's failure, never lost."""
        while not self.closing:
            with self.progress:  # cleared under the lock a scrape sets it under: no wake-up is lost
                self.wake.clear()
                self.begun += 1
                this = self.begun
            try:
                with self.lock:
                    behind = self.follower.poll()
                    # The families change when a count does, or when the files or errors do.
                    state = (self.tally.version, tuple(self.follower.matched.items()),
                             tuple(self.follower.errors.values()))
                    if self.built[0] != state:
                        self.built = (state, self._families())
                failure = None
            except Exception as e:  # reported by every scrape until a poll succeeds
                behind, failure = False, f"reading the selection logs: {type(e).__name__}: {e}"
            with self.progress:
                self.finished, self.behind, self.failure = this, behind, failure
                self.progress.notify_all()
            if not behind:
                self.wake.wait()

    def _lab(self, **kv: str) -> str:
        key = tuple(kv.items())
        s = self._labels.get(key)
        if s is None:
            s = self._labels[key] = labels(**kv)
        return s

    def _families(self) -> list[Family]:
        t, lab = self.tally, self._lab
        sel = Family("orchex_router_selections", "counter",
                     "Model selections read from the selection logs, by category, model, GPU and whether the "
                     "category is the model's primary one.")
        for (c, m, p, g), n in sorted(t.selections.items()):
            sel.add(n, lab(category=c, model=m, gpu=g, primary="true" if p else "false"), "_total")
        pairs = dict.fromkeys(self.pairs)
        pairs.update(dict.fromkeys(sorted(t.pairs)))
        conf = Family("orchex_router_selection_confidence", "summary",
                      "Confidence of selections (0-1); rate(_sum)/rate(_count) is the mean.")
        score = Family("orchex_router_selection_score", "summary",
                       "Final score of selections; rate(_sum)/rate(_count) is the mean.")
        fallbacks = Family("orchex_router_fallbacks", "counter",
                           "Selections flagged as fallbacks (no candidate of the category met the "
                           "constraints), by category and the model finally chosen.")
        for c, m in pairs:
            pl = lab(category=c, model=m)
            n = t.pairs.get((c, m), 0)
            conf.add(t.confidence_sum.get((c, m, True), 0.0) + t.confidence_sum.get((c, m, False), 0.0), pl, "_sum")
            conf.add(n, pl, "_count")
            score.add(t.score_sum.get((c, m), 0.0), pl, "_sum")
            score.add(n, pl, "_count")
            fallbacks.add(t.fallbacks.get((c, m), 0), pl, "_total")
        hist = Family("orchex_router_selection_duration_seconds", "histogram",
                      "Time the selector took per selection, from the log's selection_duration_ms.")
        cats = dict.fromkeys(c for c, _ in self.pairs)
        cats.update(dict.fromkeys(sorted(t.duration_sum)))
        for c in cats:
            cum = 0
            for i, le in enumerate(LE):
                cum += t.durations.get((c, i), 0)
                hist.add(cum, lab(category=c, le=le), "_bucket")
            hist.add(t.duration_sum.get(c, 0.0) / 1000.0, lab(category=c), "_sum")
            hist.add(cum, lab(category=c), "_count")
        rejected = Family("orchex_router_selection_log_parse_errors", "counter",
                          "Selection-log rows rejected and skipped, by reason.")
        for reason in REASONS:
            rejected.add(t.rejected.get(reason, 0), lab(reason=reason), "_total")
        overflow = Family("orchex_router_label_overflow", "counter",
                          "Rows counted as 'other': by label when that label already had the maximum number of "
                          "distinct values, label=\"series\" when the routing series budget was spent.")
        for kind in ("category", "model", "gpu", "series"):
            overflow.add(t.overflow.get(kind, 0), lab(label=kind), "_total")
        files = Family("orchex_router_selection_log_files", "gauge",
                       "Regular files each --selection-log path or glob matched and followed at the last read; 0 "
                       "means the routing metrics are not fed.")
        for pattern, n in self.follower.matched.items():
            files.add(n, lab(pattern=pattern))
        errors = Family("orchex_router_selection_log_errors", "counter",
                        "Attempts to open or read a matched selection log that failed, by reason: permission, "
                        "open_files (out of descriptors), not_regular (a FIFO, a device), io.")
        for reason in ERROR_REASONS:
            errors.add(self.follower.errors[reason], lab(reason=reason), "_total")
        return [sel, conf, score, fallbacks, hist, rejected, overflow, files, errors]
