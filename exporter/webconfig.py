"""`--web.config.file`: the exporter-toolkit web configuration (TLS, client certificates, basic auth
with bcrypt hashes, response headers), the same file node_exporter and dcgm-exporter read.

Keys that orchex does not implement are refused by name rather than silently ignored: a file that
asks for a rate limit or a cipher list must not appear to have one. Everything is checked at load,
so a file that loads is one that serves: a reload either applies a whole file or none of it."""

import hashlib
import hmac
import logging
import os
import re
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from exporter import yamlfile
from exporter.errors import UsageError

log = logging.getLogger("orchex")

TLS_KEYS = {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version", "max_version"}
# exporter-toolkit's client_auth_type values. RequestClientCert and RequireAnyClientCert accept a
# certificate without verifying it, which Python's TLS cannot do (it verifies every certificate it
# asks for): orchex refuses them rather than verifying where the file says not to.
CLIENT_AUTH = {"NoClientCert": ssl.CERT_NONE, "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
               "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}
UNVERIFIED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert")
VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1, "TLS12": ssl.TLSVersion.TLSv1_2,
            "TLS13": ssl.TLSVersion.TLSv1_3}
HEADERS = {"Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "X-XSS-Protection",
           "Strict-Transport-Security"}
# A bcrypt hash: version, two-digit cost 04-31, 22 characters of salt and 31 of hash in bcrypt's base64.
BCRYPT = re.compile(r"\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}")
Fail = Callable[[tuple[Any, ...], str], NoReturn]  # raise a UsageError naming the line of a key path
CACHE_SIZE = 1024  # (user, password) verdicts kept; a scrape every few seconds needs one


@dataclass
class Tls:
    """A server TLS context that follows its files: a certificate renewed on disk is served from the
    next handshake on, as exporter-toolkit reads the files on every handshake."""

    cert_file: str
    key_file: str
    client_ca_file: str | None
    verify_mode: ssl.VerifyMode
    min_version: ssl.TLSVersion
    max_version: ssl.TLSVersion | None
    context: ssl.SSLContext = field(init=False)
    _stamp: tuple[Any, ...] = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self._stamp = self._files_stamp()
        self.context = self._build()

    def _files_stamp(self) -> tuple[Any, ...]:
        out = []
        for path in (self.cert_file, self.key_file, self.client_ca_file):
            try:
                st = os.stat(path) if path else None
            except OSError:
                st = None
            out.append(st and (st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(out)

    def _build(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        ctx.verify_mode = self.verify_mode
        if self.client_ca_file:
            ctx.load_verify_locations(self.client_ca_file)
        ctx.minimum_version = self.min_version
        if self.max_version is not None:
            ctx.maximum_version = self.max_version
        return ctx

    def current(self) -> ssl.SSLContext:
        """The context for a new connection, rebuilt first when a file changed; a file caught
        half-written keeps the last good context until it loads."""
        stamp = self._files_stamp()
        if stamp == self._stamp:
            return self.context
        with self._lock:
            if stamp != self._stamp:
                try:
                    self.context = self._build()
                    log.info(f"TLS: reloaded {self.cert_file} after it changed on disk")
                except (OSError, ssl.SSLError) as e:
                    log.error(f"TLS: cannot load the changed certificate, serving the previous one: {e}")
                self._stamp = stamp
        return self.context


@dataclass
class WebConfig:
    tls: Tls | None = None
    users: dict[str, bytes] = field(default_factory=dict)  # user -> bcrypt hash
    headers: dict[str, str] = field(default_factory=dict)
    # Verdicts by an HMAC digest of (user, password), as exporter-toolkit caches them. Granted ones are
    # kept apart: a flood of wrong passwords clears only the refused ones, so the scraper's stays.
    _granted: dict[bytes, None] = field(default_factory=dict)
    _refused: dict[bytes, None] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _key(self, user: str, password: str) -> tuple[bytes, bytes | None]:
        """The cache key and the hash to check against. An unknown user is checked against a real
        hash all the same, so timing does not tell which users exist."""
        hashed = self.users.get(user)
        checked_against = hashed if hashed is not None else next(iter(self.users.values()))
        return hmac.new(checked_against, f"{user}\0{password}".encode(), hashlib.sha256).digest(), hashed

    def cached(self, user: str, password: str) -> bool | None:
        """The verdict already reached for these credentials, None when bcrypt must decide: cheap
        (one HMAC), so it runs on the event loop and never waits behind a bcrypt check."""
        if not self.users:
            return True
        key, _ = self._key(user, password)
        with self._lock:
            if key in self._granted:
                return True
            if key in self._refused:
                return False
        return None

    def check(self, user: str, password: str) -> bool:
        """The bcrypt verdict, remembered: tens of milliseconds by design, so it runs on a worker."""
        if not self.users:
            return True
        key, hashed = self._key(user, password)
        import bcrypt

        try:
            ok = bcrypt.checkpw(password.encode(), hashed or next(iter(self.users.values()))) and hashed is not None
        except ValueError:  # bcrypt 5 refuses passwords over 72 bytes: wrong, not an error
            ok = False
        with self._lock:
            verdicts = self._granted if ok else self._refused
            if len(verdicts) >= CACHE_SIZE:
                verdicts.clear()
            verdicts[key] = None
        return ok


def load(path: str | None) -> WebConfig:
    """The web config in `path` (None: plain HTTP, no auth), every problem a UsageError FILE:LINE."""
    if path is None:
        return WebConfig()
    data, lines = yamlfile.load(path)
    data = {} if data is None else data

    def fail(at: tuple[Any, ...], msg: str) -> NoReturn:
        while at and at not in lines:
            at = at[:-1]
        raise UsageError(f"{path}:{lines.get(at, 1)}: {msg}")

    if not isinstance(data, dict):
        fail((), "a web config is a mapping")
    for key in data:
        if key not in ("tls_server_config", "basic_auth_users", "http_server_config"):
            fail((key,), f"{key!r} is not supported by orchex (supported: tls_server_config, "
                         "basic_auth_users, http_server_config)")
    return WebConfig(tls=_tls(data.get("tls_server_config"), fail),
                     users=_users(data.get("basic_auth_users"), fail),
                     headers=_headers(data.get("http_server_config"), fail))


def _mapping(value: Any, at: tuple[str, ...], fail: Fail) -> dict[Any, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        fail(at, f"{'.'.join(at)} must be a mapping")
    return value


def _tls(raw: Any, fail: Fail) -> Tls | None:
    tls = _mapping(raw, ("tls_server_config",), fail)
    if not tls:
        return None
    at = ("tls_server_config",)
    for key, value in tls.items():
        if key not in TLS_KEYS:
            fail(at + (key,), f"tls_server_config.{key} is not supported by orchex")
        if not isinstance(value, str) or not value:
            fail(at + (key,), f"tls_server_config.{key} must be a non-empty string")
    if not tls.get("cert_file") or not tls.get("key_file"):
        fail(at, "tls_server_config needs cert_file and key_file")
    auth = tls.get("client_auth_type", "NoClientCert")
    if auth in UNVERIFIED_CLIENT_AUTH:
        fail(at + ("client_auth_type",), f"client_auth_type {auth} is not supported by orchex: it accepts a "
             "client certificate without verifying it, which Python's TLS cannot do; use "
             "RequireAndVerifyClientCert with client_ca_file")
    if auth not in CLIENT_AUTH:
        fail(at + ("client_auth_type",), f"unknown client_auth_type {auth!r}")
    if CLIENT_AUTH[auth] != ssl.CERT_NONE and not tls.get("client_ca_file"):
        fail(at + ("client_auth_type",), f"{auth} needs client_ca_file")
    versions = {}
    for key in ("min_version", "max_version"):
        if key in tls and tls[key] not in VERSIONS:
            fail(at + (key,), f"unknown TLS version {tls[key]!r} (expected one of {', '.join(VERSIONS)})")
        versions[key] = VERSIONS.get(tls.get(key, ""))
    try:
        return Tls(tls["cert_file"], tls["key_file"], tls.get("client_ca_file"), CLIENT_AUTH[auth],
                   versions["min_version"] or ssl.TLSVersion.TLSv1_2,  # exporter-toolkit's default
                   versions["max_version"])
    except (OSError, ssl.SSLError) as e:
        fail(at + ("cert_file",), f"cannot load the certificate, key or client CA: {e}")


def _users(raw: Any, fail: Fail) -> dict[str, bytes]:
    users = {}
    for user, hashed in _mapping(raw, ("basic_auth_users",), fail).items():
        if not isinstance(user, str) or not user or ":" in user:
            fail(("basic_auth_users", user), f"basic_auth_users: {user!r} is not a user name")
        if not isinstance(hashed, str) or not BCRYPT.fullmatch(hashed):
            fail(("basic_auth_users", user), f"basic_auth_users.{user}: not a bcrypt hash "
                 "($2a$, $2b$ or $2y$, cost 04-31, 53 characters of salt and hash)")
        users[user] = hashed.encode()
    return users


def _headers(raw: Any, fail: Fail) -> dict[str, str]:
    http = _mapping(raw, ("http_server_config",), fail)
    headers = {}
    for key in http:
        if key == "http2":  # HTTP/2 is the Go server's; orchex speaks HTTP/1.1
            continue
        if key != "headers":
            fail(("http_server_config", key), f"http_server_config.{key} is not supported by orchex")
        for h, v in _mapping(http["headers"], ("http_server_config", "headers"), fail).items():
            at = ("http_server_config", "headers", h)
            if h not in HEADERS:
                fail(at, f"header {h!r} cannot be set (allowed: {', '.join(sorted(HEADERS))})")
            if not isinstance(v, str) or any(c in v for c in "\r\n\0"):
                fail(at, f"header {h}: the value must be one line of text")
            headers[h] = v
    return headers
