"""The HTTP side of `orchex serve`: `/` (landing page), the telemetry path, `/healthz`, `/-/ready`.

Python's threading HTTP server, one thread per connection, HTTP/1.1 keep-alive (Prometheus reuses
its connection); gzip and OpenMetrics on request, as prometheus_client serves them."""

import base64
import gzip
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from exporter import exposition
from exporter.errors import UsageError

log = logging.getLogger("orchex")

LANDING = """<!doctype html>
<html><head><title>orchex exporter</title></head>
<body><h1>orchex exporter</h1>
<p>GPU health and model-routing metrics for Prometheus.</p>
<ul><li><a href="{path}">{path}</a></li><li><a href="/healthz">/healthz</a></li>
<li><a href="/-/ready">/-/ready</a></li></ul>
<p>version {version}</p></body></html>
"""


def parse_address(text):
    """(host, port) from `:9847`, `0.0.0.0:9847`, `[::1]:9847`."""
    host, sep, port = str(text).rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--web.listen-address: expected [HOST]:PORT, got {text!r}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return host, int(port)


class App:
    """What the handler needs: set by `orchex serve`, replaced in place on SIGHUP."""

    def __init__(self, scraper, telemetry_path, web, version):
        self.scraper, self.telemetry_path, self.web, self.version = scraper, telemetry_path, web, version
        self.ready = threading.Event()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "orchex"
    app = None  # set on the subclass made by make_server

    def log_message(self, fmt, *args):
        log.debug("http %s %s", self.address_string(), fmt % args)

    def _send(self, code, body, ctype="text/plain; charset=utf-8", extra=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in list(self.app.web.headers.items()) + list(extra):
            self.send_header(k, v)
        # Headers and body leave in one write: written apart, a small body waits on Nagle and the
        # client's delayed ACK (40 ms a response on a keep-alive connection).
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD":
            self._headers_buffer.append(body)
        self.flush_headers()

    def _authorized(self):
        if not self.app.web.users:
            return True
        auth = self.headers.get("Authorization", "")
        if auth[:6].lower() == "basic ":
            try:
                user, _, password = base64.b64decode(auth[6:], validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            return self.app.web.authorized(user, password)
        return False

    def do_GET(self):
        if not self._authorized():
            self._send(401, b"Unauthorized\n", extra=[("WWW-Authenticate", 'Basic realm="orchex"')])
            return
        url = urlsplit(self.path)
        app = self.app
        if url.path == app.telemetry_path:
            self._metrics(parse_qs(url.query).get("name[]"))
        elif url.path == "/":
            page = LANDING.format(path=app.telemetry_path, version=app.version).encode()
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

    def _metrics(self, names):
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
    ssl_context = None

    def get_request(self):
        sock, addr = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context is not None:
            # The handshake happens on the connection's own thread (first read), so a slow or
            # hostile client cannot hold up the accept loop.
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request, client_address):
        log.debug("connection from %s failed", client_address, exc_info=True)


def make_server(address, app):
    host, port = parse_address(address)
    handler = type("BoundHandler", (Handler,), {"app": app})
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server_class = type("BoundServer", (Server,), {"address_family": family})
    try:
        server = server_class((host or "0.0.0.0", port), handler)
    except OSError as e:
        raise UsageError(f"--web.listen-address {address}: {e.strerror}") from None
    server.ssl_context = app.web.ssl_context
    return server

