"""A small HTTP/1.1 server that hostile or broken clients cannot starve, for the exporter's endpoints.

One event loop thread holds every connection, so a connection costs a few kilobytes, not a thread;
the work of answering (a scrape) runs in a small fixed pool of worker threads, so a slow collector
never stalls the loop. Request framing is h11's (a sans-IO HTTP/1.1 implementation that follows RFC
9112): bodies are read and dropped or refused, ambiguous framing is a 400 and a close. This module
adds what a parser does not: every phase of a connection has a deadline and every buffer a size.

- the TLS handshake and the first request's line and headers must arrive within HEADER_TIMEOUT of
  the accept, a later request's within HEADER_TIMEOUT of its first byte;
- a keep-alive connection may sit idle for IDLE_TIMEOUT between requests;
- a request's line and headers may take MAX_HEADER_BYTES (more is a 431), its body MAX_BODY_BYTES
  (more is a 413), each followed by a close;
- a response must be taken by the client within WRITE_TIMEOUT, written in WRITE_CHUNK pieces;
- at most MAX_CONNECTIONS connections are held, MAX_TLS_CONNECTIONS with TLS; one more closes the
  connection that has waited longest for a request (an idle keep-alive, a silent handshake), or is
  closed itself when every connection is being answered, so waiting connections cannot lock a
  scraper out: a real client sends its request at once and is never the one waiting longest.

Memory per connection, measured by `make perf` (perf/attacks.py): 6.4 KB for plain HTTP, 66 KB for
TLS while it waits for its request (OpenSSL's state and buffers; asyncio's own 256 KiB read buffer is
sized down to TLS_READ_BUFFER) and 40 KB after, so the worst case is 6.5 MB plain and 17 MB with TLS
over the process's own."""

import asyncio
import asyncio.sslproto
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
from urllib.parse import urlsplit

import h11

from exporter.errors import UsageError
from exporter.logfmt import Throttled

log = logging.getLogger("orchex")

HEADER_TIMEOUT = 10.0
IDLE_TIMEOUT = 120.0  # longer than any sane scrape interval, so Prometheus keeps its connection
WRITE_TIMEOUT = 30.0
ANSWER_TIMEOUT = 60.0  # a handler (a scrape) that takes longer is abandoned with its connection
SWEEP_SECONDS = 1.0  # deadlines are kept to within this
MAX_HEADER_BYTES = 16 << 10
MAX_BODY_BYTES = 64 << 10  # a body on a GET means nothing here; it is read and dropped up to this
MAX_CONNECTIONS = 1024
MAX_TLS_CONNECTIONS = 256  # Prometheus holds one or two per server; 256 x 67 KB, not 1024
WORKERS = 4
READ_SIZE = 16 << 10
WRITE_CHUNK = 16 << 10
# asyncio gives every TLS connection a 256 KiB read buffer, allocated and zeroed before the client
# sends a byte: 300 silent TLS connections took 80 MB. The class attribute is the only size asyncio
# reads; a request to a metrics endpoint is a few hundred bytes.
TLS_READ_BUFFER = 16 << 10
asyncio.sslproto.SSLProtocol.max_size = TLS_READ_BUFFER

# Lines about what clients did wrong: useful once, noise a thousand times a second.
client_log = Throttled(log, every=60.0)


@dataclass
class Request:
    method: str
    path: str
    query: str
    version: str  # HTTP/1.0 or HTTP/1.1
    headers: dict[str, str]  # names lower-cased; a repeated header's values joined by ", "
    peer: str


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)


Handler = Callable[[Request, Callable[..., Awaitable[Any]]], Awaitable[Response]]


class BadRequest(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def parse_address(text: str) -> tuple[str, int]:
    """(host, port) from `:9847`, `0.0.0.0:9847`, `[::1]:9847`."""
    host, sep, port = str(text).rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--web.listen-address: expected [HOST]:PORT, got {text!r}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return host, int(port)


def to_request(event: h11.Request, peer: str) -> Request:
    """Our Request from h11's, refusing what h11 lets through but a server must not serve: another
    major version, a body framed two ways (RFC 9112 6.3: a smuggling vector), a target that is not
    a URL."""
    version = event.http_version.decode()
    if version not in ("1.0", "1.1"):
        raise BadRequest(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, f"unsupported version HTTP/{version[:8]}")
    headers: dict[str, str] = {}
    for name, value in event.headers:
        key = name.decode("latin-1")
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    if "transfer-encoding" in headers and "content-length" in headers:
        raise BadRequest(HTTPStatus.BAD_REQUEST, "both Transfer-Encoding and Content-Length")
    target = event.target.decode("latin-1")
    try:
        url = urlsplit(target)
    except ValueError:
        raise BadRequest(HTTPStatus.BAD_REQUEST, f"bad request target {target[:80]!r}") from None
    return Request(event.method.decode("latin-1"), url.path, url.query, f"HTTP/{version}", headers, peer)


def check_request_line(buffered: bytes) -> None:
    """Refuse a request line without an HTTP version (HTTP/0.9) as soon as the line is complete:
    h11 would wait for a blank line that such a client never sends."""
    line, newline, _ = buffered.partition(b"\n")
    if newline and not line.rstrip(b"\r").rsplit(b" ", 1)[-1].startswith(b"HTTP/"):
        raise BadRequest(HTTPStatus.BAD_REQUEST, f"bad request line {line[:80]!r}")


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
        self.handler, self.tls, self.on_idle, self.name = handler, tls, idle, name
        self.answering = 0  # requests between their handler's start and their response's end
        self.pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="orchex-http")
        self.held: set[_Connection] = set()
        self.waiting: dict[_Connection, None] = {}  # connections with no request yet, longest waiting first
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
        self.loop.set_exception_handler(_loop_error)
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._connection, sock=self.sock, limit=MAX_HEADER_BYTES)
        sweeper = asyncio.create_task(self._sweep())
        self._started.set()
        async with server:
            await self._stop.wait()
            # Connections still held (idle keep-alives, say) are closed here, before the loop ends,
            # so that no task is left to be cancelled mid-await at asyncio.run's exit.
            for conn in list(self.held):
                conn.writer.transport.abort()
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
                log.debug(f"http {conn.peer}: {conn.waiting_for} not done in time, closing")
                self._drop(conn)

    def _drop(self, conn: _Connection) -> None:
        self.held.discard(conn)
        self.waiting.pop(conn, None)
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

    def _admit(self, peer: str, limit: int) -> bool:
        """Room for one more connection: at the limit, the connection waiting longest makes way."""
        if len(self.held) < limit:
            return True
        if not self.waiting:
            log.debug(f"http {peer}: refused, {len(self.held)} connections held and all being answered")
            return False
        oldest = next(iter(self.waiting))
        log.debug(f"http {oldest.peer}: closed while waiting for {oldest.waiting_for}, to admit {peer}")
        self._drop(oldest)
        return True

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = str((writer.get_extra_info("peername") or ("?",))[0])
        context = self.tls()
        if not self._admit(peer, MAX_CONNECTIONS if context is None else MAX_TLS_CONNECTIONS):
            writer.transport.abort()
            return
        conn = _Connection(writer, peer)
        self.held.add(conn)
        self.waiting[conn] = None
        try:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.expect("the first request", HEADER_TIMEOUT)  # the TLS handshake is part of it
            if context is not None:
                await writer.start_tls(context, ssl_handshake_timeout=HEADER_TIMEOUT)
            await self._requests(reader, conn)
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError, ConnectionError, TimeoutError) as e:
            log.debug(f"http {peer}: connection ended: {e.__class__.__name__}")
        except Exception as e:  # a bug here must cost one connection and one line, never the server
            client_log.warning(f"http {peer}: connection failed: {e.__class__.__name__}: {e}",
                               key=e.__class__.__name__)
        finally:
            self.held.discard(conn)
            self.waiting.pop(conn, None)
            writer.close()

    async def _requests(self, reader: asyncio.StreamReader, conn: _Connection) -> None:
        h = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        while True:
            try:
                request = await self._receive(reader, conn, h)
            except h11.RemoteProtocolError as e:
                client_log.debug(f"http {conn.peer}: {e}", key="framing")
                await self._write(conn, h, Response(e.error_status_hint, f"{e}\n".encode()), False, True)
                return
            except BadRequest as e:
                client_log.debug(f"http {conn.peer}: {e}", key="request")
                await self._write(conn, h, Response(e.status, f"{e}\n".encode()), False, True)
                return
            if request is None:
                return
            conn.expect("the answer", ANSWER_TIMEOUT)
            self.answering += 1
            try:
                response, close = await self._answer(request)
                log.debug(f"http {conn.peer} {request.method} {request.path[:200]} {response.status}")
                await self._write(conn, h, response, request.method == "HEAD", close)
            finally:
                self.answering -= 1
                if not self.answering:
                    self.on_idle()
            if h.our_state is not h11.DONE or h.their_state is not h11.DONE:
                return  # h11 knows the connection must close: HTTP/1.0, `Connection: close`
            h.start_next_cycle()
            conn.expect("the next request", IDLE_TIMEOUT)
            self.waiting[conn] = None

    async def _receive(self, reader: asyncio.StreamReader, conn: _Connection, h: h11.Connection) -> Request | None:
        """The next request, its body read and dropped; None when the client closed between requests."""
        request, body = None, 0
        while True:
            event = h.next_event()
            if event is h11.NEED_DATA:
                if request is None:
                    check_request_line(h.trailing_data[0])
                data = await reader.read(READ_SIZE)
                if conn.waiting_for == "the next request":  # its first byte came
                    conn.expect("the request's headers", HEADER_TIMEOUT)
                h.receive_data(data)
            elif isinstance(event, h11.Request):
                self.waiting.pop(conn, None)
                request = to_request(event, conn.peer)
                if request.method not in ("GET", "HEAD"):
                    return request  # answered with a 405 and a close; its body is not read
            elif isinstance(event, h11.Data):
                body += len(event.data)
                if body > MAX_BODY_BYTES:
                    raise BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {MAX_BODY_BYTES} bytes")
            elif isinstance(event, h11.EndOfMessage):
                return request
            else:  # ConnectionClosed between requests
                return None

    async def _answer(self, request: Request) -> tuple[Response, bool]:
        """The response and whether to close after it."""
        if request.method not in ("GET", "HEAD"):
            return Response(405, b"Method not allowed\n", headers=[("Allow", "GET, HEAD")]), True
        try:
            return await self.handler(request, self.run_blocking), False
        except Exception as e:  # a failing handler is a 500 and one line, not a dropped connection
            client_log.warning(f"http {request.path[:200]}: answering failed: {e.__class__.__name__}: {e}",
                               key=f"answer {e.__class__.__name__}")
            return Response(500, b"Internal server error\n"), True

    async def _write(self, conn: _Connection, h: h11.Connection, response: Response, head_only: bool,
                     close: bool) -> None:
        conn.expect("the client to take the response", WRITE_TIMEOUT)
        headers = [("Server", self.name), ("Date", formatdate(usegmt=True)), ("Content-Type", response.content_type),
                   ("Content-Length", str(len(response.body))), *response.headers]
        if close:
            headers.append(("Connection", "close"))
        try:
            events: list[h11.Event] = [h11.Response(status_code=response.status, headers=headers,
                                                    reason=HTTPStatus(response.status).phrase)]
            if response.body and not head_only:
                events.append(h11.Data(data=response.body))  # passed through below, not copied
            parts = [part for e in [*events, h11.EndOfMessage()] for part in h.send_with_data_passthrough(e) or ()]
        except h11.LocalProtocolError:  # the request left no state a response can follow
            return
        for part in parts:
            data = memoryview(part)
            for at in range(0, len(data), WRITE_CHUNK):
                conn.writer.write(data[at:at + WRITE_CHUNK])
                await conn.writer.drain()


def _loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """asyncio's own reports (a TLS handshake cut off by its deadline, a transport reset) as one
    throttled line: its default handler writes a traceback per connection, at any log level."""
    error = context.get("exception")
    what = context.get("message", "asyncio error")
    detail = f"{what}: {error.__class__.__name__}: {error}" if error is not None else what
    client_log.debug(f"http: {detail}", key=what)
