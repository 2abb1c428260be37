"""Every `$ orchex ...` line of the README and of docs/ runs as written, against the packaged defaults
and the files they name, and prints what they show (numbers aside: readings and timings move). So the
documentation cannot drift from the code again."""

import glob
import gzip
import os
import re
import shutil
import signal
import subprocess
import sys

import pytest

from conftest import LEGACY, ROOT, free_port

pytestmark = pytest.mark.timeout(300)
PAGES = [os.path.join(ROOT, "README.md"), *sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))]
LONG_RUNNING = ("orchex serve", "orchex gpu-monitor 2", "until Ctrl+C")  # they run until stopped


def examples():
    """(where, command, [output lines shown]) for each `$ orchex` line in a console block."""
    return [e for page in PAGES for e in page_examples(page)]


def page_examples(page):
    name = os.path.relpath(page, ROOT)
    out, block = [], False
    for n, line in enumerate(open(page).read().splitlines(), 1):
        if line.startswith("```"):
            block = line.strip() == "```console"
            continue
        if not block:
            continue
        if line.startswith("$ "):
            out.append([f"{name}:{n}", line[2:], []])
        elif out and out[-1][0] and line.strip() not in ("^C", "..."):
            out[-1][2].append(line)
    return [(n, cmd, shown) for n, cmd, shown in out
            if re.match(r"(\w+=\S+ )*orchex ", cmd)]


def normal(line):
    """A line with its numbers and spacing made irrelevant: readings and timings vary."""
    line = re.sub(r"\s+#\s.*$", "", line) if "  #" in line else line
    return re.sub(r"\s+", " ", re.sub(r"\d[\d.,:-]*", "N", line)).strip()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """The files the README's examples name, in a folder the examples run in."""
    ws = tmp_path_factory.mktemp("readme")
    (ws / "logs").mkdir()
    sample = os.path.join(LEGACY, "selection_metrics_sample.csv")
    shutil.copy(sample, ws / "logs" / "selection_metrics.csv")
    shutil.copy(sample, ws / "sel.csv")
    (ws / "logs" / "sel.csv.gz").write_bytes(gzip.compress(open(sample, "rb").read()))
    for name in ("MODEL_REGISTRY.json", "task_categories.json"):
        shutil.copy(os.path.join(LEGACY, name), ws / name)
    (ws / "broken.yaml").write_text(
        "models:\n  - name: a\n    memory: 2GB\n    categories: [code, nosuch]\ncategories:\n  code:\n"
        "    name: Code\n    agent_types: [inference]\n    benchmarks: [HumanEval]\n    description: x\n"
        "    # the models the category lists\n\n\n\n    models: [a, ghost]\n")
    config = open(os.path.join(ROOT, "deploy", "orchex.yml")).read()
    (ws / "orchex.yml").write_text(config.replace('":9847"', f'"127.0.0.1:{free_port()}"'))
    return ws


def run(line, ws):
    long_running = any(k in line for k in LONG_RUNNING)
    cmd = re.sub(r"\s+#\s.*$", "", line)
    cmd = cmd.replace("/etc/orchex/orchex.yml", str(ws / "orchex.yml"))
    cmd = cmd.replace("--web.listen-address=:9847", f"--web.listen-address=127.0.0.1:{free_port()}")
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    stdin = open(os.path.join(LEGACY, "selection_metrics_sample.csv"), "rb")
    proc = subprocess.Popen(["bash", "-c", cmd], cwd=ws, env=env, stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=4 if long_running else 60)
        stopped = False
    except subprocess.TimeoutExpired:
        assert long_running, f"{cmd!r} did not finish"
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
        stopped = True
    return proc.returncode, out, stopped


@pytest.mark.parametrize("n, cmd, shown", examples(), ids=[e[0] for e in examples()])
def test_readme_example_runs_as_shown(workspace, n, cmd, shown):
    code, out, stopped = run(cmd, workspace)
    assert "Traceback" not in out, out
    said = re.search(r"#.*\bexit (\d)", " ".join([cmd, *shown]))
    expected = int(said.group(1)) if said else 0
    if not stopped:
        assert code == expected, f"{n}: {cmd!r} exited {code}:\n{out}"
    else:  # a daemon or monitor: it ran until told to stop, then stopped cleanly
        assert code in (0, 130, -signal.SIGINT), out
    got = [normal(line) for line in out.splitlines()]
    at = 0
    for line in shown:  # each shown line, in order, among the lines printed
        want = normal(line)
        while at < len(got) and got[at] != want:
            at += 1
        assert at < len(got), f"{n}: {line!r} not printed by {cmd!r}; printed:\n{out}"
        at += 1


def test_every_orchex_line_is_covered():
    lines = [line for page in PAGES for line in open(page).read().splitlines()
             if re.match(r"\$ (\w+=\S+ )*orchex ", line)]
    assert len(lines) == len(examples()) >= 12
    assert any(e[0].startswith("README.md:") for e in examples()) and any(e[0].startswith("docs/") for e in examples())
