"""`orchex serve`: the exporter daemon, one per GPU host, scraped by Prometheus. This module wires
the parts together; the parts live where their names say (exporter/daemon.py runs the process,
exporter/web.py answers HTTP, exporter/collectors/ read the GPUs and the logs)."""

import argparse
import os
import resource
from typing import TYPE_CHECKING, Any

from exporter.collectors import NAMES as COLLECTORS
from exporter.collectors import OFF_BY_DEFAULT
from exporter.gpu import BACKENDS
from exporter.logfmt import LEVELS
from exporter.policy import POLICY

if TYPE_CHECKING:
    import logging

    from exporter.collectors import Collector
    from exporter.gpu.reading import SharedReading
    from exporter.serveconfig import Settings


def _xids(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected XID numbers separated by commas, got {text!r}") from None


def _names(text: str) -> list[str]:
    names = [r.strip() for r in text.split(",") if r.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected resource names separated by commas, got {text!r}")
    return names


def add_parser(sub: Any) -> None:
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
    p.add_argument("--gpu-backend", dest="gpu-backend", choices=BACKENDS,
                   help="nvml (default): the real GPUs, retried until the driver answers; simulated: a "
                        "made-up fleet; auto: nvml, or simulated on a machine with no NVIDIA library")
    p.add_argument("--fleet", dest="fleet", metavar="FILE", help="fleet YAML for the simulated backend")
    p.add_argument("--registry", dest="registry", metavar="FILE", help="registry YAML (default: packaged)")
    p.add_argument("--selection-log", dest="selection-log", action="append", metavar="PATH_OR_GLOB",
                   help="selection log to follow (repeatable)")
    p.add_argument("--selection-log.max-open-files", dest="selection-log.max-open-files", type=int, metavar="N",
                   help="selection logs held open at once; the rest are opened again when they grow (default 256)")
    p.add_argument("--routing.max-label-values", dest="routing.max-label-values", type=int, metavar="N",
                   help="distinct values admitted per routing label beyond the registry's (default 100)")
    p.add_argument("--routing.max-series", dest="routing.max-series", type=int, metavar="N",
                   help="routing series made from log content, all labels together (default 10000)")
    p.add_argument("--gpu-processes.max-per-gpu", dest="gpu-processes.max-per-gpu", type=int, metavar="N",
                   help="processes per GPU with series of their own, by memory; the rest are summed as "
                        "pid=\"other\" (default 16)")
    p.add_argument("--path.procfs", dest="path.procfs", metavar="DIR",
                   help="where GPU processes are looked up: /proc (default) with the host's PID namespace, or the "
                        "host's /proc mounted elsewhere")
    p.add_argument("--kubernetes.pod-resources-socket", dest="kubernetes.pod-resources-socket", metavar="PATH",
                   help="the kubelet's pod-resources socket (default /var/lib/kubelet/pod-resources/kubelet.sock)")
    p.add_argument("--kubernetes.refresh-interval", dest="kubernetes.refresh-interval", type=float, metavar="S",
                   help="seconds between reads of the kubelet, off the scrape path (default 10)")
    p.add_argument("--kubernetes.resource-names", dest="kubernetes.resource-names", metavar="NAME,NAME",
                   type=_names,
                   help="extended resources that are GPUs, globs allowed (default nvidia.com/gpu,nvidia.com/mig-*)")
    p.add_argument("--kubernetes.max-series", dest="kubernetes.max-series", type=int, metavar="N",
                   help="pod series of each family at most; the rest are counted (default 2000)")
    p.add_argument("--kubernetes.pod-memory", dest="kubernetes.pod-memory", action=argparse.BooleanOptionalAction,
                   default=None, help="GPU memory per pod from each process's cgroup, named by the API server's "
                                      "list of this node's pods (needs NODE_NAME and the host's PIDs; default off)")
    p.add_argument("--kubernetes.service-account-dir", dest="kubernetes.service-account-dir", metavar="DIR",
                   help="token and ca.crt for the API server (default /var/run/secrets/kubernetes.io/serviceaccount)")
    for name in COLLECTORS:
        p.add_argument(f"--collector.{name}", dest=f"collector.{name}", action=argparse.BooleanOptionalAction,
                       default=None,
                       help=f"enable the {name} collector (default {'off' if name in OFF_BY_DEFAULT else 'on'})")
    p.add_argument("--log.level", dest="log.level", choices=LEVELS)
    p.add_argument("--health.temperature-celsius", dest="health.temperature-celsius", type=float, metavar="C",
                   help="at or above: HOT (default 85)")
    p.add_argument("--health.utilization-ratio", dest="health.utilization-ratio", type=float, metavar="R",
                   help="at or above: OVERLOADED (default 0.95)")
    p.add_argument("--health.power-ratio", dest="health.power-ratio", type=float, metavar="R",
                   help="power at or above R x the limit: HIGH_POWER (default 0.95)")
    p.add_argument("--health.xid-window-seconds", dest="health.xid-window-seconds", type=float, metavar="S",
                   help="a critical XID this recent means FAULT (default 600)")
    p.add_argument("--health.critical-xids", dest="health.critical-xids", metavar="N,N,...",
                   type=_xids, help="XIDs that mean FAULT (default " + ",".join(map(str, POLICY.critical_xids)) + ")")
    p.set_defaults(run=run)


def make_collector(name: str, settings: "Settings", reading: "SharedReading") -> "Collector":
    """The collector `name` as the settings configure it; the GPU collectors share `reading`."""
    if name == "gpu":
        from exporter.collectors.gpu import GpuCollector

        return GpuCollector(reading)
    if name == "gpu-processes":
        from exporter.collectors.gpu_processes import GpuProcessesCollector

        return GpuProcessesCollector(reading, settings["gpu-processes.max-per-gpu"], settings["path.procfs"])
    if name == "kubernetes":
        from exporter.collectors.kubernetes import KubernetesCollector

        return KubernetesCollector(reading, settings)
    if name == "routing":
        from exporter.collectors.routing import RoutingCollector

        return RoutingCollector(settings["selection-log"], settings.registry, settings["routing.max-label-values"],
                                settings["routing.max-series"], settings["selection-log.max-open-files"])
    from exporter.collectors.process import ProcessCollector

    return ProcessCollector()


def gpu_reading(settings: "Settings", log: "logging.Logger") -> "SharedReading":
    """The one GPU reading of this process, which the GPU collectors share and this command owns: a
    collector switched off by a reload leaves it to the others. `auto` decides its backend here, once."""
    from exporter.gpu.backends import factory
    from exporter.gpu.reading import SharedReading

    source = (settings["gpu-backend"], settings["fleet"])
    return SharedReading(factory(*source, log.info), settings.thresholds(), source=source)


def more_descriptors() -> None:
    """Raise the soft open-file limit to the hard one, as Go raises it for every Go exporter: the
    soft limit is often 1,024, which MAX_CONNECTIONS alone would use up."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):  # an unlimited hard limit is more than the kernel allows: keep the soft one
        pass


def run(args: argparse.Namespace) -> int:
    from exporter import __version__, daemon, logfmt, serveconfig
    from exporter.allocator import one_malloc_arena
    from exporter.collectors.scrape import Scraper
    from exporter.web import App, make_server

    def load() -> "Settings":
        return serveconfig.load({k: getattr(args, k, None) for k in serveconfig.DEFAULTS}, args.config, os.environ)

    one_malloc_arena()
    more_descriptors()
    settings = load()
    log = logfmt.setup(settings["log.level"])
    reading = gpu_reading(settings, log)
    scraper = Scraper([make_collector(n, settings, reading) for n in COLLECTORS if settings.collector(n)])
    app = App(scraper, settings, __version__)
    server = make_server(settings["web.listen-address"], app)
    scheme = "https" if settings.web.tls else "http"
    host, port = server.server_address[:2]
    log.info(f"orchex {__version__} listening on {scheme}://{settings['web.listen-address']} "
             f"(bound {host!s}:{port}), metrics at {settings['web.telemetry-path']}")
    log.info(f"collectors: {', '.join(c.name for c in scraper.collectors) or 'none'}; selection logs: "
             f"{', '.join(settings['selection-log']) or 'none'}; registry: {settings.registry.source}")
    try:
        daemon.run(server, app, load, lambda name, s: make_collector(name, s, reading), log,
                   lambda s: reading.reconfigure(s["gpu-backend"], s["fleet"], s.thresholds()))
    finally:
        reading.close()  # after the collectors: NVML, its XID thread and the GPM samples
    return 0
