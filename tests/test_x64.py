"""Run the float64 tests (everything in tests/x64/) in their own process.

`jax_enable_x64` is process-wide, so the float64 tests never share a process
with the float32 ones (see STYLE.md, "Two global switches").
"""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_x64_suite_passes_in_its_own_process():
    env = dict(os.environ, JAX_ENABLE_X64="1")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/x64", "-q", "-p",
         "no:cacheprovider",
         "-o", "addopts="],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    summary = out.strip().splitlines()[-1]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= 200, summary
    for bad in ("failed", "error", "skipped", "xfailed", "xpassed"):
        assert bad not in summary, summary
