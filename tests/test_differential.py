"""The C fold and the Python path on generated hostile logs (tests/differential.py), and proof that
the check can fail: a Python path made to disagree on one field is caught."""

import pytest
from hypothesis import HealthCheck, given, settings

from differential import LOG, disagreement
from exporter.selectionlog import rows
from exporter.selectionlog import tally as tally_module

KERNEL = tally_module._kernel


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(LOG)
def test_the_c_fold_and_the_python_path_agree_on_hostile_logs(data):
    assert KERNEL is not None, "exporter/selectionlog/_fold.c was not built"
    assert disagreement(data, KERNEL) is None


@pytest.mark.parametrize("field, row", [
    ("SCORE_LIMIT", "2026-01-01 00:00:00,code,m1,true,0.5,50,0,1\n"),
    ("DURATION_LIMIT_MS", "2026-01-01 00:00:00,code,m1,true,0.5,50,0,5000\n"),
])
def test_a_python_path_that_disagrees_on_one_field_is_caught(monkeypatch, field, row):
    """The fold counts a plainly valid block itself and leaves any block with a bad row to Python, so
    the paths can only disagree where Python refuses what C accepts: the mutant's limit is lower."""
    data = (row * 5).encode()
    assert disagreement(data, KERNEL) is None
    # The Python path's limit, moved: the C fold keeps its own.
    monkeypatch.setattr(rows, field, getattr(rows, field) / 10**5)
    assert disagreement(data, KERNEL) is not None
