"""Run the enabled collectors for one scrape, with the exporter's self-metrics.

A collector that raises costs only its own families: the scrape still answers, and
orchex_scrape_collector_success says which one failed."""

import logging
import platform
import threading
import time
from collections.abc import Callable, Iterable

from exporter import __version__
from exporter.collectors import Collector, CollectorFailed
from exporter.exposition import Family, labels, render
from exporter.selectionlog.tally import kernel_active

log = logging.getLogger("orchex")


class Scraper:
    def __init__(self, collectors: Iterable[Collector], clock: Callable[[], float] = time.time) -> None:
        self.collectors, self.clock = list(collectors), clock
        self.last_success: dict[str, float] = {}  # collector name -> unix time
        self.lock = threading.Lock()
        self.exposing = threading.Lock()
        self.rendered: dict[str, tuple[list[Family], str]] = {}  # collector name -> (families, text)
        self.errors: dict[str, str | None] = {}  # collector name -> its last failure, None when it succeeded

    def scrape(self) -> list[Family]:
        """All families of one scrape: the collectors' and the exporter's own."""
        groups, own = self._collect()
        return [f for _, fams in groups for f in fams] + own

    def exposition(self, openmetrics: bool = False) -> bytes:
        """The whole /metrics body. One scrape renders at a time: rendering takes about a millisecond,
        and twenty concurrent copies of a 300 KB body would otherwise set the process's memory
        high-water mark. A collector that returns the very list it returned last time (the routing
        families until a row arrives, the GPU families within their sharing window) is not rendered
        again."""
        with self.exposing:
            groups, own = self._collect()
            if openmetrics:  # rare, and it needs a single `# EOF` at the very end: render afresh
                return render([f for _, fams in groups for f in fams] + own, openmetrics=True).encode()
            parts = []
            for name, fams in groups:
                cached = self.rendered.get(name)
                if cached is None or cached[0] is not fams:
                    cached = self.rendered[name] = (fams, render(fams))
                parts.append(cached[1])
            parts.append(render(own))
            return "".join(parts).encode()

    def _collect(self) -> tuple[list[tuple[str, list[Family]]], list[Family]]:
        now = self.clock()
        groups = []
        duration = Family("orchex_scrape_collector_duration_seconds", "gauge",
                          "Seconds each collector took in this scrape (node_exporter's name for it).")
        success = Family("orchex_scrape_collector_success", "gauge", "1 when the collector succeeded this scrape.")
        errors = Family("orchex_scrape_errors", "gauge", "Errors each collector met in this scrape.")
        last = Family("orchex_scrape_last_success_timestamp_seconds", "gauge",
                      "Unix time of each collector's last successful collection.")
        for c in self.collectors:
            started = time.perf_counter()
            error = None
            try:
                groups.append((c.name, c.collect(now)))
            except CollectorFailed as e:
                groups.append((c.name, e.families))
                error = str(e)
            except Exception as e:  # a failing collector must never take the others down
                error = f"{type(e).__name__}: {e}"
            ok = error is None
            self._say(c.name, error)
            took = time.perf_counter() - started
            lab = labels(collector=c.name)
            with self.lock:
                if ok:
                    self.last_success[c.name] = now
                seen = self.last_success.get(c.name)
            duration.add(took, lab)
            success.add(1 if ok else 0, lab)
            errors.add(0 if ok else 1, lab)
            if seen is not None:
                last.add(seen, lab)
        build = Family("orchex_build", "info", "orchex version, the Python it runs on, and what reads the selection "
                       "logs' plain rows: kernel=\"c\" (_fold.c) or \"python\" (built without a compiler).")
        build.add(1, labels(version=__version__, python_version=platform.python_version(),
                            kernel="c" if kernel_active() else "python"), "_info")
        return groups, [build, duration, success, errors, last]

    def replace(self, collectors: list[Collector]) -> None:
        """Run these collectors from the next scrape on (a reload switched some on or off)."""
        with self.exposing, self.lock:
            self.collectors = list(collectors)
            names = {c.name for c in collectors}
            self.rendered = {n: r for n, r in self.rendered.items() if n in names}
            self.last_success = {n: t for n, t in self.last_success.items() if n in names}

    def _say(self, name: str, error: str | None) -> None:
        """Log a collector's failure once, again when the failure changes, and its recovery."""
        with self.lock:
            before = self.errors.get(name)
            self.errors[name] = error
        if error is not None and error != before:
            log.error(f"collector {name} failed: {error}")
        elif error is None and before is not None:
            log.info(f"collector {name} recovered")

    def close(self) -> None:
        for c in self.collectors:
            c.close()
