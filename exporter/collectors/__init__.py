"""Collectors, one per file, each behind the same small interface (as node_exporter's):

    name: str                      the `--collector.<name>` flag
    collect(now) -> [Family]       read and return fresh families; may raise
    close()                        release what it holds

`scrape.Scraper` runs the enabled ones, times each, and turns an exception into an error count so
that one failing collector never fails the scrape."""

NAMES = ("gpu", "routing", "process")
