"""Aggregate selection-log rows into the counts every report and metric is derived from.

Rows arrive as text chunks of whole lines. A chunk of plain rows (no quotes, blank lines, headers or
bad rows) takes the fast path: columns are split and counted with C-level builtins (str.split, zip,
Counter), and only distinct values are parsed and checked. Any chunk where that check finds a
problem is re-read row by row, which rejects exactly the bad rows with their file and line. Both
paths fold through `_fold`, so they cannot disagree.
"""

import csv
from bisect import bisect_left
from collections import Counter
from itertools import repeat

from exporter.selectionlog.rows import GPU, TIMESTAMP_COLUMN, check, is_header, number

OTHER = "other"


class Source:
    """Per-file reading state: the line number reached and where an extra `fallback` column is."""

    def __init__(self, name):
        self.name = name
        self.line = 1  # number of the next line to be read
        self.fallback = 8  # orchex's extended rows: fallback, reason, policy after the eight


def _identity(kind, value):
    return value


class Tally:
    """Counts over valid rows, keyed by category, model, primary flag and GPU.

    `buckets` (upper bounds in seconds) keeps durations as histogram counts; without it every
    distinct duration is kept, for exact percentiles. `label(kind, value)` maps a category, model or
    gpu value to the one counted (the exporter caps distinct values that way). `since`/`until`
    (`YYYY-MM-DD HH:MM:SS`, until exclusive) skip rows outside the window."""

    def __init__(self, buckets=None, label=None, since=None, until=None, examples=5):
        self.buckets = tuple(buckets) if buckets else None
        self.label = label or _identity
        self.since, self.until = since, until
        self.max_examples = examples
        self.rows = 0
        self.selections = Counter()  # (category, model, primary: bool, gpu) -> rows
        self.pairs = Counter()  # (category, model) -> rows
        self.score_sum = Counter()  # (category, model) -> sum of final_score
        self.confidence_sum = Counter()  # (category, model, primary) -> sum of confidence
        self.durations = Counter()  # (category, ms) -> rows, or (category, bucket index) with buckets
        self.duration_sum = Counter()  # category -> sum of ms
        self.fallbacks = Counter()  # (category, model) -> rows
        self.rejected = Counter()  # reason -> rows
        self.examples = []  # (file, line, reason) of the first rejected rows
        self.overflow = Counter()  # label kind -> rows counted as `other`
        self.first = self.last = None  # timestamp range of counted rows
        self.version = 0  # changes whenever a count does

    # -- input ---------------------------------------------------------------------------------------

    def add_text(self, text, src, final=False):
        """Count the rows in `text`: whole lines, plus, when `final`, a last line without its newline."""
        if not text:
            return
        if "\r" in text:
            text = text.replace("\r\n", "\n")
        if final and not text.endswith("\n"):
            cut = text.rfind("\n") + 1
            self.add_text(text[:cut], src)
            self._slow(text[cut:], src, truncated=True)
            return
        if '"' in text or "\r" in text or "\n\n" in text or text[0] == "\n" or not self._fast(text, src):
            self._slow(text, src)

    def reject(self, reason, src, line):
        self.rejected[reason] += 1
        if len(self.examples) < self.max_examples:
            self.examples.append((src.name, line, reason))
        self.version += 1

    def _fast(self, text, src):
        lines = text.split("\n")
        lines.pop()
        rows = list(map(str.split, lines, repeat(",")))
        widths = set(map(len, rows))
        if len(widths) != 1:
            return False
        width = widths.pop()
        if width < 8:
            return False
        cols = list(zip(*rows))
        if not TIMESTAMP_COLUMN.fullmatch("\n".join(cols[0])):
            return False  # a header, a bad timestamp: let the row-by-row path say which line
        if self.since or self.until:
            cols = self._window(cols)
            if not cols:
                src.line += len(lines)
                return True
        fb = cols[src.fallback] if width > src.fallback else None
        if not self._fold(cols, fb, check_values=True):
            return False
        src.line += len(lines)
        return True

    def _window(self, cols):
        lo, hi = self.since or "", self.until or "\uffff"
        keep = [lo <= t < hi for t in cols[0]]
        if all(keep):
            return cols
        rows = [r for r, k in zip(zip(*cols), keep) if k]
        return list(zip(*rows)) if rows else None

    def _slow(self, text, src, truncated=False):
        lines = text.split("\n")
        if not truncated:
            lines.pop()
        valid, fallback = [], []
        lo, hi = self.since or "", self.until or "\uffff"
        for line in lines:
            number_ = src.line
            src.line += 1
            if line.endswith("\r"):
                line = line[:-1]
            if not line.strip():
                continue
            if '"' in line:
                try:
                    fields = next(csv.reader([line], strict=True))
                except csv.Error:
                    self.reject("truncated" if truncated else "quoting", src, number_)
                    continue
            else:
                fields = line.split(",")
            if is_header(fields):
                src.fallback = fields.index("fallback") if "fallback" in fields else len(fields) + 1
                continue
            reason = check(fields)
            if reason:
                self.reject("truncated" if truncated else reason, src, number_)
                continue
            if not lo <= fields[0] < hi:
                continue
            valid.append(fields[:8])
            fallback.append(fields[src.fallback] if len(fields) > src.fallback else "")
        if valid:
            self._fold(list(zip(*valid)), fallback, check_values=False)

    # -- folding -------------------------------------------------------------------------------------

    def _fold(self, cols, fallback, check_values):
        ts, cat, model, prim, conf, score, gpu, dur = cols[:8]
        sel = Counter(zip(cat, model, prim, gpu))
        confs = Counter(zip(cat, model, prim, conf))
        scores = Counter(zip(cat, model, score))
        durs = Counter(zip(cat, dur))
        if check_values:
            for c, m, p, g in sel:
                if not c or not m or p not in ("true", "false") or g and not GPU.fullmatch(g):
                    return False
            for *_, v in confs:
                x = number(v)
                if x is None or not 0 <= x <= 1:
                    return False
            if any(number(v) is None for *_, v in scores):
                return False
            for _, v in durs:
                x = number(v)
                if x is None or x < 0:
                    return False
        label = self.label
        names = {}  # (kind, raw) -> counted value, for this chunk

        def lab(kind, raw, n):
            key = (kind, raw)
            if key not in names:
                names[key] = label(kind, raw)
            v = names[key]
            if v == OTHER and raw != OTHER:
                self.overflow[kind] += n
            return v

        for (c, m, p, g), n in sel.items():
            c2, m2 = lab("category", c, n), lab("model", m, n)
            self.selections[(c2, m2, p == "true", lab("gpu", g, n) if g else "")] += n
            self.pairs[(c2, m2)] += n
        for (c, m, p, v), n in confs.items():
            self.confidence_sum[(names["category", c], names["model", m], p == "true")] += float(v) * n
        for (c, m, v), n in scores.items():
            self.score_sum[(names["category", c], names["model", m])] += float(v) * n
        for (c, v), n in durs.items():
            c2, ms = names["category", c], float(v)
            self.duration_sum[c2] += ms * n
            key = bisect_left(self.buckets, ms / 1000.0) if self.buckets else ms
            self.durations[(c2, key)] += n
        if fallback is not None:
            for (c, m, f), n in Counter(zip(cat, model, fallback)).items():
                if f == "true":
                    self.fallbacks[(names["category", c], names["model", m])] += n
        lo, hi = min(ts), max(ts)
        if self.first is None or lo < self.first:
            self.first = lo
        if self.last is None or hi > self.last:
            self.last = hi
        self.rows += len(ts)
        self.version += 1
        return True
