import json
import os
import random
import textwrap
import urllib.request

import pytest

from conftest import LEGACY
from exporter.bench.run import run
from exporter.routing import registry, selector

MODELS = os.path.join(LEGACY, "MODEL_REGISTRY.json")
CATEGORIES = os.path.join(LEGACY, "task_categories.json")


def test_default_registry_passes_with_every_statistic(cli, tmp_path):
    out = tmp_path / "bench.json"
    res = cli("bench", "200", "--format", "json", "--output", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    report = json.loads(res.stdout)
    assert json.loads(out.read_text()) == report
    assert report["schema"] == "orchex.bench/1" and report["passed"] and report["iterations"] == 200
    code = report["categories"]["code"]
    for key in ("mean_s", "median_s", "stdev_s", "min_s", "max_s", "p95_s", "p99_s", "selections_per_second"):
        assert code[key] > 0
    assert code["min_s"] <= code["median_s"] <= code["p95_s"] <= code["p99_s"] <= code["max_s"]
    assert code["consistency_ratio"] == 1.0 and code["count"] == 200
    names = [c["name"] for c in report["combinations"]]
    assert names[:4] == ["T4 GPU (14GB)", "A100 GPU (40GB)", "Translation (tool)", "Small model only"]
    combos = {c["name"]: c for c in report["combinations"]}
    assert combos["Translation (tool)"]["model"] == "HY-MT1.5-7B"
    gpu_aware = [c for c in report["combinations"] if c["name"].startswith("GPU-aware")]
    assert gpu_aware and all(c["gpu"] not in (2, 5) for c in gpu_aware)  # never the hot or the full GPU
    # The packaged registry covers every category (the legacy data left seven uncovered).
    assert not any(c["uncovered"] for c in report["coverage"].values())
    assert report["coverage"]["math"] == {"listed": 2, "present": 2, "ratio": 1.0, "uncovered": False, "missing": []}
    assert report["coverage"]["code"]["ratio"] == 1.0
    assert set(report["scaling"]) == {"7", "100", "1000"}


def test_legacy_positional_form_and_text(cli, tmp_path):
    legacy = tmp_path / "legacy.yaml"  # the legacy data alone, which lists no model for math
    assert cli("registry", "import-legacy", MODELS, CATEGORIES, "-o", str(legacy)).returncode == 0
    res = cli("bench", "50", "--policy", "legacy", "--registry", str(legacy))
    assert res.returncode == 0
    assert "Selection time per category (ms)" in res.stdout and "p99" in res.stdout
    assert "math             uncovered (lists no models)" in res.stdout
    assert "T4 GPU (14GB)" in res.stdout and "google-gemma-3-270m-it score 70.00" in res.stdout
    assert res.stdout.rstrip().splitlines()[-1].startswith("PASSED")


def test_missing_model_fails_coverage(cli, tmp_path):
    reg = tmp_path / "r.yaml"
    reg.write_text(textwrap.dedent("""\
        models:
          - {name: a, memory: 2GB, categories: [code], agent_types: [inference, tool]}
        categories:
          code: {models: [a, ghost]}
          relational: {models: [a]}
        routing: {fallback_model: a}
        """))
    res = cli("bench", "20", "--registry", str(reg))
    assert res.returncode == 1
    assert "category code: coverage 50%, missing ghost" in res.stdout
    assert "FAILED: 1 check(s)" in res.stdout


def test_non_deterministic_policy_fails_consistency(default_registry):
    rng = random.Random(3)

    def coin(reg, cat, c, gpus, policy):
        sel = selector.select(reg, cat, c, gpus, policy)
        return sel._replace(final_score=sel.final_score + rng.choice((0, 1)))

    r = run(default_registry, 50, select=coin, scaling_sizes=(7,))
    assert not r.passed
    assert any(f.startswith("category code: consistency") for f in r.failures)
    assert r.categories["code"]["consistency_ratio"] < 1.0


def test_a_selector_that_breaks_constraints_is_caught(default_registry):
    def careless(reg, cat, c, gpus, policy):
        return selector.select(reg, cat, selector.Constraints(), gpus, policy)._replace(
            model="deepseek-coder-33b-instruct-q4_k_m", memory=22 * 10**9)

    r = run(default_registry, 10, select=careless, scaling_sizes=())
    assert any(f.startswith("T4 GPU (14GB): deepseek") for f in r.failures)


def test_errors_are_reported_not_skipped(tmp_path):
    reg = registry.loads("models: []\ncategories:\n  code: {models: []}\n")
    r = run(reg, 10, scaling_sizes=())
    assert r.failures[0] == "category code: selection failed: no suitable model for 'code': the category has no " \
                            "candidate models"
    assert r.categories["code"] == {"error": r.failures[0].split("failed: ")[1]}
    assert any(f.startswith("Translation (tool): category relational is not in the registry") for f in r.failures)


def test_unreachable_gateway_exit_3_and_results_still_written(cli, tmp_path):
    from conftest import free_port

    out = tmp_path / "r.txt"
    res = cli("bench", "20", "--output", str(out), "--push", f"http://127.0.0.1:{free_port()}")
    assert res.returncode == 3
    assert res.stderr.startswith("orchex: push to http://127.0.0.1:") and res.stderr.count("\n") == 1
    assert "PASSED" in res.stdout and "PASSED" in out.read_text()


def test_bad_label(cli):
    res = cli("bench", "--label", "job=x")
    assert res.returncode == 2 and "expected NAME=VALUE" in res.stderr


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    from live import Pushgateway

    g = Pushgateway(str(tmp_path_factory.mktemp("pgw")))
    yield g
    g.stop()


def gateway_series(url):
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url + "/metrics") as r:
        text = r.read().decode()
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples]


def test_push_to_a_real_pushgateway_and_a_second_registry_adds_a_group(cli, gateway, tmp_path):
    res = cli("bench", "30", "--push", gateway.url, "--label", "instance=ci-runner")
    assert res.returncode == 0, res.stderr
    series = gateway_series(gateway.url)
    medians = [(lab, v) for n, lab, v in series if n == "orchex_bench_selection_median_seconds"]
    assert {lab["category"] for lab, _ in medians} >= {"code", "relational", "math"}
    assert all(lab["job"] == "orchex_bench" and lab["instance"] == "ci-runner" for lab, _ in medians)
    assert all(0 < v < 0.01 for _, v in medians)
    digest = registry.load().digest[:12]
    assert {lab["registry"] for lab, _ in medians} == {digest}
    passed = [v for n, lab, v in series if n == "orchex_bench_passed"]
    assert passed == [1.0]
    assert any(n == "orchex_bench_last_success_timestamp_seconds" for n, _, _ in series)
    assert not any(n.startswith(("process_", "python_")) and lab.get("job") == "orchex_bench"
                   for n, lab, _ in series)  # pushed from a dedicated registry
    other = tmp_path / "other.yaml"
    other.write_text("models:\n  - {name: a, memory: 2GB, categories: [code], agent_types: [inference, tool]}\n"
                     "categories:\n  code: {models: [a]}\n  relational: {models: [a]}\n")
    res = cli("bench", "30", "--registry", str(other), "--push", gateway.url, "--label", "instance=ci-runner")
    assert res.returncode == 0, res.stdout + res.stderr
    groups = {lab["registry"] for n, lab, _ in gateway_series(gateway.url) if n == "orchex_bench_passed"}
    assert groups == {digest, registry.load(str(other)).digest[:12]}


def test_push_with_basic_auth_header(cli, tmp_path):
    """The gateway side of auth is a proxy's job; here a tiny server records the Authorization header."""
    import base64
    import http.server
    import threading

    seen = []

    class H(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            seen.append(self.headers.get("Authorization"))
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        res = cli("bench", "10", "--push", f"http://127.0.0.1:{srv.server_port}",
                  env={"ORCHEX_PUSH_USERNAME": "bench", "ORCHEX_PUSH_PASSWORD": "pw"})
    finally:
        srv.shutdown()
    assert res.returncode == 0, res.stderr
    assert seen == ["Basic " + base64.b64encode(b"bench:pw").decode()]
