"""Collectors, one per file, each behind the same small interface (as node_exporter's): see
`Collector`. `scrape.Scraper` runs the enabled ones, times each, and turns an exception into an
error count so that one failing collector never fails the scrape."""

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from exporter.exposition import Family
    from exporter.kubernetes.apiserver import ApiServer
    from exporter.routing.registry import Registry

NAMES = ("gpu", "gpu-processes", "routing", "process", "kubernetes")  # each a module here
OFF_BY_DEFAULT = ("kubernetes",)


class Settings(Protocol):
    """What a collector reads of `orchex serve`'s settings (exporter/serveconfig.py's Settings, which
    imports this package for the collector names)."""

    def __getitem__(self, key: str) -> Any: ...

    @property
    def api_server(self) -> "ApiServer | None": ...


class CollectorFailed(Exception):
    """Raised by a collector that still has families to serve (an `up` series saying 0, error
    counts) but failed at its job: the scrape serves `families` and reports the collector failed."""

    def __init__(self, reason: str, families: "list[Family]") -> None:
        super().__init__(reason)
        self.families = families


class Collector(Protocol):
    name: str  # the `--collector.<name>` flag

    def collect(self, now: float) -> "list[Family]":
        """Fresh families for one scrape; may raise, which costs only this collector's families."""

    def reconfigure(self, settings: Settings, registry: "Registry") -> None:
        """Adopt reloaded settings (SIGHUP) without losing counts already made."""

    def close(self) -> None:
        """Release what it holds."""
