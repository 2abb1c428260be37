"""The exporter's endpoints: `/` (landing page), the telemetry path, `/healthz`, `/-/ready`; basic auth
from the web config; gzip and OpenMetrics on request, as prometheus_client serves them. The HTTP
mechanics (connections, deadlines, limits, TLS) are exporter/httpserver.py's."""

import base64
import binascii
import gzip
import ssl
import threading
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

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


class App:
    """What the endpoints need: set by `orchex serve`; `settings` is replaced whole on SIGHUP, so a
    request sees either the old settings or the new ones, never a mix."""

    def __init__(self, scraper: Scraper, settings: Settings, version: str) -> None:
        self.scraper, self.settings, self.version = scraper, settings, version
        self.ready = threading.Event()

    async def handle(self, request: Request, blocking: Callable[..., Awaitable[Any]]) -> Response:
        """The response to a GET or HEAD; `blocking(fn, *args)` runs fn off the event loop."""
        settings = self.settings
        web = settings.web
        if web.users and not await blocking(_authorized, web, request.headers.get("authorization", "")):
            response = UNAUTHORIZED
        else:
            response = await self._route(request, settings, blocking)
        return Response(response.status, response.body, response.content_type,
                        [*response.headers, *web.headers.items()])

    async def _route(self, request: Request, settings: Settings,
                     blocking: Callable[..., Awaitable[Any]]) -> Response:
        url = urlsplit(request.target)
        path = settings["web.telemetry-path"]
        if url.path == path:
            return await blocking(self.metrics, parse_qs(url.query).get("name[]"),
                                  "application/openmetrics-text" in request.headers.get("accept", ""),
                                  "gzip" in request.headers.get("accept-encoding", ""))
        if url.path == "/":
            return Response(200, LANDING.format(path=path, version=self.version).encode(),
                            "text/html; charset=utf-8")
        if url.path == "/healthz":
            return Response(200, b"OK\n")
        if url.path == "/-/ready":
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


def _authorized(web: WebConfig, header: str) -> bool:
    if header[:6].lower() != "basic ":
        return False
    try:
        user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError, binascii.Error):
        return False
    return web.authorized(user, password)


def make_server(address: str, app: App) -> Server:
    def tls() -> ssl.SSLContext | None:
        current = app.settings.web.tls
        return current.current() if current is not None else None

    return Server(address, app.handle, tls, idle=release_free_memory)
