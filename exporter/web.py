"""The HTTP side of `orchex serve`: `/` (landing page), the telemetry path, `/healthz`, `/-/ready`.

Python's threading HTTP server, one thread per connection, HTTP/1.1 keep-alive (Prometheus reuses
its connection); gzip and OpenMetrics on request, as prometheus_client serves them."""

import base64
import gzip
import logging
import socket
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from exporter import exposition
from exporter.collectors.scrape import Scraper
from exporter.errors import UsageError
from exporter.serveconfig import Settings

log = logging.getLogger("orchex")

LANDING = """<!doctype html>
<html><head><title>orchex exporter</title></head>
<body><h1>orchex exporter</h1>
<p>GPU health and model-routing metrics for Prometheus.</p>
<ul><li><a href="{path}">{path}</a></li><li><a href="/healthz">/healthz</a></li>
<li><a href="/-/ready">/-/ready</a></li></ul>
<p>version {version}</p></body></html>
"""


def parse_address(text: str) -> tuple[str, int]:
    """(host, port) from `:9847`, `0.0.0.0:9847`, `[::1]:9847`."""
    host, sep, port = str(text).rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--web.listen-address: expected [HOST]:PORT, got {text!r}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return host, int(port)


class App:
    """What the handler needs: set by `orchex serve`; `settings` is replaced whole on SIGHUP, so a
    request sees either the old settings or the new ones, never a mix."""

    def __init__(self, scraper: Scraper, settings: Settings, version: str) -> None:
        self.scraper, self.settings, self.version = scraper, settings, version
        self.ready = threading.Event()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "orchex"
    app: App  # set on the subclass made by make_server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http %s %s", self.address_string(), format % args)

    def _send(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8",
              extra: Iterable[tuple[str, str]] = ()) -> None:
        self.log_request(code)
        head = [f"{self.protocol_version} {code} {self.responses[code][0]}",
                f"Server: {self.version_string()}", f"Date: {self.date_time_string()}",
                f"Content-Type: {ctype}", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in (*self.app.settings.web.headers.items(), *extra)]
        if self.close_connection:
            head.append("Connection: close")
        # Headers and body leave in one write: written apart, a small body waits on Nagle and the
        # client's delayed ACK (40 ms a response on a keep-alive connection).
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(data + body if self.command != "HEAD" else data)

    def _authorized(self) -> bool:
        web = self.app.settings.web
        if not web.users:
            return True
        auth = self.headers.get("Authorization", "")
        if auth[:6].lower() == "basic ":
            try:
                user, _, password = base64.b64decode(auth[6:], validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            return web.authorized(user, password)
        return False

    def do_GET(self) -> None:
        if not self._authorized():
            self._send(401, b"Unauthorized\n", extra=[("WWW-Authenticate", 'Basic realm="orchex"')])
            return
        url = urlsplit(self.path)
        app = self.app
        telemetry_path = app.settings["web.telemetry-path"]
        if url.path == telemetry_path:
            self._metrics(parse_qs(url.query).get("name[]"))
        elif url.path == "/":
            page = LANDING.format(path=telemetry_path, version=app.version).encode()
            self._send(200, page, "text/html; charset=utf-8")
        elif url.path == "/healthz":
            self._send(200, b"OK\n")
        elif url.path == "/-/ready":
            if app.ready.is_set():
                self._send(200, b"Ready\n")
            else:
                self._send(503, b"Not ready: first collection still running\n")
        else:
            self._send(404, b"Not Found\n")

    do_HEAD = do_GET

    def _metrics(self, names: list[str] | None) -> None:
        om = "application/openmetrics-text" in self.headers.get("Accept", "")
        if names:
            wanted = set(names)
            families = [f for f in self.app.scraper.scrape()
                        if f.name in wanted or any(f.name + s in wanted for s, _, _ in f.samples)]
            body = exposition.render(families, openmetrics=om).encode()
        else:
            body = self.app.scraper.exposition(openmetrics=om)
        extra = []
        if "gzip" in self.headers.get("Accept-Encoding", ""):
            # Level 1: a scrape body compresses to about a tenth at a fraction of level 9's CPU.
            body = gzip.compress(body, compresslevel=1)
            extra.append(("Content-Encoding", "gzip"))
        self._send(200, body, exposition.OPENMETRICS if om else exposition.TEXT, extra)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # 20 scrapers connecting at once must not overflow the listen backlog
    app: App  # set on the subclass made by make_server

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tls = self.app.settings.web.tls
        if tls is not None:
            # The handshake happens on the connection's own thread (first read), so a slow or
            # hostile client cannot hold up the accept loop.
            sock = tls.current().wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s failed", client_address, exc_info=True)


def make_server(address: str, app: App) -> "Server":
    host, port = parse_address(address)
    handler = type("BoundHandler", (Handler,), {"app": app})
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server_class = type("BoundServer", (Server,), {"address_family": family, "app": app})
    try:
        server = server_class((host or "0.0.0.0", port), handler)
    except OSError as e:
        raise UsageError(f"--web.listen-address {address}: {e.strerror}") from None
    return server

