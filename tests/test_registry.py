import os
import textwrap

import pytest

from conftest import LEGACY
from exporter.errors import ProblemList
from exporter.routing import legacy_import, registry

MODELS = os.path.join(LEGACY, "MODEL_REGISTRY.json")
CATEGORIES = os.path.join(LEGACY, "task_categories.json")
PRE_MIGRATION = os.path.join(LEGACY, "task_categories.pre-migration.json")


def write(tmp_path, text):
    p = tmp_path / "registry.yaml"
    p.write_text(textwrap.dedent(text))
    return str(p)


LEGACY_SEVEN = ("google-gemma-3-270m-it", "LFM2.5-1.2B-Instruct-GGUF", "HY-MT1.5-7B", "microsoft-phi-2",
                "deepseek-coder-33b-instruct-q4_k_m", "Llama-3.3-70B-Instruct-Q4_K_M", "translategemma-27b-it-GGUF")


def test_default_registry_keeps_the_legacy_data_and_covers_every_category(default_registry):
    r = default_registry
    assert list(r.models)[:7] == list(LEGACY_SEVEN) and len(r.models) > 7
    assert all(r.candidates[c] for c in r.categories)  # every category lists a model
    assert all(m.benchmarks for name, m in r.models.items() if name not in LEGACY_SEVEN + ("chronos-bolt-small",))
    assert set(r.categories) >= {"math", "code", "reasoning", "summarization", "time_series", "relational",
                                 "graph", "vector_search", "ocr_extraction"}
    assert r.default_category == "code" and r.fallback_model == "google-gemma-3-270m-it"
    assert r.gpu_classes == {"t4_16gb": 14 * 10**9, "a100_40gb": 38 * 10**9, "a100_80gb": 76 * 10**9}
    tg = r.models["translategemma-27b-it-GGUF"]
    assert tg.variants == (("Q4_K_M", 20 * 10**9), ("Q6_K", 24 * 10**9), ("Q8_0", 32 * 10**9))
    assert tg.categories == ("translation", "relational")
    assert r.models["microsoft-phi-2"].context_length == 2048
    assert [e.model.name for e in r.candidates["code"]] == [
        "google-gemma-3-270m-it", "microsoft-phi-2", "deepseek-coder-33b-instruct-q4_k_m"]


def test_import_legacy_matches_the_packaged_default(tmp_path, cli, default_registry):
    out = tmp_path / "r.yaml"
    res = cli("registry", "import-legacy", MODELS, CATEGORIES, "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert "translation" in res.stderr and "flores200_avg" in res.stderr  # what was added and dropped
    imported = registry.load(str(out))
    # The legacy models are packaged with their legacy data; the package adds models beside them.
    assert {n: default_registry.models[n] for n in imported.models} == imported.models
    assert set(imported.categories) == set(default_registry.categories)
    assert imported.gpu_classes == default_registry.gpu_classes


def test_import_legacy_reads_the_pre_migration_array_shape():
    data, _ = legacy_import.convert(MODELS, PRE_MIGRATION)
    assert {"math", "code", "relational"} <= set(data["categories"])


def test_import_legacy_bad_json_names_file_and_line(tmp_path, cli):
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "models": [\n')
    res = cli("registry", "import-legacy", str(bad), CATEGORIES)
    assert res.returncode == 2
    assert res.stderr.startswith(f"orchex: {bad}:3: invalid JSON")
    assert "Traceback" not in res.stderr


def test_validate_reports_every_problem_with_its_line(tmp_path, cli):
    path = write(tmp_path, """\
        models:
          - name: a
            memory: 2GB
            categories: [code, nosuch]
            agent_types: [inference, wizard]
          - name: a
            memory: 2GB
          - name: b
            memory: lots
          - name: c
            memory: 1GB
            context_length: -5
        categories:
          code:
            models: [a, ghost]
        routing:
          default_category: nope
          fallback_model: ghost2
          gpu_classes: {small: tiny}
        """)
    res = cli("registry", "validate", path)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert lines == [
        f"{path}:4: model 'a' names unknown category 'nosuch'",
        f"{path}:5: model 'a': unknown agent type 'wizard' (expected one of inference, tool, orchestrator)",
        f"{path}:6: duplicate model 'a'",
        f"{path}:9: model 'b': unparseable memory: not a memory size: 'lots' (expected e.g. 2GB, 1.5 GiB, 800MB)",
        f"{path}:12: model 'c': context_length must be a positive integer",
        f"{path}:15: category 'code' names unknown model 'ghost'",
        f"{path}:17: default_category 'nope' is not a category",
        f"{path}:18: fallback_model 'ghost2' is not a model",
        f"{path}:19: GPU class 'small': not a memory size: 'tiny' (expected e.g. 2GB, 1.5 GiB, 800MB)",
    ]


def test_validate_ok(cli):
    res = cli("registry", "validate", registry.DEFAULT_PATH)
    assert res.returncode == 0 and "OK (12 models" in res.stdout


def test_invalid_yaml_is_one_line(tmp_path, cli):
    path = write(tmp_path, "models: [\n")
    res = cli("registry", "validate", path)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and f"{path}:" in res.stderr


def test_unknown_keys_are_problems(tmp_path):
    path = write(tmp_path, """\
        modles: []
        models:
          - name: a
            memroy: 2GB
            memory: 2GB
        """)
    with pytest.raises(ProblemList) as e:
        registry.load(path)
    assert [line for line, _ in e.value.problems] == [1, 4]


def test_memory_as_mapping_and_benchmark_weights(tmp_path):
    path = write(tmp_path, """\
        models:
          - name: big
            memory: {Q4: 20GB, Q8: 32GB}
            categories: [code]
            benchmarks: {HumanEval: 80, MBPP: 60}
        categories:
          code:
            benchmarks: {HumanEval: 3, MBPP: 1}
        """)
    r = registry.load(path)
    assert r.models["big"].variants == (("Q4", 20 * 10**9), ("Q8", 32 * 10**9))
    assert r.candidates["code"][0].benchmark == pytest.approx((80 * 3 + 60) / 4)


def test_a_legacy_file_is_pointed_at_import_legacy(cli):
    res = cli("registry", "validate", MODELS)
    assert res.returncode == 2
    assert res.stderr == f"{MODELS}:1: this is a legacy registry or categories file: convert it with " \
                         "`orchex registry import-legacy MODEL_REGISTRY.json task_categories.json`\n"
