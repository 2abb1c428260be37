"""`make fuzz`: the differential property of tests/differential.py, run for a set time against the
selection-log fold (exporter/selectionlog/_fold.c) built with AddressSanitizer and
UndefinedBehaviorSanitizer. Run by `make fuzz`, which preloads the ASan runtime; a memory error or
undefined behaviour aborts the process, a disagreement between the C and the Python path fails it.

    python tools/fuzz.py SECONDS"""

import importlib.machinery
import importlib.util
import os
import subprocess
import sys
import sysconfig
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]
SOURCE = os.path.join(ROOT, "exporter", "selectionlog", "_fold.c")
FLAGS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g", "-O1"]


def build(folder: str):
    """The fold compiled with the sanitizers, loaded under its own module name."""
    so = os.path.join(folder, "_fold" + sysconfig.get_config_var("EXT_SUFFIX"))
    subprocess.run(["gcc", "-shared", "-fPIC", *FLAGS, "-I", sysconfig.get_paths()["include"], SOURCE, "-o", so],
                   check=True)
    loader = importlib.machinery.ExtensionFileLoader("exporter.selectionlog._fold", so)
    spec = importlib.util.spec_from_file_location("exporter.selectionlog._fold", so, loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def main(seconds: float) -> int:
    from hypothesis import HealthCheck, given, settings

    from differential import LOG, disagreement

    with tempfile.TemporaryDirectory() as folder:
        kernel = build(folder)

        @settings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(LOG)
        def agree(data: bytes) -> None:
            assert disagreement(data, kernel) is None

        started, rounds = time.monotonic(), 0
        while time.monotonic() - started < seconds:
            agree()
            rounds += 1
    print(f"fuzz: {rounds * 200} generated logs in {time.monotonic() - started:.0f} s, C and Python agree, "
          "no sanitizer report")
    return 0


if __name__ == "__main__":
    sys.exit(main(float(sys.argv[1]) if len(sys.argv) > 1 else 60))
