import pytest

from exporter.errors import ProblemList
from exporter.gpu.backends import judged
from exporter.gpu.health import HEALTHY, HOT
from exporter.gpu.simulated import SimulatedBackend


def test_default_fleet_is_two_h100_and_two_t4():
    snaps = SimulatedBackend(clock=lambda: 1000.0).read()
    assert [s.name for s in snaps] == ["NVIDIA H100 80GB HBM3"] * 2 + ["Tesla T4"] * 2
    assert snaps[0].memory_total == 81559 * 2**20 and snaps[2].memory_total == 15360 * 2**20
    for s in snaps:
        assert s.memory_used + s.memory_free + s.memory_reserved == s.memory_total
        assert 0 <= s.utilization <= 1


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
