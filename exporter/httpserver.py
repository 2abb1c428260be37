"""A small HTTP/1.1 server that hostile or broken clients cannot starve, for the exporter's endpoints.

One event loop thread holds every connection, so a connection costs a few kilobytes, not a thread;
the work of answering (a scrape, a bcrypt check) runs in a small fixed pool of worker threads, so a
slow collector never stalls the loop. Every wait has a deadline and every buffer a size:

- the TLS handshake, and a request's line and headers, must arrive within HEADER_TIMEOUT;
- a keep-alive connection may sit idle for IDLE_TIMEOUT between requests;
- a request's line and headers may take MAX_HEADER_BYTES; larger is a 431 and a close;
- a response must be taken by the client within WRITE_TIMEOUT, written in WRITE_CHUNK pieces;
- at most MAX_CONNECTIONS connections are held; one more is closed at once.

Python's threading HTTP server (one thread per connection, no deadlines) let 1,000 slow clients hold
1,000 threads; asyncio's streams give the deadlines and the bounded buffers with the standard library
alone, so no server dependency is added. The request grammar is the subset a metrics endpoint needs:
GET and HEAD, no request bodies, HTTP/1.0 and 1.1; anything else gets an answer and a close."""

import asyncio
import logging
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

from exporter.errors import UsageError

log = logging.getLogger("orchex")

HEADER_TIMEOUT = 10.0
IDLE_TIMEOUT = 120.0  # longer than any sane scrape interval, so Prometheus keeps its connection
WRITE_TIMEOUT = 30.0
ANSWER_TIMEOUT = 60.0  # a handler (a scrape) that takes longer is abandoned with its connection
SWEEP_SECONDS = 1.0  # deadlines are kept to within this
MAX_HEADER_BYTES = 16 << 10
MAX_CONNECTIONS = 1024
WORKERS = 4
WRITE_CHUNK = 16 << 10


@dataclass
class Request:
    method: str
    target: str
    version: str  # HTTP/1.0 or HTTP/1.1
    headers: dict[str, str]  # names lower-cased; a repeated header keeps its last value
    peer: str


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)


Handler = Callable[[Request, Callable[..., Awaitable[Any]]], Awaitable[Response]]


class BadRequest(Exception):
    def __init__(self, status: HTTPStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def parse_address(text: str) -> tuple[str, int]:
    """(host, port) from `:9847`, `0.0.0.0:9847`, `[::1]:9847`."""
    host, sep, port = str(text).rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--web.listen-address: expected [HOST]:PORT, got {text!r}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return host, int(port)


def parse_head(data: bytes, peer: str) -> Request:
    """A Request from the bytes of a request line and its headers (up to the blank line)."""
    text = data.decode("latin-1")  # every byte decodes: HTTP/1.1 headers are octets
    line, _, rest = text.partition("\r\n") if "\r\n" in text else text.partition("\n")
    parts = line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise BadRequest(HTTPStatus.BAD_REQUEST, f"bad request line {line[:80]!r}")
    method, target, version = parts
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise BadRequest(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, f"unsupported version {version[:16]!r}")
    headers = {}
    for raw in rest.replace("\r\n", "\n").split("\n"):
        if not raw:
            continue
        name, sep, value = raw.partition(":")
        if not sep or not name or name != name.strip() or any(c in name for c in " \t"):
            raise BadRequest(HTTPStatus.BAD_REQUEST, f"bad header line {raw[:80]!r}")
        headers[name.lower()] = value.strip()
    return Request(method, target, version, headers, peer)


def render_response(r: Response, version: str, close: bool, head_only: bool, server: str) -> bytes:
    """The bytes of a response: status line and headers, then the body unless the request was HEAD.
    One buffer, so that headers and a small body leave in one segment."""
    lines = [f"{version} {r.status} {HTTPStatus(r.status).phrase}", f"Server: {server}",
             f"Date: {formatdate(usegmt=True)}", f"Content-Type: {r.content_type}",
             f"Content-Length: {len(r.body)}", *(f"{k}: {v}" for k, v in r.headers)]
    if close:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + r.body


class _Connection:
    """A held connection and the moment by which what it waits for must have happened."""

    __slots__ = ("writer", "peer", "deadline", "waiting_for")

    def __init__(self, writer: asyncio.StreamWriter, peer: str) -> None:
        self.writer, self.peer = writer, peer
        self.deadline, self.waiting_for = 0.0, ""

    def expect(self, what: str, within: float) -> None:
        self.waiting_for, self.deadline = what, time.monotonic() + within


class Server:
    """Serves `handler` on a bound socket; `tls()` gives the context for each new connection (None:
    plain HTTP), so a reload can turn TLS on or off and a renewed certificate is used at once."""

    def __init__(self, address: str, handler: Handler, tls: Callable[[], ssl.SSLContext | None],
                 idle: Callable[[], None] = lambda: None, name: str = "orchex") -> None:
        """`idle()` is called on the event loop whenever the last response in flight has been written."""
        host, port = parse_address(address)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self.sock = socket.create_server((host or "0.0.0.0", port), family=family, backlog=128)
        except OSError as e:
            raise UsageError(f"--web.listen-address {address}: {e.strerror}") from None
        self.sock.setblocking(False)
        self.server_address = self.sock.getsockname()
        self.handler, self.tls, self.idle, self.name = handler, tls, idle, name
        self.answering = 0  # requests between their handler's start and their response's end
        self.pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="orchex-http")
        self.held: set[_Connection] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._done = threading.Event()

    def serve_forever(self) -> None:
        """Serve until shutdown(); run it on a thread of its own."""
        try:
            asyncio.run(self._main())
        finally:
            self._done.set()

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._connection, sock=self.sock, limit=MAX_HEADER_BYTES)
        sweeper = asyncio.create_task(self._sweep())
        self._started.set()
        async with server:
            await self._stop.wait()
        sweeper.cancel()
        self.pool.shutdown(wait=False, cancel_futures=True)

    async def _sweep(self) -> None:
        """Close every connection past its deadline, once a second. One timer for all connections
        rather than one per request: per-request timers cost an allocation and a heap entry each,
        and at a thousand requests a second they fragmented the heap measurably."""
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            now = time.monotonic()
            for conn in [c for c in self.held if c.deadline < now]:
                log.debug("http %s: %s not done in time, closing", conn.peer, conn.waiting_for)
                conn.writer.transport.abort()

    def shutdown(self) -> None:
        if self._started.wait(5) and self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._done.wait(5)

    def server_close(self) -> None:
        self.sock.close()

    async def run_blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(*args) on a worker thread: for anything that may block or take milliseconds."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = str((writer.get_extra_info("peername") or ("?",))[0])
        if len(self.held) >= MAX_CONNECTIONS:
            log.debug("http %s: refused, %d connections held", peer, len(self.held))
            writer.close()
            return
        conn = _Connection(writer, peer)
        self.held.add(conn)
        try:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            context = self.tls()
            if context is not None:
                await writer.start_tls(context, ssl_handshake_timeout=HEADER_TIMEOUT)
            await self._requests(reader, conn)
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError, ConnectionError, TimeoutError) as e:
            log.debug("http %s: connection ended: %s", peer, e.__class__.__name__)
        finally:
            self.held.discard(conn)
            writer.close()

    async def _requests(self, reader: asyncio.StreamReader, conn: _Connection) -> None:
        peer = conn.peer
        conn.expect("the first request", HEADER_TIMEOUT)
        while True:
            first = await reader.read(1)  # idle until the first byte of the next request
            if not first:
                return
            conn.expect("the request's headers", HEADER_TIMEOUT)
            try:
                request = parse_head(await _read_head(reader, first), peer)
            except asyncio.LimitOverrunError:
                await self._write(conn, Response(431, b"Request header fields too large\n"), "HTTP/1.1", True, False)
                return
            except BadRequest as e:
                await self._write(conn, Response(int(e.status), f"{e}\n".encode()), "HTTP/1.1", True, False)
                return
            close = _wants_close(request)
            conn.expect("the answer", ANSWER_TIMEOUT)
            self.answering += 1
            try:
                if request.method not in ("GET", "HEAD"):
                    response = Response(405, b"Method not allowed\n", headers=[("Allow", "GET, HEAD")])
                    close = True  # a body may follow, which is not read
                else:
                    response = await self.handler(request, self.run_blocking)
                log.debug("http %s %s %s %d", peer, request.method, request.target[:200], response.status)
                await self._write(conn, response, request.version, close, request.method == "HEAD")
            finally:
                self.answering -= 1
                if not self.answering:
                    self.idle()
            if close:
                return
            conn.expect("the next request", IDLE_TIMEOUT)

    async def _write(self, conn: _Connection, response: Response, version: str, close: bool,
                     head_only: bool) -> None:
        conn.expect("the client to take the response", WRITE_TIMEOUT)
        data = memoryview(render_response(response, "HTTP/1.1" if version == "HTTP/1.1" else "HTTP/1.0", close,
                                          head_only, self.name))
        for at in range(0, len(data), WRITE_CHUNK):
            conn.writer.write(data[at:at + WRITE_CHUNK])
            await conn.writer.drain()


async def _read_head(reader: asyncio.StreamReader, first: bytes) -> bytes:
    """The request line and headers, after the request's first byte. A request line without an HTTP
    version (HTTP/0.9) ends at its own newline: it is answered, not waited on."""
    line = first + (await reader.readuntil(b"\n") if first != b"\n" else b"")
    if line.strip() == b"":
        raise BadRequest(HTTPStatus.BAD_REQUEST, "empty request line")
    if not line.rstrip(b"\r\n").rsplit(b" ", 1)[-1].startswith(b"HTTP/"):
        return line  # parse_head refuses it with a 400
    lines, size = [line], len(line)
    while True:
        header = await reader.readuntil(b"\n")
        size += len(header)
        if size > MAX_HEADER_BYTES:
            raise asyncio.LimitOverrunError("request headers too large", size)
        if header in (b"\r\n", b"\n"):
            return b"".join(lines)
        lines.append(header)


def _wants_close(request: Request) -> bool:
    connection = request.headers.get("connection", "").lower()
    if request.version == "HTTP/1.0":
        return "keep-alive" not in connection
    return "close" in connection
