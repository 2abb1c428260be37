"""The life of `orchex serve` once wired: serving, signals, reload on SIGHUP, and shutdown.

A reload loads and checks everything first (config file, registry, web config, fleet) and applies it
only when all of it is valid; otherwise the running configuration stays and the log says why."""

import logging
import signal
import threading
import time
from collections.abc import Callable

from exporter import logfmt
from exporter.collectors import Collector
from exporter.errors import UsageError
from exporter.httpserver import Server
from exporter.procname import name_process
from exporter.serveconfig import COLLECTORS, Settings
from exporter.web import App

# Settings a running server cannot change: the listening socket is bound once.
RESTART_ONLY = ("web.listen-address",)


def reload(app: App, load: Callable[[], Settings], make_collector: Callable[[str, Settings], Collector],
           log: logging.Logger, adopt: Callable[[Settings], None]) -> bool:
    """Load the configuration again and apply it whole, or keep the running one; True when applied.
    `adopt` hands the new settings to what the collectors share (the GPU reading) before them."""
    try:
        new = load()
    except UsageError as e:
        log.error(f"reload failed, keeping the running configuration: {e}")
        return False
    old = app.settings
    for key in RESTART_ONLY:
        if new[key] != old[key]:
            log.warning(f"{key} changed to {new[key]!r}: it takes effect when orchex restarts")
    adopt(new)
    running = {c.name: c for c in app.scraper.collectors}
    collectors = []
    for name in COLLECTORS:
        if not new.collector(name):
            continue  # left in `running`, and closed below
        c = running.pop(name, None)
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


def run(server: Server, app: App, load: Callable[[], Settings],
        make_collector: Callable[[str, Settings], Collector], log: logging.Logger,
        adopt: Callable[[Settings], None]) -> None:
    """Serve until SIGTERM or SIGINT; SIGHUP reloads. Returns after a clean shutdown."""
    name_process("orchex")
    # The handlers only note the signal. A Python handler runs in the main thread between two of its
    # bytecodes, wherever it is, so it must take no lock: one that set a threading.Event deadlocked
    # when SIGTERM came while this loop was inside Event.wait holding that Event's own lock, and
    # `orchex serve` never exited (seen under make perf).
    pending: set[int] = set()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda signum, _: pending.add(signum))
    serving = threading.Thread(target=server.serve_forever, name="orchex-http-loop", daemon=True)
    serving.start()

    def first_collection() -> None:
        app.scraper.scrape()
        app.ready.set()
        log.info("first collection done: ready")

    threading.Thread(target=first_collection, daemon=True).start()
    while not pending & {signal.SIGTERM, signal.SIGINT}:
        time.sleep(0.2)  # a signal interrupts it; its handler runs, then the sleep ends on time
        if signal.SIGHUP in pending:
            pending.discard(signal.SIGHUP)
            reload(app, load, make_collector, log, adopt)
    log.info("shutting down")
    server.shutdown()
    server.server_close()
    app.scraper.close()
