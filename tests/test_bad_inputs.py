"""A catalogue of bad inputs thrown at every command, as a hostile user would: each must end in a
non-zero exit with exactly one line on standard error that names the file (and line) or the flag, in
bounded time, and never in a traceback, a hang or an accepted wrong value.

Most cases run `orchex` in this process (exporter.cli.main, on a thread with a deadline), so that
hundreds of them fit in seconds; `orchex serve` cases run as real processes, because a serve that
wrongly accepted its input would start serving."""

import bz2
import gzip
import io
import os
import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT, free_port
from exporter.cli import main

pytestmark = pytest.mark.timeout(600)

DEADLINE = 5.0  # seconds a case may take (the bound)

REGISTRY = """\
models:
  - name: alpha
    memory: 2GB
    categories: [code]
    agent_types: [inference]
    context_length: 4096
    benchmarks: {HumanEval: 50}
    hf_repo: org/alpha
    description: a model
categories:
  code:
    name: Code
    description: writing code
    agent_types: [inference]
    benchmarks: [HumanEval]
routing:
  default_category: code
  gpu_classes: {small: 14GB}
"""
FLEET = """\
seed: 3
gpus:
  - name: NVIDIA H100 80GB HBM3
    memory_total: 80GB
    power_limit: 700
    idle_power: 70
    base_utilization: 0.4
    wave_amplitude: 0.2
    wave_period_seconds: 60
    extra_temperature: 0
    power_reads_na: false
    lost: false
"""
ROW = "2026-01-23 09:00:00,code,alpha,true,0.95,70.00,0,0.004\n"
HEADER = "timestamp,task_category,selected_model,primary_category,confidence_score,final_score,gpu_id," \
         "selection_duration_ms\n"
# Values no field of ours accepts in any position, and the ones each kind of field adds.
NEVER = ["!!python/name:os.system x", "&a 1", "[[a]]"]
NOT_TEXT = NEVER + ["[]", "{}", ".inf", ".nan", "-1", "true", "9" * 400, '"\\x01"', '"a\\nb"']
NOT_NAME = NOT_TEXT + ['""', '"' + "n" * 201 + '"']
NOT_NAMES = NEVER + ["5", '""', "[5]", '[""]', "{a: 1}", "[[a]]", "true", '["\\x01"]']
NOT_SIZE = NEVER + ["[]", "{}", ".inf", "-.inf", ".nan", "-1", '""', "true", "lots", "9" * 400 + "GB", "-1GB",
                    "2XB", "1e999GB", "NaN GB"]
NOT_COUNT = NEVER + [".inf", ".nan", "-1", "0", "1.5", "true", "lots", "9" * 400, "[]"]
NOT_SCORES = NEVER + ["[]", '""', "5", "{a: .nan}", "{a: .inf}", "{a: -1}", "{a: lots}", "{a: true}", "{5: 1}"]
NOT_WEIGHTS = NEVER + ['""', "5", "{a: .nan}", "{a: -1}", "{a: lots}", "[5]", "[[a]]"]
NOT_NUMBER = NEVER + ["[]", "{}", ".inf", "-.inf", ".nan", '""', "lots", "true", "9" * 400, "99999999999999999999"]
NOT_FLAG = NEVER + ["maybe", "1", "0", '""', "[]", "yes please"]
@dataclass
class Case:
    id: str
    argv: list[str]
    files: dict[str, bytes] = field(default_factory=dict)  # name -> content ("@fifo" makes a FIFO)
    where: str = ""  # what the one line must name: "{file}:" (with a line), "{file}", or a flag
    env: dict[str, str] = field(default_factory=dict)
    codes: tuple[int, ...] = (2,)


def _replace(text, old_line, new_value):
    """text with the value of the YAML line `old_line` (e.g. '    memory: 2GB') set to new_value."""
    key = old_line.split(":")[0]
    assert old_line in text, old_line
    return text.replace(old_line, f"{key}: {new_value}", 1)


def registry_cases():
    out = []
    fields = {
        "  - name: alpha": NOT_NAME, "    memory: 2GB": NOT_SIZE, "    categories: [code]": NOT_NAMES,
        "    agent_types: [inference]\n    context": NOT_NAMES + ["[wizard]"],
        "    context_length: 4096": NOT_COUNT + ["100000000000"], "    benchmarks: {HumanEval: 50}": NOT_SCORES,
        "    hf_repo: org/alpha": NOT_TEXT, "    description: a model": NOT_TEXT, "    name: Code": NOT_NAME,
        "    description: writing code": NOT_TEXT, "    benchmarks: [HumanEval]": NOT_WEIGHTS,
        "  default_category: code": NOT_TEXT + ["nope"], "  gpu_classes: {small: 14GB}": NEVER + [
            "5", "[]", "{small: .inf}", "{small: lots}", "{small: -1}", "{small: 9999999999999999999999GB}"],
    }
    for line, values in fields.items():
        for bad in dict.fromkeys(values):
            key = line.split(":")[0]
            text = REGISTRY.replace(line, line.replace(line.split("\n")[0], f"{key}: {bad}"), 1)
            assert text != REGISTRY, line
            out.append((f"registry {line.split(chr(10))[0].strip()} -> {bad[:24]}", text))
    attacks = {
        "top is a number": "5\n", "top is a list": "- a\n", "top is text": "just words\n",
        "models is a number": "models: 5\n", "models of lists": "models: [[a]]\n",
        "unknown top key": REGISTRY + "extra: 1\n", "tab indentation": REGISTRY.replace("  - name", "\t- name"),
        "recursive anchor": "a: &a [*a]\n", "merge key": "b: {x: 1}\nc:\n  <<: {y: 2}\n",
        "deep nesting": "a: " + "[" * 10000 + "\n", "alias bomb": "".join(
            f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]\n" if i else "l0: &l0 [lol]\n" for i in range(9)),
        "tagged size": REGISTRY.replace("memory: 2GB", "memory: !size 2GB"),
        "duplicate key": REGISTRY.replace("    memory: 2GB\n", "    memory: 2GB\n    memory: 3GB\n"),
        "memory empty mapping": REGISTRY.replace("memory: 2GB", "memory: {}"),
        "memory 0": REGISTRY.replace("memory: 2GB", "memory: 0"),
        "memory 0GB variant": REGISTRY.replace("memory: 2GB", 'memory: "0GB (Q4), 2GB (Q8)"'),
        "version 99": "version: 99\n" + REGISTRY, "version two": "version: two\n" + REGISTRY,
        "version true": "version: true\n" + REGISTRY,
        "memory variant list unnamed": REGISTRY.replace("memory: 2GB", 'memory: "2GB, 3GB"'),
        "unknown model key": REGISTRY.replace("    hf_repo", "    colour: red\n    hf_repo"),
        "unknown category key": REGISTRY.replace("    name: Code", "    name: Code\n    colour: red"),
        "unknown routing key": REGISTRY.replace("routing:\n", "routing:\n  colour: red\n"),
        "default category unknown": REGISTRY.replace("default_category: code", "default_category: nope"),
        "fallback model unknown": REGISTRY.replace("routing:\n", "routing:\n  fallback_model: ghost\n"),
        "category lists unknown model": REGISTRY.replace("    name: Code", "    name: Code\n    models: [ghost]"),
        "model names unknown category": REGISTRY.replace("categories: [code]", "categories: [nope]"),
        "model without name": REGISTRY.replace("  - name: alpha\n", "  - hf_repo: x\n"),
        "legacy json given": '{"models": [{"name": "a", "gpu_memory": "2GB"}]}\n',
        "not utf-8": "models:\n  - name: \xff\xfe\n",
        "huge context": REGISTRY.replace("context_length: 4096", "context_length: 100000000000"),
        "benchmark weight negative": REGISTRY.replace("benchmarks: [HumanEval]", "benchmarks: {HumanEval: -1}"),
        "benchmark score nan": REGISTRY.replace("{HumanEval: 50}", "{HumanEval: .nan}"),
        "gpu class infinite": REGISTRY.replace("{small: 14GB}", "{small: .inf}"),
        "gpu class 400 digits": REGISTRY.replace("{small: 14GB}", "{small: " + "9" * 400 + "GB}"),
        "name with newline": REGISTRY.replace("name: alpha", 'name: "al\\npha"'),
    }
    out += list(attacks.items())
    cases = []
    for name, text in out:
        body = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
        if name == "not utf-8":
            body = text.encode("latin-1")
        cases.append(Case(name, ["registry", "validate", "{reg}"], {"reg": body}, where="{reg}:"))
    # The same file through every command that reads a registry.
    for name, text in list(attacks.items())[:12]:
        body = text.encode()
        cases += [
            Case(f"select: {name}", ["select", "--registry", "{reg}"], {"reg": body}, where="{reg}:"),
            Case(f"bench: {name}", ["bench", "2", "--registry", "{reg}"], {"reg": body}, where="{reg}:"),
            Case(f"demo: {name}", ["demo", "--count", "1", "--registry", "{reg}", "--log", "{out}",
                                   "--gpu-backend", "simulated"], {"reg": body}, where="{reg}:"),
        ]
    for kind in ("fifo", "dir", "/dev/zero", "missing", "huge"):
        cases.append(Case(f"registry is {kind}", ["registry", "validate", "{reg}"], {"reg": f"@{kind}".encode()},
                          where="{reg}"))
    return cases


def fleet_cases():
    cases = []
    fields = {"  - name: NVIDIA H100 80GB HBM3": NOT_NAME, "    memory_total: 80GB": NOT_SIZE,
              "    power_limit: 700": NOT_NUMBER + ["0", "-5", "100000"], "    idle_power: 70": NOT_NUMBER + ["-1"],
              "    base_utilization: 0.4": NOT_NUMBER + ["1.5", "-0.1"], "    wave_amplitude: 0.2": NOT_NUMBER + ["2"],
              "    wave_period_seconds: 60": NOT_NUMBER + ["0", "-60"],
              "    extra_temperature: 0": NOT_NUMBER + ["500"],
              "    power_reads_na: false": NOT_FLAG, "    lost: false": NOT_FLAG,
              "seed: 3": NEVER + ["abc", "-1", ".inf", "1.5", "4294967296", "[]"]}
    for line, values in fields.items():
        for bad in dict.fromkeys(values):
            text = _replace(FLEET, line, bad)
            cases.append(Case(f"fleet {line.strip()} -> {bad[:24]}",
                              ["gpu-monitor", "--once", "--backend", "simulated", "--fleet", "{fleet}", "1",
                               "{out}"], {"fleet": text.encode()}, where="{fleet}:"))
    for name, text in {"no gpus": "seed: 1\n", "gpus empty": "gpus: []\n", "gpu is a number": "gpus: [5]\n",
                       "unknown gpu key": FLEET + "    colour: red\n", "unknown top key": FLEET + "extra: 1\n",
                       "seed negative": FLEET.replace("seed: 3", "seed: -3"),
                       "65 gpus": "gpus:\n" + "  - {name: x}\n" * 65}.items():
        cases.append(Case(f"fleet {name}", ["gpu-monitor", "--once", "--backend", "simulated", "--fleet", "{fleet}",
                                            "1", "{out}"], {"fleet": text.encode()}, where="{fleet}:"))
        cases.append(Case(f"select fleet {name}", ["select", "--gpus", "simulated", "--fleet", "{fleet}"],
                          {"fleet": text.encode()}, where="{fleet}:"))
    return cases


def log_cases():
    def gz(data):
        return gzip.compress(data)

    corrupt = bytearray(gz((HEADER + ROW * 500).encode()))
    corrupt[len(corrupt) // 2] ^= 0xFF
    bad_rows = {
        "columns": "a,b,c\n", "timestamp": ROW.replace("2026-01-23 09:00:00", "yesterday"),
        "category": ROW.replace(",code,", ",,"), "model": ROW.replace(",alpha,", ",,"),
        "primary": ROW.replace(",true,", ",maybe,"), "confidence": ROW.replace("0.95", "1.5"),
        "confidence nan": ROW.replace("0.95", "nan"), "score inf": ROW.replace("70.00", "inf"),
        "score huge": ROW.replace("70.00", "1e308"), "gpu": ROW.replace(",0,0.004", ",-1,0.004"),
        "duration": ROW.replace("0.004", "-3"), "duration huge": ROW.replace("0.004", "1e99"),
        "quoting": '2026-01-23 09:00:00,"code,alpha,true,0.95,70.00,0,0.004\n',
    }
    files = {f"only bad rows: {k}": (HEADER + v).encode() for k, v in bad_rows.items()}
    files.update({
        "elf binary": b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4,
        "utf-16": (HEADER + ROW).encode("utf-16"), "bz2": bz2.compress((HEADER + ROW).encode()),
        "corrupt gzip": bytes(corrupt), "gzip bomb": gz(b"\n" * (200 << 20)),
        "gzip of garbage": gz(b"\x00\x01\x02" * 1000), "header only": HEADER.encode(),
        "one long line": b"x" * (200 << 10) + b"\n", "blank lines": b"\n" * 10000,
        "gpu monitor log": b"timestamp,gpu_id,name,utilization_%\n1769155200,0,H100,45\n",
        "empty": b"",
    })
    cases = [Case(f"analytics: {k}", ["analytics", "{log}"], {"log": v}, where="{log}") for k, v in files.items()]
    cases += [Case(f"analytics --report: {k}", ["analytics", "--report", "--format", "json", "{log}"], {"log": v},
                   where="{log}") for k, v in list(files.items())[:8]]
    for kind in ("fifo", "dir", "/dev/zero", "missing"):
        cases.append(Case(f"analytics on {kind}", ["analytics", "{log}"], {"log": f"@{kind}".encode()}, where="{log}"))
    cases.append(Case("analytics glob matching nothing", ["analytics", "{dir}/nothing-*.csv"], where="nothing-"))
    return cases


def flag_cases():
    good_log = {"log": (HEADER + ROW).encode()}
    out = []
    for date in ("2026-13-45", "2026-02-30", "yesterday", "2026-01-23 25:00", "2026-01-23 09:61", "", "2026",
                 "2026-01-23T09:00:00Z", "99999-01-01", "2026/01/01"):
        for flag in ("--since", "--until"):
            out.append(Case(f"analytics {flag} {date!r}", ["analytics", "{log}", flag, date], good_log, where=flag))
    out.append(Case("analytics since after until", ["analytics", "{log}", "--since", "2026-02-01", "--until",
                                                    "2026-01-01"], good_log, where="--since"))
    out.append(Case("analytics --format without --report", ["analytics", "{log}", "--format", "json"], good_log,
                    where="--format"))
    out.append(Case("analytics --output without --report", ["analytics", "{log}", "--output", "{out}"], good_log,
                    where="--output"))
    out.append(Case("analytics --format bogus", ["analytics", "{log}", "--report", "--format", "pdf"], good_log,
                    where="--format"))
    for epoch in ("1000000000000000000000000000000", "-1", "soon", "1e9", "253402300800"):
        out.append(Case(f"SOURCE_DATE_EPOCH={epoch}", ["analytics", "--report", "{log}"], good_log,
                        where="SOURCE_DATE_EPOCH", env={"SOURCE_DATE_EPOCH": epoch}))
    for v in ("-1", "0", "abc", "1.5", "1e99", str(10**10)):
        out.append(Case(f"demo --count {v}", ["demo", "--count", v, "--log", "{out}"], where="--count"))
    for v in ("0", "-1", "nan", "inf", "lots", "1e9"):
        out.append(Case(f"demo --rate {v}", ["demo", "--count", "1", "--rate", v, "--log", "{out}"], where="--rate"))
    out.append(Case("demo --seed -1", ["demo", "--count", "1", "--seed", "-1", "--log", "{out}"], where="--seed"))
    for v in ("nan", "inf", "-1", "x", "1e99"):
        out.append(Case(f"select --min-benchmark {v}", ["select", "--min-benchmark", v], where="--min-benchmark"))
    for v in ("0", "-5", "many", "1e3"):
        out.append(Case(f"select --min-context {v}", ["select", "--min-context", v], where="--min-context"))
    for v in (".inf", "lots", "-1GB", "9" * 400 + "GB", "1e999", "nan", "NaNGB", "", "2XB"):
        out.append(Case(f"select --max-gpu-memory {v!r}", ["select", "--max-gpu-memory", v], where="--max-gpu-memory"))
    for v in ("--prefer", "--exclude"):
        out.append(Case(f"select {v} ghost", ["select", v, "ghost"], where=v))
    out.append(Case("select unknown category", ["select", "--category", "nope"], where="nope"))
    out.append(Case("select --agent-type wizard", ["select", "--agent-type", "wizard"], where="--agent-type"))
    for v in ("0", "1", "-3", "x", "1e99", str(10**9)):
        out.append(Case(f"bench {v}", ["bench", v], where="ITERATIONS"))
    out.append(Case("bench --label job=x", ["bench", "2", "--label", "job=x"], where="--label"))
    out.append(Case("bench --label bad", ["bench", "2", "--label", "no equals"], where="--label"))
    # Checked before the benchmark runs: 10,000,000 iterations would take minutes before saying so.
    for url in ("notaurl", "ftp://gw.example", "http://", "gw.example:99999", "http://[::1"):
        out.append(Case(f"bench --push {url}", ["bench", "10000000", "--push", url], where="--push"))
    for v in ("0", "-1", "nan", "inf", "x"):
        out.append(Case(f"gpu-monitor interval {v}", ["gpu-monitor", "--once", v, "{out}"], where="INTERVAL"))
    out.append(Case("gpu-monitor --backend quantum", ["gpu-monitor", "--backend", "quantum"], where="--backend"))
    out.append(Case("gpu-monitor log is a directory", ["gpu-monitor", "--once", "--backend", "simulated", "1",
                                                       "{dir}"], where="{dir}"))
    out.append(Case("unknown command", ["fly"], where="fly"))
    out.append(Case("unknown flag", ["select", "--fly"], where="--fly"))
    return out


def legacy_cases():
    reg_ok = b'{"models": [{"name": "a", "gpu_memory": "2GB", "orchestration_categories": ["code"]}]}'
    cats_ok = b'{"categories": {"code": {"name": "Code", "models": ["a"]}}}'
    bad_regs = {
        "not json": b"{", "a list": b"[]", "models is a number": b'{"models": 5}',
        "model is a list": b'{"models": [["a"]]}', "model without name": b'{"models": [{"gpu_memory": "2GB"}]}',
        "name is a number": b'{"models": [{"name": 5}]}', "categories are text": b'{"models": [{"name": "a", '
        b'"orchestration_categories": "code"}]}', "deep nesting": b"[" * 100000,
        "not utf-8": b'{"models": [{"name": "\xff"}]}', "specifications a list": b'{"models": [{"name": "a", '
        b'"specifications": [1]}]}',
    }
    bad_cats = {
        "no categories": b"{}", "categories a number": b'{"categories": 5}',
        "category a list": b'{"categories": {"code": [1]}}', "models text": b'{"categories": {"code": '
        b'{"models": "a"}}}', "array category without id": b'{"categories": [{"models": ["a"]}]}',
        "routing rules a list": b'{"categories": {}, "routing_rules": []}',
    }
    cases = [Case(f"import-legacy registry {k}", ["registry", "import-legacy", "{m}", "{c}"], {"m": v, "c": cats_ok},
                  where="{m}") for k, v in bad_regs.items()]
    cases += [Case(f"import-legacy categories {k}", ["registry", "import-legacy", "{m}", "{c}"],
                   {"m": reg_ok, "c": v}, where="{c}") for k, v in bad_cats.items()]
    return cases


IN_PROCESS = registry_cases() + fleet_cases() + log_cases() + flag_cases() + legacy_cases()


def materialise(case, folder):
    """The case's argv with its files written under `folder`, and what its line must name."""
    names = {"out": os.path.join(folder, "out.txt"), "dir": folder}
    for key, content in case.files.items():
        path = os.path.join(folder, f"{key}.input")
        special = content.decode("latin-1") if content.startswith(b"@") else None
        if special == "@fifo":
            os.mkfifo(path)
        elif special == "@dir":
            os.mkdir(path)
        elif special == "@/dev/zero":
            path = "/dev/zero"
        elif special == "@missing":
            pass
        elif special == "@huge":
            with open(path, "wb") as f:
                f.write(b"# padding\n" * (500 << 10))
        else:
            with open(path, "wb") as f:
                f.write(content)
        names[key] = path
    argv = [a.format(**names) for a in case.argv]
    return argv, case.where.format(**names)


def run_in_process(argv, env):
    """(exit code, stdout, stderr, None) or (None, ..., the exception or 'hang')."""
    out, err, result = io.StringIO(), io.StringIO(), {}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)

    def target():
        try:
            with redirect_stdout(out), redirect_stderr(err):
                result["code"] = main(argv)
        except SystemExit as e:
            result["code"] = e.code
        except BaseException as e:  # noqa: BLE001 - a traceback is what this test looks for
            result["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(DEADLINE)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    if t.is_alive():
        return None, out.getvalue(), err.getvalue(), "hang"
    return result.get("code"), out.getvalue(), err.getvalue(), result.get("error")


def check(case, code, err, problem, where):
    assert problem is None, f"{case.id}: {problem!r}"
    assert code in case.codes, f"{case.id}: exit {code}, stderr {err!r}"
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"{case.id}: {len(lines)} lines on stderr: {err!r}"
    assert "Traceback" not in err
    assert where in lines[0], f"{case.id}: {lines[0]!r} does not name {where!r}"
    if where.endswith(":") and where.startswith("/"):  # a file with a line: FILE:N:
        assert re.search(re.escape(where) + r"\d+:", lines[0]), f"{case.id}: no line number in {lines[0]!r}"


def test_the_catalogue_is_large_and_distinct():
    ids = [c.id for c in IN_PROCESS] + [c.id for c in SERVE]
    assert len(ids) == len(set(ids)), "case names repeat"
    assert len(ids) >= 300, len(ids)


@pytest.mark.parametrize("case", IN_PROCESS, ids=[c.id for c in IN_PROCESS])
def test_in_process(case, tmp_path):
    argv, where = materialise(case, str(tmp_path))
    code, _, err, problem = run_in_process(argv, case.env)
    check(case, code, err, problem, where)


SERVE_VALUES = {
    "web.listen-address": ["foo", ":99999", "[::1", "host:port", "5"],
    "web.telemetry-path": ["metrics", "/healthz", "/", "/-/ready", "/a b", "5"],
    "web.config.file": ['""', "[a]"],
    "gpu-backend": ["quantum", "5"],
    "routing.max-label-values": ["0", "-1", "1.5", "true", "1000000000"],
    "routing.max-series": ["0", "99", "10000000", "lots"],
    "gpu-processes.max-per-gpu": ["0", "1001", "2.5", "true"],
    "collector.gpu-processes": ["maybe"],
    "kubernetes.refresh-interval": ["0", "3601", ".nan", "soon"],
    "kubernetes.resource-names": ["[]", "5", "['']"],
    "kubernetes.max-series": ["0", "-1", "1.5"],
    "kubernetes.pod-resources-socket": ['""', "[a]"],
    "kubernetes.pod-memory": ["maybe", "1"],
    "kubernetes.service-account-dir": ['""', "[a]"],
    "path.procfs": ['""', "5"],
    "log.level": ["loud", "5"],
    "collector.gpu": ["maybe", "1"],
    "health.temperature-celsius": [".nan", ".inf", "-5", "0", "1000"],
    "health.utilization-ratio": [".nan", "1.5", "0"],
    "health.power-ratio": [".inf", "-1"],
    "health.xid-window-seconds": [".nan", "0"],
    "health.critical-xids": ["[0]", "[a]", "5", "[]"],
    "selection-log": ["[5]", "{a: 1}"],
    "nosuchkey": ["1"],
}
WEB_CONFIGS = {
    "tls is a number": "tls_server_config: 5\n", "headers a list": "http_server_config:\n  headers: [a]\n",
    "header CR LF": 'http_server_config:\n  headers:\n    X-Frame-Options: "a\\r\\nSet-Cookie: x"\n',
    "header not allowed": "http_server_config:\n  headers:\n    Set-Cookie: a\n",
    "hash cost 99": "basic_auth_users:\n  u: $2b$99$" + "a" * 53 + "\n",
    "hash bad chars": "basic_auth_users:\n  u: $2b$10$" + "!" * 53 + "\n",
    "hash plaintext": "basic_auth_users:\n  u: secret\n", "users a list": "basic_auth_users: [a]\n",
    "tls without key": "tls_server_config:\n  cert_file: /nope.crt\n",
    "tls missing files": "tls_server_config:\n  cert_file: /nope.crt\n  key_file: /nope.key\n",
    "client auth unverified": "tls_server_config:\n  cert_file: a\n  key_file: b\n"
                              "  client_auth_type: RequireAnyClientCert\n",
    "client auth unknown": "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: Sometimes\n",
    "rate limit": "rate_limit:\n  interval: 1s\n", "alias": "a: &a 1\nb: *a\n", "top a list": "- 1\n",
    "min version bogus": "tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS99\n",
}
SERVE = (
    [Case(f"serve config {k}: {v}", ["serve", "--config", "{cfg}"], {"cfg": f"{k}: {v}\n".encode()}, where="{cfg}:")
     for k, vs in SERVE_VALUES.items() for v in vs]
    + [Case(f"serve web config {k}", ["serve", "--web.config.file", "{web}"], {"web": v.encode()}, where="{web}:")
       for k, v in WEB_CONFIGS.items()]
    + [Case(f"serve flag {f}={v}", ["serve", f"--{f}={v}"], where=f"--{f}")
       for f, v in [("web.listen-address", "foo"), ("web.telemetry-path", "/healthz"), ("web.config.file", ""),
                    ("health.temperature-celsius", "nan"), ("health.utilization-ratio", "inf"),
                    ("health.power-ratio", "-1"), ("health.xid-window-seconds", "nan"),
                    ("health.critical-xids", "a,b"), ("routing.max-label-values", "0"),
                    ("routing.max-series", "5"), ("gpu-processes.max-per-gpu", "0"), ("gpu-backend", "quantum"),
                    ("log.level", "loud"), ("kubernetes.resource-names", ","), ("kubernetes.refresh-interval", "0"),
                    ("kubernetes.service-account-dir", ""), ("path.procfs", ""),
                    ("registry", ""), ("fleet", "")]]
    + [Case("serve registry FIFO", ["serve", "--registry", "{reg}"], {"reg": b"@fifo"}, where="{reg}"),
       Case("serve fleet bad", ["serve", "--gpu-backend", "simulated", "--fleet", "{fleet}"],
            {"fleet": b"seed: abc\ngpus: [{name: x}]\n"}, where="{fleet}:"),
       Case("serve fleet MIG past 7 slices", ["serve", "--gpu-backend", "simulated", "--fleet", "{fleet}"],
            {"fleet": b"gpus:\n  - name: x\n    mig: [4g.40gb, 4g.40gb]\n"}, where="{fleet}:3"),
       Case("serve config is a FIFO", ["serve", "--config", "{cfg}"], {"cfg": b"@fifo"}, where="{cfg}")]
)


def _serve_case(case, folder):
    os.makedirs(folder)
    argv, where = materialise(case, folder)
    if not any(a.startswith("--web.listen-address") for a in argv) and not any(
            "web.listen-address" in c.decode("latin-1") for c in case.files.values()):
        argv.append(f"--web.listen-address=127.0.0.1:{free_port()}")
    try:
        res = subprocess.run([sys.executable, "-m", "exporter", *argv], capture_output=True, text=True,
                             timeout=DEADLINE + 5, cwd=ROOT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return case, None, "", "hang (or accepted and serving)", where
    return case, res.returncode, res.stderr, None, where


def test_serve_refuses_every_bad_input_at_start(tmp_path):
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda ic: _serve_case(ic[1], str(tmp_path / str(ic[0]))), enumerate(SERVE)))
    failures = []
    for case, code, err, problem, where in results:
        try:
            check(case, code, err, problem, where)
        except AssertionError as e:
            failures.append(str(e))
    assert not failures, f"{len(failures)} of {len(SERVE)} serve cases failed:\n" + "\n".join(failures)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(min_size=1, max_size=200))
def test_any_text_as_a_registry_is_a_registry_or_one_line(tmp_path, text):
    path = tmp_path / "generated.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    code, _, err, problem = run_in_process(["registry", "validate", str(path)], {})
    assert problem is None and code in (0, 2), (text, problem, code)
    if code == 2:
        assert str(path) in err and "Traceback" not in err


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_any_date_flag_is_a_date_or_one_line(text):
    code, _, err, problem = run_in_process(["analytics", os.path.join(ROOT, "tests", "fixtures", "legacy",
                                                                      "selection_metrics_sample.csv"),
                                            "--since", text], {})
    assert problem is None and code in (0, 1, 2), (text, problem)
    if code == 2:
        assert len(err.strip().splitlines()) == 1 and "--since" in err


def test_the_bases_are_valid_so_each_case_has_one_problem(tmp_path):
    """The catalogue's mutations start from valid files, and its check fails on accepted input."""
    ok = Case("valid registry", ["registry", "validate", "{reg}"], {"reg": REGISTRY.encode()}, where="{reg}:")
    argv, where = materialise(ok, str(tmp_path))
    code, out, err, problem = run_in_process(argv, {})
    assert code == 0 and problem is None, err
    with pytest.raises(AssertionError, match="exit 0"):
        check(ok, code, err, problem, where)
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(FLEET)
    code, out, err, problem = run_in_process(["select", "--gpus", "simulated", "--fleet", str(fleet)], {})
    assert code == 0 and problem is None, err


# Hostile logs under `orchex serve` (issue 22): each failed with main at ee26657.

def _selections(body):
    return sum(float(line.rpartition(" ")[2]) for line in body.decode().splitlines()
               if line.startswith("orchex_router_selections_total{"))


def _row(i):
    return f"2026-01-23 08:00:{i % 60:02d},code,google-gemma-3-270m-it,true,0.95,70.00,0,0.004\n"


def _timed_get(s):
    import time

    started = time.monotonic()
    code, _, body = s.get()
    return time.monotonic() - started, code, body


def test_1100_logs_under_a_1024_open_file_limit_are_all_counted(serve, tmp_path):
    import resource
    import time

    for i in range(1100):
        (tmp_path / f"sel-{i:04d}.csv").write_text("".join(_row(j) for j in range(3)))

    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))

    s = serve("--gpu-backend=simulated", f"--selection-log={tmp_path}/sel-*.csv", preexec_fn=limit)
    for expected in (3300, 4400):
        deadline = time.monotonic() + 30
        while True:
            took, code, body = _timed_get(s)
            assert code == 200 and took < 5, took
            if _selections(body) == expected or time.monotonic() > deadline:
                break
        assert _selections(body) == expected
        for i in range(1100):
            with open(tmp_path / f"sel-{i:04d}.csv", "a") as f:
                f.write(_row(i))
    fds = len(os.listdir(f"/proc/{s.proc.pid}/fd"))
    assert fds < 300, f"{fds} descriptors held"  # the budget of 256, not one per file


def _without_root_file_access():
    """In the child before exec: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the bounding set,
    so that root, as the tests run in CI, meets file permissions as an unprivileged daemon would."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if os.getuid() == 0 and libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_an_unreadable_log_is_named_counted_and_not_followed(serve, tmp_path):
    folder = tmp_path
    readable, unreadable = os.path.join(folder, "a.csv"), os.path.join(folder, "b.csv")
    for path in (readable, unreadable):
        with open(path, "w") as f:
            f.write(_row(1))
    os.chmod(unreadable, 0o000)
    s = serve("--gpu-backend=simulated", f"--selection-log={folder}/*.csv", preexec_fn=_without_root_file_access)
    text = s.get()[2].decode()
    files = rf'^orchex_router_selection_log_files\{{pattern="{re.escape(str(folder))}/\*.csv"\}} 1$'
    assert re.search(files, text, re.M)
    assert _selections(text.encode()) == 1
    assert re.search(r'^orchex_router_selection_log_errors_total\{reason="permission"\} [1-9]', text, re.M)
    s.get()
    _, err = s.stop()
    assert err.count(f"selection log {unreadable}: cannot be followed (permission)") == 1, err
    assert "Traceback" not in err


def test_scrapes_answer_while_a_20_gb_sparse_log_is_followed(serve, tmp_path):
    import time

    log = tmp_path / "sel.csv"
    with open(log, "wb") as f:
        f.write(_row(1).encode())
        f.seek(20 << 30)  # 20 GB, nearly all of it a hole: what copytruncate leaves behind a writer
        f.write(_row(2).encode())
    s = serve("--gpu-backend=simulated", f"--selection-log={log}", wait=False)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            took, code, body = _timed_get(s)
        except OSError:
            time.sleep(0.2)
            continue
        assert took < 10, took
        if _selections(body) == 2:
            break
    assert _selections(body) == 2  # the row after the hole
    for _ in range(3):
        took, code, body = _timed_get(s)
        assert code == 200 and took < 10, took


@pytest.mark.parametrize("argv, suggestion", [
    (["analytics", "--formt", "json", "log.csv"], "--format"),
    (["serve", "--web.listen-adress=:1"], "--web.listen-address"),
    (["gpu-monitor", "--onse"], "--once"),
])
def test_a_misspelled_flag_gets_a_did_you_mean(argv, suggestion):
    code, out, err, _ = run_in_process(argv, {})
    assert code == 2 and err.strip().splitlines() == [
        f"orchex: unrecognized arguments: {' '.join(a for a in argv if a.startswith('--'))} "
        f"(did you mean {suggestion}?)"], err


def test_version_says_whether_the_kernel_is_active():
    code, out, _, _ = run_in_process(["--version"], {})
    assert code == 0 and out.strip() == "orchex 0.1.0 (C kernel: active)"
