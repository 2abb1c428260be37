import pytest

from exporter.gpu.health import DOWN, FAULT, HEALTHY, HIGH_POWER, HOT, OVERLOADED, Thresholds, health, load_score
from exporter.gpu.snapshot import GpuSnapshot


def snap(temp=50.0, util=0.5, power=100.0, limit=300.0, **kw):
    return GpuSnapshot(index=0, temperature=temp, utilization=util, power=power, power_limit=limit, **kw)


@pytest.mark.parametrize("kw,state", [
    ({}, HEALTHY),
    ({"temp": 84.9}, HEALTHY),
    ({"temp": 85.0}, HOT),  # the legacy tool labelled exactly 85 C HIGH_POWER
    ({"temp": 86.0, "util": 0.99, "power": 299.0}, HOT),
    ({"util": 0.95}, OVERLOADED),
    ({"util": 0.97, "power": 299.0}, OVERLOADED),
    ({"power": 285.0}, HIGH_POWER),
    ({"power": 284.9}, HEALTHY),
])
def test_legacy_rules_in_order(kw, state):
    assert health(snap(**kw), now=0) == state


def test_missing_fields_cannot_trip_their_rule():
    assert health(snap(power=None), now=0) == HEALTHY
    assert health(snap(temp=None, util=None, power=None, limit=None), now=0) == HEALTHY


def test_down_and_fault():
    assert health(snap(up=False, temp=99.0), now=0) == DOWN
    assert health(snap(ecc_errors={("volatile", "uncorrected"): 1}), now=0) == FAULT
    assert health(snap(ecc_errors={("volatile", "corrected"): 50}), now=0) == HEALTHY
    assert health(snap(row_remap_failure=True), now=0) == FAULT


def test_critical_xid_within_the_window_only():
    s = snap(xid_last_seen={79: 1000.0, 13: 1990.0})
    assert health(s, now=1500.0) == FAULT
    assert health(s, now=1000.0 + 601) == HEALTHY  # 13 is application-caused, not critical
    assert health(s, now=1500.0, t=Thresholds(xid_window_seconds=60)) == HEALTHY


def test_thresholds_are_configurable():
    t = Thresholds(temperature_celsius=80, utilization_ratio=0.99, power_ratio=0.5)
    assert health(snap(temp=81.0), now=0, t=t) == HOT
    assert health(snap(util=0.97), now=0, t=t) == HEALTHY
    assert health(snap(power=151.0), now=0, t=t) == HIGH_POWER


def test_load_score_formula():
    s = GpuSnapshot(index=0, memory_used=40, memory_total=80, utilization=0.5, temperature=68.0)
    assert load_score(s) == pytest.approx(0.5 * 0.5 + 0.3 * 0.5 + 0.2 * 68 / 85)
    assert load_score(GpuSnapshot(index=0)) == 0.0


def test_the_policy_cannot_be_changed_in_place():
    """Every reader shares one POLICY: a change must be a new variant (a subclass), never an edit."""
    from exporter.policy import POLICY

    with pytest.raises(AttributeError):
        POLICY.temperature_celsius = 20.0  # type: ignore[misc]
    with pytest.raises(AttributeError):
        POLICY.new_threshold = 1.0  # type: ignore[attr-defined]
    assert POLICY.temperature_celsius == 85.0


@pytest.mark.parametrize("kw,state", [
    ({}, HEALTHY),  # no utilisation under MIG: judged on the rest, not as idle and not as unknown
    ({"temp": 85.0}, HOT),
    ({"power": 285.0}, HIGH_POWER),
])
def test_a_gpu_in_mig_mode_is_judged_on_what_the_driver_supports_there(kw, state):
    from exporter.gpu.snapshot import MigInstance

    full = [MigInstance(uuid=f"MIG-{i}", gpu_instance=i, memory_used=10, memory_total=10) for i in range(7)]
    s = snap(**{"util": None, **kw}, mig_mode=True, mig_instances=full)
    assert health(s, now=0) == state  # a full instance is the MIG memory alert's business, not a health state
