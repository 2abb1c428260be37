"""Clients that a daemon on every GPU host meets sooner or later: slow, idle, huge, ancient, or
guessing passwords. Each test starts a real `orchex serve` and talks to it over loopback sockets."""

import base64
import socket
import time

import bcrypt
import pytest

from exporter import httpserver

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
        c.settimeout(10)
        data = b""
        try:
            while chunk := c.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
        replies.append(data)
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
    (b"POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", b"405"),
])
def test_every_request_line_gets_an_answer_and_a_close(serve, request_line, status):
    s = serve("--gpu-backend=simulated")
    reply = exchange(s.port, request_line)
    assert reply.split(b" ")[1] == status, reply[:100]
    assert b"Connection: close" in reply


def test_http_1_0_and_head_and_keep_alive(serve):
    s = serve("--gpu-backend=simulated")
    reply = exchange(s.port, b"HEAD /metrics HTTP/1.0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.0 200 ") and reply.endswith(b"\r\n\r\n")
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
        reply = exchange(s.port, b"GET /metrics HTTP/1.1\r\nConnection: close\r\nAuthorization: Basic " + token
                         + b"\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 401 ")
        return time.monotonic() - started

    known = sorted(attempt("prom", f"wrong{i}") for i in range(5))[2]
    unknown = sorted(attempt(f"nobody{i}", f"wrong{i}") for i in range(5))[2]
    assert known > 0.01  # bcrypt at cost 10 really ran
    assert 0.5 < unknown / known < 2.0, (known, unknown)
    long_password = attempt("prom", "x" * 100)  # over bcrypt's 72 bytes: a 401, not a dropped connection
    assert long_password > 0
