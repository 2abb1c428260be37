"""Aggregate selection-log rows into the counts every report and metric is derived from.

Rows arrive as chunks of whole lines and are counted one of two ways, to the same result. The C
extension `_fold` (exporter/selectionlog/_fold.c), where it is built, takes a chunk of plainly valid
rows in one pass; it declines (None) anything that is not plainly valid: a header, a quote, a
carriage return, a blank line, a bad row. The Python path (`_slow`) reads such a chunk row by row,
rejects exactly the bad rows with their file and line, and counts the rest on their own (`_stage`).
A chunk counted on its own is added to the tally level by level (`_add_chunk`), through the labels
and series budget of the exporter's tally; the C fold adds a report's chunk straight in the same
order. tests/test_differential.py and tests/test_kernels.py hold the two to the same counts, sums,
rejections and report on generated hostile logs.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

from exporter.common.quantile import sketch_indices
from exporter.selectionlog.rows import (
    check,
    fallback_column,
    is_header,
)

_kernel: ModuleType | None
try:
    from exporter.selectionlog import _fold as _kernel
except ImportError:  # installed without a C compiler: the Python fast path reads the same rows
    _kernel = None


def kernel_active() -> bool:
    """Whether the C fold (_fold.c) was built and counts the plain rows: `orchex --version` and
    orchex_build_info say so."""
    return _kernel is not None

OTHER = "other"
EXACT_LIMIT = 10_000  # (category, duration) pairs kept exactly before durations are sketched
# Timestamps joined without separators (each is 19 characters) match this in one C-level pass.
SelectionKey = tuple[str, str, bool, str]  # (category, model, primary, gpu)


class Source:
    """Per-file reading state: the line number reached and where an extra `fallback` column is."""

    def __init__(self, name: str, line: int = 1) -> None:
        self.name = name
        self.line = line  # number of the next line to be read
        self.fallback = 8  # orchex's extended rows: fallback, reason, policy after the eight


def _identity(kind: str, value: str) -> str:
    return value


def _floats(column: Sequence[str]) -> list[float]:
    """float() of each text; a column of few distinct texts (our own selector's confidences and
    durations) parses each distinct text once, which is 4x cheaper per row than parsing them all."""
    if len(set(column[:256])) <= 32:
        parsed = {text: float(text) for text in set(column)}
        return list(map(parsed.__getitem__, column))
    return list(map(float, column))


def _sketched(durations: Counter[tuple[str, float]]) -> Counter[tuple[str, int]]:
    """Exact (category, ms) counts as (category, sketch bucket) counts."""
    out: Counter[tuple[str, int]] = Counter()
    keys = list(durations)
    for (c, ms), index in zip(keys, sketch_indices(ms for _, ms in keys)):
        out[(c, index)] += durations[(c, ms)]
    return out


def _stage(cols: Sequence[Sequence[str]], fallback: Sequence[str | None] | None) -> Tally:
    """Valid rows, given as columns, counted on their own as the C fold counts a chunk into an empty
    tally: each full key's rows and sums, in first-seen order, then each sum added once to its
    (category, model, primary), (category, model) and category. The cost is per row and at C level
    (map, zip, Counter) but for one pass of float additions; memory holds only what is counted."""
    t = Tally()
    ts, cat, model, prim, conf, score, gpu, dur = cols[:8]
    cv, sv, dv = _floats(conf), _floats(score), _floats(dur)
    keys = list(zip(cat, model, prim, gpu))
    acc: dict[tuple[str, str, str, str], list[float]] = {}
    for raw, c, s, d in zip(keys, cv, sv, dv):
        a = acc.get(raw)
        if a is None:
            a = acc[raw] = [0.0, 0.0, 0.0]
        a[0] += c
        a[1] += s
        a[2] += d
    counts = Counter(keys)
    for (category, name, flag, g), (cs, ss, ds) in acc.items():
        primary, n = flag == "true", counts[(category, name, flag, g)]
        t.selections[(category, name, primary, g)] += n
        t.pairs[(category, name)] += n
        t.confidence_sum[(category, name, primary)] += cs
        t.score_sum[(category, name)] += ss
        t.duration_sum[category] += ds
    if fallback is not None:
        for (raw, fb), n in Counter(zip(keys, fallback)).items():
            if fb is not None:
                t.extended += n
                if fb == "true":
                    t.fallbacks[raw[:2]] += n
    t.durations = Counter(zip(cat, dv))
    t.first, t.last, t.rows = min(ts), max(ts), len(ts)
    return t


def _add(into: Any, counts: Any) -> None:
    """into[k] += n for each k, n of counts (Counter.update with a mapping is a Python loop too)."""
    for key, n in counts.items():
        into[key] += n


class Tally:
    """Counts over valid rows, keyed by category, model, primary flag and GPU.

    `buckets` (upper bounds in seconds) keeps durations as histogram counts; without it every
    distinct duration is kept, for exact percentiles. `label(kind, value)` maps a category, model or
    gpu value to the one counted (the exporter caps distinct values that way). `since`/`until`
    (`YYYY-MM-DD HH:MM:SS`, until exclusive) skip rows outside the window."""

    def __init__(self, buckets: Sequence[float] | None = None, label: Callable[[str, str], str] | None = None,
                 since: str | None = None, until: str | None = None, examples: int = 5,
                 admit: Callable[[SelectionKey], SelectionKey] | None = None) -> None:
        self.buckets = tuple(buckets) if buckets else None
        self.buckets_ms = tuple(b * 1000.0 for b in buckets) if buckets else None
        self.label = label or _identity
        self.admit = admit
        self.since, self.until = since, until
        self.max_examples = examples
        self.rows = 0
        self.outside = 0  # valid rows left out by since/until
        self.extended = 0  # rows that carried orchex's extra columns (fallback, reason, policy)
        # (category, model, primary, gpu) -> rows
        self.selections: Counter[SelectionKey] = Counter()
        self.pairs: Counter[tuple[str, str]] = Counter()  # (category, model) -> rows
        self.score_sum: defaultdict[tuple[str, str], float] = defaultdict(float)  # sum of final_score
        # (category, model, primary) -> sum of confidence
        self.confidence_sum: defaultdict[tuple[str, str, bool], float] = defaultdict(float)
        # (category, ms) -> rows, or (category, bucket index) with buckets; without buckets, exact
        # while at most EXACT_LIMIT (category, ms) pairs, then `sketch`: (category, sketch bucket) -> rows
        self.durations: Counter[tuple[str, float]] = Counter()
        self.sketch: Counter[tuple[str, int]] | None = None
        self.duration_sum: defaultdict[str, float] = defaultdict(float)  # category -> sum of ms
        self.fallbacks: Counter[tuple[str, str]] = Counter()  # (category, model) -> rows
        self.rejected: Counter[str] = Counter()  # reason -> rows
        self.examples: list[tuple[str, int, str]] = []  # (file, line, reason) of the first rejected rows
        self.overflow: Counter[str] = Counter()  # label kind (or "series") -> rows counted as `other`
        self.first: str | None = None
        self.last: str | None = None  # timestamp range of counted rows
        self.version = 0  # changes whenever a count does

    # -- input ---------------------------------------------------------------------------------------

    def add_text(self, text: str, src: Source, final: bool = False) -> None:
        """Count the rows in `text`: whole lines, plus, when `final`, a last line without its newline."""
        if not text:
            return
        if text.isspace():  # blank lines only (a gzip bomb is 500 MB of them): skip at C speed
            src.line += text.count("\n")
            return
        if "\r" in text:
            text = text.replace("\r\n", "\n")
        if final and not text.endswith("\n"):
            cut = text.rfind("\n") + 1
            self.add_text(text[:cut], src)
            self._slow(text[cut:], src, truncated=True)
            return
        if text.startswith("timestamp,"):  # a file's header: read it on its own, the rows after it fast
            cut = text.find("\n") + 1 or len(text)
            self._slow(text[:cut], src, truncated=not text[:cut].endswith("\n"))
            text = text[cut:]
            if not text:
                return
        if not self.add_plain(text, src):
            self._slow(text, src)

    def reject(self, reason: str, src: Source, line: int) -> None:
        self.rejected[reason] += 1
        if len(self.examples) < self.max_examples:
            self.examples.append((src.name, line, reason))
        self.version += 1

    def add_plain(self, chunk: str | memoryview, src: Source) -> bool:
        """Count a chunk of whole lines in the C kernel, where it is built and every row is plainly
        valid: True when it counted them all; False, with nothing counted, otherwise. The chunk may
        be UTF-8 bytes as they were read (the reader then decodes only what this declines: a header,
        a quote, a bad row) or text (add_text tries this first)."""
        if _kernel is None or self.since or self.until:
            return False
        if self._plain():
            got = _kernel.fold(chunk, src.fallback, self.sketch is not None, self)
            if got is not None:
                self._apply(*got)
        else:
            staged = Tally()
            got = _kernel.fold(chunk, src.fallback, False, staged)
            if got is not None:
                staged.first, staged.last, staged.rows, staged.extended = got
                self._add_chunk(staged)
        if got is None:
            return False
        src.line += got[2]
        return True

    def _plain(self) -> bool:
        """A report's tally: no renaming, budget, window or buckets, which the C fold leaves to Python."""
        return self.label is _identity and self.admit is None and not (self.since or self.until) \
            and self.buckets_ms is None

    def _apply(self, first: str | None, last: str | None, count: int, extended: int) -> None:
        """What is left once a chunk's counts and sums are in: its time range and rows, and the
        switch to sketched durations past EXACT_LIMIT."""
        if self.buckets_ms is None and self.sketch is None and len(self.durations) > EXACT_LIMIT:
            self._to_sketch()
        if first is not None and (self.first is None or first < self.first):
            self.first = first
        if last is not None and (self.last is None or last > self.last):
            self.last = last
        self.rows += count
        self.extended += extended
        self.version += 1

    def _slow(self, text: str, src: Source, truncated: bool = False) -> None:
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
                import csv  # here: only a quoted field needs it, and a report's start-up would pay for it

                try:
                    fields = next(csv.reader([line], strict=True))
                except csv.Error:
                    self.reject("truncated" if truncated else "quoting", src, number_)
                    continue
            else:
                fields = line.split(",")
            if is_header(fields):
                src.fallback = fallback_column(fields)
                continue
            reason = check(fields)
            if reason:
                self.reject("truncated" if truncated else reason, src, number_)
                continue
            if not lo <= fields[0] < hi:
                self.outside += 1
                continue
            valid.append(fields[:8])
            fallback.append(fields[src.fallback] if len(fields) > src.fallback else None)
        if valid:
            self._fold(list(zip(*valid)), fallback)

    # -- folding -------------------------------------------------------------------------------------

    def _fold(self, cols: Sequence[Sequence[str]], fallback: Sequence[str | None] | None) -> None:
        """Count valid rows given as columns: counted on their own (_stage), then added (_add_chunk)."""
        self._add_chunk(_stage(cols, fallback))

    def _add_chunk(self, chunk: Tally) -> None:
        """Add a chunk counted on its own (by _stage, or by the C fold into an empty tally), each key
        mapped level by level (_maps). The C fold adds a report's chunks straight into its tally in
        this same order, so the float sums are the same to the last bit either way."""
        key4, pair, cat = self._maps(chunk.selections)
        for raw, n in chunk.selections.items():
            self.selections[key4[raw]] += n
        for (c, m), n in chunk.pairs.items():
            self.pairs[pair[(c, m)]] += n
        for (c, m, p), v in chunk.confidence_sum.items():
            self.confidence_sum[pair[(c, m)] + (p,)] += v
        for (c, m), v in chunk.score_sum.items():
            self.score_sum[pair[(c, m)]] += v
        for c, v in chunk.duration_sum.items():
            self.duration_sum[cat[c]] += v
        for (c, m), n in chunk.fallbacks.items():
            self.fallbacks[pair[(c, m)]] += n
        if self.buckets_ms is not None:
            for (c, ms), n in chunk.durations.items():
                self.durations[(cat[c], bisect_left(self.buckets_ms, ms))] += n
        elif self.sketch is not None:
            _add(self.sketch, _sketched(chunk.durations))
        else:
            _add(self.durations, chunk.durations)
        self._apply(chunk.first, chunk.last, chunk.rows, chunk.extended)

    def _maps(self, selections: Mapping[SelectionKey, int]) -> tuple[
            dict[SelectionKey, SelectionKey], dict[tuple[str, str], tuple[str, str]], dict[str, str]]:
        """What each raw key of a chunk (seen in `n` rows) is counted under, level by level: the full
        key (category, model, primary, gpu), its (category, model) and its category. Each label value
        goes through `label` once for all its rows (a chunk of another router's log has 1,700
        combinations of 30 values); then each full key through `admit` (a series budget), in
        first-seen order. A row over the budget counts under (other, other, primary, other) in the
        selections, and under its (category, model) and category where those have series already,
        else under other: every family stays consistent, its sums and counts at one level."""
        pairs = {k[:2]: k[:2] for k in selections}
        cats = {k[0]: k[0] for k in selections}
        if self.label is _identity and self.admit is None:
            return {k: k for k in selections}, pairs, cats
        named = []
        for kind, column in (("category", [(k[0], n) for k, n in selections.items()]),
                             ("model", [(k[1], n) for k, n in selections.items()]),
                             ("gpu", [(k[3], n) for k, n in selections.items()])):
            rows: dict[str, int] = {}
            for value, n in column:
                rows[value] = rows.get(value, 0) + n
            named.append({v: self._label(kind, v, n) for v, n in rows.items()})
        lc, lm, lg = named
        key4 = {}
        for raw, n in selections.items():
            key = (lc[raw[0]], lm[raw[1]], raw[2], lg[raw[3]])
            if self.admit is not None and key not in self.selections:
                admitted = self.admit(key)
                if admitted != key:
                    self.overflow["series"] += n
                key = admitted
            key4[raw] = key
        with_series = {k[:2] for k in key4.values()}
        with_histogram = {k[0] for k in key4.values()}
        for c, m in pairs:
            named_pair = (lc[c], lm[m])
            pairs[(c, m)] = named_pair if self.admit is None or named_pair in with_series or \
                named_pair in self.pairs else (OTHER, OTHER)
        for c in cats:
            cats[c] = lc[c] if self.admit is None or lc[c] in with_histogram or lc[c] in self.duration_sum else OTHER
        return key4, pairs, cats

    def _label(self, kind: str, raw: str, n: int) -> str:
        got = self.label(kind, raw) if raw else raw
        if got == OTHER and raw != OTHER:
            self.overflow[kind] += n
        return got

    def _to_sketch(self) -> Counter[tuple[str, int]]:
        """Exact durations become sketch buckets, for good: memory stays bounded from here on."""
        sketch = self.sketch if self.sketch is not None else Counter()
        _add(sketch, _sketched(self.durations))
        self.sketch = sketch
        self.durations = Counter()
        return sketch

    # -- combining -----------------------------------------------------------------------------------

    def merge(self, other: Tally, line_offset: int = 0) -> None:
        """Add another tally's counts (read from a later part of the same input: its example line
        numbers move down by `line_offset`)."""
        for name in ("selections", "pairs", "score_sum", "confidence_sum", "duration_sum", "fallbacks", "rejected",
                     "overflow"):
            _add(getattr(self, name), getattr(other, name))
        # Durations merge as one read would have counted them: exact while the pairs fit, else sketched.
        if self.sketch is not None or other.sketch is not None:
            sketch = self._to_sketch()
            _add(sketch, other.sketch or {})
            _add(sketch, _sketched(other.durations))
        else:
            _add(self.durations, other.durations)
            if self.buckets is None and len(self.durations) > EXACT_LIMIT:
                self._to_sketch()
        self.rows += other.rows
        self.outside += other.outside
        self.extended += other.extended
        room = self.max_examples - len(self.examples)
        self.examples += [(f, line + line_offset, r) for f, line, r in other.examples[:max(room, 0)]]
        for attr, pick in (("first", min), ("last", max)):
            values = [v for v in (getattr(self, attr), getattr(other, attr)) if v is not None]
            setattr(self, attr, pick(values) if values else None)
        self.version += 1
