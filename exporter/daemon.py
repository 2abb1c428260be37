"""The life of `orchex serve` once wired: serving, signals, reload on SIGHUP, and shutdown.

A reload loads and checks everything first (config file, registry, web config, fleet) and applies it
only when all of it is valid; otherwise the running configuration stays and the log says why."""

import ctypes
import logging
import signal
import threading
from collections.abc import Callable

from exporter import logfmt
from exporter.collectors import Collector
from exporter.errors import UsageError
from exporter.httpserver import Server
from exporter.serveconfig import COLLECTORS, Settings
from exporter.web import App

# Settings a running server cannot change: the listening socket is bound once.
RESTART_ONLY = ("web.listen-address",)


def reload(app: App, load: Callable[[], Settings], make_collector: Callable[[str, Settings], Collector],
           log: logging.Logger) -> bool:
    """Load the configuration again and apply it whole, or keep the running one; True when applied."""
    try:
        new = load()
    except UsageError as e:
        log.error(f"reload failed, keeping the running configuration: {e}")
        return False
    old = app.settings
    for key in RESTART_ONLY:
        if new[key] != old[key]:
            log.warning(f"{key} changed to {new[key]!r}: it takes effect when orchex restarts")
    running = {c.name: c for c in app.scraper.collectors}
    collectors = []
    for name in COLLECTORS:
        c = running.pop(name, None)
        if not new.collector(name):
            continue
        if c is None:
            c = make_collector(name, new)
        else:
            c.reconfigure(new, new.registry)
        collectors.append(c)
    app.scraper.replace(collectors)
    for c in running.values():  # switched off
        c.close()
    logfmt.set_level(log, new["log.level"])
    app.settings = new
    log.info(f"reloaded: registry {new.registry.source} ({len(new.registry.models)} models); collectors: "
             f"{', '.join(c.name for c in collectors) or 'none'}")
    return True


PR_SET_NAME = 15


def name_process(name: str = "orchex") -> None:
    """Name the process as the kernel shows it (/proc/PID/comm), so that `pidof orchex` and
    `pkill -HUP -x orchex` find the daemon: otherwise it is `python3`, like every other script."""
    try:
        ctypes.CDLL(None).prctl(PR_SET_NAME, name.encode(), 0, 0, 0)
    except (OSError, AttributeError):  # not Linux
        pass


def run(server: Server, app: App, load: Callable[[], Settings],
        make_collector: Callable[[str, Settings], Collector], log: logging.Logger) -> None:
    """Serve until SIGTERM or SIGINT; SIGHUP reloads. Returns after a clean shutdown."""
    name_process()
    stop, reloading = threading.Event(), threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: reloading.set())
    serving = threading.Thread(target=server.serve_forever, name="orchex-http-loop", daemon=True)
    serving.start()

    def first_collection() -> None:
        app.scraper.scrape()
        app.ready.set()
        log.info("first collection done: ready")

    threading.Thread(target=first_collection, daemon=True).start()
    while not stop.wait(0.2):
        if reloading.is_set():
            reloading.clear()
            reload(app, load, make_collector, log)
    log.info("shutting down")
    server.shutdown()
    server.server_close()
    app.scraper.close()
