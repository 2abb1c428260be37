"""`orchex serve` as a user runs it: a subprocess on a loopback port."""

import gzip
import os
import signal
import socket
import ssl
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request

import bcrypt
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families

from conftest import LEGACY


def series(body):
    out = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_endpoints_gzip_openmetrics_and_name_filter(serve):
    s = serve("--gpu-backend=simulated", f"--selection-log={LEGACY}/selection_metrics_sample.csv")
    code, headers, body = s.get("/")
    assert code == 200 and b'href="/metrics"' in body
    assert s.get("/healthz")[0] == 200 and s.get("/-/ready")[0] == 200 and s.get("/nope")[0] == 404
    code, headers, body = s.get("/metrics")
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    v = series(body)
    assert v[("orchex_router_selections_total", (("category", "math"), ("gpu", "1"),
                                                 ("model", "google-gemma-3-270m-it"), ("primary", "false")))] == 1
    # Simulated GPUs are never passed off as NVML: nvml_up is 0, and a series names the backend.
    assert v[("orchex_nvml_up", ())] == 0 and v[("orchex_backend_info", (("backend", "simulated"),))] == 1
    assert sum(1 for k in v if k[0] == "orchex_gpu_up") == 5
    assert any(k[0] == "process_resident_memory_bytes" for k in v)
    code, headers, zipped = s.get("/metrics", {"Accept-Encoding": "gzip"})
    assert headers["Content-Encoding"] == "gzip" and gzip.decompress(zipped).startswith(b"# HELP")
    code, headers, om = s.get("/metrics", {"Accept": "application/openmetrics-text; version=1.0.0"})
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert {f.name for f in parse_om(om.decode())} >= {"orchex_router_selections", "orchex_gpu"}
    code, _, only = s.get("/metrics?name[]=orchex_nvml_up&name[]=orchex_router_selections_total")
    assert {k[0] for k in series(only)} == {"orchex_nvml_up", "orchex_router_selections_total"}


def test_promtool_check_metrics_passes(serve):
    s = serve("--gpu-backend=simulated", f"--selection-log={LEGACY}/selection_metrics_sample.csv")
    body = s.get("/metrics")[2]
    res = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_collectors_switch_off_and_nvml_missing_keeps_routing(serve, tmp_path):
    s = serve("--no-collector.gpu", "--no-collector.process", "--gpu-backend=nvml")
    names = {k[0] for k in series(s.get()[2])}
    assert not any(n.startswith(("orchex_gpu", "orchex_nvml", "process_")) for n in names)
    assert "orchex_router_selection_log_parse_errors_total" in names
    s2 = serve("--gpu-backend=nvml", env={"LD_LIBRARY_PATH": str(tmp_path)})
    v = series(s2.get()[2])
    assert v[("orchex_nvml_up", ())] == 0 and not any(k[0].startswith("orchex_gpu_") for k in v)
    # Without NVML the gpu collector failed, and says so; the routing collector still succeeds.
    assert v[("orchex_scrape_collector_success", (("collector", "gpu"),))] == 0
    assert v[("orchex_scrape_collector_success", (("collector", "routing"),))] == 1
    assert ("orchex_router_selection_log_parse_errors_total", (("reason", "columns"),)) in v


def test_config_file_and_flags_win(serve, tmp_path):
    cfg = tmp_path / "orchex.yml"
    cfg.write_text(textwrap.dedent(f"""\
        web.telemetry-path: /custom
        gpu-backend: simulated
        selection-log: {LEGACY}/selection_metrics_sample.csv
        collector.process: false
        """))
    s = serve(f"--config={cfg}", "--collector.process")
    assert s.get("/metrics")[0] == 404
    names = {k[0] for k in series(s.get("/custom")[2])}
    assert "orchex_router_selections_total" in names and "process_resident_memory_bytes" in names


@pytest.mark.parametrize("text,message", [
    ("web.listen-adress: ':1'\n", "orchex.yml:1: unknown key 'web.listen-adress'"),
    ("gpu-backend: quantum\n", "orchex.yml:1: gpu-backend: must be auto, nvml or simulated"),
    ("log.level: info\ncollector.gpu: maybe\n", "orchex.yml:2: collector.gpu: must be true or false"),
    ("- a\n", "orchex.yml:1: a config file is a mapping"),
])
def test_bad_config_is_one_line_naming_the_key(cli, tmp_path, text, message):
    cfg = tmp_path / "orchex.yml"
    cfg.write_text(text)
    res = cli("serve", f"--config={cfg}", "--web.listen-address=127.0.0.1:0")
    assert res.returncode == 2 and message in res.stderr and res.stderr.count("\n") == 1, res.stderr


def test_bad_flags(cli):
    res = cli("serve", "--web.listen-address=nowhere")
    assert res.returncode == 2 and "--web.listen-address: expected [HOST]:PORT" in res.stderr
    res = cli("serve", "--routing.max-label-values=0")
    assert res.returncode == 2 and "--routing.max-label-values: must be a positive integer" in res.stderr


def test_sigterm_stops_within_a_second(serve):
    s = serve("--gpu-backend=simulated")
    started = time.monotonic()
    code, err = s.stop(signal.SIGTERM)
    assert code == 0 and time.monotonic() - started < 1.0
    assert "shutting down" in err


def test_sighup_reloads_registry_and_keeps_the_old_one_when_invalid(serve, tmp_path):
    reg = tmp_path / "registry.yaml"
    one_model = "models:\n  - {{name: {0}, memory: 1GB, categories: [code]}}\ncategories:\n  code: {{models: [{0}]}}\n"
    reg.write_text(one_model.format("alpha"))
    s = serve("--gpu-backend=simulated", f"--registry={reg}")

    def pairs():
        return {dict(k[1])["model"] for k in series(s.get()[2]) if k[0] == "orchex_router_fallbacks_total"}

    assert pairs() == {"alpha"}
    reg.write_text(one_model.format("beta"))
    s.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 5
    while pairs() != {"beta"} and time.time() < deadline:
        time.sleep(0.1)
    assert pairs() == {"beta"}
    reg.write_text("models: [\n")
    s.proc.send_signal(signal.SIGHUP)
    time.sleep(0.6)
    assert s.proc.poll() is None and pairs() == {"beta"}
    code, err = s.stop()
    assert "reload failed, keeping the running configuration" in err


def test_basic_auth(serve, tmp_path):
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  prom: {hashed}\n")
    s = serve("--gpu-backend=simulated", f"--web.config.file={web}")
    import base64

    def auth(user, pw):
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()}

    code, headers, body = s.get("/metrics")
    assert code == 401 and b"orchex_" not in body and headers["WWW-Authenticate"].startswith("Basic")
    assert s.get("/metrics", auth("prom", "wrong"))[0] == 401
    assert s.get("/metrics", auth("other", "s3cret"))[0] == 401
    code, _, body = s.get("/metrics", auth("prom", "s3cret"))
    assert code == 200 and b"\norchex_nvml_up 0\n" in body and b'orchex_backend_info{backend="simulated"} 1' in body


def test_bad_web_config_refuses_to_start(cli, tmp_path):
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users:\n  prom: plaintext\n")
    res = cli("serve", f"--web.config.file={web}", "--web.listen-address=127.0.0.1:0")
    assert res.returncode == 2 and "web.yml:2: basic_auth_users.prom: not a bcrypt hash" in res.stderr
    web.write_text("rate_limit:\n  interval: 1s\n")
    res = cli("serve", f"--web.config.file={web}", "--web.listen-address=127.0.0.1:0")
    assert res.returncode == 2 and "'rate_limit' is not supported by orchex" in res.stderr


def until_served(request, seconds):
    """request()'s answer, asked again while the server is not (yet) answering, for `seconds`."""
    deadline = time.time() + seconds
    while True:
        try:
            return request()
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.1)


def make_cert(folder, name, ca=None):
    key, crt = folder / f"{name}.key", folder / f"{name}.crt"
    cmd = ["openssl", "req", "-x509" if ca is None else "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
           "-subj", f"/CN={name}", "-days", "2"]
    if ca is None:
        cmd += ["-out", str(crt), "-addext", "subjectAltName=IP:127.0.0.1"]
        subprocess.run(cmd, check=True, capture_output=True)
    else:
        csr = folder / f"{name}.csr"
        subprocess.run(cmd + ["-out", str(csr)], check=True, capture_output=True)
        subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca[1]), "-CAkey", str(ca[0]),
                        "-CAcreateserial", "-out", str(crt), "-days", "2"], check=True, capture_output=True)
    return key, crt


def test_tls_and_client_certificates(serve, tmp_path):
    server_key, server_crt = make_cert(tmp_path, "server")
    ca = make_cert(tmp_path, "clientca")
    client_key, client_crt = make_cert(tmp_path, "client", ca=ca)
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {server_crt}\n  key_file: {server_key}\n"
                   f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {ca[1]}\n")
    s = serve("--gpu-backend=simulated", f"--web.config.file={web}", scheme="https", wait=False)
    ctx = ssl.create_default_context(cafile=str(server_crt))
    ctx.load_cert_chain(str(client_crt), str(client_key))
    code, _, body = until_served(lambda: s.get("/metrics", context=ctx), 15)
    assert code == 200 and b"orchex_nvml_up" in body
    no_client = ssl.create_default_context(cafile=str(server_crt))
    with pytest.raises(OSError):
        urllib.request.urlopen(s.url + "/metrics", timeout=5, context=no_client).read()
    with pytest.raises(OSError):  # plain HTTP to a TLS port gets nothing
        urllib.request.urlopen(f"http://127.0.0.1:{s.port}/metrics", timeout=5).read()


def test_demo_feeds_the_exporter(serve, tmp_path, cli):
    log = tmp_path / "sel.csv"
    res = cli("demo", "--log", str(log), "--count", "300", "--rate", "5000", "--gpu-backend", "simulated")
    assert res.returncode == 0, res.stderr
    s = serve("--gpu-backend=simulated", f"--selection-log={log}")
    v = series(s.get()[2])
    total = sum(n for k, n in v.items() if k[0] == "orchex_router_selections_total")
    written = len(log.read_text().splitlines()) - 1
    assert total == written > 250
    # The packaged registry covers every category: the demo looks like real traffic, not fallbacks.
    assert sum(n for k, n in v.items() if k[0] == "orchex_router_fallbacks_total") < 0.1 * total
    assert sum(n for k, n in v.items() if k[0] == "orchex_router_selection_log_parse_errors_total") == 0
    assert os.path.getsize(log) > 0


def test_health_thresholds_from_flags_and_config(serve, tmp_path, fake_nvml_dir):
    import fake_nvml
    from conftest import fake_env

    scenario = str(tmp_path / "s.txt")
    fake_nvml.write(scenario, [fake_nvml.gpu(0, temperature=40), fake_nvml.gpu(1, util_gpu=80, temperature=30)])
    cfg = tmp_path / "orchex.yml"
    cfg.write_text("health.utilization-ratio: 0.75\n")
    s = serve("--gpu-backend=nvml", "--health.temperature-celsius=39", f"--config={cfg}",
              env=fake_env(fake_nvml_dir, scenario))
    states = {dict(k[1])["gpu"]: dict(k[1])["state"] for k, v in series(s.get()[2]).items()
              if k[0] == "orchex_gpu_health_state" and v == 1}
    assert states == {"0": "HOT", "1": "OVERLOADED"}


def test_bad_health_thresholds(cli, tmp_path):
    res = cli("serve", "--health.utilization-ratio=1.5")
    assert res.returncode == 2 and "--health.utilization-ratio: must be a positive number up to 1" in res.stderr
    cfg = tmp_path / "orchex.yml"
    cfg.write_text("health.critical-xids: [79, x]\n")
    res = cli("serve", f"--config={cfg}")
    assert res.returncode == 2 and "orchex.yml:1: health.critical-xids: must be a list of XID numbers" in res.stderr


def test_a_collector_switched_off_by_a_reload_lets_go_of_what_it_held(serve, tmp_path):
    """The routing collector's reader holds the selection log open; switched off, it closes it."""
    log = tmp_path / "sel.csv"
    log.write_text("timestamp,task_category,selected_model,primary_category,confidence_score,final_score,gpu_id,"
                   "selection_duration_ms\n2026-01-23 09:00:00,math,phi,false,0.70,60.00,1,4.0\n")
    cfg = tmp_path / "orchex.yml"
    cfg.write_text(f"gpu-backend: simulated\nselection-log: [{log}]\n")
    s = serve(f"--config={cfg}")

    def holds_log():
        fds = f"/proc/{s.proc.pid}/fd"
        return any(os.path.realpath(os.path.join(fds, fd)) == str(log) for fd in os.listdir(fds))

    deadline = time.time() + 5
    while not holds_log() and time.time() < deadline:
        time.sleep(0.05)
    assert holds_log()
    cfg.write_text(f"gpu-backend: simulated\nselection-log: [{log}]\ncollector.routing: false\n")
    s.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 5
    while holds_log() and time.time() < deadline:
        time.sleep(0.05)
    assert not holds_log() and b"orchex_router_" not in s.get()[2]


def test_sighup_applies_paths_logs_collectors_and_log_level(serve, tmp_path):
    log = tmp_path / "sel.csv"
    log.write_text("timestamp,task_category,selected_model,primary_category,confidence_score,final_score,gpu_id,"
                   "selection_duration_ms\n2026-01-23 09:00:00,math,phi,false,0.70,60.00,1,4.0\n")
    cfg = tmp_path / "orchex.yml"
    cfg.write_text("gpu-backend: simulated\ncollector.process: true\n")
    s = serve(f"--config={cfg}")
    assert s.get("/metrics")[0] == 200 and b"process_open_fds" in s.get()[2]
    assert b'model="phi"' not in s.get()[2]
    cfg.write_text(f"gpu-backend: simulated\ncollector.process: false\nweb.telemetry-path: /m2\n"
                   f"selection-log: [{log}]\nlog.level: debug\n")
    s.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 5
    while s.get("/m2")[0] != 200 and time.time() < deadline:
        time.sleep(0.1)
    code, _, body = s.get("/m2")
    assert code == 200 and b'model="phi"' in body and b"process_open_fds" not in body
    assert s.get("/metrics")[0] == 404
    code, err = s.stop()
    assert "level=debug" in err  # the new log level took effect


def test_sighup_turns_tls_and_auth_on_together_and_serves_a_renewed_certificate(serve, tmp_path):
    import base64
    import hashlib

    cfg = tmp_path / "orchex.yml"
    cfg.write_text("gpu-backend: simulated\n")
    s = serve(f"--config={cfg}")
    assert s.get("/metrics")[0] == 200  # plain HTTP, no auth
    key, crt = make_cert(tmp_path, "server")
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {crt}\n  key_file: {key}\n"
                   f"basic_auth_users:\n  prom: {hashed}\n")
    cfg.write_text(f"gpu-backend: simulated\nweb.config.file: {web}\n")
    s.proc.send_signal(signal.SIGHUP)
    auth = {"Authorization": "Basic " + base64.b64encode(b"prom:s3cret").decode()}
    ctx = ssl.create_default_context(cafile=str(crt))
    https = urllib.request.Request(f"https://127.0.0.1:{s.port}/metrics", headers=auth)
    def fetch():
        with urllib.request.urlopen(https, timeout=5, context=ctx) as r:
            return r.status, r.read()

    code, body = until_served(fetch, 5)
    assert code == 200 and b"orchex_router" in body
    with pytest.raises(urllib.error.HTTPError) as no_auth:
        urllib.request.urlopen(https.full_url, timeout=5, context=ctx)
    assert no_auth.value.code == 401
    with socket.create_connection(("127.0.0.1", s.port), timeout=5) as plain:  # credentials never travel
        plain.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")     # in clear: plain HTTP is gone
        assert not plain.recv(4096).startswith(b"HTTP/")

    def served_fingerprint():
        pem = ssl.get_server_certificate(("127.0.0.1", s.port))
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()

    before = served_fingerprint()
    make_cert(tmp_path, "server")  # renewed on disk, same paths, no signal
    after = served_fingerprint()
    assert before != after
    assert after == hashlib.sha256(ssl.PEM_cert_to_DER_cert(crt.read_text())).hexdigest()


def test_a_selection_log_that_is_a_fifo_or_matches_nothing_is_said_not_hung_on(serve, tmp_path):
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    s = serve("--gpu-backend=simulated", f"--selection-log={fifo}", "--selection-log=/dev/zero",
              f"--selection-log={tmp_path}/nothing-*.csv")
    v = series(s.get()[2])
    for pattern in (str(fifo), "/dev/zero", f"{tmp_path}/nothing-*.csv"):
        assert v[("orchex_router_selection_log_files", (("pattern", pattern),))] == 0
    assert v[("orchex_router_selection_log_errors_total", (("reason", "not_regular"),))] >= 2
    (tmp_path / "nothing-1.csv").write_text("")
    assert series(s.get()[2])[("orchex_router_selection_log_files", (("pattern", f"{tmp_path}/nothing-*.csv"),))] == 1
    _, err = s.stop()
    assert err.count("/dev/zero: cannot be followed (not_regular)") == 1  # said once, though read on every scrape
    assert err.count("fifo.csv: cannot be followed (not_regular)") == 1
    assert f"'{tmp_path}/nothing-*.csv' matches no file" in err and "now matches 1 file(s)" in err


def test_the_daemon_names_itself_so_pkill_and_pidof_find_it(serve):
    s = serve("--gpu-backend=simulated")
    with open(f"/proc/{s.proc.pid}/comm") as f:
        assert f.read().strip() == "orchex"  # what `pkill -x orchex` and `pgrep -x orchex` match


def test_the_readme_reload_signals_the_daemon_and_not_the_demo(serve, tmp_path):
    """`pkill -HUP -x orchex` (the README's reload) must not reach `orchex demo`, which would die of it."""
    log = tmp_path / "sel.csv"
    script = os.path.join(os.path.dirname(sys.executable), "orchex")  # as a user starts it: its comm is orchex
    demo = subprocess.Popen([script, "demo", "--log", str(log), "--rate", "50", "--gpu-backend", "simulated"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        s = serve("--gpu-backend=simulated", f"--selection-log={log}")
        deadline = time.time() + 10
        while time.time() < deadline:
            with open(f"/proc/{demo.pid}/comm") as f:
                if f.read().strip() == "orchex-demo":
                    break
            time.sleep(0.05)
        matched = subprocess.run(["pgrep", "-x", "orchex"], capture_output=True, text=True).stdout.split()
        assert str(s.proc.pid) in matched and str(demo.pid) not in matched
    finally:
        demo.terminate()
        demo.wait(10)


def test_sigterm_with_an_idle_keep_alive_client_shuts_down_cleanly(serve):
    s = serve("--gpu-backend=simulated")
    with socket.create_connection(("127.0.0.1", s.port), timeout=5) as c:  # as Prometheus holds one
        c.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.5)
        c.recv(1 << 20)
        code, err = s.stop()
    assert code == 0 and "Traceback" not in err and "CancelledError" not in err, err


def test_build_info_says_which_kernel_reads_the_logs(serve):
    s = serve("--gpu-backend=simulated")
    info = [k for k in series(s.get()[2]) if k[0] == "orchex_build_info"]
    assert len(info) == 1 and dict(info[0][1])["kernel"] == "c"  # make test builds it: a compiler is installed
