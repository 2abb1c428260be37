"""Clients that a daemon on every GPU host meets sooner or later: slow, idle, huge, ancient, or
guessing passwords. Each test starts a real `orchex serve` and talks to it over loopback sockets."""

import base64
import socket
import ssl
import time

import bcrypt
import pytest

from delayproxy import DelayProxy
from exporter import httpserver
from exporter.commands.serve import more_descriptors

pytestmark = pytest.mark.timeout(120)


def threads(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s


def exchange(port, data, read_until_close=True):
    with connect(port) as s:
        s.sendall(data)
        chunks = []
        while True:
            got = s.recv(65536)
            if not got:
                return b"".join(chunks)
            chunks.append(got)
            if not read_until_close and b"\r\n\r\n" in b"".join(chunks):
                return b"".join(chunks)


def drain(c, timeout, tolerate=()):
    """Everything the server sends on `c` until it closes (or, with `tolerate`, until that is raised)."""
    c.settimeout(timeout)
    data = b""
    try:
        while chunk := c.recv(65536):
            data += chunk
    except tolerate:
        pass
    return data


def timed_scrape(port):
    started = time.monotonic()
    reply = exchange(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    return time.monotonic() - started, reply


def test_500_clients_trickling_headers_neither_starve_a_scrape_nor_add_threads(serve):
    s = serve("--gpu-backend=simulated")
    slow = []
    for _ in range(500):
        c = connect(s.port)
        c.sendall(b"GET /metrics HTTP/1.1\r\nX-Slow: ")
        slow.append(c)
    try:
        for _ in range(3):  # keep them trickling: one byte each, every round
            for c in slow:
                c.send(b"a")
            took, reply = timed_scrape(s.port)
            assert reply.startswith(b"HTTP/1.1 200 ") and b"orchex_nvml_up" in reply
            assert took < 1.0, f"scrape took {took:.2f} s beside 500 trickling clients"
        assert threads(s.proc.pid) <= 64
    finally:
        for c in slow:
            c.close()


def test_a_client_that_never_finishes_its_headers_is_dropped(serve):
    s = serve("--gpu-backend=simulated")
    with connect(s.port) as c:
        c.sendall(b"GET /metrics HTTP/1.1\r\n")
        c.settimeout(httpserver.HEADER_TIMEOUT + 5)
        started = time.monotonic()
        assert c.recv(100) == b""  # closed by the server, not answered
        assert time.monotonic() - started <= httpserver.HEADER_TIMEOUT + 2


def test_thousands_of_idle_connections_cost_no_threads(serve):
    s = serve("--gpu-backend=simulated")
    idle = [connect(s.port) for _ in range(1000)]
    try:
        time.sleep(0.5)
        assert threads(s.proc.pid) <= 64
        took, reply = timed_scrape(s.port)
        assert reply.startswith(b"HTTP/1.1 200 ") and took < 1.0
    finally:
        for c in idle:
            c.close()


def test_huge_headers_get_431_and_memory_stays_bounded(serve):
    s = serve("--gpu-backend=simulated")
    before = rss_kb(s.proc.pid)
    conns = []
    for _ in range(50):
        c = connect(s.port)
        c.sendall(b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * (httpserver.MAX_HEADER_BYTES * 2))
        conns.append(c)
    replies = []
    for c in conns:
        replies.append(drain(c, 10, ConnectionResetError))
        c.close()
    assert all(r.startswith(b"HTTP/1.1 431 ") for r in replies), replies[0][:80]
    # Each connection buffers at most about two header limits: far below 50 x 32 KiB in total.
    assert rss_kb(s.proc.pid) - before < 8 * 1024
    took, reply = timed_scrape(s.port)
    assert reply.startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize("request_line, status", [
    (b"GET /metrics\r\n", b"400"),  # HTTP/0.9: no version
    (b"GET /metrics HTTP/2.0\r\n\r\n", b"505"),
    (b"\r\n", b"400"),
    (b"GET  /metrics HTTP/1.1\r\n\r\n", b"400"),
    (b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n", b"400"),
    (b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", b"405"),
])
def test_every_request_line_gets_an_answer_and_a_close(serve, request_line, status):
    s = serve("--gpu-backend=simulated")
    reply = exchange(s.port, request_line)
    assert reply.split(b" ")[1] == status, reply[:100]
    assert b"Connection: close" in reply


def test_http_1_0_and_head_and_keep_alive(serve):
    s = serve("--gpu-backend=simulated")
    # An HTTP/1.0 request is answered in the server's own version (RFC 9110 6.2) and closed after.
    reply = exchange(s.port, b"HEAD /metrics HTTP/1.0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"\r\n\r\n") and b"Connection: close" in reply
    with connect(s.port) as c:  # two requests on one connection
        for _ in range(2):
            c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while not data.endswith(b"OK\n"):
                data += c.recv(4096)
            assert data.startswith(b"HTTP/1.1 200 ") and b"Connection: close" not in data


def test_rejecting_an_unknown_user_costs_what_a_wrong_password_costs(serve, tmp_path):
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=10)).decode()
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  prom: {hashed}\n")
    s = serve("--gpu-backend=simulated", f"--web.config.file={web}")

    def attempt(user, password):
        token = base64.b64encode(f"{user}:{password}".encode())
        started = time.monotonic()
        reply = exchange(s.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                         b"Authorization: Basic " + token + b"\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 401 ")
        return time.monotonic() - started

    known = sorted(attempt("prom", f"wrong{i}") for i in range(5))[2]
    unknown = sorted(attempt(f"nobody{i}", f"wrong{i}") for i in range(5))[2]
    assert known > 0.01  # bcrypt at cost 10 really ran
    assert 0.5 < unknown / known < 2.0, (known, unknown)
    long_password = attempt("prom", "x" * 100)  # over bcrypt's 72 bytes: a 401, not a dropped connection
    assert long_password > 0


# The ways in found with main at ee26657 (issue 22), each a test that failed on that code.

def tls_server(serve, tmp_path, *extra):
    from test_serve import make_cert

    key, crt = make_cert(tmp_path, "server")
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {crt}\n  key_file: {key}\n")
    s = serve("--gpu-backend=simulated", f"--web.config.file={web}", *extra, scheme="https")
    return s, ssl.create_default_context(cafile=str(crt))


def tls_scrape(port, ctx, address=("127.0.0.1", None)):
    with socket.create_connection((address[0], address[1] or port), timeout=15) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as c:
            c.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := c.recv(65536):
                data += chunk
            return data


def no_traceback(s):
    code, err = s.stop()
    assert "Traceback" not in err, err[-2000:]
    return err


def test_a_tls_client_hello_3_s_after_connect_is_served(serve, tmp_path):
    s, ctx = tls_server(serve, tmp_path)
    raw = connect(s.port)
    time.sleep(3)  # the handshake's deadline runs from the accept, HEADER_TIMEOUT long
    with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as c:
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert c.recv(100).startswith(b"HTTP/1.1 200 ")
    no_traceback(s)


def test_tls_scrapes_over_a_300_ms_round_trip_succeed(serve, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    s, ctx = tls_server(serve, tmp_path)
    proxy = DelayProxy(s.port, 0.15)

    def scrape(_):
        try:
            return tls_scrape(s.port, ctx, ("127.0.0.1", proxy.port)).startswith(b"HTTP/1.1 200 ")
        except OSError:
            return False

    with ThreadPoolExecutor(10) as pool:
        ok = list(pool.map(scrape, range(30)))
    assert ok.count(False) <= 1, f"{ok.count(False)} of 30 TLS scrapes failed at 300 ms round-trip time"
    no_traceback(s)


def test_300_silent_tls_connections_add_under_30_mb(serve, tmp_path):
    s, ctx = tls_server(serve, tmp_path)
    tls_scrape(s.port, ctx)
    before = rss_kb(s.proc.pid)
    silent = [connect(s.port) for _ in range(300)]
    try:
        time.sleep(1)
        grown = (rss_kb(s.proc.pid) - before) / 1024
        assert grown < 30, f"300 silent TLS connections added {grown:.1f} MB"
        assert tls_scrape(s.port, ctx).startswith(b"HTTP/1.1 200 ")
    finally:
        for c in silent:
            c.close()




def test_1024_idle_keep_alive_connections_do_not_lock_out_a_scrape(serve):
    more_descriptors()  # this process holds the clients' ends
    s = serve("--gpu-backend=simulated")
    idle = []
    try:
        for _ in range(httpserver.MAX_CONNECTIONS):
            c = connect(s.port)
            c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            idle.append(c)
        for c in idle:  # every one answered, and now idle on a kept-alive connection
            assert c.recv(4096).startswith(b"HTTP/1.1 200 ")
        took, reply = timed_scrape(s.port)
        assert reply.startswith(b"HTTP/1.1 200 ") and took < 2.0, (took, reply[:80])
    finally:
        for c in idle:
            c.close()


def test_wrong_passwords_do_not_starve_a_legitimate_scrape(serve, tmp_path):
    import threading

    more_descriptors()  # this process holds the clients' ends
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=10)).decode()
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  prom: {hashed}\n")
    s = serve("--gpu-backend=simulated", f"--web.config.file={web}")
    good = b"Authorization: Basic " + base64.b64encode(b"prom:s3cret")
    scrape = b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + good + b"\r\n\r\n"
    assert exchange(s.port, scrape).startswith(b"HTTP/1.1 200 ")  # Prometheus's first scrape
    stop = threading.Event()
    statuses = []

    def attacker(n):
        i = 0
        while not stop.is_set():
            i += 1
            bad = base64.b64encode(f"prom:wrong-{n}-{i}".encode())
            try:
                reply = exchange(s.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                 b"Authorization: Basic " + bad + b"\r\n\r\n")
                statuses.append(reply[9:12])
            except OSError:
                pass

    attackers = [threading.Thread(target=attacker, args=(n,), daemon=True) for n in range(200)]
    for t in attackers:
        t.start()
    try:
        time.sleep(2)
        for _ in range(5):
            started = time.monotonic()
            reply = exchange(s.port, scrape)
            took = time.monotonic() - started
            assert reply.startswith(b"HTTP/1.1 200 ") and took < 2.0, (took, reply[:80])
    finally:
        stop.set()
        for t in attackers:
            t.join(10)
    assert b"401" in statuses and b"503" in statuses  # checked, and refused at once past the queue
    no_traceback(s)


@pytest.mark.parametrize("request_bytes, status", [
    (b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", b"400"),
    (b"GET /metrics HTTP/1.1\r\n\r\n", b"400"),  # no Host
    (b"GET http://[/metrics HTTP/1.1\r\nHost: x\r\n\r\n", b"400"),
    (b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     b"400"),
    (b"GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", b"501"),
    (b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"a" * 100000, b"413"),
])
def test_ambiguous_or_broken_framing_gets_one_answer_and_a_close(serve, request_bytes, status):
    s = serve("--gpu-backend=simulated")
    reply = exchange(s.port, request_bytes)
    assert reply.split(b" ")[1] == status, reply[:100]
    assert reply.count(b"HTTP/1.1 ") == 1 and b"Connection: close" in reply
    no_traceback(s)


HIDDEN = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize("body_framing", [
    b"Content-Length: %d\r\n\r\n%s" % (len(HIDDEN), HIDDEN),
    b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(HIDDEN), HIDDEN),
])
def test_a_get_with_a_body_gets_exactly_one_response(serve, body_framing):
    """The body is read and dropped: a request hidden in it is never answered (request smuggling)."""
    s = serve("--gpu-backend=simulated")
    with connect(s.port) as c:
        c.sendall(b"GET /-/ready HTTP/1.1\r\nHost: x\r\n" + body_framing)
        data = drain(c, 2, TimeoutError)
    assert data.count(b"HTTP/1.1 ") == 1 and b"Ready" in data, data
    no_traceback(s)


def test_gzip_with_q_0_is_not_served_gzip(serve):
    s = serve("--gpu-backend=simulated")
    code, headers, body = s.get("/metrics", {"Accept-Encoding": "gzip;q=0, identity"})
    assert "Content-Encoding" not in headers and body.startswith(b"# HELP")
    code, headers, body = s.get("/metrics", {"Accept-Encoding": "br, gzip;q=0.5"})
    assert headers.get("Content-Encoding") == "gzip"
    code, headers, body = s.get("/metrics", {"Accept": "application/openmetrics-text;q=0, text/plain"})
    assert headers["Content-Type"].startswith("text/plain")


def test_handshakes_cut_off_by_their_deadline_leave_no_traceback_even_at_debug(serve, tmp_path):
    s, ctx = tls_server(serve, tmp_path, "--log.level=debug")
    stalled = []
    for _ in range(3):  # a ClientHello that never ends: the server aborts the handshake at its deadline
        c = connect(s.port)
        c.sendall(b"\x16\x03\x01\x00\xff\x01")
        stalled.append(c)
    time.sleep(httpserver.HEADER_TIMEOUT + 2 * httpserver.SWEEP_SECONDS)
    for c in stalled:
        c.settimeout(1)
        assert c.recv(100) == b""
        c.close()
    assert tls_scrape(s.port, ctx).startswith(b"HTTP/1.1 200 ")
    err = no_traceback(s)
    assert all(line.startswith("ts=") for line in err.splitlines()), err[-2000:]
