import csv
import json

from exporter.selectionlog.rows import COLUMNS, EXTRA


def test_help_for_every_command(cli):
    from exporter.parser import COMMANDS

    res = cli("--help")
    assert res.returncode == 0
    for name in COMMANDS:
        assert name in res.stdout
        sub = cli(name, "--help")
        assert sub.returncode == 0 and "usage: orchex " + name in sub.stdout, name


def test_select_legacy_parity_json(cli):
    res = cli("select", "--category", "code", "--max-gpu-memory", "14GB", "--agent-type", "inference",
              "--policy", "legacy", "--format", "json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert (out["model"], out["final_score"], out["confidence"], out["primary"], out["gpu"]) == (
        "google-gemma-3-270m-it", 70.0, 0.95, True, None)


def test_select_gpu_class_and_simulated_gpus_and_log(cli, tmp_path):
    log = tmp_path / "sel.csv"
    res = cli("select", "--category", "relational", "--max-gpu-memory", "T4_16GB", "--agent-type", "tool",
              "--gpus", "simulated", "--log", str(log))
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("HY-MT1.5-7B") and "GPU " in res.stdout
    rows = list(csv.reader(open(log)))
    assert rows[0] == list(COLUMNS + EXTRA)
    assert rows[1][1:4] == ["relational", "HY-MT1.5-7B", "true"] and rows[1][6].isdigit()


def test_bad_input_is_one_line_exit_2(cli, tmp_path):
    cases = [
        (["select", "--category", "nosuch"], "unknown category 'nosuch'"),
        (["select", "--max-gpu-memory", "14 zettabytes"], "--max-gpu-memory: not a memory size"),
        (["select", "--registry", str(tmp_path / "missing.yaml")], "missing.yaml: cannot read"),
        (["select", "--prefer", "ghost"], "--prefer: unknown model 'ghost'"),
        (["select", "--min-context", "many"], "argument --min-context: invalid int value"),
        (["select", "--category", "code", "--min-context", "999999999"], "no suitable model for 'code'"),
    ]
    for args, message in cases:
        res = cli(*args)
        assert res.returncode == 2, (args, res.stderr)
        assert message in res.stderr, (args, res.stderr)
        assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr, res.stderr
