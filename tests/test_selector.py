import textwrap

import pytest

from exporter.gpu.health import HEALTHY, HOT, load_score
from exporter.gpu.snapshot import GpuSnapshot
from exporter.routing import registry
from exporter.routing.selector import Constraints, NoSuitableModel, UnknownCategory, select

GB = 10**9


def reg(text):
    return registry.loads(textwrap.dedent(text))


def gpu(index, free_gb, total_gb=80, util=0.2, temp=40.0, health=HEALTHY):
    return GpuSnapshot(index=index, memory_total=total_gb * GB, memory_free=free_gb * GB,
                       memory_used=(total_gb - free_gb) * GB, utilization=util, temperature=temp,
                       power=100.0, power_limit=700.0, health=health)


# --- legacy parity: the old selector's results where it worked, and ours where it failed ---------

@pytest.mark.parametrize("limit", ["14GB", "40GB", "4GB"])
def test_legacy_code_picks_gemma_at_70(default_registry, limit):
    from exporter.routing.constraints import parse_max_memory

    c = Constraints(max_memory=parse_max_memory(limit, default_registry), agent_type="inference")
    sel = select(default_registry, "code", c, policy="legacy")
    assert (sel.model, sel.final_score, sel.confidence, sel.primary) == (
        "google-gemma-3-270m-it", 70.0, 0.95, True)


def test_relational_tool_at_16gb_gives_hy_mt(default_registry):
    # The legacy selector failed here: translategemma's three-variant memory did not parse.
    sel = select(default_registry, "relational", Constraints(max_memory=16 * GB, agent_type="tool"),
                 policy="legacy")
    assert sel.model == "HY-MT1.5-7B" and sel.final_score == 50.0 and not sel.fallback


def test_relational_without_tool_can_pick_translategemma_variant(default_registry):
    sel = select(default_registry, "relational", Constraints(max_memory=30 * GB, exclude=frozenset(
        {"HY-MT1.5-7B"})), policy="legacy")
    assert (sel.model, sel.variant, sel.memory) == ("translategemma-27b-it-GGUF", "Q6_K", 24 * GB)
    assert sel.confidence == 0.7 and sel.primary is False  # relational is its secondary category


def test_default_policy_weighs_confidence(default_registry):
    sel = select(default_registry, "code", Constraints(max_memory=14 * GB))
    assert sel.final_score == pytest.approx(70 * 0.95) and sel.policy == "default"


# --- each constraint -----------------------------------------------------------------------------

R = """\
    models:
      - {name: small, memory: 2GB, categories: [code], agent_types: [inference], context_length: 4096,
         benchmarks: {HumanEval: 40}}
      - {name: mid, memory: 6GB, categories: [code, math], agent_types: [inference, tool],
         context_length: 32768, benchmarks: {HumanEval: 70}}
      - {name: big, memory: "20GB (Q4), 40GB (Q8)", categories: [math, code], agent_types: [inference],
         context_length: 131072, benchmarks: {HumanEval: 90}}
      - {name: other, memory: 1GB, categories: [chat], agent_types: [tool]}
    categories:
      code: {models: [small, mid, big], benchmarks: {HumanEval: 1}}
      math: {models: []}
      chat: {models: [other]}
    routing: {default_category: code, fallback_model: other}
    """


@pytest.fixture
def r():
    return reg(R)


def test_max_memory(r):
    assert select(r, "code", Constraints(max_memory=1 * GB)).fallback  # only `other` fits
    assert select(r, "code", Constraints(max_memory=5 * GB), policy="legacy").model == "small"


def test_agent_type(r):
    assert select(r, "code", Constraints(agent_type="tool")).model == "mid"


def test_preferred_adds_30(r):
    sel = select(r, "code", Constraints(prefer=frozenset({"big"})), policy="legacy")
    assert (sel.model, sel.final_score, sel.variant) == ("big", 80.0, "Q8")


def test_excluded(r):
    sel = select(r, "code", Constraints(exclude=frozenset({"small"})), policy="legacy")
    assert sel.model == "mid"


def test_min_benchmark_is_applied(r):
    assert select(r, "code", Constraints(min_benchmark=60), policy="legacy").model == "mid"
    assert select(r, "code", Constraints(min_benchmark=80), policy="legacy").model == "big"


def test_min_context(r):
    assert select(r, "code", Constraints(min_context=100_000), policy="legacy").model == "big"


def test_benchmark_bonus_in_default_policy(r):
    # small: (70 + 0.2*40) * 0.95 = 74.1; mid: (60 + 14) * 0.9 = 66.6; big Q8: (50 + 18) * 0.7 = 47.6
    sel = select(r, "code")
    assert (sel.model, sel.final_score) == ("small", pytest.approx(74.1))


def test_candidates_include_models_declaring_the_category():
    r = reg("""\
        models:
          - {name: listed, memory: 10GB, categories: [code]}
          - {name: declared, memory: 2GB, categories: [code]}
        categories:
          code: {models: [listed]}
        """)
    assert [e.model.name for e in r.candidates["code"]] == ["listed", "declared"]
    assert select(r, "code", policy="legacy").model == "declared"


def test_default_category_when_none_given(r):
    assert select(r, None).category == "code"


# --- ties -----------------------------------------------------------------------------------------

def test_ties_go_to_the_earlier_candidate_then_the_name():
    r = reg("""\
        models:
          - {name: zeta, memory: 2GB, categories: [code]}
          - {name: alpha, memory: 2GB, categories: [code]}
        categories:
          code: {models: [zeta, alpha]}
        """)
    assert select(r, "code", policy="legacy").model == "zeta"
    r2 = reg("""\
        models:
          - {name: zeta, memory: 2GB, categories: [code]}
          - {name: alpha, memory: 2GB, categories: [code]}
        categories:
          code: {models: [alpha, zeta]}
        """)
    assert select(r2, "code", policy="legacy").model == "alpha"


def test_same_input_same_answer_every_time(r):
    gpus = [gpu(0, 10), gpu(1, 10), gpu(2, 30)]
    answers = {select(r, "code", Constraints(), gpus) for _ in range(200)}
    assert len(answers) == 1


# --- GPU-aware placement ----------------------------------------------------------------------------

def test_least_loaded_healthy_gpu_with_room(r):
    gpus = [gpu(0, 70, util=0.9), gpu(1, 70, util=0.1), gpu(2, 79, util=0.0, health=HOT)]
    sel = select(r, "code", Constraints(), gpus, policy="legacy")
    assert sel.gpu == 1
    assert sel.load == pytest.approx(load_score(gpus[1]))
    assert sel.final_score == pytest.approx(70 * (1 - load_score(gpus[1])), abs=1e-6)


def test_model_needs_free_memory_for_a_variant(r):
    gpus = [gpu(0, 1, total_gb=16)]  # 1 GB free: nothing of code fits, `other` (1GB) does
    sel = select(r, "code", Constraints(), gpus)
    assert sel.fallback and sel.model == "other" and sel.gpu == 0


def test_variant_shrinks_to_what_the_gpu_holds(r):
    gpus = [gpu(0, 25)]
    sel = select(r, "code", Constraints(prefer=frozenset({"big"})), gpus, policy="legacy")
    assert (sel.model, sel.variant) == ("big", "Q4")


def test_gpu_ties_go_to_the_lower_index(r):
    sel = select(r, "code", Constraints(), [gpu(3, 40), gpu(1, 40)])
    assert sel.gpu == 1


def test_no_healthy_gpu_explains(r):
    with pytest.raises(NoSuitableModel) as e:
        select(r, "code", Constraints(), [gpu(0, 70, health=HOT)])
    assert ("small", "no healthy GPU") in e.value.rejections


# --- fallback and failures -------------------------------------------------------------------------

def test_fallback_model_used_with_reason(r):
    sel = select(r, "math", Constraints(agent_type="tool", max_memory=5 * GB))
    assert sel.fallback and sel.model == "other" and "fallback_model" in sel.reason
    assert sel.confidence == 0.5 and sel.primary is False


def test_best_other_model_when_fallback_fails_too(r):
    sel = select(r, "math", Constraints(agent_type="inference", max_memory=3 * GB))
    assert sel.fallback and sel.model == "small" and "best other model" in sel.reason


def test_unknown_category_suggests(r):
    with pytest.raises(UnknownCategory) as e:
        select(r, "cdoe")
    assert e.value.suggestions == ["code"]


def test_no_suitable_model_says_which_constraint_removed_which(r):
    with pytest.raises(NoSuitableModel) as e:
        select(r, "code", Constraints(min_context=10**7))
    assert e.value.rejections == [
        ("small", "context length 4096 < 10000000"), ("mid", "context length 32768 < 10000000"),
        ("big", "context length 131072 < 10000000")]
    with pytest.raises(NoSuitableModel) as e:
        select(r, "code", Constraints(max_memory=GB // 2, exclude=frozenset({"mid"}), min_benchmark=50))
    assert e.value.rejections == [("small", "benchmark 40.0 < 50"), ("mid", "excluded"),
                                  ("big", "needs 20GB > max 500MB")]


def test_unknown_policy(r):
    with pytest.raises(ValueError):
        select(r, "code", policy="random")
