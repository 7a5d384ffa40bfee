"""The default test run leaves the slow tests out (``addopts``: ``-m 'not slow'``), and says so."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def test_the_default_run_leaves_the_slow_tests_out_and_says_so():
    # a module with one slow test (the stage clip's tracker test), collected only
    args = [sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider"]
    args.append("tests/face/test_temporal.py")
    default = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert default.returncode == 0, default.stdout + default.stderr
    assert "(1 deselected)" in default.stdout
    assert "1 slow test left out of this run: '-m slow' runs them" in default.stdout
    everything = subprocess.run([*args, "-m", ""], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert everything.returncode == 0, everything.stdout + everything.stderr
    assert "deselected" not in everything.stdout and "left out" not in everything.stdout
