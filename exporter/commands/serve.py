"""`orchex serve`: the exporter daemon, one per GPU host, scraped by Prometheus."""

import argparse

from exporter.collectors import NAMES as COLLECTORS


def _xids(text):
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected XID numbers separated by commas, got {text!r}") from None


def add_parser(sub):
    p = sub.add_parser("serve", help="run the Prometheus exporter",
                       description="Serve GPU health and routing-selection metrics for Prometheus. Every flag "
                                   "is also a key of --config FILE (same name, without dashes); flags win. "
                                   "SIGHUP reloads the config file, the registry and the web config.")
    p.add_argument("--config", metavar="FILE", help="YAML config file")
    p.add_argument("--web.listen-address", dest="web.listen-address", metavar="[HOST]:PORT",
                   help="address to listen on (default :9847)")
    p.add_argument("--web.telemetry-path", dest="web.telemetry-path", metavar="PATH",
                   help="path of the metrics (default /metrics)")
    p.add_argument("--web.config.file", dest="web.config.file", metavar="FILE",
                   help="exporter-toolkit web config: TLS and basic auth")
    p.add_argument("--gpu-backend", dest="gpu-backend", choices=("auto", "nvml", "simulated"),
                   help="auto (default): NVML when a driver answers, else the simulated fleet")
    p.add_argument("--fleet", dest="fleet", metavar="FILE", help="fleet YAML for the simulated backend")
    p.add_argument("--registry", dest="registry", metavar="FILE", help="registry YAML (default: packaged)")
    p.add_argument("--selection-log", dest="selection-log", action="append", metavar="PATH_OR_GLOB",
                   help="selection log to follow (repeatable)")
    p.add_argument("--routing.max-label-values", dest="routing.max-label-values", type=int, metavar="N",
                   help="distinct values admitted per routing label beyond the registry's (default 100)")
    for name in COLLECTORS:
        p.add_argument(f"--collector.{name}", dest=f"collector.{name}", action=argparse.BooleanOptionalAction,
                       default=None, help=f"enable the {name} collector (default on)")
    p.add_argument("--log.level", dest="log.level", choices=("debug", "info", "warn", "error"))
    p.add_argument("--health.temperature-celsius", dest="health.temperature-celsius", type=float, metavar="C",
                   help="at or above: HOT (default 85)")
    p.add_argument("--health.utilization-ratio", dest="health.utilization-ratio", type=float, metavar="R",
                   help="at or above: OVERLOADED (default 0.95)")
    p.add_argument("--health.power-ratio", dest="health.power-ratio", type=float, metavar="R",
                   help="power at or above R x the limit: HIGH_POWER (default 0.95)")
    p.add_argument("--health.xid-window-seconds", dest="health.xid-window-seconds", type=float, metavar="S",
                   help="a critical XID this recent means FAULT (default 600)")
    p.add_argument("--health.critical-xids", dest="health.critical-xids", metavar="N,N,...",
                   type=_xids, help="XIDs that mean FAULT (default 48,79,94,95)")
    p.set_defaults(run=run)


def _flags(args):
    from exporter.serveconfig import DEFAULTS

    return {k: getattr(args, k, None) for k in DEFAULTS}


def setup_logging(level):
    import logging
    import time

    class Logfmt(logging.Formatter):
        def format(self, r):
            ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(r.created)) + f".{int(r.msecs):03d}Z"
            msg = r.getMessage().replace('"', '\\"')
            out = f'ts={ts} level={r.levelname.lower().replace("warning", "warn")} msg="{msg}"'
            if r.exc_info:
                out += ' err="' + self.formatException(r.exc_info).splitlines()[-1].replace('"', '\\"') + '"'
            return out

    log = logging.getLogger("orchex")
    handler = logging.StreamHandler()
    handler.setFormatter(Logfmt())
    log.handlers[:] = [handler]
    log.setLevel({"warn": "WARNING"}.get(level, level.upper()))
    log.propagate = False
    return log


def build(settings, log):
    """(scraper, web config, registry) for settings; raises UsageError on bad input."""
    from exporter import webconfig
    from exporter.collectors.scrape import Scraper
    from exporter.routing import registry as registry_mod

    reg = registry_mod.load(settings["registry"])
    web = webconfig.load(settings["web.config.file"])
    collectors = []
    if settings.collector("gpu"):
        from exporter.collectors.gpu import GpuCollector

        collectors.append(GpuCollector(_backend_factory(settings, log), settings.thresholds()))
    if settings.collector("routing"):
        from exporter.collectors.routing import RoutingCollector

        collectors.append(RoutingCollector(settings["selection-log"], reg, settings["routing.max-label-values"]))
    if settings.collector("process"):
        from exporter.collectors.process import ProcessCollector

        collectors.append(ProcessCollector())
    return Scraper(collectors), web, reg


def _backend_factory(settings, log):
    from exporter.gpu.simulated import SimulatedBackend, load_fleet

    kind, fleet = settings["gpu-backend"], settings["fleet"]
    if kind == "simulated":
        load_fleet(fleet)  # a bad fleet file is a start-up error, not a scrape error
        return lambda: SimulatedBackend(fleet)
    from exporter.gpu.nvml import NvmlBackend, NvmlUnavailable

    if kind == "auto":
        try:
            NvmlBackend(watch_xids=False).close()
        except NvmlUnavailable as e:
            log.info(f"{e}; using the simulated GPU fleet")
            load_fleet(fleet)
            return lambda: SimulatedBackend(fleet)
    return NvmlBackend


def one_malloc_arena():
    """glibc gives each thread that allocates its own malloc arena; with one thread per scrape
    connection, twenty concurrent scrapers left ~11 MB of resident memory behind in arenas that are
    never returned. One arena keeps the daemon's memory flat; allocation here is not contended."""
    import ctypes

    try:
        ctypes.CDLL(None).mallopt(-8, 1)  # M_ARENA_MAX
    except (OSError, AttributeError):  # not glibc
        pass


def run(args):
    import signal
    import threading

    from exporter import __version__, serveconfig
    from exporter.errors import UsageError
    from exporter.web import App, make_server

    one_malloc_arena()
    settings = serveconfig.load(_flags(args), args.config)
    log = setup_logging(settings["log.level"])
    scraper, web, reg = build(settings, log)
    app = App(scraper, settings["web.telemetry-path"], web, __version__)
    server = make_server(settings["web.listen-address"], app)
    scheme = "https" if web.ssl_context else "http"
    host, port = server.server_address[:2]
    log.info(f"orchex {__version__} listening on {scheme}://{settings['web.listen-address']} "
             f"(bound {host}:{port}), metrics at {settings['web.telemetry-path']}")
    enabled = [c.name for c in scraper.collectors]
    log.info(f"collectors: {', '.join(enabled) or 'none'}; selection logs: "
             f"{', '.join(settings['selection-log']) or 'none'}; registry: {reg.source}")

    stop, reload = threading.Event(), threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: reload.set())
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    serving.start()

    def first_collection():
        app.scraper.scrape()
        app.ready.set()
        log.info("first collection done: ready")

    threading.Thread(target=first_collection, daemon=True).start()
    while not stop.wait(0.2):
        if reload.is_set():
            reload.clear()
            try:
                new = serveconfig.load(_flags(args), args.config)
                from exporter import webconfig
                from exporter.routing import registry as registry_mod

                new_reg = registry_mod.load(new["registry"])
                new_web = webconfig.load(new["web.config.file"])
            except UsageError as e:
                log.error(f"reload failed, keeping the running configuration: {e}".replace("\n", "; "))
                continue
            for c in app.scraper.collectors:
                if hasattr(c, "set_registry"):
                    c.set_registry(new_reg)
            app.web = new_web
            log.info(f"reloaded: registry {new_reg.source} ({len(new_reg.models)} models)")
    log.info("shutting down")
    server.shutdown()
    server.server_close()
    app.scraper.close()
    return 0
