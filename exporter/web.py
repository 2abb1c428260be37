"""The exporter's endpoints: `/` (landing page), the telemetry path, `/healthz`, `/-/ready`; basic auth
from the web config; gzip and OpenMetrics on request, as prometheus_client serves them. The HTTP
mechanics (connections, deadlines, limits, TLS) are exporter/httpserver.py's."""

import asyncio
import base64
import binascii
import gzip
import ssl
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs

from exporter import exposition
from exporter.allocator import release_free_memory
from exporter.collectors.scrape import Scraper
from exporter.httpserver import Request, Response, Server
from exporter.serveconfig import Settings
from exporter.webconfig import WebConfig

LANDING = """<!doctype html>
<html><head><title>orchex exporter</title></head>
<body><h1>orchex exporter</h1>
<p>GPU health and model-routing metrics for Prometheus.</p>
<ul><li><a href="{path}">{path}</a></li><li><a href="/healthz">/healthz</a></li>
<li><a href="/-/ready">/-/ready</a></li></ul>
<p>version {version}</p></body></html>
"""
UNAUTHORIZED = Response(401, b"Unauthorized\n", headers=[("WWW-Authenticate", 'Basic realm="orchex"')])
BUSY = Response(503, b"Too many password checks in progress\n", headers=[("Retry-After", "1")])
# bcrypt checks get threads of their own, so that wrong passwords never hold a scrape's worker, and
# a bounded queue: past it a check is refused at once rather than waited for.
AUTH_WORKERS = 2
AUTH_QUEUE = 8


class PasswordChecks:
    """bcrypt checks on their own small pool; `check` is called on the event loop only, so the
    count of checks in flight needs no lock."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(AUTH_WORKERS, thread_name_prefix="orchex-auth")
        self.in_flight = 0

    async def check(self, web: WebConfig, user: str, password: str) -> bool | None:
        """The verdict, or None when AUTH_WORKERS + AUTH_QUEUE checks are already in flight."""
        if self.in_flight >= AUTH_WORKERS + AUTH_QUEUE:
            return None
        self.in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.pool, web.check, user, password)
        finally:
            self.in_flight -= 1


class App:
    """What the endpoints need: set by `orchex serve`; `settings` is replaced whole on SIGHUP, so a
    request sees either the old settings or the new ones, never a mix."""

    def __init__(self, scraper: Scraper, settings: Settings, version: str) -> None:
        self.scraper, self.settings, self.version = scraper, settings, version
        self.ready = threading.Event()
        self.passwords = PasswordChecks()

    async def handle(self, request: Request, blocking: Callable[..., Awaitable[Any]]) -> Response:
        """The response to a GET or HEAD; `blocking(fn, *args)` runs fn off the event loop."""
        settings = self.settings
        web = settings.web
        verdict = await self._authorized(web, request.headers.get("authorization", "")) if web.users else True
        if verdict is None:
            response = BUSY
        elif not verdict:
            response = UNAUTHORIZED
        else:
            response = await self._route(request, settings, blocking)
        return Response(response.status, response.body, response.content_type,
                        [*response.headers, *web.headers.items()])

    async def _authorized(self, web: WebConfig, header: str) -> bool | None:
        """True or False for the Authorization header; None when no password check can start now.
        A verdict already reached is found on the event loop, without waiting for any worker."""
        if header[:6].lower() != "basic ":
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError, binascii.Error):
            return False
        known = web.cached(user, password)
        return known if known is not None else await self.passwords.check(web, user, password)

    async def _route(self, request: Request, settings: Settings,
                     blocking: Callable[..., Awaitable[Any]]) -> Response:
        path = settings["web.telemetry-path"]
        if request.path == path:
            return await blocking(self.metrics, parse_qs(request.query).get("name[]"),
                                  accepts(request.headers.get("accept", ""), "application/openmetrics-text"),
                                  accepts(request.headers.get("accept-encoding", ""), "gzip"))
        if request.path == "/":
            return Response(200, LANDING.format(path=path, version=self.version).encode(),
                            "text/html; charset=utf-8")
        if request.path == "/healthz":
            return Response(200, b"OK\n")
        if request.path == "/-/ready":
            if self.ready.is_set():
                return Response(200, b"Ready\n")
            return Response(503, b"Not ready: first collection still running\n")
        return Response(404, b"Not Found\n")

    def metrics(self, names: list[str] | None, openmetrics: bool, compress: bool) -> Response:
        """The scrape body (all families, or those named by `name[]`), gzip-compressed on request."""
        if names:
            wanted = set(names)
            families = [f for f in self.scraper.scrape()
                        if f.name in wanted or any(f.name + s in wanted for s, _, _ in f.samples)]
            body = exposition.render(families, openmetrics=openmetrics).encode()
        else:
            body = self.scraper.exposition(openmetrics=openmetrics)
        headers = []
        if compress:
            # Level 1: a scrape body compresses to about a tenth at a fraction of level 9's CPU.
            body = gzip.compress(body, compresslevel=1)
            headers.append(("Content-Encoding", "gzip"))
        return Response(200, body, exposition.OPENMETRICS if openmetrics else exposition.TEXT, headers)


def accepts(header: str, wanted: str) -> bool:
    """Whether an Accept or Accept-Encoding header asks for `wanted` with a quality above 0 (RFC 9110
    12.4.2): `gzip;q=0` refuses gzip. Only an exact name counts, not `*`: the plain text format and
    an uncompressed body are always acceptable, and what every Prometheus asks for by name."""
    for item in header.split(","):
        name, *params = (part.strip() for part in item.split(";"))
        if name.lower() != wanted:
            continue
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    return float(value) > 0
                except ValueError:
                    return False
        return True
    return False


def make_server(address: str, app: App) -> Server:
    def tls() -> ssl.SSLContext | None:
        current = app.settings.web.tls
        return current.current() if current is not None else None

    return Server(address, app.handle, tls, idle=release_free_memory)
