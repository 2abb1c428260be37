import os
import subprocess
import sys

from conftest import ROOT


def test_readme_metric_reference_is_generated_from_the_code():
    """Like kubernetes-mixin's check that generated files are committed: `make docs` regenerates."""
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "metrics_reference.py")], capture_output=True,
                         text=True, check=True).stdout
    readme = open(os.path.join(ROOT, "README.md")).read()
    assert out in readme, "README.md metric reference is stale: run `make docs`"
    for line in out.splitlines()[2:]:
        assert line.startswith("| `orchex_") or line.startswith("| `process_")
