"""Run the float64 tests (tests/x64/) in their own process with x64 enabled."""

import os
import subprocess
import sys
from pathlib import Path


def test_x64_suite_passes_in_its_own_process():
    here = Path(__file__).parent
    env = dict(os.environ, JAX_ENABLE_X64="1")
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          str(here / "x64")], env=env, capture_output=True, text=True,
                         timeout=1200, cwd=here.parent)
    assert out.returncode == 0, out.stdout[-5000:] + out.stderr[-2000:]
    assert " passed" in out.stdout and " failed" not in out.stdout
