"""`--web.config.file`: the exporter-toolkit web configuration (TLS, client certificates, basic auth
with bcrypt hashes, response headers), the same file node_exporter and dcgm-exporter read.

Keys that orchex does not implement are refused by name rather than silently ignored: a file that
asks for a rate limit or a cipher list must not appear to have one."""

import hashlib
import hmac
import ssl
import threading
from dataclasses import dataclass, field

from exporter import yamlfile
from exporter.errors import UsageError

TLS_KEYS = {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version", "max_version"}
CLIENT_AUTH = {"NoClientCert": ssl.CERT_NONE, "RequestClientCert": ssl.CERT_OPTIONAL,
               "RequireAnyClientCert": ssl.CERT_REQUIRED, "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
               "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}
VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1, "TLS12": ssl.TLSVersion.TLSv1_2,
            "TLS13": ssl.TLSVersion.TLSv1_3}
HEADERS = {"Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "X-XSS-Protection",
           "Strict-Transport-Security"}


@dataclass
class WebConfig:
    ssl_context: ssl.SSLContext | None = None
    users: dict = field(default_factory=dict)  # user -> bcrypt hash (bytes)
    headers: dict = field(default_factory=dict)
    _checked: dict = field(default_factory=dict)  # digest of (user, password) -> bool
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def authorized(self, user, password):
        """bcrypt costs tens of milliseconds per check by design; a scrape every few seconds with the
        same credentials is checked once and then found by an HMAC digest, as exporter-toolkit caches."""
        hashed = self.users.get(user)
        if hashed is None:
            return False
        key = hmac.new(hashed, f"{user}\0{password}".encode(), hashlib.sha256).digest()
        with self._lock:
            known = self._checked.get(key)
        if known is not None:
            return known
        import bcrypt

        ok = bcrypt.checkpw(password.encode(), hashed)
        with self._lock:
            if len(self._checked) > 1024:
                self._checked.clear()
            self._checked[key] = ok
        return ok


def load(path):
    if not path:
        return WebConfig()
    data, lines = yamlfile.load(path)
    data = data or {}

    def fail(at, msg):
        raise UsageError(f"{path}:{lines.get(at, lines.get(at[:1], 1))}: {msg}")

    if not isinstance(data, dict):
        fail((), "a web config is a mapping")
    for key in data:
        if key not in ("tls_server_config", "basic_auth_users", "http_server_config"):
            fail((key,), f"{key!r} is not supported by orchex (supported: tls_server_config, "
                         "basic_auth_users, http_server_config)")
    cfg = WebConfig()
    tls = data.get("tls_server_config")
    if tls:
        for key in tls:
            if key not in TLS_KEYS:
                fail(("tls_server_config", key), f"tls_server_config.{key} is not supported by orchex")
        if not tls.get("cert_file") or not tls.get("key_file"):
            fail(("tls_server_config",), "tls_server_config needs cert_file and key_file")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            ctx.load_cert_chain(tls["cert_file"], tls["key_file"])
        except (OSError, ssl.SSLError) as e:
            fail(("tls_server_config", "cert_file"), f"cannot load certificate/key: {e}")
        auth = tls.get("client_auth_type", "NoClientCert")
        if auth not in CLIENT_AUTH:
            fail(("tls_server_config", "client_auth_type"), f"unknown client_auth_type {auth!r}")
        ctx.verify_mode = CLIENT_AUTH[auth]
        if tls.get("client_ca_file"):
            try:
                ctx.load_verify_locations(tls["client_ca_file"])
            except (OSError, ssl.SSLError) as e:
                fail(("tls_server_config", "client_ca_file"), f"cannot load client CA: {e}")
        elif ctx.verify_mode != ssl.CERT_NONE and "Verify" in auth:
            fail(("tls_server_config", "client_auth_type"), f"{auth} needs client_ca_file")
        for key, attr in (("min_version", "minimum_version"), ("max_version", "maximum_version")):
            if key in tls:
                if tls[key] not in VERSIONS:
                    fail(("tls_server_config", key), f"unknown TLS version {tls[key]!r}")
                setattr(ctx, attr, VERSIONS[tls[key]])
        if "min_version" not in tls:
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # exporter-toolkit's default
        cfg.ssl_context = ctx
    users = data.get("basic_auth_users") or {}
    if not isinstance(users, dict):
        fail(("basic_auth_users",), "basic_auth_users maps a user name to a bcrypt hash")
    for user, hashed in users.items():
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")) or len(hashed) != 60:
            fail(("basic_auth_users", user), f"basic_auth_users.{user}: not a bcrypt hash")
        cfg.users[str(user)] = hashed.encode()
    http = data.get("http_server_config") or {}
    for key in http:
        if key == "headers":
            for h, v in (http["headers"] or {}).items():
                if h not in HEADERS:
                    fail(("http_server_config", "headers", h), f"header {h!r} cannot be set (allowed: "
                         f"{', '.join(sorted(HEADERS))})")
                cfg.headers[h] = str(v)
        elif key != "http2":  # HTTP/2 is the Go server's; Python's http.server speaks HTTP/1.1
            fail(("http_server_config", key), f"http_server_config.{key} is not supported by orchex")
    return cfg
