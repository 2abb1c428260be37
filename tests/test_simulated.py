import pytest

from exporter.errors import ProblemList
from exporter.gpu.backends import judged
from exporter.gpu.health import HEALTHY, HOT
from exporter.gpu.simulated import SimulatedBackend


def test_default_fleet_is_two_h100_two_t4_and_an_h100_in_mig_mode():
    snaps = SimulatedBackend(clock=lambda: 1000.0).read()
    assert [s.name for s in snaps] == ["NVIDIA H100 80GB HBM3"] * 2 + ["Tesla T4"] * 2 + ["NVIDIA H100 80GB HBM3"]
    assert snaps[0].memory_total == 81559 * 2**20 and snaps[2].memory_total == 15360 * 2**20
    for s in snaps:
        assert s.memory_used + s.memory_free + s.memory_reserved == s.memory_total
        assert s.mig_mode or 0 <= s.utilization <= 1


def test_the_mig_gpu_has_seven_instances_a_process_in_each_and_no_device_utilisation():
    s = SimulatedBackend(clock=lambda: 1000.0).read()[4]
    assert s.mig_mode and s.utilization is None and s.memory_utilization is None
    assert [i.profile for i in s.mig_instances] == ["1g.10gb"] * 7 and len({i.uuid for i in s.mig_instances}) == 7
    assert all(0 < i.memory_used < i.memory_total == 10 * 2**30 for i in s.mig_instances)
    assert s.memory_used == sum(i.memory_used for i in s.mig_instances)
    by_instance = {p.gpu_instance: p for p in s.processes}
    assert sorted(by_instance) == [i.gpu_instance for i in s.mig_instances]
    assert all(by_instance[i.gpu_instance].memory_used == i.memory_used for i in s.mig_instances)
    assert all(p.sm_utilization is None for p in s.processes)  # not available under MIG


def test_processes_share_a_whole_gpu_by_weight_and_name_themselves():
    s = SimulatedBackend(clock=lambda: 1000.0).read()[1]
    assert [p.command for p in s.processes] == ["python3", "ollama_llama_se", "tritonserver"]
    assert s.compute_processes == 3 and len({p.pid for p in s.processes}) == 3
    used = [p.memory_used for p in s.processes]
    assert used == sorted(used, reverse=True) and sum(used) <= s.memory_used
    assert abs(sum(p.sm_utilization for p in s.processes) - s.utilization) < 0.01
    assert SimulatedBackend(clock=lambda: 1000.0).read()[3].processes == []


@pytest.mark.parametrize("value, problem", [
    ("[2g.20gb, 3g.40gb, 3g.40gb]", "more than the GPU's 7 slices"),
    ("[1g.10]", "MIG profiles such as 1g.10gb"),
    ("[]", "MIG profiles such as 1g.10gb"),
])
def test_bad_mig_profiles_name_the_line(tmp_path, value, problem):
    p = tmp_path / "fleet.yaml"
    p.write_text(f"gpus:\n  - name: x\n    mig: {value}\n")
    with pytest.raises(ProblemList) as e:
        SimulatedBackend(str(p))
    assert e.value.problems[0][0] == 3 and problem in e.value.problems[0][1]


def test_seeded_dynamics_replay():
    a = SimulatedBackend(clock=lambda: 1234.0).read()
    b = SimulatedBackend(clock=lambda: 1234.0).read()
    assert [vars(x) for x in a] == [vars(y) for y in b]
    c = SimulatedBackend(clock=lambda: 1264.0).read()
    assert [x.utilization for x in a] != [x.utilization for x in c]


def test_one_runs_hot_and_one_reads_power_na():
    states, hot_seen = set(), False
    t = [0.0]
    backend = SimulatedBackend(clock=lambda: t[0])
    for second in range(0, 200, 2):
        t[0] = 1000.0 + second
        snaps = judged(backend.read(), t[0])
        states |= {s.health for s in snaps}
        hot_seen |= snaps[2].health == HOT
        assert snaps[3].power is None and snaps[3].energy is None and snaps[3].power_limit == 70
    assert hot_seen and HEALTHY in states


def test_energy_counter_grows():
    t = [100.0]
    b = SimulatedBackend(clock=lambda: t[0])
    e1 = b.read()[0].energy
    t[0] = 160.0
    assert b.read()[0].energy > e1


def test_bad_fleet_names_the_line(tmp_path):
    p = tmp_path / "fleet.yaml"
    p.write_text("gpus:\n  - name: x\n    memory_total: lots\n  - name: y\n    colour: red\n")
    with pytest.raises(ProblemList) as e:
        SimulatedBackend(str(p))
    assert [line for line, _ in e.value.problems] == [3, 5]


def test_hopper_gpus_report_gpm_from_their_load_per_instance_under_mig():
    from exporter.gpu.gpm import GPM_METRICS

    snaps = SimulatedBackend(clock=lambda: 1000.0).read()
    assert [s.gpm_supported for s in snaps] == [True, True, False, False, True]
    keys = {m.key for m in GPM_METRICS}
    assert set(snaps[0].gpm) == keys and snaps[0].gpm["tensor_active_ratio"] == 0.6 * snaps[0].utilization
    assert snaps[2].gpm == {} and snaps[4].gpm == {}
    assert all(set(i.gpm) == keys and 0 <= i.gpm["sm_active_ratio"] <= 0.9 for i in snaps[4].mig_instances)
